"""One user's Exchange Online mailbox: events, contacts, change counter and delta sync states."""

from __future__ import annotations

import copy
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from simulators.microsoft import events as ev
from simulators.microsoft import ids
from simulators.microsoft import recurrence as rec
from simulators.microsoft.errors import GraphError, bad_request, not_found
from simulators.microsoft.extended import ExtendedProperties
from simulators.microsoft.timezones import odata_timestamp, parse_local, zone

CONTACT_WRITABLE = {
    "givenName",
    "surname",
    "middleName",
    "displayName",
    "nickName",
    "title",
    "initials",
    "generation",
    "companyName",
    "department",
    "jobTitle",
    "officeLocation",
    "profession",
    "manager",
    "assistantName",
    "emailAddresses",
    "businessPhones",
    "homePhones",
    "mobilePhone",
    "businessAddress",
    "homeAddress",
    "otherAddress",
    "businessHomePage",
    "birthday",
    "personalNotes",
    "categories",
    "imAddresses",
    "spouseName",
    "children",
    "fileAs",
    "yomiGivenName",
    "yomiSurname",
    "yomiCompanyName",
    "singleValueExtendedProperties",
}
CONTACT_READ_ONLY = {"id", "createdDateTime", "lastModifiedDateTime", "changeKey", "parentFolderId"}
EVENTS = "events"  # the tombstone scope of events; contacts are scoped by folder (`contacts_scope`)


def contacts_scope(folder_id: str) -> str:
    return f"contacts:{folder_id}"


_CONTACT_DEFAULTS: dict = {
    "givenName": None,
    "surname": None,
    "middleName": None,
    "displayName": "",
    "nickName": None,
    "title": None,
    "initials": None,
    "generation": None,
    "companyName": None,
    "department": None,
    "jobTitle": None,
    "officeLocation": None,
    "profession": None,
    "manager": None,
    "assistantName": None,
    "emailAddresses": [],
    "businessPhones": [],
    "homePhones": [],
    "mobilePhone": None,
    "businessAddress": {},
    "homeAddress": {},
    "otherAddress": {},
    "businessHomePage": None,
    "birthday": None,
    "personalNotes": "",
    "categories": [],
    "imAddresses": [],
    "spouseName": None,
    "children": [],
    "fileAs": "",
    "yomiGivenName": None,
    "yomiSurname": None,
    "yomiCompanyName": None,
}


@dataclass
class ContactRecord:
    id: str
    props: dict
    created: datetime
    modified: datetime
    change_key: str
    seq: int
    folder_id: str = ""
    extended: ExtendedProperties = field(default_factory=ExtendedProperties)


@dataclass
class DeltaState:
    """What a delta token stands for: the window (events), the change counter it was issued at
    and the ids the client has seen, so removals and moves out of the window are reported."""

    kind: str  # "events" | "contacts"
    seq: int
    seen: frozenset[str]
    window: tuple[datetime, datetime] | None = None
    scope: str = EVENTS  # whose tombstones count: events, or one contact folder's


@dataclass
class PageState:
    items: list[dict]
    final: DeltaState


@dataclass
class Mailbox:
    user_id: str
    address: str
    display_name: str
    calendar_id: str = field(default_factory=lambda: ev.new_id("AAMkAC"))
    contact_folder_id: str = field(default_factory=lambda: ev.new_id("AAMkAF"))
    # Folders made under the default contacts folder: id -> displayName.
    contact_folders: dict[str, str] = field(default_factory=dict)
    records: dict[str, ev.EventRecord] = field(default_factory=dict)
    contacts: dict[str, ContactRecord] = field(default_factory=dict)
    transactions: dict[str, tuple[str, float]] = field(default_factory=dict)  # id, when (monotonic)
    seq: int = 0
    delta_states: dict[str, DeltaState] = field(default_factory=dict)
    # ids deleted (events, cancelled occurrences, contacts), each with the change counter at
    # deletion and its scope (events, or a contact folder): delta reports them as removed, in
    # their own scope, even to a client that never saw them
    tombstones: dict[str, tuple[int, str]] = field(default_factory=dict)
    pages: dict[str, PageState] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    # called as on_change(user id, "events"|"contacts", created|updated|deleted, item id, change
    # key) after each change, for change notifications (None while seeding)
    on_change: Callable[[str, str, str, str, str], None] | None = None
    in_flight: int = 0
    recent_requests: deque = field(default_factory=deque)
    # What Outlook's MailboxConcurrency limit saw: the most requests in flight at once, and
    # how many it refused (exported by /_sim/state, so tests can check a client's manners).
    peak_in_flight: int = 0
    concurrency_refusals: int = 0

    # --- events ------------------------------------------------------------------------

    def organizer(self) -> dict:
        return {"emailAddress": {"name": self.display_name, "address": self.address}}

    def _notify(self, kind: str, change_type: str, item_id: str, change_key: str) -> None:
        if self.on_change is not None:
            self.on_change(self.user_id, kind, change_type, item_id, change_key)

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def create_event(
        self, body: dict, dedup_seconds: float | None = None
    ) -> tuple[ev.EventRecord, bool]:
        """(record, created). A transactionId repeated within `dedup_seconds` returns the first
        event (idempotent retries); later, the same transactionId creates another event."""
        ev.check_properties(body, creating=True)
        extended = _extended(body)
        with self.lock:
            txn = body.get("transactionId")
            earlier = self.transactions.get(txn) if txn else None
            if (
                earlier is not None
                and earlier[0] in self.records
                and time.monotonic() - earlier[1]
                < (TRANSACTION_WINDOW if dedup_seconds is None else dedup_seconds)
            ):
                return self.records[earlier[0]], False
            timing = ev.timing_from(body)
            recurrence = body.get("recurrence")
            if recurrence is not None:
                rec.validate(recurrence)
                recurrence = _normalised_recurrence(recurrence, timing)
            now = datetime.now(UTC)
            record = ev.EventRecord(
                id=ev.new_id(),
                props={
                    k: copy.deepcopy(v)
                    for k, v in body.items()
                    if k in ev.WRITABLE and k not in _SPECIAL
                },
                timing=timing,
                recurrence=recurrence,
                created=now,
                modified=now,
                change_key=ev.new_change_key(),
                ical_uid="040000008200E00074C5B7101A82E008" + uuid.uuid4().hex.upper(),
                seq=self._next_seq(),
                transaction_id=txn,
                extended=extended,
            )
            self.records[record.id] = record
            if txn:
                self.transactions[txn] = (record.id, time.monotonic())
            self._notify("events", "created", record.id, record.change_key)
            return record, True

    def _bury(self, item_id: str, seq: int, scope: str = EVENTS) -> None:
        self.tombstones[item_id] = (seq, scope)
        while len(self.tombstones) > TOMBSTONES:
            self.tombstones.pop(next(iter(self.tombstones)))

    def removed_since(self, seq: int, scope: str = EVENTS) -> set[str]:
        with self.lock:
            return {
                item_id
                for item_id, (at, where) in self.tombstones.items()
                if at > seq and where == scope
            }

    def instance(self, event_id: str) -> ev.Instance:
        event_id = ids.rest_id(event_id)
        with self.lock:
            record = self.records.get(event_id)
            if record is not None:
                return ev.master_instance(record)
            parts = ev.split_occurrence_id(event_id)
            if parts is not None and parts[0] in self.records:
                inst = ev.find_instance(self.records[parts[0]], parts[1])
                if inst is not None:
                    return inst
        raise not_found()

    def update_event(self, event_id: str, body: dict, if_match: str | None) -> ev.Instance:
        ev.check_properties(body, creating=False)
        extended = _extended(body)
        with self.lock:
            inst = self.instance(event_id)
            _check_etag(inst.change_key, if_match)
            record = inst.record
            seq = self._next_seq()
            props = {
                k: copy.deepcopy(v)
                for k, v in body.items()
                if k in ev.WRITABLE and k not in _SPECIAL
            }
            if inst.kind in ("occurrence", "exception"):
                if "recurrence" in body:
                    raise bad_request("The recurrence of an occurrence cannot be changed.")
                assert inst.original_start is not None
                timing = ev.timing_from(body, inst.timing)
                old = record.exceptions.get(inst.original_start)
                now = datetime.now(UTC)
                record.exceptions[inst.original_start] = ev.Exception_(
                    # Outlook keeps the occurrence's id when it becomes an exception.
                    id=ev.occurrence_id(record.id, inst.original_start),
                    props={**(old.props if old else {}), **props},
                    timing=timing,
                    change_key=ev.new_change_key(),
                    created=old.created if old else now,
                    modified=now,
                )
                record.seq = seq
            else:
                record.timing = ev.timing_from(body, record.timing)
                record.props.update(props)
                if "recurrence" in body:
                    recurrence = body["recurrence"]
                    if recurrence is not None:
                        rec.validate(recurrence)
                        recurrence = _normalised_recurrence(recurrence, record.timing)
                    record.recurrence = recurrence
                    # Outlook drops exceptions when the pattern of a series changes.
                    record.exceptions.clear()
                    record.cancelled.clear()
                record.extended.values.update(extended.values)
                record.touch(seq)
            changed = self.instance(inst.id)
            self._notify("events", "updated", changed.id, changed.change_key)
            return changed

    def delete_event(self, event_id: str, if_match: str | None) -> None:
        with self.lock:
            inst = self.instance(event_id)
            _check_etag(inst.change_key, if_match)
            record = inst.record
            if inst.kind in ("occurrence", "exception"):
                assert inst.original_start is not None
                record.exceptions.pop(inst.original_start, None)
                record.cancelled.add(inst.original_start)
                record.touch(self._next_seq())
                self._bury(inst.id, record.seq)
            else:
                del self.records[record.id]
                self._bury(record.id, self._next_seq())
            self._notify("events", "deleted", inst.id, inst.change_key)

    # --- meetings organized elsewhere ----------------------------------------------------

    def invitation(self, ical_uid: str) -> ev.EventRecord | None:
        with self.lock:
            return next((r for r in self.records.values() if r.ical_uid == ical_uid), None)

    def receive_invitation(self, source: ev.EventRecord, organizer: dict) -> None:
        """The copy of a meeting Exchange puts in an attendee's calendar (same iCalUId, the
        organizer's details, not yet answered); a repeated request updates it."""
        with self.lock:
            mine = self.invitation(source.ical_uid)
            if mine is None:
                now = datetime.now(UTC)
                mine = ev.EventRecord(
                    id=ev.new_id(),
                    props={},
                    timing=source.timing,
                    recurrence=None,
                    created=now,
                    modified=now,
                    change_key=ev.new_change_key(),
                    ical_uid=source.ical_uid,
                    organizer=organizer,
                    response="notResponded",
                )
                self.records[mine.id] = mine
                change = "created"
            else:
                change = "updated"
            mine.props = copy_meeting_props(source.props)
            mine.timing = source.timing
            mine.recurrence = copy.deepcopy(source.recurrence)
            mine.meeting_cancelled = False
            mine.touch(self._next_seq())
            self._notify("events", change, mine.id, mine.change_key)

    def cancel_invitation(self, ical_uid: str) -> None:
        with self.lock:
            mine = self.invitation(ical_uid)
            if mine is not None and mine.organizer is not None:
                mine.meeting_cancelled = True
                mine.touch(self._next_seq())
                self._notify("events", "updated", mine.id, mine.change_key)

    def masters(self) -> list[ev.Instance]:
        with self.lock:
            return [ev.master_instance(r) for r in self.records.values()]

    def calendar_view(self, start: datetime, end: datetime) -> list[ev.Instance]:
        with self.lock:
            found = [inst for r in self.records.values() for inst in ev.expand(r, start, end)]
        return sorted(found, key=lambda i: (i.timing.start, i.id))

    def instances_of(self, master_id: str, start: datetime, end: datetime) -> list[ev.Instance]:
        master_id = ids.rest_id(master_id)
        with self.lock:
            record = self.records.get(master_id)
            if record is None:
                raise not_found()
            if not record.is_series:
                raise bad_request(
                    "The specified event is not a series master.", code="ErrorInvalidRequest"
                )
            return ev.expand(record, start, end)

    # --- contacts ----------------------------------------------------------------------

    def contact_folder(self, folder_id: str | None) -> str:
        """The id of a contact folder given by id (or `contacts`, the default one); 404 else."""
        if folder_id is None or folder_id == "contacts":
            return self.contact_folder_id
        folder_id = ids.rest_id(folder_id)
        if folder_id != self.contact_folder_id and folder_id not in self.contact_folders:
            raise not_found()
        return folder_id

    def create_contact_folder(self, display_name: str) -> str:
        """A folder under the default contacts folder; Outlook refuses a second one of the
        same name (409 ErrorFolderExists)."""
        name = display_name.strip()
        if not name:
            raise bad_request("The folder name cannot be empty.", code="ErrorInvalidRequest")
        with self.lock:
            if any(n.lower() == name.lower() for n in self.contact_folders.values()):
                raise GraphError(
                    409, "ErrorFolderExists", "A folder with the specified name already exists."
                )
            folder_id = ev.new_id("AAMkAF")
            self.contact_folders[folder_id] = name
            return folder_id

    def contacts_in(self, folder_id: str) -> list[ContactRecord]:
        with self.lock:
            return [c for c in self.contacts.values() if c.folder_id == folder_id]

    def create_contact(self, body: dict, folder_id: str | None = None) -> ContactRecord:
        _check_contact_properties(body)
        extended = _extended(body)
        folder = folder_id or self.contact_folder_id
        with self.lock:
            now = datetime.now(UTC)
            props = {
                k: copy.deepcopy(v)
                for k, v in body.items()
                if k in CONTACT_WRITABLE and k != "singleValueExtendedProperties"
            }
            contact = ContactRecord(
                id=ev.new_id("AAMkAG"),
                props=props,
                created=now,
                modified=now,
                change_key=ev.new_change_key(),
                seq=self._next_seq(),
                folder_id=folder,
                extended=extended,
            )
            self.contacts[contact.id] = contact
            self._notify("contacts", "created", contact.id, contact.change_key)
            return contact

    def contact(self, contact_id: str, folder_id: str | None = None) -> ContactRecord:
        """A contact by id; under a folder's path (`folder_id`) only one of that folder."""
        contact_id = ids.rest_id(contact_id)
        with self.lock:
            found = self.contacts.get(contact_id)
        if found is None or (folder_id is not None and found.folder_id != folder_id):
            raise not_found()
        return found

    def update_contact(
        self, contact_id: str, body: dict, if_match: str | None, folder_id: str | None = None
    ) -> ContactRecord:
        _check_contact_properties(body)
        extended = _extended(body)
        with self.lock:
            contact = self.contact(contact_id, folder_id)
            _check_etag(contact.change_key, if_match)
            contact.props.update(
                {
                    k: copy.deepcopy(v)
                    for k, v in body.items()
                    if k in CONTACT_WRITABLE and k != "singleValueExtendedProperties"
                }
            )
            contact.extended.values.update(extended.values)
            contact.modified = datetime.now(UTC)
            contact.change_key = ev.new_change_key()
            contact.seq = self._next_seq()
            self._notify("contacts", "updated", contact.id, contact.change_key)
            return contact

    def delete_contact(
        self, contact_id: str, if_match: str | None, folder_id: str | None = None
    ) -> None:
        with self.lock:
            contact = self.contact(contact_id, folder_id)
            _check_etag(contact.change_key, if_match)
            del self.contacts[contact.id]
            self._bury(contact.id, self._next_seq(), contacts_scope(contact.folder_id))
            self._notify("contacts", "deleted", contact.id, contact.change_key)

    # --- delta -------------------------------------------------------------------------

    def save_delta_state(self, state: DeltaState) -> str:
        return _remember(self.delta_states, state, self.lock)

    def save_page(self, page: PageState) -> str:
        return _remember(self.pages, page, self.lock)

    def forget_sync_states(self) -> None:
        with self.lock:
            self.delta_states.clear()
            self.pages.clear()


# Outlook keeps sync states in a bounded cache and evicts the oldest: a client that comes back
# with an evicted token gets 410 and starts over.
SYNC_STATE_CACHE = 500
# Microsoft documents transactionId as protection against retries of a create, without a
# duration; the simulator keeps it short so a client cannot lean on it for longer.
TRANSACTION_WINDOW = 300.0
_MEETING_PROPS = ("subject", "body", "location", "locations", "attendees", "sensitivity",
                  "importance", "showAs", "isOnlineMeeting", "onlineMeetingProvider")  # fmt: skip


def copy_meeting_props(props: dict) -> dict:
    """What an invitation carries to an attendee's copy of the meeting."""
    return {k: copy.deepcopy(v) for k, v in props.items() if k in _MEETING_PROPS}


TOMBSTONES = 10_000


def _remember(cache: dict, value: object, lock: threading.RLock) -> str:
    token = secrets.token_urlsafe(24)
    with lock:
        cache[token] = value
        while len(cache) > SYNC_STATE_CACHE:
            cache.pop(next(iter(cache)))
    return token


_SPECIAL = {
    "start",
    "end",
    "isAllDay",
    "recurrence",
    "transactionId",
    "singleValueExtendedProperties",
}


def _normalised_recurrence(recurrence: dict, timing: ev.Timing) -> dict:
    """Fill in what Graph fills in: interval, firstDayOfWeek, index, recurrenceTimeZone and an
    endDate of 0001-01-01 for open series."""
    pattern = {
        "type": recurrence["pattern"]["type"],
        "interval": int(recurrence["pattern"].get("interval") or 1),
        "month": int(recurrence["pattern"].get("month") or 0),
        "dayOfMonth": int(recurrence["pattern"].get("dayOfMonth") or 0),
        "firstDayOfWeek": recurrence["pattern"].get("firstDayOfWeek") or "sunday",
        "index": recurrence["pattern"].get("index") or "first",
    }
    if recurrence["pattern"].get("daysOfWeek"):
        pattern["daysOfWeek"] = list(recurrence["pattern"]["daysOfWeek"])
    range_ = recurrence["range"]
    return {
        "pattern": pattern,
        "range": {
            "type": range_["type"],
            "startDate": range_["startDate"],
            "endDate": range_.get("endDate") or "0001-01-01",
            "recurrenceTimeZone": range_.get("recurrenceTimeZone") or timing.start_zone,
            "numberOfOccurrences": int(range_.get("numberOfOccurrences") or 0),
        },
    }


def _extended(body: dict) -> ExtendedProperties:
    """The body's extended properties, checked before anything is written."""
    props = ExtendedProperties()
    props.write(body.get("singleValueExtendedProperties"))
    return props


def _check_etag(change_key: str, if_match: str | None) -> None:
    if if_match and if_match != "*" and change_key not in if_match:
        raise GraphError(
            412,
            "ErrorIrresolvableConflict",
            "The send or update operation could not be performed because the change key passed in "
            "the request does not match the current change key for the item.",
        )


def _check_contact_properties(body: dict) -> None:
    for name in body:
        if not name.startswith("@odata") and name not in CONTACT_WRITABLE | CONTACT_READ_ONLY:
            raise bad_request(
                f"The property '{name}' does not exist on type 'microsoft.graph.contact'. Make sure "
                "to only use property names that are defined by the type or mark the type as open type.",
                code="RequestBodyRead",
            )


def render_contact(contact: ContactRecord, expand_extended: list[str] | None = None) -> dict:
    out = {
        "@odata.etag": f'W/"{contact.change_key}"',
        "id": contact.id,
        "createdDateTime": odata_timestamp(contact.created),
        "lastModifiedDateTime": odata_timestamp(contact.modified),
        "changeKey": contact.change_key,
        "parentFolderId": contact.folder_id,
        **copy.deepcopy(_CONTACT_DEFAULTS),
        **copy.deepcopy(contact.props),
    }
    if expand_extended is not None:
        out["singleValueExtendedProperties"] = contact.extended.expanded(expand_extended)
    return out


def seed(mailbox: Mailbox, events: list[dict], contacts: list[dict]) -> None:
    """Load a world user's Graph-shaped seeds, including the simulator's seed extras
    `exceptions` and `cancelledOccurrences` on recurring events."""
    for raw in events:
        body = {k: v for k, v in raw.items() if k not in ("exceptions", "cancelledOccurrences")}
        record, _ = mailbox.create_event(body)
        tz_name = str(
            (record.recurrence or {}).get("range", {}).get("recurrenceTimeZone")
            or record.timing.start_zone
        )
        for local in raw.get("cancelledOccurrences", []):
            record.cancelled.add(parse_local(local).replace(tzinfo=zone(tz_name)).astimezone(UTC))
        for change in raw.get("exceptions", []):
            original = (
                parse_local(change["originalStart"]).replace(tzinfo=zone(tz_name)).astimezone(UTC)
            )
            inst = ev.find_instance(record, original)
            if inst is None:
                continue
            mailbox.update_event(
                inst.id, {k: v for k, v in change.items() if k != "originalStart"}, None
            )
    for raw in contacts:
        mailbox.create_contact(raw)
