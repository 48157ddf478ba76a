"""Whose sync a service's notification calls for: the users and kinds it concerns.

SuperOffice: an `activity.*` event concerns appointments, `person.*` and `contact.*`
(companies) contacts. The users are the active users of the profile whose associate owns the
record (`FieldValues.associate_id`: an appointment's owner, a person's or company's
our-contact), and those who hold a link to it (a delete names no owner, and a person may be
synced to someone other than the company's our-contact). When neither names anyone, the
associate who made the change (`ChangedByAssociateId`) is asked: deleting your own
appointment is the usual case. Anyone else is left to the poll.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.connectors.superoffice.webhooks import Notification
from common.kinds import ItemKind
from common.models import InvitationState, ItemLink, SyncUser

ENTITY_KINDS = {
    "activity": ItemKind.APPOINTMENT,
    "person": ItemKind.CONTACT,
    "contact": ItemKind.CONTACT,
}


def superoffice_targets(
    session: Session, profile_id: int, note: Notification
) -> list[tuple[int, ItemKind]]:
    kind = ENTITY_KINDS.get(note.entity)
    if kind is None:
        return []
    rows = session.execute(
        select(SyncUser.id, SyncUser.crm_associate_id).where(
            SyncUser.profile_id == profile_id,
            SyncUser.invitation_state == InvitationState.ACTIVE,
        )
    )
    users = {user: associate for user, associate in rows}
    owners = {note.associate_id} - {None, 0}
    found = {user for user, associate in users.items() if associate in owners}
    if note.primary_key is not None and note.entity != "contact" and users:
        found |= set(
            session.scalars(
                select(ItemLink.sync_user_id).where(
                    ItemLink.sync_user_id.in_(users),
                    ItemLink.kind == kind,
                    ItemLink.crm_id == str(note.primary_key),
                )
            )
        )
    if not found and note.changed_by:
        found = {user for user, associate in users.items() if associate == note.changed_by}
    return [(user, kind) for user in sorted(found)]
