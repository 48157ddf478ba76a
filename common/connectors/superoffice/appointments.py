"""One associate's diary as a connector: the appointments whose owner is the associate (their
own, and their booking of each meeting they take part in: one meeting is one item per
participant, never two), inside the window.

Ids are the appointment id (`"1234"`), or `r<rule id>` for a recurring series, whose rows
are read and written together (`series`). Versions are the `UpdatedDate` (of the series' last
changed row): coarse, so `exact_versions` is False and change is decided by content; updates
and deletes send it as `If-Unmodified-Since`, which SuperOffice answers 412 when the record
changed since. Our correlation id is a foreign key on the appointment (the series' first row),
read by `get` but not shown in listings (one more call per item).

A participant's booking belongs to the meeting's owner: only its alarm is the participant's
to change, any other edit is refused here with a clear error (SuperOffice refuses it too).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from typing import Any

from dateutil.rrule import rrulestr

from common.capabilities import SUPEROFFICE_APPOINTMENT, Capabilities
from common.connectors.base import (
    NotFound,
    ParallelConnector,
    Permanent,
    PreconditionFailed,
    Write,
    each_at_once,
)
from common.connectors.superoffice import mapping, series
from common.connectors.superoffice.client import (
    SO_CONCURRENCY,
    SuperOfficeClient,
    http_date,
    parse_updated,
)
from common.connectors.superoffice.listing import Lister, Row
from common.connectors.superoffice.mapping import Tenant, Unmappable
from common.connectors.superoffice.people import People
from common.connectors.superoffice.stamps import Stamps
from common.items import (
    Appointment,
    Recurrence,
    When,
    as_single,
    canonical_rule,
    content_hash,
    occurrence_key,
    occurrences,
    overlaps_window,
)
from common.kinds import ChangeSet, Stored, Unreadable, Window

TABLE = "appointment"
SERIES = "r"


def series_id(rule_id: int) -> str:
    return f"{SERIES}{rule_id}"


def _day_before(day: str) -> str:
    return (datetime.fromisoformat(day) - timedelta(days=1)).date().isoformat()


class _Scope:
    """The listing's view of one associate's diary."""

    resource = "/Appointment"
    key = "appointmentId"
    fingerprinted: tuple[str, ...] = (
        "date", "endDate", "appointment/title", "appointment/description", "location",
        "isFree", "alarm", "visibleFor", "type", "contactId", "personId", "booking",
        "invitedPersonId", "completed", "updatedDate", "registeredDate",
    )  # fmt: skip
    identified: tuple[str, ...] = ("recurrenceRuleId", "recordType")
    reads_changes = True

    def __init__(self, connector: SuperOfficeAppointments) -> None:
        self.connector = connector

    def where(self, window: Window | None) -> str:
        mine = f"associateId associateIsOneOf ({self.connector.associate_id})"
        if window is None:
            return mine
        # Whole days (the date columns' operators), a day wider on each side; items are
        # then kept to the window exactly once read.
        first = (window.start.astimezone(UTC) - timedelta(days=1)).date().isoformat()
        last = (window.end.astimezone(UTC) + timedelta(days=1)).date().isoformat()
        return f"{mine} and endDate after '{first}' and date before '{last}'"

    def changed_since(self, day: str) -> str:
        before = _day_before(day)
        return f"(updatedDate after '{before}' or registeredDate after '{before}')"

    def item_id(self, row: Row) -> str | None:
        if str(row.get("recordType") or "") == "inChecklist":
            return None  # a task, not a diary item
        rule = int(row.get("recurrenceRuleId") or 0)
        return series_id(rule) if rule else str(row["appointmentId"])

    def updated_day(self, row: Row) -> str:
        return str(row.get("updatedDate") or "")[:10]

    def read(
        self, item_ids: Sequence[str], window: Window | None
    ) -> tuple[list[Stored[Appointment]], list[str], list[Unreadable]]:
        found: list[Stored[Appointment]] = []
        gone: list[str] = []
        bad: list[Unreadable] = []
        read = each_at_once(
            lambda item_id: self.connector.read(item_id, stamp=False),
            item_ids,
            self.connector.in_flight,
        )
        for item_id, stored in zip(item_ids, read, strict=True):
            if isinstance(stored, NotFound):
                gone.append(item_id)
            elif isinstance(stored, Unmappable):
                bad.append(Unreadable(item_id, str(stored)))
            elif isinstance(stored, Exception):
                raise stored
            elif window is None or _inside(stored.item, window):
                found.append(stored)
        return found, gone, bad


def _inside(item: Appointment, window: Window) -> bool:
    try:
        return overlaps_window(item, window.start, window.end)
    except ValueError:
        return True  # a rule dateutil cannot expand: listed, for the engine to set aside


class SuperOfficeAppointments(ParallelConnector[Appointment]):
    exact_versions = False  # UpdatedDate: coarse, and not moved by every change
    can_stamp = True
    stamps_in_listing = False  # foreign keys are a separate read
    idempotent_create = False  # no idempotency key: recovery finds the stamp instead
    batch_size = 80  # no batch in the REST API: the writes are made `in_flight` at a time
    in_flight = SO_CONCURRENCY

    def __init__(
        self,
        client: SuperOfficeClient,
        associate_id: int,
        tenant: Tenant,
        *,
        stamps: Stamps | None = None,
        page_size: int = 200,
        id_page_size: int = 5000,
        max_cursor_age: timedelta = timedelta(days=1),
        clock: Callable[[], datetime] | None = None,
        capabilities: Capabilities = SUPEROFFICE_APPOINTMENT,
    ) -> None:
        self.client = client
        self.associate_id = associate_id
        self.tenant = tenant
        self.stamps = stamps or Stamps(client)
        self.people = People(client)
        self.page_size = page_size
        self._capabilities = capabilities
        self._zone_code: str | None = None
        self._owners: dict[int, int] = {}  # mother id -> the meeting's owner
        self.lister = Lister(
            client,
            _Scope(self),
            scope_key=f"appointments|{tenant.context}|{associate_id}",
            page_size=page_size,
            id_page_size=id_page_size,
            max_age=max_cursor_age,
            clock=clock or (lambda: datetime.now(UTC)),
        )

    # --- what the side declares --------------------------------------------------------

    def can_express(self, recurrence: Recurrence) -> bool:
        return series.expressible(recurrence.rule)

    # --- reading -----------------------------------------------------------------------

    def changes(self, cursor: str | None, window: Window | None = None) -> ChangeSet[Appointment]:
        return self.lister.changes(cursor, window)

    def get(self, item_id: str) -> Stored[Appointment]:
        return self.read(item_id, stamp=True)

    def read(self, item_id: str, stamp: bool) -> Stored[Appointment]:
        if item_id.startswith(SERIES):
            return self._read_series(_rule_of(item_id), stamp)
        entity = self._entity(_row_of(item_id))
        rule = int((entity.get("Recurrence") or {}).get("RecurrenceId") or 0)
        if rule and (entity.get("Recurrence") or {}).get("IsRecurrence"):
            raise NotFound(f"{item_id} is an occurrence of series {series_id(rule)}")
        return self._single(entity, stamp)

    def find_by_correlation_id(self, correlation_id: str) -> Stored[Appointment] | None:
        held = self.stamps.holder(TABLE, correlation_id)
        if held is None:
            return None
        try:
            entity = self._entity(held[0])
        except NotFound:
            return None
        info = entity.get("Recurrence") or {}
        if info.get("IsRecurrence") and int(info.get("RecurrenceId") or 0):
            stored = self._read_series(int(info["RecurrenceId"]), stamp=False)
        else:
            stored = self._single(entity, stamp=False)
        return dataclasses.replace(stored, correlation_id=correlation_id)

    # --- writing -----------------------------------------------------------------------

    def create(self, item: Appointment, correlation_id: str) -> Stored[Appointment]:
        return self._create(item, correlation_id)

    def _create(self, item: Appointment, correlation_id: str | None) -> Stored[Appointment]:
        if item.recurrence is not None:
            return self._create_series(item, correlation_id)
        body = mapping.appointment_fields(item, self.tenant, self.people, self.associate_id)
        body["Associate"] = {"AssociateId": self.associate_id}
        entity = self.client.request("POST", "/Appointment", json=body).json()
        if correlation_id is not None:
            self.stamps.write(TABLE, int(entity["AppointmentId"]), correlation_id)
        return dataclasses.replace(self._single(entity, stamp=False), correlation_id=correlation_id)

    def update(self, item_id: str, item: Appointment, if_match: str | None) -> Stored[Appointment]:
        if item_id.startswith(SERIES) or item.recurrence is not None:
            return self._update_series(item_id, item, if_match)
        current = self._entity(_row_of(item_id))
        if mapping.is_booking(current):
            body = self._booking_change(current, item)
        else:
            body = {
                **current,
                **mapping.appointment_fields(
                    item, self.tenant, self.people, self.associate_id, current
                ),
            }
        entity = self._put(_row_of(item_id), body, if_match)
        return self._single(entity, stamp=True)

    def stamp(self, item_id: str, correlation_id: str, if_match: str | None) -> Stored[Appointment]:
        stored = self.read(item_id, stamp=False)
        self.stamps.write(TABLE, self._stamp_row(item_id), correlation_id)
        return dataclasses.replace(stored, correlation_id=correlation_id)

    def stamps_of(self, item_ids: Sequence[str]) -> dict[str, str | None]:
        """Only the foreign keys are read (the listing has read the appointments)."""
        read = each_at_once(
            lambda item_id: self.stamps.read(TABLE, self._stamp_row(item_id)),
            item_ids,
            self.in_flight,
        )
        found: dict[str, str | None] = {}
        for item_id, stamp in zip(item_ids, read, strict=True):
            if isinstance(stamp, NotFound | Permanent):
                continue
            if isinstance(stamp, Exception):
                raise stamp
            found[item_id] = stamp
        return found

    def _apply_one(self, write: Write[Appointment]) -> Stored[Appointment] | None:
        if write.op == "stamp" and write.item is not None and write.item_id is not None:
            # The foreign key is a row of its own: the appointment stays as the engine read
            # it, so it is not read again to be given back.
            assert write.correlation_id is not None
            self.stamps.write(TABLE, self._stamp_row(write.item_id), write.correlation_id)
            return Stored(write.item_id, write.if_match or "", write.item, write.correlation_id)
        return super()._apply_one(write)

    def delete(self, item_id: str, if_match: str | None) -> None:
        if item_id.startswith(SERIES):
            for row in self._rule_rows(_rule_of(item_id)):
                self._delete_row(int(row["appointmentId"]), if_match)
            return
        self._entity(_row_of(item_id))  # another associate's appointment is none of ours
        self._delete_row(_row_of(item_id), if_match)

    # --- singles -----------------------------------------------------------------------

    def _entity(self, row_id: int) -> dict[str, Any]:
        entity: dict[str, Any] = self.client.get(f"/Appointment/{row_id}")
        if mapping.owner_of(entity) != self.associate_id:
            raise NotFound(f"appointment {row_id} is not in associate {self.associate_id}'s diary")
        if str(entity.get("Type") or "") in ("inChecklist", "BookingForChecklist"):
            raise NotFound(f"appointment {row_id} is a task")
        return entity

    def _organizer(self, entity: dict[str, Any]) -> int:
        if not mapping.is_booking(entity):
            return mapping.owner_of(entity)
        mother = int(entity["MotherId"])
        if mother not in self._owners:
            try:
                self._owners[mother] = mapping.owner_of(self.client.get(f"/Appointment/{mother}"))
            except NotFound:
                return 0  # a private meeting of someone else: its organiser is not shown
        return self._owners[mother]

    def _map(self, entity: dict[str, Any]) -> Appointment:
        return mapping.appointment(entity, self.tenant, self.people, self._organizer(entity))

    def _single(self, entity: dict[str, Any], stamp: bool) -> Stored[Appointment]:
        row = int(entity["AppointmentId"])
        return Stored(
            str(row),
            str(entity.get("UpdatedDate") or ""),
            self._map(entity),
            self.stamps.read(TABLE, row) if stamp else None,
            parse_updated(str(entity["CreatedDate"])) if entity.get("CreatedDate") else None,
        )

    def _put(self, row_id: int, body: dict[str, Any], if_match: str | None) -> dict[str, Any]:
        headers = {"If-Unmodified-Since": http_date(parse_updated(if_match))} if if_match else {}
        answer = self.client.request("PUT", f"/Appointment/{row_id}", json=body, headers=headers)
        entity: dict[str, Any] = answer.json()
        return entity

    def _delete_row(self, row_id: int, if_match: str | None) -> None:
        headers = {"If-Unmodified-Since": http_date(parse_updated(if_match))} if if_match else {}
        self.client.request("DELETE", f"/Appointment/{row_id}", headers=headers)

    def _booking_change(self, current: dict[str, Any], item: Appointment) -> dict[str, Any]:
        """A participant changes only their own alarm on a booking of someone's meeting."""
        held = self._map(current)
        if dataclasses.replace(held, reminder_minutes=None, last_modified=None) != (
            dataclasses.replace(
                item,
                reminder_minutes=None,
                last_modified=None,
                organizer=held.organizer,
                uid=held.uid,
            )
        ):
            raise Permanent(
                f"appointment {current['AppointmentId']} is this user's booking of meeting "
                f"{current['MotherId']}: only its organiser changes the meeting"
            )
        alarm = item.reminder_minutes
        return {
            **current,
            "HasAlarm": alarm is not None,
            "AlarmLeadTime": mapping.timespan(alarm or 0),
        }

    # --- series ------------------------------------------------------------------------

    def _rule_rows(self, rule_id: int) -> list[Row]:
        rows = self.client.rows(
            "/Appointment",
            key="appointmentId",
            select=series.ROW_COLUMNS,
            where=f"recurrenceRuleId eq {rule_id} and "
            f"associateId associateIsOneOf ({self.associate_id})",
            top=series.MAX_OCCURRENCES * 2,
        )
        if not rows:
            raise NotFound(f"series {series_id(rule_id)} has no rows in this diary")
        return rows

    def _read_series(self, rule_id: int, stamp: bool) -> Stored[Appointment]:
        rows = self._rule_rows(rule_id)
        first = min(int(r["appointmentId"]) for r in rows)
        entity = self._entity(first)
        item = series.read_series(rows, entity, self._map(entity), self.tenant.tz)
        occs = [series.Occ.of(r) for r in rows]
        version = max(o.updated for o in occs).replace(tzinfo=None).isoformat()
        return Stored(
            series_id(rule_id),
            version,
            item,
            self.stamps.read(TABLE, first) if stamp else None,
            min(o.registered for o in occs),
        )

    def _stamp_row(self, item_id: str) -> int:
        if item_id.startswith(SERIES):
            return min(int(r["appointmentId"]) for r in self._rule_rows(_rule_of(item_id)))
        return _row_of(item_id)

    def _zone(self) -> str:
        """SO-TimeZone for writing a series: the tenant's own zone, so that SuperOffice
        expands it there (09:00 stays 09:00 across DST)."""
        if self._zone_code is None:
            base = self.client.get("/TimeZone/base")
            self._zone_code = str(base.get("TZLocationCode") or base.get("TZLocationID"))
        return f"{self._zone_code}, includeTZOffset"

    def _create_series(self, item: Appointment, correlation_id: str | None) -> Stored[Appointment]:
        assert item.recurrence is not None
        try:
            info = series.recurrence_info(item.recurrence.rule, item.start, self.tenant.tz)
        except series.NotExpressible as exc:
            raise Permanent(f"SuperOffice cannot hold this recurrence: {exc}") from exc
        plain = dataclasses.replace(item, recurrence=None)
        body = mapping.appointment_fields(plain, self.tenant, self.people, self.associate_id)
        body.update(Associate={"AssociateId": self.associate_id}, Recurrence=info)
        entity = self.client.request(
            "POST", "/Appointment", json=body, headers={"SO-TimeZone": self._zone()}
        ).json()
        rule_id = int((entity.get("Recurrence") or {}).get("RecurrenceId") or 0)
        if not rule_id:
            raise Permanent("SuperOffice made no series of the recurrence")
        self._apply_occurrences(rule_id, item)
        if correlation_id is not None:
            first = min(int(r["appointmentId"]) for r in self._rule_rows(rule_id))
            self.stamps.write(TABLE, first, correlation_id)
        stored = self._read_series(rule_id, stamp=False)
        return dataclasses.replace(stored, correlation_id=correlation_id)

    def _apply_occurrences(self, rule_id: int, item: Appointment) -> bool:
        """Make each row of the series what `item` says of its occurrence: excluded ones
        deleted, the others written where they differ. False when an occurrence the item
        has is missing (SuperOffice cannot add one back to a series)."""
        assert item.recurrence is not None
        rec = item.recurrence
        held = self._read_series(rule_id, stamp=False).item
        assert held.recurrence is not None
        rows = {int(r["appointmentId"]): r for r in self._rule_rows(rule_id)}
        occs = [series.Occ.of(r) for r in rows.values()]
        expected = _originals(held)
        matched = series.match(occs, expected, held.all_day, self.tenant.tz)
        excluded = {occurrence_key(w) for w in rec.exclusions}
        wanted = _occurrences(item)
        for key, (_, occ) in matched.items():
            if key in excluded or key not in wanted:
                self._delete_row(occ.row_id, None)
        if any(key not in matched for key in wanted):
            return False
        compared = self.fields - {"recurrence"}
        for key, occ_item in wanted.items():
            row_id = matched[key][1].row_id
            current = self._entity(row_id)
            if content_hash(self._map(current), compared) == content_hash(occ_item, compared):
                continue  # this occurrence is as the item says: its row is left alone
            desired = mapping.appointment_fields(
                occ_item, self.tenant, self.people, self.associate_id, current
            )
            self._put(row_id, {**current, **desired}, None)
        return True

    def _update_series(
        self, item_id: str, item: Appointment, if_match: str | None
    ) -> Stored[Appointment]:
        """The same rule and timing: each occurrence's row written where it differs. Else
        (or where an occurrence would have to come back) the series is made anew and keeps
        our stamp: its id changes, which the engine's link follows."""
        stamp_row = self._stamp_row(item_id)
        stamp = self.stamps.read(TABLE, stamp_row)
        if item_id.startswith(SERIES) and item.recurrence is not None:
            current = self._read_series(_rule_of(item_id), stamp=False)
            if if_match and parse_updated(current.version) > parse_updated(if_match):
                raise PreconditionFailed(f"series {item_id} changed after {if_match}")
            held = current.item
            same_rule = (
                held.recurrence is not None
                and canonical_rule(held) == canonical_rule(item)
                and held.start == item.start
                and held.end == item.end
            )
            if same_rule and self._apply_occurrences(_rule_of(item_id), item):
                first = self._stamp_row(item_id)
                if stamp is not None and first != stamp_row:  # its row was an exclusion
                    self.stamps.write(TABLE, first, stamp)
                stored = self._read_series(_rule_of(item_id), stamp=False)
                return dataclasses.replace(stored, correlation_id=stamp)
        self.delete(item_id, if_match)
        made = self._create(item, stamp)
        return dataclasses.replace(made, correlation_id=stamp)


def _originals(item: Appointment) -> list[When]:
    """Every original start the series' rule makes, as `series.read_series` expands it."""
    assert item.recurrence is not None
    limit = series.MAX_OCCURRENCES * 2
    if item.all_day:
        assert isinstance(item.start, date)
        first = datetime.combine(item.start, time(0))
        return [raw.date() for raw in islice(rrulestr(item.recurrence.rule, dtstart=first), limit)]
    assert isinstance(item.start, datetime)
    local = item.start.astimezone(item.zone).replace(tzinfo=None)
    return [
        raw.replace(tzinfo=item.zone).astimezone(UTC)
        for raw in islice(rrulestr(item.recurrence.rule, dtstart=local), limit)
    ]


def _occurrences(item: Appointment) -> dict[str, Appointment]:
    """Each occurrence of the series as the single appointment it is (exceptions applied),
    by the key of its original start."""
    originals = _originals(item)
    if not originals:
        return {}
    lo = min(_instant(w) for w in originals) - timedelta(days=1)
    hi = max(_instant(w) for w in originals) + timedelta(days=400)
    return {occurrence_key(o.original_start): as_single(item, o) for o in occurrences(item, lo, hi)}


def _instant(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.combine(value, datetime.min.time(), UTC)


def _row_of(item_id: str) -> int:
    try:
        return int(item_id)
    except ValueError:
        raise NotFound(f"{item_id!r} is not a SuperOffice appointment id") from None


def _rule_of(item_id: str) -> int:
    try:
        return int(item_id[len(SERIES) :])
    except ValueError:
        raise NotFound(f"{item_id!r} is not a SuperOffice series id") from None
