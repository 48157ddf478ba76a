"""An Exchange calendar as the engine's appointment connector (the folder's reading and
writing in `folder`).

A recurring master comes with its DeletedOccurrences and ModifiedOccurrences, and the
exceptions of every series a page names are read by id in one more GetItem. A series is
written as its master, then its occurrences: new deletions in one DeleteItem, edits of
existing exceptions in one UpdateItem (each has its own change key), and each occurrence
that becomes an exception on its own (its key is the master's, which every such edit
moves). A series' version is its master's change key: Exchange keeps a series' exceptions
inside the master, so editing or deleting one occurrence moves it too.

Mail: creates and updates send meeting requests only when the profile invites
(`send_invitations`: `SendToAllAndSaveCopy` to the attendees the engine wrote, whom the
profile allows); otherwise, and always for stamps and deletes, `SendToNone`: writing our
bookkeeping or carrying a CRM deletion never mails anyone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from exchangelib.items import CalendarItem
from exchangelib.properties import OccurrenceItemId

from common.capabilities import EWS_APPOINTMENT, Capabilities
from common.connectors.base import NotFound, Permanent, PreconditionFailed, Write
from common.connectors.ews import mapping
from common.connectors.ews.client import EwsClient, item_error
from common.connectors.ews.folder import SEND_NONE, FolderConnector, check, fields_of
from common.items import (
    Appointment,
    Recurrence,
    RecurrenceException,
    When,
    canonical_zone,
    normalise_rule,
    occurrence_key,
)
from common.kinds import Stored, Unreadable

SEND_ALL = "SendToAllAndSaveCopy"


class EwsEvents(FolderConnector[Appointment]):
    model = CalendarItem
    read_fields = mapping.EVENT_FIELDS
    written_fields = mapping.WRITTEN_EVENT_FIELDS

    def __init__(
        self,
        client: EwsClient,
        *,
        page_size: int = 100,
        send_invitations: bool = False,
        capabilities: Capabilities = EWS_APPOINTMENT,
    ) -> None:
        super().__init__(client, page_size=page_size)
        self.invite = SEND_ALL if send_invitations else SEND_NONE
        self._capabilities = capabilities
        self._series: set[str] = set()  # ids read in this run that are series masters

    def _find_folder(self) -> Any:
        return self.account.calendar

    def can_express(self, recurrence: Recurrence) -> bool:
        return mapping.can_express(recurrence)

    def _item_of(self, raw: Any) -> Appointment:
        return mapping.appointment_of(raw, self.mailbox)

    def _fill(self, target: Any, item: Appointment) -> None:
        mapping.fill_event(target, item)
        if item.recurrence is not None:
            target.recurrence = mapping.recurrence_out(item)

    def _send(self, items: Sequence[Any]) -> str:
        """Invitations only when the profile invites, and only for meetings."""
        if any(i.required_attendees or i.optional_attendees for i in items):
            return self.invite
        return SEND_NONE

    def _own_way(self, write: Write[Appointment]) -> bool:
        """A create or update that is (or makes, or undoes) a series."""
        return (write.item is not None and write.item.recurrence is not None) or (
            write.op == "update" and str(write.item_id) in self._series
        )

    # --- reading ---------------------------------------------------------------------------

    def _convert(self, raws: Mapping[str, Any]) -> dict[str, Stored[Appointment] | Unreadable]:
        found: dict[str, Stored[Appointment] | Unreadable] = {}
        masters: dict[str, Any] = {}
        for item_id, raw in raws.items():
            if raw.type == "RecurringMaster":
                masters[item_id] = raw
                self._series.add(item_id)
            elif raw.type == "Single":
                self._series.discard(item_id)
                found[item_id] = self._stored(item_id, raw, self._item_of)
            else:
                found[item_id] = Unreadable(item_id, f"an occurrence ({raw.type}), not an item")
        exceptions = self._exceptions(list(masters.values()))
        for item_id, master in masters.items():
            found[item_id] = self._stored(
                item_id, master, lambda m: mapping.series_of(m, exceptions, self.mailbox)
            )
        return found

    def _exceptions(self, masters: Sequence[Any]) -> dict[str, Any]:
        """The exceptions of these series, by id (one GetItem for all of them); one that
        cannot be read leaves its series unreadable (`series_of`)."""
        ids = [str(o.id) for m in masters for o in m.modified_occurrences or ()]
        results = self.client.get_items(
            [(i, None) for i in ids], fields_of(CalendarItem, mapping.EXCEPTION_FIELDS)
        )
        found: dict[str, Any] = {}
        for item_id, result in zip(ids, results, strict=True):
            if item_error(result) is None:
                found[item_id] = result
        return found

    # --- writing a series ------------------------------------------------------------------

    def _write_alone(self, write: Write[Appointment]) -> str:
        item = write.item
        assert item is not None
        if write.op == "create":
            assert write.correlation_id is not None
            made = self.new(item, write.correlation_id)
            (answer,) = self.client.create_items(self.folder, [made], self._send([made]))
            master_id = str(check(answer).id)
        else:
            assert write.item_id is not None
            master_id = write.item_id
            self._update_master(master_id, item, write.if_match)
        if item.recurrence is not None:
            self._series.add(master_id)
            self._write_occurrences(master_id, item)
        else:
            self._series.discard(master_id)
        return master_id

    # --- series ----------------------------------------------------------------------------

    def _update_master(self, master_id: str, item: Appointment, if_match: str | None) -> None:
        """The master's own values; its pattern and timing only when they change (Exchange
        drops a series' exceptions with a new pattern or time)."""
        current = self._read([master_id])[master_id]
        if current is None:
            raise NotFound(master_id)
        if isinstance(current, Unreadable):
            raise Permanent(f"{master_id}: {current.reason}")
        if if_match is not None and current.version != if_match:
            raise PreconditionFailed(f"series {master_id} changed since it was read")
        target = self.target(master_id, if_match or current.version)
        self._fill(target, item)
        names = list(mapping.WRITTEN_EVENT_FIELDS)
        if _same_shape(current.item, item):
            names = [f for f in names if f not in ("start", "end", "is_all_day")]
        else:
            names.append("recurrence")  # None: a series made a single item again
        (answer,) = self.client.update_items([(target, names)], self._send([target]))
        check(answer)

    def _write_occurrences(self, master_id: str, item: Appointment) -> None:
        """Make the series' occurrences what `item` says: deleted ones deleted, exceptions
        written, exceptions Exchange has that `item` no longer has put back in line."""
        assert item.recurrence is not None
        master, current = self._series_state(master_id)
        excluded = {occurrence_key(w) for w in item.recurrence.exclusions}
        wanted = {
            occurrence_key(e.original_start): e
            for e in item.recurrence.exceptions
            if occurrence_key(e.original_start) not in excluded
        }
        assert current.recurrence is not None
        if {occurrence_key(w) for w in current.recurrence.exclusions} - excluded:
            # Only a new pattern brings a deleted occurrence back.
            self._reset_pattern(master_id, item, str(master.changekey))
            master, current = self._series_state(master_id)
            assert current.recurrence is not None
        assert current.recurrence is not None
        exceptions = self._exception_items(master, current)
        have = {occurrence_key(e.original_start): e for e in current.recurrence.exceptions}
        gone = {occurrence_key(w) for w in current.recurrence.exclusions}
        doomed: list[Any] = []
        for original in sorted(item.recurrence.exclusions, key=occurrence_key):
            key = occurrence_key(original)
            if key in gone:
                continue
            if key in exceptions:
                doomed.append((exceptions[key].id, exceptions[key].changekey))
            else:
                index = _index(item, original)
                if index is not None:
                    doomed.append(OccurrenceItemId(id=master_id, instance_index=index))
        for answer in self.client.delete_items(doomed, SEND_NONE):
            if not isinstance(item_error(answer), NotFound | None):
                check(answer)
        edits: list[tuple[CalendarItem, list[str]]] = []
        for key, raw in exceptions.items():
            if key in excluded:
                continue
            want = wanted.get(key) or _as_the_series(have[key], item)
            if have.get(key) != want:
                target = self.target(str(raw.id), raw.changekey)
                mapping.fill_exception(target, want, item)
                edits.append((target, list(mapping.WRITTEN_EXCEPTION_FIELDS)))
        for answer in self.client.update_items(edits, self._send([e for e, _ in edits])):
            check(answer)
        for key, exc in sorted(wanted.items()):
            if key not in exceptions:
                self._make_exception(master_id, item, exc)

    def _make_exception(self, master_id: str, item: Appointment, exc: RecurrenceException) -> None:
        """One occurrence made an exception: read by its index (which gives its id and the
        master's current key), then updated with that key."""
        index = _index(item, exc.original_start)
        if index is None:
            return  # no occurrence of the series there (the engine keeps such exceptions out)
        occurrence = OccurrenceItemId(id=master_id, instance_index=index)
        (found,) = self.client.get_items([occurrence], set())
        target = self.target(str(check(found).id), found.changekey)
        mapping.fill_exception(target, exc, item)
        fields = list(mapping.WRITTEN_EXCEPTION_FIELDS)
        (answer,) = self.client.update_items([(target, fields)], self._send([target]))
        check(answer)

    def _reset_pattern(self, master_id: str, item: Appointment, key: str) -> None:
        target = self.target(master_id, key)
        self._fill(target, item)
        names = [*mapping.WRITTEN_EVENT_FIELDS, "recurrence"]
        (answer,) = self.client.update_items([(target, names)], self._send([target]))
        check(answer)

    def _series_state(self, master_id: str) -> tuple[Any, Appointment]:
        """The master as Exchange holds it now, and as a canonical series."""
        fields = fields_of(CalendarItem, mapping.EVENT_FIELDS)
        (master,) = self.client.get_items([(master_id, None)], fields)
        check(master)
        exceptions = self._exceptions([master])
        if master.type != "RecurringMaster":
            raise Permanent(f"{master_id} is no series after its pattern was written")
        return master, mapping.series_of(master, exceptions, self.mailbox)

    def _exception_items(self, master: Any, series: Appointment) -> dict[str, Any]:
        """The master's exceptions (ids and keys) by their original start."""
        return {
            occurrence_key(mapping.original_of(o.original_start, series)): o
            for o in self._keyed(master)
        }

    def _keyed(self, master: Any) -> list[Any]:
        occurrences = list(master.modified_occurrences or ())
        answers = self.client.get_items([(str(o.id), None) for o in occurrences], set())
        found = []
        for occ, answer in zip(occurrences, answers, strict=True):
            check(answer).original_start = occ.original_start
            found.append(answer)
        return found


def _same_shape(current: Appointment, wanted: Appointment) -> bool:
    """Whether a series keeps its pattern and timing (else its exceptions are dropped)."""
    if current.recurrence is None or wanted.recurrence is None:
        return False
    return (
        normalise_rule(current.recurrence.rule) == normalise_rule(wanted.recurrence.rule)
        and occurrence_key(current.start) == occurrence_key(wanted.start)
        and occurrence_key(current.end) == occurrence_key(wanted.end)
        and current.all_day == wanted.all_day
        and (current.all_day or canonical_zone(current.timezone) == canonical_zone(wanted.timezone))
    )


def _index(item: Appointment, original: When) -> int | None:
    try:
        return mapping.instance_index(item, original)
    except ValueError:
        return None


def _as_the_series(had: RecurrenceException, series: Appointment) -> RecurrenceException:
    """An exception put back in line: at its original time, with the series' values."""
    duration = _duration(series)
    return RecurrenceException(
        had.original_start, had.original_start, had.original_start + duration
    )


def _duration(item: Appointment) -> timedelta:
    if isinstance(item.start, datetime) and isinstance(item.end, datetime):
        return item.end - item.start
    return timedelta(days=item.end.toordinal() - item.start.toordinal())
