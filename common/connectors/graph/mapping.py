"""Graph's JSON and canonical items, both ways: events and contacts, time zones, recurrence
patterns, our stamp, and the participants note.

Sources: the event, patternedRecurrence, dateTimeTimeZone and contact resources of Graph v1.0
(learn.microsoft.com/graph/api/resources/{event,patternedrecurrence,datetimetimezone,contact})
and the extended-properties overview (our stamp is a single-value String property with a
GUID and a name, the form EWS writes too). Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import tz_win

from common.items import (
    Address,
    Appointment,
    Attendee,
    Contact,
    Phone,
    Recurrence,
    RecurrenceException,
    ShowAs,
    When,
    iana_zone,
    is_html,
    occurrences,
)
from common.kinds import Window

# Our correlation id on an Outlook item: a named String property in a property set of our
# own. The same MAPI property EWS would write (PropertySetId + PropertyName).
STAMP_PROPERTY_SET = "{58005f3c-8771-4f52-9e47-78f51882f510}"
STAMP_ID = f"String {STAMP_PROPERTY_SET} Name SynchronizerCorrelationId"
EXPAND_STAMP = f"singleValueExtendedProperties($filter=id eq '{STAMP_ID}')"


class Unmappable(ValueError):
    """An item Graph holds that cannot be read into a canonical item (an unknown zone, a
    pattern without an RRULE form)."""


# --- our stamp ------------------------------------------------------------------------------


def stamp_property(correlation_id: str) -> list[dict[str, str]]:
    return [{"id": STAMP_ID, "value": correlation_id}]


def stamp_of(resource: Mapping[str, Any]) -> str | None:
    """The correlation id an item read with `$expand=EXPAND_STAMP` carries (None: none)."""
    for prop in resource.get("singleValueExtendedProperties") or ():
        if str(prop.get("id", "")).lower() == STAMP_ID.lower():
            value = prop.get("value")
            return str(value) if value else None
    return None


def stamp_filter(correlation_id: str) -> str:
    quoted = correlation_id.replace("'", "''")
    return (
        f"singleValueExtendedProperties/Any(ep: ep/id eq '{STAMP_ID}' and ep/value eq '{quoted}')"
    )


def created_of(resource: Mapping[str, Any]) -> datetime | None:
    text = resource.get("createdDateTime")
    return parse_timestamp(str(text)) if text else None


def modified_of(resource: Mapping[str, Any]) -> datetime | None:
    """When the item last changed (`lastModifiedDateTime`): what a "newest wins" conflict
    policy compares with the CRM's own time."""
    text = resource.get("lastModifiedDateTime")
    return parse_timestamp(str(text)) if text else None


def parse_timestamp(text: str) -> datetime:
    """Edm.DateTimeOffset as Graph writes it (up to seven fractional digits, `Z`)."""
    value = text.strip().replace("Z", "+00:00")
    match = re.match(r"^(.*?\.\d{1,6})\d*(.*)$", value)
    if match:
        value = match.group(1) + match.group(2)
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- time zones -------------------------------------------------------------------------------


def graph_zone(name: str) -> str:
    """The zone name written to Graph: the Windows name Outlook keeps natively where the CLDR
    table has one (Europe/Oslo is "W. Europe Standard Time"), else the IANA name."""
    if name == "UTC":
        return "UTC"
    return tz_win.get(name) or name


def zone_of(name: str | None) -> ZoneInfo | None:
    """A zone Graph names (Windows or IANA), or None when it is not one we know (Outlook's
    "Customized Time Zone" and the like)."""
    if not name:
        return None
    try:
        return ZoneInfo(iana_zone(name))
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _local(value: Mapping[str, Any]) -> datetime:
    text = str(value["dateTime"]).strip().rstrip("Z")
    if "." in text:
        whole, fraction = text.split(".", 1)
        text = f"{whole}.{fraction[:6]}"
    return datetime.fromisoformat(text).replace(tzinfo=None)


def _instant(value: Mapping[str, Any]) -> datetime:
    """An aware datetime from a dateTimeTimeZone."""
    zone = zone_of(str(value.get("timeZone") or "UTC"))
    if zone is None:
        raise Unmappable(f"unknown time zone {value.get('timeZone')!r}")
    return _local(value).replace(tzinfo=zone)


def _dtz(moment: datetime, zone_name: str) -> dict[str, str]:
    local = moment.astimezone(ZoneInfo(zone_name))
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": graph_zone(zone_name)}


def _all_day_dtz(day: date, zone_name: str) -> dict[str, str]:
    return {"dateTime": f"{day.isoformat()}T00:00:00", "timeZone": graph_zone(zone_name)}


# --- bodies and the participants note --------------------------------------------------------

PARTICIPANTS_HEADING = "-- Participants --"
_NOTE_CLASS = "synchronizer-participants"
_HTML_NOTE = re.compile(
    rf"<div[^>]*\b(?:x_)?{_NOTE_CLASS}\b[^>]*>.*?</div>\s*", re.IGNORECASE | re.DOTALL
)


def _participant_line(person: Attendee) -> str:
    if person.name and person.name.strip().lower() != person.email.lower():
        return f"{person.name} <{person.email}>"
    return person.email


def with_participants(body: str, participants: Sequence[Attendee]) -> str:
    """The body as written to Outlook: with a note listing the meeting's participants who
    are not invited (the profile sends them no mail), so the mailbox owner sees who takes
    part. Read back, the note is taken off again (`without_participants`)."""
    if not participants:
        return body
    lines = [_participant_line(p) for p in participants]
    if is_html(body):
        items = "<br>".join(html.escape(line) for line in lines)
        note = (
            f'<div class="{_NOTE_CLASS}"><p>{html.escape(PARTICIPANTS_HEADING)}</p>'
            f"<p>{items}</p></div>"
        )
        closing = re.search(r"</body\s*>", body, re.IGNORECASE)
        if closing:
            return body[: closing.start()] + note + body[closing.start() :]
        return body + note
    text = "\n".join([PARTICIPANTS_HEADING, *lines])
    return f"{body.rstrip()}\n\n{text}" if body.strip() else text


def without_participants(body: str) -> str:
    """A body read from Outlook without the participants note we wrote into it."""
    if is_html(body):
        return _HTML_NOTE.sub("", body)
    at = body.rfind(PARTICIPANTS_HEADING)
    if at < 0 or (at > 0 and body[at - 1] != "\n"):
        return body
    return body[:at].rstrip()


def _body_json(content: str, participants: Sequence[Attendee] = ()) -> dict[str, str]:
    written = with_participants(content, participants)
    return {"contentType": "html" if is_html(written) else "text", "content": written}


def _body_text(resource: Mapping[str, Any]) -> str:
    body = resource.get("body") or {}
    return without_participants(str(body.get("content") or ""))


# --- show-as, privacy, attendees, reminders ----------------------------------------------------

_SHOW_AS_OUT = {
    ShowAs.FREE: "free",
    ShowAs.TENTATIVE: "tentative",
    ShowAs.BUSY: "busy",
    ShowAs.OUT_OF_OFFICE: "oof",
    ShowAs.ELSEWHERE: "workingElsewhere",
}
_SHOW_AS_IN = {value: key for key, value in _SHOW_AS_OUT.items()}  # "unknown" reads as busy
_PRIVATE = frozenset({"private", "confidential"})  # "personal" is a label, not privacy


def _attendees_json(attendees: Iterable[Attendee]) -> list[dict[str, Any]]:
    return [
        {
            "emailAddress": {"address": a.email, "name": a.name or a.email},
            "type": "required" if a.required else "optional",
        }
        for a in attendees
    ]


def _attendees_of(resource: Mapping[str, Any]) -> tuple[Attendee, ...]:
    found: list[Attendee] = []
    for attendee in resource.get("attendees") or ():
        if attendee.get("type") == "resource":
            continue  # a room or equipment, not a person taking part
        address = attendee.get("emailAddress") or {}
        email = str(address.get("address") or "").strip()
        if not email:
            continue
        name = str(address.get("name") or "")
        found.append(
            Attendee(email, "" if name == email else name, attendee.get("type") != "optional")
        )
    return tuple(found)


def _reminder_of(resource: Mapping[str, Any]) -> int | None:
    if not resource.get("isReminderOn", False):
        return None
    minutes = resource.get("reminderMinutesBeforeStart")
    return int(minutes) if minutes is not None else None


def _reminder_json(minutes: int | None) -> dict[str, Any]:
    if minutes is None:
        return {"isReminderOn": False}
    return {"isReminderOn": True, "reminderMinutesBeforeStart": minutes}


def _location_of(resource: Mapping[str, Any]) -> str:
    return str((resource.get("location") or {}).get("displayName") or "")


# --- recurrence ----------------------------------------------------------------------------------

_DAYS = {
    "MO": "monday",
    "TU": "tuesday",
    "WE": "wednesday",
    "TH": "thursday",
    "FR": "friday",
    "SA": "saturday",
    "SU": "sunday",
}
_DAY_CODES = {name: code for code, name in _DAYS.items()}
_INDEX = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}
_INDEX_NUMBER = {name: number for number, name in _INDEX.items()}
_ORDINAL_DAY = re.compile(r"^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
_KNOWN_PARTS = frozenset(
    {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "COUNT", "UNTIL", "WKST"}
)


def _parts(rule: str) -> dict[str, str]:
    text = rule.strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    parts: dict[str, str] = {}
    for piece in text.split(";"):
        if piece.strip():
            key, _, value = piece.partition("=")
            parts[key.strip().upper()] = value.strip().upper()
    return parts


def pattern_of(rule: str, start: When, zone_name: str) -> dict[str, Any]:
    """Graph's recurrence pattern for an RRULE; `Unmappable` for what Outlook cannot hold
    (hourly rules, several month days, BYWEEKNO, ordinals beyond the fourth...)."""
    parts = _parts(rule)
    unknown = set(parts) - _KNOWN_PARTS
    if unknown:
        raise Unmappable(f"Outlook has no pattern for {sorted(unknown)}")
    freq = parts.get("FREQ")
    interval = int(parts.get("INTERVAL", "1") or 1)
    day = start if not isinstance(start, datetime) else start.astimezone(ZoneInfo(zone_name))
    start_date = day.date() if isinstance(day, datetime) else day
    first_day = _DAYS.get(parts.get("WKST", "MO"), "monday")
    by_day = [d for d in parts.get("BYDAY", "").split(",") if d]
    if "," in parts.get("BYMONTHDAY", "") or "," in parts.get("BYMONTH", ""):
        raise Unmappable("Outlook repeats on one day of the month and one month only")
    pattern: dict[str, Any] = {"interval": interval}
    if freq == "DAILY":
        if by_day or "BYMONTHDAY" in parts or "BYMONTH" in parts or "BYSETPOS" in parts:
            raise Unmappable("a daily rule restricted to some days (write it as weekly)")
        pattern["type"] = "daily"
    elif freq == "WEEKLY":
        if "BYMONTHDAY" in parts or "BYMONTH" in parts or "BYSETPOS" in parts:
            raise Unmappable("a weekly rule restricted by month or position")
        days = by_day or [_DAY_CODES[start_date.strftime("%A").lower()]]
        if any(not d.isalpha() or d not in _DAYS for d in days):
            raise Unmappable(f"weekly days {days}")
        pattern.update(type="weekly", daysOfWeek=[_DAYS[d] for d in days])
        pattern["firstDayOfWeek"] = first_day
    elif freq in ("MONTHLY", "YEARLY"):
        yearly = freq == "YEARLY"
        if yearly:
            pattern["month"] = int(parts.get("BYMONTH") or start_date.month)
        if by_day:
            days, index = _relative_days(by_day, parts.get("BYSETPOS"))
            pattern.update(
                type="relativeYearly" if yearly else "relativeMonthly",
                daysOfWeek=days,
                index=_INDEX[index],
            )
        else:
            if "BYSETPOS" in parts:
                raise Unmappable("BYSETPOS without BYDAY")
            month_day = int(parts.get("BYMONTHDAY") or start_date.day)
            if month_day < 1:
                raise Unmappable("a day counted from the end of the month")
            pattern.update(
                type="absoluteYearly" if yearly else "absoluteMonthly", dayOfMonth=month_day
            )
    else:
        raise Unmappable(f"Outlook has no {freq} pattern")
    return pattern


def _relative_days(by_day: list[str], set_pos: str | None) -> tuple[list[str], int]:
    matches = [_ORDINAL_DAY.match(d) for d in by_day]
    if any(m is None for m in matches):
        raise Unmappable(f"days {by_day}")
    ordinals = {int(m.group(1)) for m in matches if m and m.group(1)}
    days = [_DAYS[m.group(2)] for m in matches if m]
    if set_pos is not None:
        if ordinals or "," in set_pos:
            raise Unmappable("BYSETPOS with ordinal days or several positions")
        index = int(set_pos)
    elif len(ordinals) == 1 and all(m and m.group(1) for m in matches):
        index = ordinals.pop()
    else:
        raise Unmappable(f"days {by_day} without one position")
    if index not in _INDEX:
        raise Unmappable(f"position {index} (Outlook has first to fourth and last)")
    return days, index


def recurrence_json(item: Appointment) -> dict[str, Any] | None:
    """Graph's patternedRecurrence for the item's rule (its exceptions are written apart)."""
    if item.recurrence is None:
        return None
    pattern = pattern_of(item.recurrence.rule, item.start, item.timezone)
    parts = _parts(item.recurrence.rule)
    local_start = (
        item.start.astimezone(item.zone).date() if isinstance(item.start, datetime) else item.start
    )
    range_: dict[str, Any] = {
        "startDate": local_start.isoformat(),
        "recurrenceTimeZone": graph_zone(item.timezone),
    }
    if "COUNT" in parts:
        range_.update(type="numbered", numberOfOccurrences=int(parts["COUNT"]))
    elif "UNTIL" in parts:
        range_.update(type="endDate", endDate=_until_date(parts["UNTIL"], item).isoformat())
    else:
        range_["type"] = "noEnd"
    return {"pattern": pattern, "range": range_}


def _until_date(until: str, item: Appointment) -> date:
    """The last day of a series ending at UNTIL, in the series' zone (Outlook ends a series
    on a date)."""
    digits = until.rstrip("Z")
    day = datetime.strptime(digits[:8], "%Y%m%d").date()
    if len(digits) > 8 and until.endswith("Z") and not item.all_day:
        moment = datetime.strptime(digits, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        return moment.astimezone(item.zone).date()
    return day


def can_express(recurrence: Recurrence) -> bool:
    """Whether Outlook can hold the rule as a series (the engine expands it otherwise)."""
    parts = _parts(recurrence.rule)
    try:
        anchor = date(2026, 1, 1)  # a pattern's form does not depend on the start day
        pattern_of(recurrence.rule, anchor, "UTC")
    except (Unmappable, ValueError, KeyError):
        return False
    return "UNTIL" not in parts or _UNTIL_TEXT.match(parts["UNTIL"]) is not None


_UNTIL_TEXT = re.compile(r"^\d{8}(T\d{6}Z?)?$")


def rule_of(recurrence: Mapping[str, Any]) -> str:
    """The RRULE of a Graph patternedRecurrence."""
    pattern, range_ = recurrence.get("pattern") or {}, recurrence.get("range") or {}
    kind = pattern.get("type")
    parts: dict[str, str] = {}
    interval = int(pattern.get("interval") or 1)
    if interval != 1:
        parts["INTERVAL"] = str(interval)
    days = [_DAY_CODES[str(d).lower()] for d in pattern.get("daysOfWeek") or ()]
    if kind == "daily":
        parts["FREQ"] = "DAILY"
    elif kind == "weekly":
        parts["FREQ"] = "WEEKLY"
        parts["BYDAY"] = ",".join(days)
        first = _DAY_CODES.get(str(pattern.get("firstDayOfWeek") or "monday").lower(), "MO")
        if first != "MO" and interval != 1:
            parts["WKST"] = first  # only changes which weeks an every-n-weeks rule takes
    elif kind in ("absoluteMonthly", "absoluteYearly"):
        parts["FREQ"] = "MONTHLY" if kind == "absoluteMonthly" else "YEARLY"
        parts["BYMONTHDAY"] = str(int(pattern.get("dayOfMonth") or 1))
        if kind == "absoluteYearly":
            parts["BYMONTH"] = str(int(pattern.get("month") or 1))
    elif kind in ("relativeMonthly", "relativeYearly"):
        parts["FREQ"] = "MONTHLY" if kind == "relativeMonthly" else "YEARLY"
        index = _INDEX_NUMBER.get(str(pattern.get("index") or "first").lower(), 1)
        if len(days) == 1:
            parts["BYDAY"] = f"{index}{days[0]}"
        else:
            parts["BYDAY"] = ",".join(days)
            parts["BYSETPOS"] = str(index)
        if kind == "relativeYearly":
            parts["BYMONTH"] = str(int(pattern.get("month") or 1))
    else:
        raise Unmappable(f"recurrence pattern {kind!r}")
    if range_.get("type") == "numbered":
        parts["COUNT"] = str(int(range_.get("numberOfOccurrences") or 1))
    elif range_.get("type") == "endDate":
        end = str(range_.get("endDate") or "")
        parts["UNTIL"] = end.replace("-", "")  # the last day, read in the series' zone
    order = ["FREQ", "INTERVAL", "BYMONTH", "BYMONTHDAY", "BYDAY", "BYSETPOS", "WKST"]
    order += ["COUNT", "UNTIL"]
    return ";".join(f"{k}={parts[k]}" for k in order if k in parts)


# --- events ---------------------------------------------------------------------------------------


def event_json(item: Appointment) -> dict[str, Any]:
    """The writable properties of an event for `item` (a series' exceptions excluded).
    Attendees are exactly those given: the engine passes only whom the profile invites, and
    lists the others in `participants`, which go into the body as a note."""
    body: dict[str, Any] = {
        "subject": item.subject,
        "body": _body_json(item.body, item.participants),
        "location": {"displayName": item.location},
        "sensitivity": "private" if item.private else "normal",
        "showAs": _SHOW_AS_OUT[item.show_as],
        "categories": sorted(item.categories),
        "attendees": _attendees_json(item.attendees),
        **_reminder_json(item.reminder_minutes),
        **_timing_json(item.start, item.end, item.timezone, item.all_day),
    }
    return body


def _timing_json(start: When, end: When, zone_name: str, all_day: bool) -> dict[str, Any]:
    if all_day:
        assert isinstance(start, date) and isinstance(end, date)
        return {
            "isAllDay": True,
            "start": _all_day_dtz(_as_date(start), zone_name),
            "end": _all_day_dtz(_as_date(end), zone_name),
        }
    assert isinstance(start, datetime) and isinstance(end, datetime)
    return {"isAllDay": False, "start": _dtz(start, zone_name), "end": _dtz(end, zone_name)}


def _as_date(value: When) -> date:
    return value.date() if isinstance(value, datetime) else value


def _zone_name_of(resource: Mapping[str, Any]) -> str:
    """The IANA zone an event lives in (its original start zone); UTC when Outlook names a
    zone we do not know, which only matters for series (checked there)."""
    name = resource.get("originalStartTimeZone")
    zone = zone_of(str(name)) if name else None
    return zone.key if zone is not None else "UTC"


def _timing_of(resource: Mapping[str, Any], zone_name: str) -> tuple[When, When]:
    if resource.get("isAllDay"):
        return _local(resource["start"]).date(), _local(resource["end"]).date()
    return _instant(resource["start"]), _instant(resource["end"])


def appointment_of(resource: Mapping[str, Any]) -> Appointment:
    """A single event (or one occurrence) as a canonical appointment."""
    zone_name = _zone_name_of(resource)
    start, end = _timing_of(resource, zone_name)
    attendees = _attendees_of(resource)
    # A meeting's identity (organizer, iCalUId) only for meetings: Outlook gives every
    # event both, but an event of one's own without attendees is no meeting, and would not
    # pair with its hand-made twin in the CRM by what identifies it.
    meeting = bool(attendees) or resource.get("isOrganizer") is False
    organizer = ((resource.get("organizer") or {}).get("emailAddress") or {}).get("address")
    try:
        return Appointment(
            subject=str(resource.get("subject") or ""),
            start=start,
            end=end,
            timezone=zone_name,
            body=_body_text(resource),
            location=_location_of(resource),
            private=str(resource.get("sensitivity") or "normal") in _PRIVATE,
            show_as=_SHOW_AS_IN.get(str(resource.get("showAs") or "busy"), ShowAs.BUSY),
            categories=frozenset(str(c) for c in resource.get("categories") or ()),
            attendees=attendees,
            reminder_minutes=_reminder_of(resource),
            organizer=str(organizer or "").lower() if meeting else "",
            uid=(resource.get("iCalUId") or None) if meeting else None,
            last_modified=modified_of(resource),
        )
    except (TypeError, KeyError) as exc:
        raise Unmappable(f"event {resource.get('id')}: {exc}") from exc


def series_of(
    master: Mapping[str, Any], instances: Sequence[Mapping[str, Any]], window: Window
) -> Appointment:
    """A series master and its instances (occurrences and exceptions read for `window`) as
    one canonical series: the rule from the master's pattern, exceptions from the instances
    of type "exception", deletions where the rule makes an occurrence inside the window
    that Outlook no longer lists."""
    recurrence = master.get("recurrence") or {}
    zone_name = str((recurrence.get("range") or {}).get("recurrenceTimeZone") or "")
    zone = zone_of(zone_name) or zone_of(str(master.get("originalStartTimeZone") or ""))
    if zone is None:
        raise Unmappable(f"series {master.get('id')}: unknown time zone {zone_name!r}")
    base = replace(appointment_of(master), timezone=zone.key)
    rule = rule_of(recurrence)
    series = replace(base, recurrence=Recurrence(rule))
    present: set[datetime] = set()
    exceptions: list[RecurrenceException] = []
    for inst in instances:
        original = _original_start(inst, series)
        if original is None:
            continue
        present.add(_utc_key(original))
        if inst.get("type") == "exception":
            exceptions.append(_exception_of(inst, series, original))
    # A deletion: an occurrence the rule makes inside the window that Outlook does not list.
    made = occurrences(series, window.start, window.end)
    exclusions = frozenset(
        o.original_start for o in made if _utc_key(o.original_start) not in present
    )
    ordered = tuple(sorted(exceptions, key=lambda e: _utc_key(e.original_start)))
    # An occurrence changed on its own is a change of the series: the newest time counts.
    times = [t for t in (modified_of(r) for r in (master, *instances)) if t is not None]
    return replace(
        series,
        recurrence=Recurrence(rule, exclusions, ordered),
        last_modified=max(times) if times else None,
    )


def _utc_key(value: When) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.combine(value, time(), UTC)


def _original_start(inst: Mapping[str, Any], series: Appointment) -> When | None:
    text = inst.get("originalStart")
    if not text:
        return None
    moment = parse_timestamp(str(text))
    if series.all_day:
        return moment.astimezone(series.zone).date()
    return moment.astimezone(series.zone)


def _exception_of(
    inst: Mapping[str, Any], series: Appointment, original: When
) -> RecurrenceException:
    own = appointment_of(inst)

    def differing(name: str) -> Any:
        value = getattr(own, name)
        return None if value == getattr(series, name) else value

    return RecurrenceException(
        original_start=original,
        start=own.start,
        end=own.end,
        subject=differing("subject"),
        location=differing("location"),
        body=differing("body"),
        attendees=differing("attendees"),
        show_as=differing("show_as"),
        reminder_minutes=differing("reminder_minutes"),
    )


def exception_json(exc: RecurrenceException, series: Appointment) -> dict[str, Any]:
    """The PATCH that makes an occurrence the exception `exc` describes (fields it does not
    override take the series' values, so an exception that was undone looks like the rest)."""

    def value(name: str) -> Any:
        own = getattr(exc, name)
        return getattr(series, name) if own is None else own

    body: dict[str, Any] = {
        "subject": value("subject"),
        "location": {"displayName": value("location")},
        "body": _body_json(value("body"), series.participants),
        "showAs": _SHOW_AS_OUT[ShowAs(value("show_as"))],
        "attendees": _attendees_json(value("attendees")),
        **_reminder_json(value("reminder_minutes")),
        **_timing_json(exc.start, exc.end, series.timezone, series.all_day),
    }
    return body


def occurrence_key(value: When) -> datetime:
    """How an occurrence is matched between the canonical series and Outlook's instances."""
    return _utc_key(value)


def series_version(master: Mapping[str, Any], instances: Sequence[Mapping[str, Any]]) -> str:
    """A series' version: the master's change key and a digest of its instances' ids and
    change keys, so an edit of one occurrence (which need not move the master's change key)
    or a deleted one moves it too. The part before `|` is what `If-Match` takes."""
    digest = hashlib.sha256()
    for inst in sorted(instances, key=lambda i: str(i.get("id"))):
        digest.update(f"{inst.get('id')}={inst.get('changeKey')};".encode())
    return f"{master.get('changeKey')}|{digest.hexdigest()[:20]}"


def change_key(version: str | None) -> str | None:
    """The change key inside a version (a series' version carries a digest after `|`)."""
    return None if version is None else version.split("|", 1)[0]


def etag(version: str | None) -> str | None:
    key = change_key(version)
    return None if not key else f'W/"{key}"'


# --- contacts -------------------------------------------------------------------------------------

_ADDRESS_SLOTS = {"work": "businessAddress", "home": "homeAddress", "other": "otherAddress"}
_SLOT_KINDS = {slot: kind for kind, slot in _ADDRESS_SLOTS.items()}
MAX_EMAILS = 3  # EmailAddress1..3


def contact_json(item: Contact) -> dict[str, Any]:
    """The writable properties of a contact for `item`. Phones: work numbers are
    businessPhones, home numbers homePhones, the first mobile number mobilePhone (Outlook
    has one); other kinds are kept as business phones."""
    business = [p.number for p in item.phones if p.kind.lower() not in ("home", "mobile")]
    home = [p.number for p in item.phones if p.kind.lower() == "home"]
    mobiles = [p.number for p in item.phones if p.kind.lower() == "mobile"]
    body: dict[str, Any] = {
        "givenName": item.given_name,
        "surname": item.family_name,
        "middleName": item.middle_name,
        "displayName": " ".join(n for n in (item.given_name, item.family_name) if n),
        "companyName": item.company,
        "jobTitle": item.job_title,
        "emailAddresses": [{"address": e, "name": e} for e in item.emails[:MAX_EMAILS]],
        "businessPhones": business,
        "homePhones": home,
        "mobilePhone": mobiles[0] if mobiles else None,
        "businessAddress": {},
        "homeAddress": {},
        "otherAddress": {},
    }
    for address in item.addresses:
        slot = _ADDRESS_SLOTS.get(address.kind.lower(), "otherAddress")
        if body[slot]:
            continue  # Outlook has one address of each kind
        body[slot] = {
            "street": address.street,
            "city": address.city,
            "postalCode": address.postal_code,
            "state": address.region,
            "countryOrRegion": address.country,
        }
    return body


def contact_of(resource: Mapping[str, Any]) -> Contact:
    phones = [Phone(str(n), "work") for n in resource.get("businessPhones") or () if n]
    phones += [Phone(str(n), "home") for n in resource.get("homePhones") or () if n]
    if resource.get("mobilePhone"):
        phones.append(Phone(str(resource["mobilePhone"]), "mobile"))
    addresses = []
    for slot in ("businessAddress", "homeAddress", "otherAddress"):
        value = resource.get(slot) or {}
        if any(value.get(k) for k in ("street", "city", "postalCode", "state", "countryOrRegion")):
            addresses.append(
                Address(
                    kind=_SLOT_KINDS[slot],
                    street=str(value.get("street") or ""),
                    city=str(value.get("city") or ""),
                    postal_code=str(value.get("postalCode") or ""),
                    region=str(value.get("state") or ""),
                    country=str(value.get("countryOrRegion") or ""),
                )
            )
    return Contact(
        given_name=str(resource.get("givenName") or ""),
        family_name=str(resource.get("surname") or ""),
        middle_name=str(resource.get("middleName") or ""),
        company=str(resource.get("companyName") or ""),
        job_title=str(resource.get("jobTitle") or ""),
        emails=tuple(
            str(e.get("address"))
            for e in resource.get("emailAddresses") or ()
            if isinstance(e, dict) and e.get("address")
        ),
        phones=tuple(phones),
        addresses=tuple(addresses),
        last_modified=modified_of(resource),
    )


@dataclass(frozen=True, slots=True)
class Instance:
    """An occurrence of a series as Outlook lists it: its id and where it originally was."""

    id: str
    original: datetime  # UTC
    kind: str  # occurrence | exception


def instances_by_original(instances: Iterable[Mapping[str, Any]]) -> dict[datetime, Instance]:
    found: dict[datetime, Instance] = {}
    for inst in instances:
        text = inst.get("originalStart")
        if text:
            key = parse_timestamp(str(text)).astimezone(UTC)
            found[key] = Instance(str(inst["id"]), key, str(inst.get("type")))
    return found


def series_margin(window: Window) -> Window:
    """The range instances are read in for a window: wider, so an occurrence moved just
    outside the window is still listed (and not taken for a deleted one)."""
    margin = timedelta(days=31)
    return Window(window.start - margin, window.end + margin)
