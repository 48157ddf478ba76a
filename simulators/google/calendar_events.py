"""Calendar v3 event operations on one calendar: insert, get, patch/update, delete, list/sync.

Stored events are complete ``Event`` resources (deleted ones stay, ``status: cancelled``, so
sync can report them). An exception to a series is stored under its instance id
(``<masterId>_<UTC start>``) with ``recurringEventId`` and ``originalStartTime``; unmodified
instances are generated on demand.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from simulators.google import event_times, opaque, recurrence
from simulators.google.errors import GoogleApiError, bad_request, int_param, not_found
from simulators.google.store import Calendar, GoogleStore
from simulators.platform.control import claim_fault

WRITABLE = {
    "summary", "description", "location", "start", "end", "recurrence", "extendedProperties",
    "attendees", "visibility", "transparency", "colorId", "reminders", "status", "source",
    "guestsCanModify", "guestsCanInviteOthers", "guestsCanSeeOtherGuests", "anyoneCanAddSelf",
    "attachments", "sequence", "eventType", "originalStartTime",
}  # fmt: skip
REPLACED_WHOLE = {"start", "end", "originalStartTime", "recurrence", "attendees", "reminders"}
NOT_WITH_SYNC_TOKEN = (
    "iCalUID", "orderBy", "privateExtendedProperty", "q", "sharedExtendedProperty",
    "timeMin", "timeMax", "updatedMin",
)  # fmt: skip
MAX_RESULTS = 2500
DEFAULT_RESULTS = 250


def precondition_failed() -> GoogleApiError:
    return GoogleApiError(412, "Precondition Failed", "conditionNotMet", location="If-Match")


def sync_token_with_restrictions() -> GoogleApiError:
    """A sync token with a filter, or with showDeleted=false (events.list, syncToken)."""
    return bad_request(
        "Sync token cannot be used with other request restrictions.",
        "syncTokenWithRequestRestrictions",
    )


def full_sync_required() -> GoogleApiError:
    return GoogleApiError(
        410, "Sync token is no longer valid, a full sync is required.", "fullSyncRequired"
    )


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """Patch semantics: objects merge key by key, arrays and start/end are replaced."""
    for key, value in patch.items():
        if (
            isinstance(value, dict)
            and isinstance(target.get(key), dict)
            and key not in REPLACED_WHOLE
        ):
            _merge(target[key], value)
        elif value is None:
            target.pop(key, None)
        else:
            target[key] = copy.deepcopy(value)


class CalendarEvents:
    def __init__(self, store: GoogleStore, calendar: Calendar) -> None:
        self.store = store
        self.cal = calendar

    # -- writing -----------------------------------------------------------------------
    def _validate(self, event: dict[str, Any]) -> None:
        event["start"] = event_times.normalize(event.get("start"), "start")
        event["end"] = event_times.normalize(event.get("end"), "end")
        if event_times.is_all_day(event["start"]) != event_times.is_all_day(event["end"]):
            raise bad_request("Invalid start and end: both must be dates or both date-times.")
        start = event_times.instant(event["start"], self.cal.time_zone)
        if event_times.instant(event["end"], self.cal.time_zone) < start:
            raise bad_request("The specified time range is empty.", "timeRangeEmpty")
        props = event.get("extendedProperties")
        if props is not None:
            for scope in ("private", "shared"):
                values = props.get(scope, {}) if isinstance(props, dict) else None
                if not isinstance(values, dict) or not all(
                    isinstance(v, str) for v in values.values()
                ):
                    raise bad_request("Invalid extended property value.")
        if event.get("recurrence"):
            recurrence.validate(event)
        for attendee in event.get("attendees", []):
            attendee.setdefault("responseStatus", "needsAction")
            if attendee.get("email") == self.cal.owner:
                attendee.update(self=True, organizer=True)

    def _save(self, event: dict[str, Any]) -> dict[str, Any]:
        seq = self.store.next_seq()
        event["etag"] = opaque.calendar_etag(seq)
        event["updated"] = opaque.rfc3339(self.store.now_dt())
        self.cal.events[event["id"]] = event
        self.cal.seqs[event["id"]] = seq
        for listener in self.store.calendar_listeners:
            listener(self.cal.id)
        return copy.deepcopy(event)

    def insert(self, body: dict[str, Any]) -> dict[str, Any]:
        event = {k: copy.deepcopy(v) for k, v in body.items() if k in WRITABLE}
        event_id = body.get("id") or opaque.event_id()
        if not opaque.is_valid_event_id(event_id):
            raise bad_request("Invalid resource id value.")
        self._validate(event)
        now = opaque.rfc3339(self.store.now_dt())
        event.update(
            kind="calendar#event",
            id=event_id,
            status=event.get("status", "confirmed"),
            htmlLink=f"https://www.google.com/calendar/event?eid={event_id}",
            created=now,
            creator={"email": self.cal.owner, "self": True},
            organizer={"email": self.cal.owner, "self": True},
            iCalUID=body.get("iCalUID") or f"{event_id}@google.com",
            sequence=int(body.get("sequence", 0)),
            reminders=event.get("reminders", {"useDefault": True}),
            eventType=event.get("eventType", "default"),
        )
        with self.store.lock:
            if event_id in self.cal.events:
                raise GoogleApiError(409, "The requested identifier already exists.", "duplicate")
            return self._save(event)

    def import_(self, body: dict[str, Any]) -> dict[str, Any]:
        """events.import: a private copy keyed by iCalUID; importing the same UID again updates
        that copy instead of creating a second one."""
        uid = body.get("iCalUID")
        if not uid:
            raise bad_request("Missing iCalUID.", "required")
        if body.get("eventType", "default") != "default":
            raise bad_request("Only events of type default can be imported.")
        with self.store.lock:
            existing = next(
                (e for e in self.cal.events.values()
                 if e.get("iCalUID") == uid and not e.get("recurringEventId")),
                None,
            )  # fmt: skip
            if existing is None:
                return self.insert({k: v for k, v in body.items() if k != "id"})
            return self.modify(existing["id"], body, replace=True, if_match=None)

    def _stored_or_instance(self, event_id: str) -> dict[str, Any] | None:
        if event_id in self.cal.events:
            return self.cal.events[event_id]
        master_id, sep, _ = event_id.rpartition("_")
        master = self.cal.events.get(master_id) if sep else None
        if master is None or not master.get("recurrence") or master["status"] == "cancelled":
            return None
        return recurrence.find_instance(master, event_id, self.store.now_dt())

    def get(self, event_id: str) -> dict[str, Any]:
        with self.store.lock:
            event = self._stored_or_instance(event_id)
            if event is None:
                raise not_found()
            return copy.deepcopy(event)

    def modify(
        self, event_id: str, body: dict[str, Any], *, replace: bool, if_match: str | None
    ) -> dict[str, Any]:
        with self.store.lock:
            current = self._stored_or_instance(event_id)
            if current is None:
                raise not_found()
            if if_match and if_match != "*" and if_match != current["etag"]:
                raise precondition_failed()
            fields = {k: v for k, v in body.items() if k in WRITABLE}
            event = copy.deepcopy(current)
            if replace:
                for key in WRITABLE - {"originalStartTime"}:
                    event.pop(key, None)
                event.update(copy.deepcopy(fields))
                event.setdefault("status", "confirmed")
            else:
                _merge(event, fields)
            if current.get("originalStartTime"):
                event["originalStartTime"] = current["originalStartTime"]
            self._validate(event)
            timing = ("start", "end", "recurrence")
            if any(event.get(k) != current.get(k) for k in timing) and "sequence" not in fields:
                event["sequence"] = int(current.get("sequence", 0)) + 1
            return self._save(event)

    def delete(self, event_id: str, if_match: str | None) -> None:
        with self.store.lock:
            current = self._stored_or_instance(event_id)
            if current is None:
                raise not_found()
            if current["status"] == "cancelled":
                raise GoogleApiError(410, "Resource has been deleted", "deleted")
            if if_match and if_match != "*" and if_match != current["etag"]:
                raise precondition_failed()
            self._cancel(current)
            if current.get("recurrence"):
                for other in list(self.cal.events.values()):
                    if other.get("recurringEventId") == event_id and other["status"] != "cancelled":
                        self._cancel(other)

    def _cancel(self, event: dict[str, Any]) -> None:
        cancelled = copy.deepcopy(event)
        cancelled["status"] = "cancelled"
        self._save(cancelled)

    # -- reading -----------------------------------------------------------------------
    def _public(self, event: dict[str, Any], minimal_if_cancelled: bool) -> dict[str, Any]:
        if event["status"] == "cancelled" and minimal_if_cancelled:
            keep = ("kind", "etag", "id", "status", "updated", "recurringEventId",
                    "originalStartTime")  # fmt: skip
            return {k: copy.deepcopy(event[k]) for k in keep if k in event}
        return copy.deepcopy(event)

    def _expand(
        self, master: dict[str, Any], lo: datetime | None, hi: datetime | None
    ) -> list[dict[str, Any]]:
        """Generated instances of a series (exceptions are stored events, reported as such)."""
        out = []
        for moment in recurrence.occurrence_starts(master, lo, hi, self.store.now_dt()):
            instance = recurrence.instance_of(master, moment)
            if instance["id"] not in self.cal.events:
                out.append(instance)
        return out

    def _in_window(self, event: dict[str, Any], lo: datetime | None, hi: datetime | None) -> bool:
        if lo is None and hi is None:
            return True
        if event.get("recurrence") and event["status"] != "cancelled":
            return bool(recurrence.occurrence_starts(event, lo, hi, self.store.now_dt())[:1])
        if "start" not in event:
            return True
        start = event_times.instant(event["start"], self.cal.time_zone)
        end = event_times.instant(event["end"], self.cal.time_zone)
        return (lo is None or end > lo) and (hi is None or start < hi)

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        """events.list, including paging and incremental sync."""
        sync_token = params.get("syncToken")
        page = opaque.decode_token(params["pageToken"]) if params.get("pageToken") else {}
        if page is None:
            raise bad_request("Invalid page token value.")
        since: int | None = page.get("s")
        if sync_token:
            # "it is not allowed to set showDeleted to False" with a sync token, nor these filters.
            if params.get("showDeleted") == "false" or any(
                params.get(name) for name in NOT_WITH_SYNC_TOKEN
            ):
                raise sync_token_with_restrictions()
            token = opaque.decode_token(sync_token)
            if token is None or token.get("c") != self.cal.id:
                raise bad_request("Invalid sync token value.")
            if token.get("e") != self.cal.epoch or claim_fault("delta_expired") is not None:
                raise full_sync_required()
            since = token["s"]
        show_deleted = bool(sync_token) or params.get("showDeleted") == "true"
        single = params.get("singleEvents") == "true"
        order_by = params.get("orderBy")
        if order_by == "startTime" and not single:
            raise bad_request("The requested ordering is not available for the particular query.")
        lo = event_times.parse_rfc3339(params["timeMin"]) if params.get("timeMin") else None
        hi = event_times.parse_rfc3339(params["timeMax"]) if params.get("timeMax") else None
        for bound in (lo, hi):
            if bound is not None and bound.tzinfo is None:
                raise bad_request("Bad Request: timeMin/timeMax need a time zone offset.")
        max_results = min(
            int_param(params.get("maxResults"), "maxResults", DEFAULT_RESULTS), MAX_RESULTS
        )
        if max_results < 1:
            raise bad_request("Invalid value for maxResults.")
        with self.store.lock:
            high: int = page.get("h", self.store.seq)
            selected = [
                e
                for e in self.cal.events.values()
                if self.cal.seqs[e["id"]] <= high
                and (since is None or self.cal.seqs[e["id"]] > since)
                and self._matches(e, params)
            ]
            items: list[dict[str, Any]] = []
            for event in selected:
                if single and event.get("recurrence"):
                    instances = self._expand(event, lo, hi)
                    if event["status"] == "cancelled":
                        # A deleted series shows up as each of its occurrences cancelled.
                        instances = [{**i, "status": "cancelled"} for i in instances]
                    items += instances
                elif self._in_window(event, lo, hi):
                    items.append(event)
            if not show_deleted:
                items = [e for e in items if self._shown_without_deleted(e, single)]
            items.sort(key=lambda e: self._sort_key(e, order_by))
            after = tuple(page.get("k", ()))
            if after:
                items = [e for e in items if self._sort_key(e, order_by) > after]
            chunk, more = items[:max_results], len(items) > max_results
            result = self._events_page([self._public(e, minimal_if_cancelled=True) for e in chunk])
            if more:
                key = list(self._sort_key(chunk[-1], order_by))
                result["nextPageToken"] = opaque.encode_token({"k": key, "h": high, "s": since})
            else:
                result["nextSyncToken"] = opaque.encode_token(
                    {"c": self.cal.id, "s": high, "e": self.cal.epoch}
                )
            return result

    @staticmethod
    def _shown_without_deleted(event: dict[str, Any], single: bool) -> bool:
        """showDeleted unset: "Cancelled instances of recurring events (but not the underlying
        recurring event) will still be included if showDeleted and singleEvents are both
        False" (events.list); a client that drops them shows deleted occurrences again."""
        if event["status"] != "cancelled":
            return True
        return not single and bool(event.get("recurringEventId"))

    def instances(self, event_id: str, params: dict[str, Any]) -> dict[str, Any]:
        with self.store.lock:
            master = self.cal.events.get(event_id)
            if master is None or not master.get("recurrence"):
                raise not_found()
            lo = event_times.parse_rfc3339(params["timeMin"]) if params.get("timeMin") else None
            hi = event_times.parse_rfc3339(params["timeMax"]) if params.get("timeMax") else None
            items = self._expand(master, lo, hi)
            items += [
                e
                for e in self.cal.events.values()
                if e.get("recurringEventId") == event_id and self._in_window(e, lo, hi)
            ]
            if params.get("showDeleted") != "true":
                items = [e for e in items if e["status"] != "cancelled"]
            items.sort(key=lambda e: self._sort_key(e, "startTime"))
            offset = int((opaque.decode_token(params.get("pageToken") or "") or {}).get("o", 0))
            size = min(
                int_param(params.get("maxResults"), "maxResults", DEFAULT_RESULTS), MAX_RESULTS
            )
            result = self._events_page(
                [self._public(e, minimal_if_cancelled=True) for e in items[offset : offset + size]]
            )
            if offset + size < len(items):
                result["nextPageToken"] = opaque.encode_token({"o": offset + size})
            return result

    def _matches(self, event: dict[str, Any], params: dict[str, Any]) -> bool:
        if params.get("iCalUID") and event.get("iCalUID") != params["iCalUID"]:
            return False
        if params.get("updatedMin"):
            updated_min = event_times.parse_rfc3339(params["updatedMin"])
            if event_times.parse_rfc3339(event["updated"]) < updated_min:
                return False
        props = event.get("extendedProperties", {})
        for scope in ("private", "shared"):
            for condition in params.get(f"{scope}ExtendedProperty") or []:
                name, _, value = condition.partition("=")
                if props.get(scope, {}).get(name) != value:
                    return False
        query = (params.get("q") or "").lower()
        if query:
            text = " ".join(str(event.get(k, "")) for k in ("summary", "description", "location"))
            return query in text.lower()
        return True

    def _sort_key(self, event: dict[str, Any], order_by: str | None) -> tuple[str, str]:
        if order_by == "startTime" and "start" in event:
            return (
                event_times.instant(event["start"], self.cal.time_zone).isoformat(),
                event["id"],
            )
        if order_by == "updated":
            return (event["updated"], event["id"])
        return ("", event["id"])

    def _events_page(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        updated = max((e["updated"] for e in self.cal.events.values()), default=None)
        return {
            "kind": "calendar#events",
            "etag": opaque.calendar_etag(self.store.seq),
            "summary": self.cal.summary,
            "description": "",
            "updated": updated or opaque.rfc3339(self.store.now_dt()),
            "timeZone": self.cal.time_zone,
            "accessRole": "owner",
            "defaultReminders": [{"method": "popup", "minutes": 10}],
            "items": items,
        }
