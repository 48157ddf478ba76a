"""A migrated database with one organisation, one profile and its linked users."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from common.db import Database
from common.models import (
    CrmKind,
    GroupwareKind,
    InvitationState,
    Organisation,
    Profile,
    SyncUser,
)
from common.schema import upgrade


def migrated(url: str) -> Database:
    database = Database(url)
    upgrade(database)
    return database


def add_profile(db: Database, users: int = 1, **profile: Any) -> list[int]:
    """A profile with `users` active users (mailboxes user0@…, user1@…); their ids."""
    with db.session() as session:
        org = Organisation(name="Contoso", slug=f"contoso-{session.query(Profile).count()}")
        fields: dict[str, Any] = {
            "name": "Contoso sync",
            "crm_kind": CrmKind.SUPEROFFICE_ONSITE,
            "crm_url": "https://crm.contoso.example/SuperOffice",
            "groupware_kind": GroupwareKind.MICROSOFT_365,
            **profile,
        }
        made = Profile(organisation=org, **fields)
        members = [
            SyncUser(
                profile=made,
                crm_associate_id=100 + n,
                mailbox=f"user{n}@contoso.example",
                invitation_state=InvitationState.ACTIVE,
            )
            for n in range(users)
        ]
        session.add_all([org, made, *members])
        session.flush()
        return [m.id for m in members]


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A migrated database, on SQLite and then on PostgreSQL."""
    database = migrated(database_url)
    yield database
    database.dispose()
