"""Meeting messages: what Exchange's transport does when a write asks it to send invitations,
updates or cancellations.

Inside the organisation a meeting request lands in the attendee's calendar as a tentative copy
(the Calendar Attendant's default for user mailboxes, `AutomateProcessing AutoUpdate` with
`AddNewRequestsTentatively`); an address that is no mailbox here is mail leaving the
organisation. Every message is on record (`Store.sent_mail`), so a test can say who got mail.
"""

from __future__ import annotations

import copy

from lxml import etree

from .store import Item, Store, StoreError
from .xmlns import sub, t

# The values messages.xsd allows for each attribute, and the ones that send nothing.
SEND_INVITATIONS = {"SendToNone", "SendOnlyToAll", "SendToAllAndSaveCopy"}
SEND_UPDATES = SEND_INVITATIONS | {"SendOnlyToChanged", "SendToChangedAndSaveCopy"}
SEND_CANCELLATIONS = SEND_INVITATIONS
ONLY_CHANGED = {"SendOnlyToChanged", "SendToChangedAndSaveCopy"}
ATTENDEE_LISTS = ("RequiredAttendees", "OptionalAttendees", "Resources")
# Properties a meeting request carries to the attendee's copy (not the organizer's own
# bookkeeping, and not extended properties: those stay on the organizer's item).
NOT_CARRIED = {"MeetingRequestWasSent", "MyResponseType", "IsCancelled", "Organizer"}

REQUEST, UPDATE, CANCELLATION = "MeetingRequest", "MeetingUpdate", "MeetingCancellation"


def required(value: str | None, code: str, attribute: str, operation: str) -> str:
    """A calendar write must say whether to send (the ResponseCode reference page's
    ErrorSendMeetingInvitationsRequired and its siblings)."""
    if value is None:
        raise StoreError(
            code,
            f"The {attribute} attribute is required for a {operation} of a calendar item.",
        )
    return value


def attendees(item: Item) -> list[str]:
    found: list[str] = []
    for name in ATTENDEE_LISTS:
        container = item.props.get(name)
        for address in container.iter(t("EmailAddress")) if container is not None else ():
            if address.text and address.text.lower() not in found:
                found.append(address.text.lower())
    return found


def is_organizer_copy(item: Item) -> bool:
    """The organizer's item (an attendee's copy names someone else as organizer)."""
    return item.kind == "CalendarItem" and "Organizer" not in item.props


class MeetingTransport:
    """Sends a meeting's messages for one organisation's store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def invite(self, item: Item, mode: str) -> None:
        if mode == "SendToNone" or not is_organizer_copy(item) or not attendees(item):
            return
        self._send(item, REQUEST, attendees(item))
        was_sent = etree.Element(t("MeetingRequestWasSent"))
        was_sent.text = "true"
        item.props["MeetingRequestWasSent"] = was_sent

    def update(self, item: Item, before: list[str], mode: str) -> None:
        if mode == "SendToNone" or not is_organizer_copy(item):
            return
        after = attendees(item)
        updated = [a for a in after if a not in before] if mode in ONLY_CHANGED else after
        self._send(item, UPDATE, updated)
        self._send(item, CANCELLATION, [a for a in before if a not in after])

    def cancel(self, item: Item, mode: str) -> None:
        if mode == "SendToNone" or not is_organizer_copy(item):
            return
        self._send(item, CANCELLATION, attendees(item))

    # --- delivery ---------------------------------------------------------------------------
    def _send(self, item: Item, kind: str, recipients: list[str]) -> None:
        for address in recipients:
            user = self.store.users.get(address)
            internal = user is not None and user.has_mailbox and address != item.mailbox
            self.store.sent_mail.append(
                {
                    "kind": kind,
                    "from": item.mailbox,
                    "to": address,
                    "internal": internal,
                    "subject": item.text("Subject"),
                    "uid": item.text("UID"),
                }
            )
            if internal:
                self._deliver(item, kind, address)

    def _deliver(self, item: Item, kind: str, address: str) -> None:
        calendar = self.store.distinguished(address, "calendar")
        copy_of = next(
            (
                i
                for i in self.store.folder_items(calendar)
                if i.text("UID") == item.text("UID") and not is_organizer_copy(i)
            ),
            None,
        )
        if kind == CANCELLATION:
            if copy_of is not None:
                cancelled = etree.Element(t("IsCancelled"))
                cancelled.text = "true"
                copy_of.set_prop(cancelled)
                copy_of.touch()
                self.store.log_change(calendar.id, copy_of.id)
            return
        element = self._attendee_copy(item)
        if copy_of is None:
            self.store.create(calendar, element)
            return
        for child in element:
            copy_of.set_prop(child)
        copy_of.touch()
        self.store.log_change(calendar.id, copy_of.id)

    def _attendee_copy(self, item: Item) -> etree._Element:
        element = etree.Element(t("CalendarItem"))
        for name, prop in item.props.items():
            if name not in NOT_CARRIED:
                element.append(copy.deepcopy(prop))
        organizer = self.store.users.get(item.mailbox)
        box = sub(sub(element, t("Organizer")), t("Mailbox"))
        sub(box, t("Name"), organizer.display_name if organizer else item.mailbox)
        sub(box, t("EmailAddress"), item.mailbox)
        sub(box, t("RoutingType"), "SMTP")
        sub(element, t("MyResponseType"), "NoResponseReceived")
        sub(element, t("LegacyFreeBusyStatus"), "Tentative")
        return element
