"""Canonical items: what an appointment or a contact is, whichever service it came from.

Every connector reads its service's objects into these values and writes them back from them.
`content_hash` looks only at what a user can change and normalises what servers rewrite
(timestamps, ordering, whitespace, HTML wrapping of bodies, the zone a single item is reported
in), so reading back what we wrote is never seen as a change. Recurrence and zone arithmetic is
left to dateutil and zoneinfo.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import html
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from html.parser import HTMLParser
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

When = datetime | date
"""A timed instant (aware datetime) or, for all-day items, a calendar date."""


class ShowAs(enum.StrEnum):
    FREE = "free"
    TENTATIVE = "tentative"
    BUSY = "busy"
    OUT_OF_OFFICE = "oof"
    ELSEWHERE = "elsewhere"


@dataclass(frozen=True, slots=True)
class Attendee:
    email: str
    name: str = ""
    required: bool = True


@dataclass(frozen=True, slots=True)
class RecurrenceException:
    """One occurrence of a series that was moved or edited (RFC 5545 RECURRENCE-ID)."""

    original_start: When
    start: When
    end: When
    subject: str | None = None
    location: str | None = None


@dataclass(frozen=True, slots=True)
class Recurrence:
    """An RFC 5545 RRULE (without the `RRULE:` prefix) with deleted and moved occurrences."""

    rule: str
    exclusions: frozenset[When] = frozenset()  # original starts of deleted occurrences
    exceptions: tuple[RecurrenceException, ...] = ()


@dataclass(frozen=True, slots=True)
class Appointment:
    subject: str
    start: When
    end: When  # exclusive; for all-day items the day after the last day
    timezone: str = "UTC"  # IANA zone the item lives in (recurrences keep its wall-clock time)
    body: str = ""
    location: str = ""
    private: bool = False
    show_as: ShowAs = ShowAs.BUSY
    categories: frozenset[str] = frozenset()
    attendees: tuple[Attendee, ...] = ()
    reminder_minutes: int | None = None
    recurrence: Recurrence | None = None
    crm_person_id: str | None = None
    crm_company_id: str | None = None
    activity_type: str | None = None  # the CRM appointment type, for filters
    last_modified: datetime | None = None  # written by the server; never part of the content

    def __post_init__(self) -> None:
        timed = isinstance(self.start, datetime)
        if timed != isinstance(self.end, datetime):
            raise ValueError("start and end must both be datetimes or both be dates")
        if timed and (_naive(self.start) or _naive(self.end)):
            raise ValueError("timed appointments need aware datetimes")
        if _order_key(self.end) < _order_key(self.start):
            raise ValueError("an appointment cannot end before it starts")
        ZoneInfo(self.timezone)  # raises for a zone that is not IANA

    @property
    def all_day(self) -> bool:
        return not isinstance(self.start, datetime)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class Address:
    kind: str = "work"
    street: str = ""
    city: str = ""
    postal_code: str = ""
    region: str = ""
    country: str = ""


@dataclass(frozen=True, slots=True)
class Phone:
    number: str
    kind: str = "work"


@dataclass(frozen=True, slots=True)
class Contact:
    given_name: str = ""
    family_name: str = ""
    middle_name: str = ""
    company: str = ""
    job_title: str = ""
    emails: tuple[str, ...] = ()
    phones: tuple[Phone, ...] = ()
    addresses: tuple[Address, ...] = ()
    crm_person_id: str | None = None
    selections: frozenset[str] = field(default=frozenset())  # CRM selections, for filters
    last_modified: datetime | None = None


Item = Appointment | Contact
ItemT = TypeVar("ItemT", Appointment, Contact)

# Fields that are not content: a change to them alone is no change.
_NOT_CONTENT = frozenset({"last_modified", "selections"})
# Fields that only make sense together (a side either keeps the timing or it does not).
TIMING_FIELDS = frozenset({"start", "end", "timezone"})

APPOINTMENT_FIELDS: frozenset[str] = frozenset(
    f.name for f in dataclasses.fields(Appointment) if f.name not in _NOT_CONTENT
)
CONTACT_FIELDS: frozenset[str] = frozenset(
    f.name for f in dataclasses.fields(Contact) if f.name not in _NOT_CONTENT
)


def content_fields(kind: type[Appointment] | type[Contact]) -> frozenset[str]:
    return APPOINTMENT_FIELDS if kind is Appointment else CONTACT_FIELDS


# --- normalisation ------------------------------------------------------------------------------

_SPACES = re.compile(r"[ \t\u00a0\u200b]+")
_LOOKS_LIKE_HTML = re.compile(r"<\s*[a-zA-Z!/]")
_BLOCK_TAGS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})
_SKIPPED_TAGS = frozenset({"style", "script", "head", "title"})


class _TextOfHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def text_of(body: str) -> str:
    """The visible text of a body, plain or HTML, with whitespace made canonical."""
    if _LOOKS_LIKE_HTML.search(body):
        parser = _TextOfHtml()
        parser.feed(body)
        parser.close()
        body = "".join(parser.parts)
    else:
        body = html.unescape(body) if "&" in body else body
    lines = (_SPACES.sub(" ", line).strip() for line in body.replace("\r", "\n").split("\n"))
    return "\n".join(line for line in lines if line)


def one_line(text: str) -> str:
    return _SPACES.sub(" ", text.replace("\r", " ").replace("\n", " ")).strip()


def normalise_rule(rule: str) -> str:
    """An RRULE with its parts (and list values) in a canonical order, defaults dropped."""
    text = rule.strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    parts: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        key, _, value = part.partition("=")
        key, value = key.strip().upper(), value.strip().upper()
        if key in ("INTERVAL", "WKST") and value in ("1", "MO"):
            continue  # the RFC 5545 defaults; some servers write them, others do not
        if "," in value:
            value = ",".join(sorted(value.split(",")))
        parts[key] = value
    return ";".join(f"{k}={parts[k]}" for k in sorted(parts))


def phone_digits(number: str) -> str:
    return re.sub(r"[^\d+]", "", number)


def _naive(value: When) -> bool:
    return isinstance(value, datetime) and value.utcoffset() is None


def _order_key(value: When) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.combine(value, time(), UTC)


def _when(value: When) -> str:
    """Timed values as the UTC minute (servers drop seconds), dates as dates."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(second=0, microsecond=0).strftime("%Y-%m-%dT%H:%MZ")
    return value.isoformat()


def _appointment_view(item: Appointment) -> dict[str, Any]:
    recurrence = None
    if item.recurrence is not None:
        rec = item.recurrence
        recurrence = {
            "rule": normalise_rule(rec.rule),
            "exclusions": sorted(_when(w) for w in rec.exclusions),
            "exceptions": sorted(
                [
                    _when(e.original_start),
                    _when(e.start),
                    _when(e.end),
                    None if e.subject is None else one_line(e.subject),
                    None if e.location is None else one_line(e.location),
                ]
                for e in rec.exceptions
            ),
        }
    return {
        "subject": one_line(item.subject),
        "start": _when(item.start),
        "end": _when(item.end),
        # The zone of a single item is presentation (servers report it in UTC or in the
        # mailbox zone); a timed series needs it to keep its wall-clock time across DST.
        "timezone": item.timezone if item.recurrence is not None and not item.all_day else None,
        "body": text_of(item.body),
        "location": one_line(item.location),
        "private": item.private,
        "show_as": item.show_as.value,
        "categories": sorted({c.strip().casefold() for c in item.categories if c.strip()}),
        "attendees": sorted(
            [a.email.strip().lower(), one_line(a.name), a.required] for a in item.attendees
        ),
        "reminder_minutes": item.reminder_minutes,
        "recurrence": recurrence,
        "crm_person_id": item.crm_person_id,
        "crm_company_id": item.crm_company_id,
        "activity_type": item.activity_type,
    }


def _contact_view(item: Contact) -> dict[str, Any]:
    return {
        "given_name": one_line(item.given_name),
        "family_name": one_line(item.family_name),
        "middle_name": one_line(item.middle_name),
        "company": one_line(item.company),
        "job_title": one_line(item.job_title),
        "emails": sorted({e.strip().lower() for e in item.emails if e.strip()}),
        "phones": sorted([phone_digits(p.number), p.kind.lower()] for p in item.phones),
        "addresses": sorted(
            [one_line(getattr(a, f.name)) for f in dataclasses.fields(Address)]
            for a in item.addresses
        ),
        "crm_person_id": item.crm_person_id,
    }


def content_view(item: Item, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """The normalised content of an item, limited to `fields` (a side may keep fewer)."""
    view = _appointment_view(item) if isinstance(item, Appointment) else _contact_view(item)
    if fields is None:
        return view
    wanted = frozenset(fields)
    return {k: v for k, v in view.items() if k in wanted}


def content_hash(item: Item, fields: Iterable[str] | None = None) -> str:
    """sha256 of the normalised content: equal for a round trip, different for a real edit."""
    canonical = json.dumps(content_view(item, fields), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def overlay(target: ItemT, source: ItemT, fields: Iterable[str]) -> ItemT:
    """`target` with `fields` taken from `source`: what a side keeps that the other lacks stays."""
    wanted = set(fields)
    if wanted & TIMING_FIELDS:
        wanted |= TIMING_FIELDS
    changes = {name: getattr(source, name) for name in wanted if hasattr(source, name)}
    return dataclasses.replace(target, **changes)


# --- recurrence ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Occurrence:
    original_start: When
    start: When
    end: When
    subject: str
    location: str


def occurrences(
    item: Appointment, window_start: datetime, window_end: datetime
) -> list[Occurrence]:
    """The occurrences of `item` overlapping [window_start, window_end), exceptions applied.

    Timed series are expanded in their own zone, so 09:00 stays 09:00 across DST; all-day
    series are expanded on dates and never pass through a zone.
    """
    duration = _order_key(item.end) - _order_key(item.start)
    if item.recurrence is None:
        single = Occurrence(item.start, item.start, item.end, item.subject, item.location)
        return [single] if _overlaps(single, window_start, window_end) else []

    rec = item.recurrence
    if item.all_day:
        dtstart = datetime.combine(item.start, time())
        lo = window_start.astimezone(item.zone).replace(tzinfo=None) - duration
        hi = window_end.astimezone(item.zone).replace(tzinfo=None)
    else:
        assert isinstance(item.start, datetime)
        dtstart = item.start.astimezone(item.zone)
        lo, hi = window_start - duration, window_end
    rule = rrulestr(normalise_rule(rec.rule), dtstart=dtstart)
    excluded = {_order_key(w) for w in rec.exclusions}
    moved = {_order_key(e.original_start): e for e in rec.exceptions}

    found: list[Occurrence] = []
    for raw in rule.between(lo, hi, inc=True):
        original: When = raw.date() if item.all_day else raw
        key = _order_key(original)
        if key in excluded or key in moved:
            continue
        end: When = (raw + duration).date() if item.all_day else raw + duration
        found.append(Occurrence(original, original, end, item.subject, item.location))
    for key, exc in moved.items():
        if key in excluded:
            continue
        occ = Occurrence(
            exc.original_start,
            exc.start,
            exc.end,
            item.subject if exc.subject is None else exc.subject,
            item.location if exc.location is None else exc.location,
        )
        if _overlaps(occ, window_start, window_end):
            found.append(occ)
    return sorted(
        (o for o in found if _overlaps(o, window_start, window_end)),
        key=lambda o: _order_key(o.start),
    )


def expand(item: Appointment, window_start: datetime, window_end: datetime) -> list[Appointment]:
    """A series as single appointments inside the window, for a side that cannot hold the rule."""
    return [
        dataclasses.replace(
            item,
            subject=occ.subject,
            location=occ.location,
            start=occ.start,
            end=occ.end,
            recurrence=None,
        )
        for occ in occurrences(item, window_start, window_end)
    ]


def occurrence_key(original_start: When) -> str:
    return _when(original_start)


def _overlaps(occ: Occurrence, window_start: datetime, window_end: datetime) -> bool:
    start, end = _order_key(occ.start), _order_key(occ.end)
    if end == start:  # a zero-length item belongs to the window it starts in
        return window_start <= start < window_end
    return start < window_end and end > window_start


def overlaps_window(item: Appointment, window_start: datetime, window_end: datetime) -> bool:
    """Whether any occurrence of the item falls in the window (a series is judged whole)."""
    if item.recurrence is None:
        occ = Occurrence(item.start, item.start, item.end, item.subject, item.location)
        return _overlaps(occ, window_start, window_end)
    return bool(occurrences(item, window_start, window_end))


# --- JSON form (audit before/after, held plans) --------------------------------------------------


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, frozenset):
        return {"$set": sorted((_encode(v) for v in value), key=json.dumps)}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def to_json(item: Item) -> dict[str, Any]:
    """A JSON-safe dict that `from_json` turns back into an equal item."""
    encoded = _encode(item)
    encoded["$type"] = type(item).__name__
    return dict(encoded)


def _decode_when(value: Mapping[str, str]) -> When:
    if "$dt" in value:
        return datetime.fromisoformat(value["$dt"])
    return date.fromisoformat(value["$d"])


def _decode_scalar(value: Any) -> Any:
    if isinstance(value, dict) and ("$dt" in value or "$d" in value):
        return _decode_when(value)
    if isinstance(value, dict) and "$set" in value:
        return frozenset(_decode_scalar(v) for v in value["$set"])
    return value


def from_json(data: Mapping[str, Any]) -> Item:
    values = {k: _decode_scalar(v) for k, v in data.items() if k != "$type"}
    if data.get("$type") == "Contact":
        values["phones"] = tuple(Phone(**p) for p in values.get("phones", ()))
        values["addresses"] = tuple(Address(**a) for a in values.get("addresses", ()))
        values["emails"] = tuple(values.get("emails", ()))
        return Contact(**values)
    values["show_as"] = ShowAs(values.get("show_as", ShowAs.BUSY.value))
    values["attendees"] = tuple(Attendee(**a) for a in values.get("attendees", ()))
    rec = values.get("recurrence")
    if rec is not None:
        values["recurrence"] = Recurrence(
            rule=rec["rule"],
            exclusions=_decode_scalar(rec["exclusions"]),
            exceptions=tuple(
                RecurrenceException(**{k: _decode_scalar(v) for k, v in e.items()})
                for e in rec["exceptions"]
            ),
        )
    return Appointment(**values)


def utc_window(now: datetime, days_back: int, days_ahead: int) -> tuple[datetime, datetime]:
    now = now.astimezone(UTC)
    return now - timedelta(days=days_back), now + timedelta(days=days_ahead)
