"""Creating local administrators (and their organisation) outside the web UI."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.models import AdminUser, Organisation
from common.passwords import hash_password, password_problem

_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{3,150}$")


class AdminError(ValueError):
    pass


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:100] or "organisation"


def find_or_create_organisation(session: Session, name: str) -> Organisation:
    slug = slugify(name)
    organisation = session.scalar(select(Organisation).where(Organisation.slug == slug))
    if organisation is None:
        organisation = Organisation(name=name, slug=slug)
        session.add(organisation)
        session.flush()
    return organisation


def create_admin(
    session: Session, username: str, password: str, organisation_name: str
) -> AdminUser:
    if not _USERNAME.match(username):
        raise AdminError("username: use 3-150 letters, digits or . _ @ -")
    problem = password_problem(password)
    if problem:
        raise AdminError(f"password: {problem}")
    if session.scalar(select(AdminUser).where(AdminUser.username == username)):
        raise AdminError(f"an administrator named {username!r} already exists")
    organisation = find_or_create_organisation(session, organisation_name)
    admin = AdminUser(
        organisation=organisation, username=username, password_hash=hash_password(password)
    )
    session.add(admin)
    session.flush()
    return admin
