"""Calendar events of one mailbox: storage, recurrence expansion and Graph's JSON shape.

A stored record is a single instance or a series master. Occurrences are computed from the
master's recurrence; a changed occurrence is an exception stored on its master, a deleted one is
remembered as cancelled. Occurrence ids encode (master id, original start) so they are stable.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from simulators.microsoft import recurrence as rec
from simulators.microsoft.errors import GraphError, bad_request
from simulators.microsoft.extended import ExtendedProperties
from simulators.microsoft.timezones import (
    format_dtz,
    format_local,
    odata_timestamp,
    parse_dtz,
    windows_name,
    zone,
)

# Properties a client may set on POST/PATCH (others known to Graph are read-only and ignored).
WRITABLE = {
    "subject",
    "body",
    "start",
    "end",
    "isAllDay",
    "location",
    "locations",
    "attendees",
    "categories",
    "sensitivity",
    "showAs",
    "importance",
    "isReminderOn",
    "reminderMinutesBeforeStart",
    "recurrence",
    "responseRequested",
    "allowNewTimeProposals",
    "isOnlineMeeting",
    "onlineMeetingProvider",
    "hideAttendees",
    "transactionId",
    "singleValueExtendedProperties",
    "multiValueExtendedProperties",
}
READ_ONLY = {
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "iCalUId",
    "uid",
    "bodyPreview",
    "hasAttachments",
    "isCancelled",
    "isOrganizer",
    "isDraft",
    "organizer",
    "responseStatus",
    "seriesMasterId",
    "type",
    "webLink",
    "onlineMeetingUrl",
    "onlineMeeting",
    "originalStart",
}
_CHOICES = {
    "sensitivity": ("normal", "personal", "private", "confidential"),
    "showAs": ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown"),
    "importance": ("low", "normal", "high"),
}


def new_id(prefix: str = "AAMkAD") -> str:
    return prefix + base64.urlsafe_b64encode(uuid.uuid4().bytes * 2).decode().rstrip("=")


def new_change_key() -> str:
    return base64.b64encode(secrets.token_bytes(12)).decode()


def occurrence_id(master_id: str, original_start: datetime) -> str:
    key = original_start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return "AAMkAO" + base64.urlsafe_b64encode(f"{master_id}|{key}".encode()).decode().rstrip("=")


def split_occurrence_id(event_id: str) -> tuple[str, datetime] | None:
    if not event_id.startswith("AAMkAO"):
        return None
    try:
        raw = base64.urlsafe_b64decode(event_id[6:] + "=" * (-len(event_id[6:]) % 4)).decode()
        master_id, key = raw.split("|")
        return master_id, datetime.strptime(key, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except (ValueError, UnicodeDecodeError):
        return None


@dataclass
class Timing:
    start: datetime  # aware, in the zone it was given in
    end: datetime
    start_zone: str
    end_zone: str
    all_day: bool = False


@dataclass
class Exception_:
    """A changed occurrence of a series."""

    id: str
    props: dict
    timing: Timing
    change_key: str
    created: datetime
    modified: datetime


@dataclass
class EventRecord:
    id: str
    props: dict  # writable Graph properties as last set
    timing: Timing
    recurrence: dict | None
    created: datetime
    modified: datetime
    change_key: str
    ical_uid: str
    seq: int = 0  # mailbox change counter at the last change (for delta)
    transaction_id: str | None = None
    extended: ExtendedProperties = field(default_factory=ExtendedProperties)
    exceptions: dict[datetime, Exception_] = field(default_factory=dict)  # by original start (UTC)
    cancelled: set[datetime] = field(default_factory=set)
    # An invitation received from another mailbox: the organizer's emailAddress, our response,
    # and whether the organizer cancelled the meeting. None: this mailbox organizes the event.
    organizer: dict | None = None
    response: str = "organizer"
    meeting_cancelled: bool = False

    @property
    def is_series(self) -> bool:
        return self.recurrence is not None

    def touch(self, seq: int) -> None:
        self.modified = datetime.now(UTC)
        self.change_key = new_change_key()
        self.seq = seq


def _check_choices(props: dict) -> None:
    for name, allowed in _CHOICES.items():
        if name in props and props[name] not in allowed:
            raise bad_request(
                f"Requested value '{props[name]}' was not found.", code="RequestBodyRead"
            )


def check_properties(body: dict, *, creating: bool) -> None:
    for name in body:
        if name.startswith("@odata"):
            continue
        if name not in WRITABLE and name not in READ_ONLY:
            raise bad_request(
                f"The property '{name}' does not exist on type 'microsoft.graph.event'. Make sure "
                "to only use property names that are defined by the type or mark the type as open type.",
                code="RequestBodyRead",
            )
    if not creating and "transactionId" in body:
        raise bad_request(
            "The transactionId of an event cannot be changed.", code="ErrorInvalidRequest"
        )
    _check_choices(body)


def timing_from(body: dict, current: Timing | None = None) -> Timing:
    if current is None and ("start" not in body or "end" not in body):
        raise GraphError(
            400,
            "ErrorInvalidRequest",
            "Your request can't be completed. start and end are required.",
        )
    if "start" in body:
        start, start_zone = parse_dtz(body["start"])
    else:
        assert current is not None
        start, start_zone = current.start, current.start_zone
    if "end" in body:
        end, end_zone = parse_dtz(body["end"])
    else:
        assert current is not None
        end, end_zone = current.end, current.end_zone
    all_day = bool(body.get("isAllDay", current.all_day if current else False))
    if end < start:
        raise GraphError(
            400,
            "ErrorInvalidRequest",
            "Your request can't be completed. The end time must be later than the start time.",
        )
    if all_day:
        midnight = all(
            (t.hour, t.minute, t.second, t.microsecond) == (0, 0, 0, 0) for t in (start, end)
        )
        if not midnight or end == start:
            raise GraphError(
                400,
                "ErrorPropertyValidationFailure",
                "At least one property failed validation. All-day events must start and end at midnight.",
            )
    return Timing(start, end, start_zone, end_zone, all_day)


@dataclass
class Instance:
    """One item of a calendar view: a single event, an occurrence or an exception."""

    id: str
    kind: str  # singleInstance | occurrence | exception | seriesMaster
    record: EventRecord
    timing: Timing
    props: dict
    change_key: str
    created: datetime
    modified: datetime
    original_start: datetime | None = None


def master_instance(record: EventRecord) -> Instance:
    kind = "seriesMaster" if record.is_series else "singleInstance"
    return Instance(
        record.id,
        kind,
        record,
        record.timing,
        record.props,
        record.change_key,
        record.created,
        record.modified,
    )


def expand(record: EventRecord, window_start: datetime, window_end: datetime) -> list[Instance]:
    """The instances of `record` overlapping the window (a single event is its own instance)."""
    timing = record.timing
    if not record.is_series:
        if timing.start < window_end and _effective_end(timing) > window_start:
            return [master_instance(record)]
        return []
    found: list[Instance] = []
    duration = timing.end - timing.start
    series = record.recurrence or {}
    series_zone = zone(str(series.get("range", {}).get("recurrenceTimeZone") or timing.start_zone))
    margin = timedelta(days=7)
    starts = rec.occurrences(
        series, timing.start, duration, series_zone, window_start - margin, window_end + margin
    )
    for start in starts:
        key = start.astimezone(UTC)
        if key in record.cancelled:
            continue
        exc = record.exceptions.get(key)
        if exc is not None:
            inst = Instance(
                exc.id,
                "exception",
                record,
                exc.timing,
                {**record.props, **exc.props},
                exc.change_key,
                exc.created,
                exc.modified,
                key,
            )
        else:
            occ_timing = Timing(
                start.astimezone(zone(timing.start_zone)),
                (start + duration).astimezone(zone(timing.end_zone)),
                timing.start_zone,
                timing.end_zone,
                timing.all_day,
            )
            inst = Instance(
                occurrence_id(record.id, key),
                "occurrence",
                record,
                occ_timing,
                record.props,
                record.change_key,
                record.created,
                record.modified,
                key,
            )
        if inst.timing.start < window_end and _effective_end(inst.timing) > window_start:
            found.append(inst)
    return found


def _effective_end(timing: Timing) -> datetime:
    return timing.end if timing.end > timing.start else timing.start + timedelta(seconds=1)


def find_instance(record: EventRecord, original_start: datetime) -> Instance | None:
    window_start = original_start - timedelta(days=1)
    for inst in expand(record, window_start, original_start + timedelta(days=2)):
        if inst.original_start == original_start:
            return inst
    return None


def _render_time(timing: Timing, which: str, out_zone: str | None) -> dict:
    moment = timing.start if which == "start" else timing.end
    given_zone = timing.start_zone if which == "start" else timing.end_zone
    if timing.all_day:
        # All-day events are floating dates: shown at midnight whatever zone is asked for.
        label = out_zone or given_zone
        return {"dateTime": format_local(moment.replace(tzinfo=None)), "timeZone": label}
    return format_dtz(moment, out_zone or "UTC")


def _body_preview(props: dict) -> str:
    body = props.get("body") or {}
    return str(body.get("content") or "")[:255]


def render(
    inst: Instance,
    *,
    out_zone: str | None,
    organizer: dict,
    base_url: str,
    expand_extended: list[str] | None = None,
) -> dict:
    props = inst.props
    record = inst.record
    body = props.get("body") or {"contentType": "text", "content": ""}
    location = props.get("location") or {}
    out = {
        "@odata.etag": f'W/"{inst.change_key}"',
        "id": inst.id,
        "createdDateTime": odata_timestamp(inst.created),
        "lastModifiedDateTime": odata_timestamp(inst.modified),
        "changeKey": inst.change_key,
        "categories": list(props.get("categories") or []),
        "transactionId": record.transaction_id
        if inst.kind in ("singleInstance", "seriesMaster")
        else None,
        "originalStartTimeZone": windows_name(inst.timing.start_zone),
        "originalEndTimeZone": windows_name(inst.timing.end_zone),
        "iCalUId": record.ical_uid,
        "uid": record.ical_uid,
        "reminderMinutesBeforeStart": props.get("reminderMinutesBeforeStart", 15),
        "isReminderOn": props.get("isReminderOn", True),
        "hasAttachments": False,
        "subject": props.get("subject", ""),
        "bodyPreview": _body_preview(props),
        "importance": props.get("importance", "normal"),
        "sensitivity": props.get("sensitivity", "normal"),
        "isAllDay": inst.timing.all_day,
        "isCancelled": record.meeting_cancelled,
        "isOrganizer": record.organizer is None,
        "responseRequested": props.get("responseRequested", True),
        "seriesMasterId": record.id if inst.kind in ("occurrence", "exception") else None,
        "showAs": props.get("showAs", "busy"),
        "type": inst.kind,
        "webLink": f"{base_url}/owa/?itemid={inst.id}&exvsurl=1&path=/calendar/item",
        "onlineMeetingUrl": None,
        "isOnlineMeeting": props.get("isOnlineMeeting", False),
        "onlineMeetingProvider": props.get("onlineMeetingProvider", "unknown"),
        "allowNewTimeProposals": props.get("allowNewTimeProposals", True),
        "isDraft": False,
        "hideAttendees": props.get("hideAttendees", False),
        "responseStatus": {"response": record.response, "time": "0001-01-01T00:00:00Z"},
        "body": {
            "contentType": body.get("contentType", "text"),
            "content": body.get("content", ""),
        },
        "start": _render_time(inst.timing, "start", out_zone),
        "end": _render_time(inst.timing, "end", out_zone),
        "location": {
            "displayName": location.get("displayName", ""),
            "locationType": location.get("locationType", "default"),
            "uniqueIdType": "unknown" if not location else "private",
            "address": location.get("address", {}),
            "coordinates": location.get("coordinates", {}),
        },
        "locations": list(
            props.get("locations") or ([location] if location.get("displayName") else [])
        ),
        "recurrence": record.recurrence if inst.kind == "seriesMaster" else None,
        "attendees": [
            {
                "type": a.get("type", "required"),
                "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
                "emailAddress": a.get("emailAddress", {}),
            }
            for a in props.get("attendees") or []
        ],
        "organizer": record.organizer or organizer,
        "onlineMeeting": None,
    }
    if inst.original_start is not None:
        out["originalStart"] = odata_timestamp(inst.original_start)
    if expand_extended is not None:
        out["singleValueExtendedProperties"] = record.extended.expanded(expand_extended)
    return out
