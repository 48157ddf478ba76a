"""A Microsoft 365 calendar as the engine's appointment connector.

Reading: `calendarView/delta` for the window (a full pass, then deltas from its link).
Single events come with everything; a series comes as its occurrences and exceptions (never
its master), so each series touched by a page is read once, master and instances, in one
`$batch`, and listed as one item under its master's id. Removals say only that an id left
the view (deleted, or moved out of the window), so they are "unknown" and the engine asks.
Delta cannot expand extended properties: listings do not show our stamp (reads do).

Writing: creates carry `transactionId` (the correlation id) and our stamp; updates, stamps
and deletes send the change key in `If-Match`; up to 20 writes go in one `$batch`. A series
is written as its master, then its exceptions and deletions as changes of its occurrences.
A series' version covers its instances too (`mapping.series_version`), since an edited
occurrence need not move the master's change key.

Never mailing anyone the engine does not allow: Outlook sends every attendee a meeting
request when the organiser's event is made, an update when it is changed in any way, a
cancellation when it is deleted (the simulator does too). A write that would mail anyone
its `Write.may_mail` does not allow is refused (`WouldMail`) before anything is sent; our
stamp is bookkeeping and may mail nobody (the pair is linked all the same and found again by
its content). The connector knows whom a change of an event mails from what it read of the
event in this run (an event it has not read is read first).

Declared honestly:
- `stamps_in_listing` False: delta cannot `$expand` extended properties.
- `idempotent_create` False: Graph answers a repeated `transactionId` with the first event
  only for a short time (it documents the deduplication for a client's retries, with no
  duration; the simulator keeps it 300 s), while the engine may come back to an interrupted
  create much later. The client still uses it for its own immediate retries; the engine
  finds an earlier create by its stamp.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from common.capabilities import GRAPH_EVENT, Capabilities
from common.connectors.base import (
    BatchingConnector,
    ConnectorError,
    NotFound,
    Permanent,
    PreconditionFailed,
    WouldMail,
    Write,
    WriteResult,
)
from common.connectors.graph import mapping
from common.connectors.graph.client import (
    WRITES_AT_ONCE,
    Answer,
    Call,
    GraphClient,
    Result,
    check,
    error_of,
)
from common.connectors.graph.delta import Pass, iso, item_path, query
from common.connectors.graph.stamps import oldest_holder
from common.items import Appointment, Recurrence, When
from common.kinds import ChangeSet, Removal, RemovalKind, Stored, Unreadable, Window

EVENTS = "/me/events"
_EXPAND = query(dollar_expand=mapping.EXPAND_STAMP)
_INSTANCE_PAGE = 250

Series = tuple[dict[str, Any], list[dict[str, Any]]]  # a master and its instances


def default_window(now: datetime | None = None) -> Window:
    """The range series are read in before a listing said which: the engine's default
    window (30 days back, 120 ahead, from the start of the UTC day)."""
    today = (now or datetime.now(UTC)).astimezone(UTC)
    today = today.replace(hour=0, minute=0, second=0, microsecond=0)
    return Window(today - timedelta(days=30), today + timedelta(days=120))


class GraphEvents(BatchingConnector[Appointment]):
    exact_versions = True
    can_stamp = True
    stamps_in_listing = False
    idempotent_create = False
    batch_size = WRITES_AT_ONCE

    def __init__(
        self,
        client: GraphClient,
        *,
        page_size: int = 100,
        window: Window | None = None,
        capabilities: Capabilities = GRAPH_EVENT,
    ) -> None:
        self.client = client
        self.page_size = page_size
        self.window = window or default_window()  # where a series' instances are read
        self._capabilities = capabilities
        self._read: set[str] = set()  # ids of events read in this run
        # Of them, those this mailbox organises: whom a change of each would mail.
        self._organised: dict[str, frozenset[str]] = {}

    def can_express(self, recurrence: Recurrence) -> bool:
        return mapping.can_express(recurrence)

    # --- reading ---------------------------------------------------------------------------

    def changes(self, cursor: str | None, window: Window | None = None) -> ChangeSet[Appointment]:
        if cursor is None:
            bounds = window or self.window
            link = "/me/calendarView/delta" + query(
                startDateTime=iso(bounds.start), endDateTime=iso(bounds.end)
            )
            state = Pass(link, full=True, window=bounds)
        else:
            state = Pass.decode(cursor)
        if state.window is not None:
            self.window = state.window
        page = self.client.get(state.link, {"Prefer": f"odata.maxpagesize={self.page_size}"})
        upserts: list[Stored[Appointment]] = []
        removals: list[Removal] = []
        unreadable: list[Unreadable] = []
        masters: list[str] = []
        for raw in page.get("value") or ():
            item_id = str(raw.get("id"))
            if "@removed" in raw:
                # Deleted, or moved out of the window: calendarView delta does not say which.
                removals.append(Removal(item_id, RemovalKind.UNKNOWN))
            elif raw.get("type") in ("occurrence", "exception"):
                masters.append(str(raw.get("seriesMasterId")))
            elif raw.get("type") == "seriesMaster":
                masters.append(item_id)
            else:
                self._note(raw)
                try:
                    upserts.append(_single(raw))
                except ValueError as exc:
                    unreadable.append(Unreadable(item_id, str(exc)))
        new = [m for m in dict.fromkeys(masters) if m not in state.series]
        for master_id, found in self._series(new).items():
            if found is None:
                removals.append(Removal(master_id, RemovalKind.DELETED))
            elif isinstance(found, Unreadable):
                unreadable.append(found)
            else:
                upserts.append(found)
        after, more = state.after(page, new)
        return ChangeSet(
            upserts,
            removals,
            after.encode(),
            full=state.full,
            more=more,
            unreadable=unreadable,
        )

    def get_many(self, item_ids: Sequence[str]) -> dict[str, Stored[Appointment] | None]:
        ids = list(dict.fromkeys(item_ids))
        calls = [Call("GET", f"{EVENTS}/{item_path(i)}{_EXPAND}") for i in ids]
        found: dict[str, Stored[Appointment] | None] = {}
        masters: dict[str, dict[str, Any]] = {}
        for item_id, call, result in zip(ids, calls, self.client.send(calls), strict=True):
            error = error_of(call, result)
            if isinstance(error, NotFound):
                found[item_id] = None
            elif isinstance(error, Permanent):
                continue  # cannot be read now: left out
            elif error is not None:
                raise error
            else:
                assert isinstance(result, Answer)
                body = result.json()
                self._note(body)
                if body.get("type") == "seriesMaster":
                    masters[item_id] = body
                    continue
                try:
                    found[item_id] = _single(body, mapping.stamp_of(body))
                except ValueError:
                    continue
        for item_id, series in self._with_instances(masters).items():
            if isinstance(series, Stored) or series is None:
                found[item_id] = series
        return found

    def find_by_correlation_id(self, correlation_id: str) -> Stored[Appointment] | None:
        """The oldest event carrying the stamp, read as a whole series where it is one."""
        oldest = oldest_holder(self.client, EVENTS, correlation_id)
        if oldest is None:
            return None
        self._note(oldest)
        if oldest.get("type") != "seriesMaster":
            return _single(oldest, correlation_id)
        series = self._with_instances({str(oldest["id"]): oldest})[str(oldest["id"])]
        if isinstance(series, Unreadable):
            raise Permanent(f"event {oldest['id']}: {series.reason}")
        return series

    # --- writing ---------------------------------------------------------------------------

    def apply_many(self, writes: Sequence[Write[Appointment]]) -> list[WriteResult[Appointment]]:
        """The writes in one `$batch` where each is one request; a series' create or update
        (master, then its occurrences) one after the other. A series' version is checked
        before anything is written to it."""
        if len(writes) > self.batch_size:
            raise ValueError(f"{len(writes)} writes in one batch of at most {self.batch_size}")
        results: dict[int, WriteResult[Appointment]] = {}
        results.update(self._refuse_what_would_mail(writes))
        results.update(self._verify_series_versions(writes))
        simple: list[tuple[int, Call]] = []
        later: list[int] = []
        for n, write in enumerate(writes):
            if n in results:
                continue
            call = self._call(write)
            if call is None:
                later.append(n)
            else:
                simple.append((n, call))
        answers = self.client.send([call for _, call in simple])
        series_read: dict[int, str] = {}
        for (n, call), answer in zip(simple, answers, strict=True):
            error = error_of(call, answer)
            if error is not None:
                results[n] = error
                continue
            write = writes[n]
            if write.op == "delete":
                results[n] = None
                continue
            assert isinstance(answer, Answer)
            body = answer.json()
            self._note(body)
            if body.get("type") == "seriesMaster":
                series_read[n] = str(body["id"])  # its version needs its instances
                continue
            stamp = write.correlation_id if write.op in ("create", "stamp") else None
            try:
                results[n] = _single(body, stamp)
            except ValueError as exc:
                results[n] = Permanent(f"event {body.get('id')} written, not readable: {exc}")
        if series_read:
            reread = self.get_many(list(series_read.values()))
            for n, item_id in series_read.items():
                stored = reread.get(item_id)
                results[n] = stored if stored is not None else NotFound(item_id)
        for n in later:
            try:
                results[n] = self._write_series(writes[n])
            except ConnectorError as exc:
                results[n] = exc
        return [results[n] for n in range(len(writes))]

    def _call(self, write: Write[Appointment]) -> Call | None:
        """The one request a write is, or None for a series' create or update."""
        if write.op == "create":
            assert write.item is not None and write.correlation_id is not None
            if write.item.recurrence is not None:
                return None
            body = {
                **mapping.event_json(write.item),
                "transactionId": write.correlation_id,
                "singleValueExtendedProperties": mapping.stamp_property(write.correlation_id),
            }
            # A lost answer may be asked again: Graph answers a repeated transactionId with
            # the event it made.
            return Call("POST", EVENTS, body, repeatable=True)
        assert write.item_id is not None
        url = f"{EVENTS}/{item_path(write.item_id)}"
        headers = _if_match(write.if_match)
        if write.op == "update":
            assert write.item is not None
            if write.item.recurrence is not None or _is_series_version(write.if_match):
                return None
            return Call("PATCH", url, mapping.event_json(write.item), headers)
        if write.op == "stamp":
            assert write.correlation_id is not None
            body = {"singleValueExtendedProperties": mapping.stamp_property(write.correlation_id)}
            return Call("PATCH", url, body, headers)
        if write.op == "delete":
            return Call("DELETE", url, None, headers)
        raise ValueError(f"unknown write {write.op!r}")

    def _note(self, raw: Mapping[str, Any]) -> None:
        """Remember whom a change of this event would mail: the attendees of a meeting this
        mailbox organises (an invitation received sends nothing when changed)."""
        item_id = str(raw.get("id"))
        self._read.add(item_id)
        if raw.get("isOrganizer") is False:
            self._organised.pop(item_id, None)
        else:
            self._organised[item_id] = _addresses(raw.get("attendees"))

    def _refuse_what_would_mail(
        self, writes: Sequence[Write[Appointment]]
    ) -> dict[int, WriteResult[Appointment]]:
        """The writes that would make Outlook mail anyone their `may_mail` does not allow
        (a stamp: anyone at all), refused before anything is sent."""
        unknown = [
            str(w.item_id) for w in writes if w.op != "create" and str(w.item_id) not in self._read
        ]
        if unknown:
            self.get_many(unknown)  # rare: the engine writes what it read in this run
        refused: dict[int, WriteResult[Appointment]] = {}
        for n, write in enumerate(writes):
            allowed = None if write.op == "stamp" else write.may_mail
            barred = [r for r in self._mailed_by(write) if allowed is None or not allowed(r)]
            if barred:
                refused[n] = WouldMail(str(write.item_id or "(new)"), write.op, barred, "Outlook")
        return refused

    def _mailed_by(self, write: Write[Appointment]) -> frozenset[str]:
        """Whom Outlook mails for `write`: the attendees the organiser's event has and gets
        (a request to those added, an update to those kept, a cancellation to those
        removed, or to all when it is deleted); nobody for an attendee's copy."""
        if write.op == "create":
            current: frozenset[str] = frozenset()  # the mailbox organises what it makes
        else:
            found = self._organised.get(str(write.item_id))
            if found is None:
                return frozenset()
            current = found
        given = write.item.attendees if write.item is not None else ()
        new = {a.email.strip().lower() for a in given} if write.op != "delete" else set()
        return (current | new) - {self.client.mailbox.lower(), ""}

    def _verify_series_versions(
        self, writes: Sequence[Write[Appointment]]
    ) -> dict[int, WriteResult[Appointment]]:
        """A stamp or delete of a series whose instances changed since its version was read
        is refused, as an `If-Match` on the whole series would be (updates check their own)."""
        checks = {
            n: w
            for n, w in enumerate(writes)
            if w.op in ("stamp", "delete") and _is_series_version(w.if_match)
        }
        if not checks:
            return {}
        current = self._read_series([str(w.item_id) for w in checks.values()])
        refused: dict[int, WriteResult[Appointment]] = {}
        for n, write in checks.items():
            series = current.get(str(write.item_id))
            if series is None:
                refused[n] = NotFound(str(write.item_id))
            elif mapping.series_version(*series) != write.if_match:
                refused[n] = PreconditionFailed(f"series {write.item_id} changed since read")
        return refused

    def _write_series(self, write: Write[Appointment]) -> Stored[Appointment]:
        item = write.item
        assert item is not None
        if write.op == "create":
            assert write.correlation_id is not None
            body = {
                **mapping.event_json(item),
                "recurrence": mapping.recurrence_json(item),
                "transactionId": write.correlation_id,
                "singleValueExtendedProperties": mapping.stamp_property(write.correlation_id),
            }
            call = Call("POST", EVENTS, body, repeatable=True)
            master = check(call, self.client.send([call])[0]).json()
            self._write_occurrences(str(master["id"]), item, {})
            return self.get(str(master["id"]))
        assert write.item_id is not None
        return self._update_series(write.item_id, item, write.if_match)

    def _update_series(
        self, item_id: str, item: Appointment, if_match: str | None
    ) -> Stored[Appointment]:
        """Update an event that is or becomes a series: the master (its pattern only when
        it changed, since Outlook drops a series' exceptions with a new pattern), then the
        occurrences that differ."""
        found = self._read_series([item_id]).get(item_id)
        if found is None:
            raise NotFound(item_id)
        master, instances = found
        is_series = master.get("type") == "seriesMaster"
        version = mapping.series_version(master, instances) if is_series else master["changeKey"]
        if if_match is not None and if_match != version:
            raise PreconditionFailed(f"event {item_id} changed since read")
        current = self._as_series(master, instances) if is_series else None
        body = mapping.event_json(item)
        if item.recurrence is None:
            body["recurrence"] = None  # a series made a single event again
        else:
            wanted = mapping.recurrence_json(item)
            now_excluded = current.recurrence.exclusions if current and current.recurrence else ()
            restore = any(
                mapping.occurrence_key(w)
                not in {mapping.occurrence_key(x) for x in item.recurrence.exclusions}
                for w in now_excluded
            )
            if (
                not is_series
                or restore
                or _pattern_key(wanted) != _pattern_key(master.get("recurrence"))
            ):
                body["recurrence"] = wanted  # Outlook starts the series afresh
                current = None
        call = Call("PATCH", f"{EVENTS}/{item_path(item_id)}", body, _if_match(master["changeKey"]))
        check(call, self.client.send([call])[0])
        if item.recurrence is not None:
            self._write_occurrences(item_id, item, _exception_map(current))
        return self.get(item_id)

    def _write_occurrences(
        self,
        master_id: str,
        item: Appointment,
        current: Mapping[datetime, Any],
    ) -> None:
        """Make the series' occurrences what `item` says: deleted ones deleted, exceptions
        written, and exceptions Outlook has that `item` no longer has put back in line.
        `current`: the exceptions the series had before (empty for a fresh pattern)."""
        assert item.recurrence is not None
        found = self._read_series([master_id]).get(master_id)
        if found is None:
            raise NotFound(master_id)
        by_original = mapping.instances_by_original(found[1])
        excluded = {mapping.occurrence_key(w) for w in item.recurrence.exclusions}
        wanted = {
            mapping.occurrence_key(e.original_start): e
            for e in item.recurrence.exceptions
            if mapping.occurrence_key(e.original_start) not in excluded
        }
        calls: list[Call] = []
        for key in sorted(excluded):
            inst = by_original.get(key)
            if inst is not None:
                calls.append(Call("DELETE", f"{EVENTS}/{item_path(inst.id)}"))
        for key, exc in sorted(wanted.items()):
            inst = by_original.get(key)
            if inst is not None and current.get(key) != exc:
                body = mapping.exception_json(exc, item)
                calls.append(Call("PATCH", f"{EVENTS}/{item_path(inst.id)}", body))
        for key, had in sorted(current.items()):
            inst = by_original.get(key)
            if key in wanted or key in excluded or inst is None or inst.kind != "exception":
                continue
            back = replace(had, start=had.original_start, end=_end_of(item, had.original_start))
            back = replace(back, subject=None, location=None, body=None, attendees=None)
            back = replace(back, show_as=None, reminder_minutes=None)
            calls.append(
                Call("PATCH", f"{EVENTS}/{item_path(inst.id)}", mapping.exception_json(back, item))
            )
        for call, result in zip(calls, self.client.send(calls), strict=True):
            error = error_of(call, result)
            if error is not None and not isinstance(error, NotFound):
                raise error

    # --- series ----------------------------------------------------------------------------

    def _series(
        self, master_ids: Sequence[str]
    ) -> dict[str, Stored[Appointment] | Unreadable | None]:
        """Series as listed items: master (with our stamp) and instances, read together."""
        found = self._read_series(master_ids, known=True)
        result: dict[str, Stored[Appointment] | Unreadable | None] = {}
        for master_id in master_ids:
            series = found.get(master_id)
            result[master_id] = None if series is None else self._stored_series(*series)
        return result

    def _with_instances(
        self, masters: Mapping[str, dict[str, Any]]
    ) -> dict[str, Stored[Appointment] | Unreadable | None]:
        instances = self._read_instances(list(masters))
        return {
            master_id: (
                None
                if instances.get(master_id) is None
                else self._stored_series(master, instances[master_id] or [])
            )
            for master_id, master in masters.items()
        }

    def _read_series(self, master_ids: Sequence[str], *, known: bool = False) -> dict[str, Series]:
        """Masters and their instances (a series that is gone is left out; an event that is
        no series comes with no instances). `known`: the ids are series masters, so master
        and instances are asked for in the same batch."""
        ids = list(dict.fromkeys(master_ids))
        calls = [Call("GET", f"{EVENTS}/{item_path(i)}{_EXPAND}") for i in ids]
        if known:
            calls += [self._instances_call(i) for i in ids]
        results = self.client.send(calls)
        masters: dict[str, dict[str, Any]] = {}
        for item_id, call, result in zip(ids, calls, results, strict=False):
            error = error_of(call, result)
            if isinstance(error, NotFound):
                continue
            if error is not None:
                raise error
            assert isinstance(result, Answer)
            masters[item_id] = result.json()
        series_ids = [i for i, m in masters.items() if m.get("type") == "seriesMaster"]
        if known:
            pairs = zip(ids, calls[len(ids) :], results[len(ids) :], strict=True)
            instances = {i: self._instances_of(c, r) for i, c, r in pairs if i in series_ids}
        else:
            instances = self._read_instances(series_ids)
        return {
            item_id: (master, instances.get(item_id) or [])
            for item_id, master in masters.items()
            if item_id not in series_ids or instances.get(item_id) is not None
        }

    def _read_instances(self, master_ids: Sequence[str]) -> dict[str, list[dict[str, Any]] | None]:
        """Each series' instances in the reading range (None: the series is gone)."""
        calls = [self._instances_call(i) for i in master_ids]
        results = self.client.send(calls)
        return {
            master_id: self._instances_of(call, result)
            for master_id, call, result in zip(master_ids, calls, results, strict=True)
        }

    def _instances_call(self, master_id: str) -> Call:
        bounds = mapping.series_margin(self.window)
        return Call(
            "GET",
            f"{EVENTS}/{item_path(master_id)}/instances"
            + query(
                startDateTime=iso(bounds.start),
                endDateTime=iso(bounds.end),
                dollar_top=str(_INSTANCE_PAGE),
            ),
        )

    def _instances_of(self, call: Call, result: Result) -> list[dict[str, Any]] | None:
        error = error_of(call, result)
        if isinstance(error, NotFound):
            return None
        if error is not None:
            raise error
        assert isinstance(result, Answer)
        page = result.json()
        items = list(page.get("value") or ())
        if page.get("@odata.nextLink"):
            items += list(self.client.pages(str(page["@odata.nextLink"])))
        return items

    def _stored_series(
        self, master: dict[str, Any], instances: list[dict[str, Any]]
    ) -> Stored[Appointment] | Unreadable:
        self._note(master)
        if master.get("type") != "seriesMaster":
            try:
                return _single(master, mapping.stamp_of(master))
            except ValueError as exc:
                return Unreadable(str(master.get("id")), str(exc))
        try:
            item = self._as_series(master, instances)
        except ValueError as exc:
            return Unreadable(str(master.get("id")), str(exc))
        return Stored(
            str(master["id"]),
            mapping.series_version(master, instances),
            item,
            mapping.stamp_of(master),
            mapping.created_of(master),
        )

    def _as_series(self, master: dict[str, Any], instances: list[dict[str, Any]]) -> Appointment:
        return mapping.series_of(master, instances, self.window)


def _single(raw: Mapping[str, Any], stamp: str | None = None) -> Stored[Appointment]:
    return Stored(
        str(raw["id"]),
        str(raw.get("changeKey") or ""),
        mapping.appointment_of(raw),
        stamp,
        mapping.created_of(raw),
    )


def _addresses(attendees: Any) -> frozenset[str]:
    """Every attendee's address (rooms too: they get the mail as well)."""
    return frozenset(
        str((a.get("emailAddress") or {}).get("address") or "").strip().lower()
        for a in attendees or ()
    ) - {""}


def _if_match(version: str | None) -> dict[str, str]:
    tag = mapping.etag(version)
    return {"If-Match": tag} if tag else {}


def _is_series_version(version: str | None) -> bool:
    return version is not None and "|" in version


def _pattern_key(recurrence: Mapping[str, Any] | None) -> tuple[str, str, str] | None:
    """What makes two patterns the same series (Graph fills in defaults of its own)."""
    if not recurrence:
        return None
    range_ = recurrence.get("range") or {}
    zone = mapping.zone_of(str(range_.get("recurrenceTimeZone") or ""))
    return (
        mapping.rule_of(recurrence),
        str(range_.get("startDate") or ""),
        zone.key if zone else "",
    )


def _exception_map(series: Appointment | None) -> dict[datetime, Any]:
    if series is None or series.recurrence is None:
        return {}
    return {mapping.occurrence_key(e.original_start): e for e in series.recurrence.exceptions}


def _end_of(item: Appointment, original: When) -> When:
    """Where an occurrence starting at `original` ends, by the series' duration."""
    if isinstance(item.start, datetime) and isinstance(item.end, datetime):
        return original + (item.end - item.start)
    return original + (_day(item.end) - _day(item.start))


def _day(value: When) -> date:
    return value.date() if isinstance(value, datetime) else value
