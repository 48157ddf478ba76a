"""Linking a CRM associate to a mailbox, and taking it back (`synchronizer user …`).

- link: a new user of a profile. Where the groupware needs the user's own sign-in
  (Microsoft 365 with delegated permissions) and no tokens are there yet, the user is
  `invited` and syncs once they have signed in; otherwise `active`, due at once.
- unlink: the user stops syncing (`disabled`); their links and cursors are kept, so a relink
  goes on where it stopped, and nothing is deleted on either side. `forget` removes the user
  with their links, cursors, tokens and runs (the audit trail stays).
- relink: the user syncs again (needs attention, failures and schedule cleared). A new
  mailbox or associate is another calendar or diary: the old links and cursors are dropped
  (the first run pairs what both sides hold by our stamp and by content, so nothing is
  copied twice), and a new mailbox drops the tokens, which were another account's.

Changing who a user is, or removing them, happens under the user's lease, so a sync running
at that moment never writes links for the old identity afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from common.db import Database
from common.models import (
    Cursor,
    GroupwareKind,
    InvitationState,
    ItemLink,
    Profile,
    SyncUser,
)
from daemon.leases import held, user_slot
from daemon.profile_file import ProfileFileError, check_mailbox


class LinkError(ValueError):
    """The change is refused; the message says why."""


# Whether a profile's users must sign in themselves before they can sync (the composition
# root knows the permission mode: `needs_own_sign_in(settings)`).
OwnSignIn = Callable[[Profile], bool]


def needs_own_sign_in(permission_mode: str) -> OwnSignIn:
    def check(profile: Profile) -> bool:
        return profile.groupware_kind is GroupwareKind.MICROSOFT_365 and (
            permission_mode == "delegated"
        )

    return check


@dataclass(frozen=True)
class UserRecord:
    id: int | None
    profile_id: int
    profile: str
    mailbox: str
    crm_associate_id: int
    state: str
    note: str

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def find_profile(session: Session, ref: str) -> Profile:
    """A profile by id, or by name when that is unique."""
    if ref.isdigit():
        found = session.get(Profile, int(ref))
        if found is None:
            raise LinkError(f"there is no profile {ref}")
        return found
    named = list(session.scalars(select(Profile).where(Profile.name == ref)))
    if not named:
        raise LinkError(f"there is no profile named {ref!r}")
    if len(named) > 1:
        ids = ", ".join(str(p.id) for p in named)
        raise LinkError(f"several profiles are named {ref!r} ({ids}): give the id")
    return named[0]


def find_user(session: Session, mailbox: str, profile: str | None) -> SyncUser:
    query = select(SyncUser).where(func.lower(SyncUser.mailbox) == mailbox.strip().lower())
    if profile is not None:
        query = query.where(SyncUser.profile_id == find_profile(session, profile).id)
    found = list(session.scalars(query))
    if not found:
        raise LinkError(f"no user has the mailbox {mailbox!r}")
    if len(found) > 1:
        ids = ", ".join(str(u.profile_id) for u in found)
        raise LinkError(f"{mailbox} is in profiles {ids}: give --profile")
    return found[0]


def _mailbox(value: str) -> str:
    try:
        return check_mailbox(value)
    except ProfileFileError as exc:
        raise LinkError(str(exc)) from None


def _refuse_taken(
    session: Session, profile: Profile, mailbox: str | None, associate: int | None, me: int | None
) -> None:
    others = select(SyncUser).where(SyncUser.profile_id == profile.id)
    if me is not None:
        others = others.where(SyncUser.id != me)
    if mailbox is not None:
        other = session.scalars(
            others.where(func.lower(SyncUser.mailbox) == mailbox.lower())
        ).first()
        if other is not None:
            raise LinkError(f"{other.mailbox} is linked in profile {profile.name!r} already")
    if associate is not None:
        other = session.scalars(others.where(SyncUser.crm_associate_id == associate)).first()
        if other is not None:
            raise LinkError(
                f"associate {associate} is linked to {other.mailbox} in profile "
                f"{profile.name!r} already"
            )


def _record(user: SyncUser, profile: Profile, note: str) -> UserRecord:
    return UserRecord(
        user.id,
        profile.id,
        profile.name,
        user.mailbox,
        user.crm_associate_id,
        user.invitation_state.value,
        note,
    )


def _starting_state(user: SyncUser, profile: Profile, own_sign_in: OwnSignIn) -> str:
    """Active, or invited while the user's own sign-in is still missing; the note says so."""
    if own_sign_in(profile) and not user.tokens:
        user.invitation_state = InvitationState.INVITED
        return "invited: syncs once the user has signed in to Microsoft 365"
    user.invitation_state = InvitationState.ACTIVE
    return "active: due now"


def _due_now(user: SyncUser) -> None:
    user.needs_attention, user.failures, user.last_error = None, 0, None
    user.next_sync_at = user.queued_at = None


def link(
    db: Database,
    profile_ref: str,
    mailbox: str,
    associate: int,
    own_sign_in: OwnSignIn,
    *,
    crm_username: str | None = None,
    display_name: str | None = None,
) -> UserRecord:
    mailbox = _mailbox(mailbox)
    with db.session() as session:
        profile = find_profile(session, profile_ref)
        _refuse_taken(session, profile, mailbox, associate, None)
        user = SyncUser(
            profile_id=profile.id,
            crm_associate_id=associate,
            mailbox=mailbox,
            crm_username=crm_username,
            display_name=display_name,
        )
        note = _starting_state(user, profile, own_sign_in)
        session.add(user)
        session.flush()
        return _record(user, profile, note)


def _get(session: Session, user_id: int) -> SyncUser:
    user = session.get(SyncUser, user_id)
    if user is None:
        raise LinkError(f"user {user_id} was removed meanwhile")
    return user


@contextmanager
def _holding(db: Database, user_id: int, mailbox: str) -> Iterator[None]:
    with held(db, user_slot(user_id)) as lease:
        if lease is None:
            raise LinkError(f"a sync of {mailbox} is running: try again when it has ended")
        yield


def unlink(db: Database, mailbox: str, profile_ref: str | None, *, forget: bool) -> UserRecord:
    with db.session() as session:
        found_user = find_user(session, mailbox, profile_ref)
        user_id, found = found_user.id, found_user.mailbox
    if not forget:
        with db.session() as session:
            user = _get(session, user_id)
            user.invitation_state = InvitationState.DISABLED
            user.next_sync_at = user.queued_at = None
            return _record(
                user, user.profile, "disabled: links kept; `synchronizer user relink` resumes"
            )
    with _holding(db, user_id, found), db.session() as session:
        user = _get(session, user_id)
        record = _record(user, user.profile, "forgotten: links, cursors, tokens and runs removed")
        session.delete(user)
    return replace(record, id=None)


def relink(
    db: Database,
    mailbox: str,
    profile_ref: str | None,
    own_sign_in: OwnSignIn,
    *,
    new_mailbox: str | None = None,
    new_associate: int | None = None,
) -> UserRecord:
    with db.session() as session:
        found_user = find_user(session, mailbox, profile_ref)
        user_id, found = found_user.id, found_user.mailbox
    if new_mailbox is not None:
        new_mailbox = _mailbox(new_mailbox)
    with _holding(db, user_id, found), db.session() as session:
        user = _get(session, user_id)
        profile = user.profile
        moved_mailbox = new_mailbox is not None and new_mailbox.lower() != user.mailbox.lower()
        moved_associate = new_associate is not None and new_associate != user.crm_associate_id
        _refuse_taken(
            session,
            profile,
            new_mailbox if moved_mailbox else None,
            new_associate if moved_associate else None,
            user.id,
        )
        notes = []
        if moved_mailbox or moved_associate:
            session.execute(delete(ItemLink).where(ItemLink.sync_user_id == user.id))
            session.execute(delete(Cursor).where(Cursor.sync_user_id == user.id))
            notes.append("links and cursors dropped (the first run pairs by stamp and content)")
        if moved_mailbox:
            assert new_mailbox is not None
            user.mailbox, user.tokens = new_mailbox, None
        if moved_associate:
            assert new_associate is not None
            user.crm_associate_id = new_associate
        _due_now(user)
        notes.insert(0, _starting_state(user, profile, own_sign_in))
        return _record(user, profile, "; ".join(notes))
