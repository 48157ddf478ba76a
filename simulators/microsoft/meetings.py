"""Meeting mail: what Exchange sends when an event has attendees.

Creating an event with attendees sends each of them a meeting request; changing it sends an
update (a request to attendees added, a cancellation to those removed); deleting it sends a
cancellation. Attendees with a mailbox in the organizer's tenant get the meeting in their own
calendar (same iCalUId, `isOrganizer` false, `responseStatus` notResponded; cancelled meetings
stay with `isCancelled` true); mail to any other address leaves the tenant. Every message is
recorded in `GraphState.sent_mail` (and `GET /_sim/state` `sentMail`), so a test can assert that
no customer received anything.
"""

from __future__ import annotations

from datetime import UTC, datetime

from simulators.microsoft import events as ev
from simulators.microsoft.graph_common import GraphState
from simulators.microsoft.mailbox import Mailbox
from simulators.world.microsoft import MicrosoftWorld

REQUEST, UPDATE, CANCELLATION = "meetingRequest", "meetingUpdate", "meetingCancellation"


def attendee_addresses(props: dict) -> list[str]:
    found = []
    for attendee in props.get("attendees") or []:
        address = str((attendee.get("emailAddress") or {}).get("address") or "").strip()
        if address and address.lower() not in (a.lower() for a in found):
            found.append(address)
    return found


def _mailbox_in_tenant(
    world: MicrosoftWorld, graph: GraphState, organizer: Mailbox, address: str
) -> Mailbox | None:
    tenant = world.tenant_of_user(organizer.address)
    user = tenant.user(address) if tenant is not None else None
    if user is None or not user.has_mailbox or user.id == organizer.user_id:
        return None
    return graph.mailboxes.get(user.id)


def send(
    world: MicrosoftWorld,
    graph: GraphState,
    organizer: Mailbox,
    record: ev.EventRecord,
    kind: str,
    recipients: list[str],
    *,
    occurrence: bool = False,
) -> None:
    """Send `kind` for `record` to `recipients`: delivered inside the tenant, recorded always.
    Mail about one occurrence is recorded; attendees' copies follow the series only."""
    if record.organizer is not None:
        return  # only the organizer's copy sends meeting mail
    sender = organizer.organizer()
    for address in recipients:
        mailbox = _mailbox_in_tenant(world, graph, organizer, address)
        if mailbox is not None and not occurrence:
            if kind == CANCELLATION:
                mailbox.cancel_invitation(record.ical_uid)
            else:
                mailbox.receive_invitation(record, sender)
        with graph.lock:
            graph.sent_mail.append(
                {
                    "kind": kind,
                    "from": organizer.address,
                    "to": address,
                    "subject": str(record.props.get("subject") or ""),
                    "iCalUId": record.ical_uid,
                    "internal": mailbox is not None,
                    "sentDateTime": datetime.now(UTC).isoformat(),
                }
            )


def after_create(world: MicrosoftWorld, graph: GraphState, mailbox: Mailbox, record) -> None:
    send(world, graph, mailbox, record, REQUEST, attendee_addresses(record.props))


def after_update(
    world: MicrosoftWorld,
    graph: GraphState,
    mailbox: Mailbox,
    inst: ev.Instance,
    before: list[str],
) -> None:
    record, occurrence = inst.record, inst.kind in ("occurrence", "exception")
    now = attendee_addresses(record.props)
    kept = [a for a in now if a.lower() in {b.lower() for b in before}]
    added = [a for a in now if a not in kept]
    removed = [b for b in before if b.lower() not in {a.lower() for a in now}]
    send(world, graph, mailbox, record, UPDATE, kept, occurrence=occurrence)
    send(world, graph, mailbox, record, REQUEST, added, occurrence=occurrence)
    send(world, graph, mailbox, record, CANCELLATION, removed, occurrence=occurrence)


def after_delete(world: MicrosoftWorld, graph: GraphState, mailbox: Mailbox, inst) -> None:
    occurrence = inst.kind in ("occurrence", "exception")
    addresses = attendee_addresses(inst.record.props)
    send(world, graph, mailbox, inst.record, CANCELLATION, addresses, occurrence=occurrence)
