"""Canonical items: what an appointment or a contact is, whichever service it came from.

Every connector reads its service's objects into these values and writes them back from them.
`content_hash` looks only at what a user can change and normalises what servers rewrite
(timestamps, ordering, whitespace, HTML wrapping and entity escaping of bodies, the zone a single
item is reported in, zone aliases and Windows zone names, a series' end given as COUNT or as
UNTIL, an occurrence exception that repeats the series' values), so reading back what we wrote
is never seen as a change. Reminders are not normalised here: a side that adds its default
reminder declares it (`common.capabilities`). Recurrence and zone arithmetic is left to dateutil
and zoneinfo.
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
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from tzlocal.windows_tz import tz_win, win_tz

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
    """One occurrence of a series that was moved or edited (RFC 5545 RECURRENCE-ID).

    Every field after `end` is None when the occurrence has the series' value. (So an
    occurrence cannot drop a reminder the series has: None means "as the series".)
    """

    original_start: When
    start: When
    end: When
    subject: str | None = None
    location: str | None = None
    body: str | None = None
    attendees: tuple[Attendee, ...] | None = None
    show_as: ShowAs | None = None
    private: bool | None = None
    reminder_minutes: int | None = None


EXCEPTION_FIELDS: frozenset[str] = frozenset(
    {"subject", "location", "body", "attendees", "show_as", "private", "reminder_minutes"}
)
"""The fields an occurrence exception can override (each also an `Appointment` field)."""


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
    # A meeting's identity across its participants (never content): who organises it (an
    # address) and the iCalendar UID every participant's copy shares, where a side has one.
    organizer: str = ""
    uid: str | None = None
    # The meeting's participants whom the profile does not invite (never content; set by the
    # applier for the groupware): a side writes them where its user sees them without mail
    # (Outlook: a note in the body, taken off again when read), so nobody outside is mailed.
    participants: tuple[Attendee, ...] = ()

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
_NOT_CONTENT = frozenset({"last_modified", "selections", "organizer", "uid", "participants"})
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
_HTML_WHITESPACE = re.compile(r"[ \t\r\n\f]+")
# HTML is recognised by its own tags, whole (`<p>`, `<br/>`, `<a href="…">`), and by a doctype
# or a comment; not by any `<letter`: a plain text body may well say "Call <ann@example.com>"
# or "a < b", and must keep it.
_HTML_TAG_NAMES = (
    "html|head|body|meta|title|style|script|link|base|p|div|span|br|hr|b|i|u|s|em|strong|"
    "small|big|sub|sup|tt|code|pre|blockquote|center|font|strike|del|ins|mark|abbr|cite|q|"
    "a|img|ul|ol|li|dl|dt|dd|table|caption|colgroup|col|thead|tbody|tfoot|tr|td|th|"
    "h[1-6]|section|article|header|footer|nav|main|label|o:p|xml"
)
_LOOKS_LIKE_HTML = re.compile(
    rf"<!doctype[\s>]|<!--|</?(?:{_HTML_TAG_NAMES})(?:\s[^<>]*)?/?>", re.IGNORECASE
)
_BLOCK_TAGS = frozenset(
    {"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote"}
)
_SKIPPED_TAGS = frozenset({"style", "script", "head", "title"})


class _TextOfHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
            self._pre += tag == "pre"
        elif "@" in tag and not self._skipping:
            # An address written unescaped inside HTML ("<ann@example.com>") is text.
            self.parts.append(self.get_starttag_text() or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
            if tag == "pre":
                self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            # Line breaks in HTML source are spaces; only block tags (and <pre>) break lines.
            self.parts.append(data if self._pre else _HTML_WHITESPACE.sub(" ", data))


def is_html(body: str) -> bool:
    """Whether a body is HTML (has HTML tags, a doctype or comments), not text with a `<`."""
    return bool(_LOOKS_LIKE_HTML.search(body))


def text_of(body: str) -> str:
    """The visible text of a body, plain or HTML, with whitespace made canonical.

    Entities are decoded in both (`Tom &amp; Jerry` is what some servers make of a plain
    `Tom & Jerry`)."""
    if is_html(body):
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


# Zones: servers name one zone many ways. UTC has aliases; Exchange and Graph report Windows
# names ("W. Europe Standard Time"), which stand for a group of IANA zones with the same rules
# (Europe/Amsterdam, Europe/Berlin, Europe/Rome…, per the CLDR windowsZones table that tzlocal
# ships). A series' zone is compared by its group's one IANA name.
_UTC_ALIASES = frozenset(
    {
        "utc",
        "etc/utc",
        "uct",
        "etc/uct",
        "gmt",
        "etc/gmt",
        "gmt0",
        "gmt+0",
        "gmt-0",
        "etc/gmt0",
        "etc/gmt+0",
        "etc/gmt-0",
        "greenwich",
        "etc/greenwich",
        "universal",
        "etc/universal",
        "zulu",
        "etc/zulu",
        "z",
        "coordinated universal time",
        "tzone://microsoft/utc",
    }
)
# The common Windows zones, pinned (CLDR's choice of IANA name for each, so a stored hash does
# not move with a tzlocal upgrade); other Windows names fall back to tzlocal's CLDR table.
WINDOWS_ZONES: Mapping[str, str] = {
    "UTC": "UTC",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris",
    "Central Europe Standard Time": "Europe/Budapest",
    "Central European Standard Time": "Europe/Warsaw",
    "E. Europe Standard Time": "Europe/Chisinau",
    "FLE Standard Time": "Europe/Kiev",
    "GTB Standard Time": "Europe/Bucharest",
    "Russian Standard Time": "Europe/Moscow",
    "Turkey Standard Time": "Europe/Istanbul",
    "Israel Standard Time": "Asia/Jerusalem",
    "Egypt Standard Time": "Africa/Cairo",
    "South Africa Standard Time": "Africa/Johannesburg",
    "Arab Standard Time": "Asia/Riyadh",
    "Arabian Standard Time": "Asia/Dubai",
    "India Standard Time": "Asia/Calcutta",
    "SE Asia Standard Time": "Asia/Bangkok",
    "China Standard Time": "Asia/Shanghai",
    "Singapore Standard Time": "Asia/Singapore",
    "Taipei Standard Time": "Asia/Taipei",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Korea Standard Time": "Asia/Seoul",
    "W. Australia Standard Time": "Australia/Perth",
    "Cen. Australia Standard Time": "Australia/Adelaide",
    "E. Australia Standard Time": "Australia/Brisbane",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "New Zealand Standard Time": "Pacific/Auckland",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Alaskan Standard Time": "America/Anchorage",
    "Pacific Standard Time": "America/Los_Angeles",
    "US Mountain Standard Time": "America/Phoenix",
    "Mountain Standard Time": "America/Denver",
    "Central Standard Time": "America/Chicago",
    "Canada Central Standard Time": "America/Regina",
    "Central Standard Time (Mexico)": "America/Mexico_City",
    "Eastern Standard Time": "America/New_York",
    "Atlantic Standard Time": "America/Halifax",
    "Newfoundland Standard Time": "America/St_Johns",
    "E. South America Standard Time": "America/Sao_Paulo",
    "Argentina Standard Time": "America/Buenos_Aires",
    "Pacific SA Standard Time": "America/Santiago",
}


def _windows_group(name: str) -> str | None:
    if name in WINDOWS_ZONES or name in win_tz:
        return name
    return tz_win.get(name) or None


def iana_zone(name: str) -> str:
    """An IANA name for a zone as a server names it: UTC aliases are `UTC`, a Windows name its
    IANA zone; an IANA name is kept as it is (what `Appointment.timezone` accepts)."""
    text = name.strip()
    if text.casefold() in _UTC_ALIASES:
        return "UTC"
    if text in WINDOWS_ZONES:
        return WINDOWS_ZONES[text]
    if text in win_tz:
        return canonical_zone(win_tz[text])
    return text


def canonical_zone(name: str) -> str:
    """One name for all the names of a zone: `UTC`, `Etc/UTC` and `GMT` are `UTC`;
    "W. Europe Standard Time", Europe/Amsterdam and Europe/Berlin are Europe/Berlin. A zone
    outside the CLDR table is returned as given (stripped)."""
    text = name.strip()
    if text.casefold() in _UTC_ALIASES:
        return "UTC"
    group = _windows_group(text) if text else None
    if group is None:
        return text
    iana = WINDOWS_ZONES.get(group) or win_tz.get(group) or text
    return "UTC" if iana.casefold() in _UTC_ALIASES else iana


def _rule_parts(rule: str) -> dict[str, str]:
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
    return parts


def _join_rule(parts: Mapping[str, str]) -> str:
    return ";".join(f"{k}={parts[k]}" for k in sorted(parts))


def normalise_rule(rule: str) -> str:
    """An RRULE with its parts (and list values) in a canonical order, defaults dropped."""
    return _join_rule(_rule_parts(rule))


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


# --- rules --------------------------------------------------------------------------------------

_UNTIL = re.compile(r"^(\d{8})(?:T(\d{6})(Z?))?$")
# A bounded series longer than this is compared by its rule text, not by its last occurrence.
_EXPANSION_LIMIT = 5000


def _dtstart(item: Appointment) -> datetime:
    """Timed series expand in their own zone (09:00 stays 09:00 across DST); all-day series
    on naive dates, never through a zone."""
    if isinstance(item.start, datetime):
        return item.start.astimezone(item.zone)
    return datetime.combine(item.start, time())


def _until_for(value: str, all_day: bool, zone: ZoneInfo) -> str:
    """UNTIL in the form dateutil accepts for the series' start: UTC for a timed series,
    naive for an all-day one. Servers also write a date (`UNTIL=20260420`, the last day
    included) or a floating local time for a timed series; those are read in its zone."""
    match = _UNTIL.match(value)
    if match is None:
        return value
    day, clock, utc = match.group(1), match.group(2), match.group(3)
    if all_day:
        if clock is None:
            return day
        moment = datetime.strptime(day + clock, "%Y%m%d%H%M%S")
        if utc:
            moment = moment.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
        return moment.strftime("%Y%m%dT%H%M%S")
    if clock is not None and utc:
        return value
    if clock is None:
        local = datetime.combine(datetime.strptime(day, "%Y%m%d").date(), time(23, 59, 59))
    else:
        local = datetime.strptime(day + clock, "%Y%m%d%H%M%S")
    return local.replace(tzinfo=zone).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _rule_text(item: Appointment) -> str:
    assert item.recurrence is not None
    parts = _rule_parts(item.recurrence.rule)
    if "UNTIL" in parts:
        parts["UNTIL"] = _until_for(parts["UNTIL"], item.all_day, item.zone)
    return _join_rule(parts)


def _rrule(item: Appointment) -> Any:
    """The series' rule for dateutil, started at the item's start."""
    return rrulestr(_rule_text(item), dtstart=_dtstart(item))


@lru_cache(maxsize=4096)
def _canonical_rule(text: str, dtstart: datetime, timezone: str) -> str:
    # `timezone` is part of the cache key: aware datetimes at the same instant are equal
    # (and hash alike) whatever their zone, but expand differently across DST.
    parts = _rule_parts(text)
    if "COUNT" not in parts and "UNTIL" not in parts:
        return text
    try:
        rule = rrulestr(text, dtstart=dtstart)
        last: datetime | None = None
        for n, occurrence in enumerate(rule):
            if n >= _EXPANSION_LIMIT:
                return text
            last = occurrence
    except (ValueError, TypeError, OverflowError):
        return text
    if last is None:
        return text
    parts.pop("COUNT", None)
    if last.tzinfo is None:
        parts["UNTIL"] = last.strftime("%Y%m%d")
    else:
        parts["UNTIL"] = last.astimezone(UTC).strftime("%Y%m%dT%H%M00Z")
    return _join_rule(parts)


def canonical_rule(item: Appointment) -> str:
    """The series' rule with its end given one way: a bounded series (COUNT, or UNTIL in any
    form) ends with UNTIL at its last occurrence, so `COUNT=4` and the UNTIL of the fourth
    occurrence compare equal. A rule dateutil cannot read is only normalised."""
    assert item.recurrence is not None
    try:
        text = _rule_text(item)
    except ValueError:
        return normalise_rule(item.recurrence.rule)
    return _canonical_rule(text, _dtstart(item), item.timezone)


def _generated(item: Appointment, upto: datetime) -> frozenset[str] | None:
    """The keys (`occurrence_key`) of the occurrences the rule makes up to `upto`; None when
    that cannot be told cheaply (an unreadable rule, too many occurrences)."""
    try:
        text = _rule_text(item)
    except ValueError:
        return None
    return _generated_keys(text, _dtstart(item), item.timezone, item.all_day, upto)


@lru_cache(maxsize=4096)
def _generated_keys(
    text: str, dtstart: datetime, timezone: str, all_day: bool, upto: datetime
) -> frozenset[str] | None:
    # `timezone` is part of the cache key, as for `_canonical_rule`.
    found: set[str] = set()
    try:
        for n, raw in enumerate(rrulestr(text, dtstart=dtstart)):
            when: When = raw.date() if all_day else raw
            if _order_key(when) > upto:
                break
            if n >= _EXPANSION_LIMIT:
                return None
            found.add(_when(when))
    except (ValueError, TypeError, OverflowError):
        return None
    return frozenset(found)


def is_occurrence(item: Appointment, original_start: When) -> bool:
    """Whether the series' rule makes an occurrence at `original_start` (to the minute).
    True when that cannot be told (an unreadable or very long rule)."""
    if item.recurrence is None:
        return False
    made = _generated(item, _order_key(original_start) + timedelta(minutes=1))
    return made is None or _when(original_start) in made


# --- content ------------------------------------------------------------------------------------


def _attendees_view(attendees: Iterable[Attendee]) -> list[list[Any]]:
    return sorted([a.email.strip().lower(), one_line(a.name), a.required] for a in attendees)


def _override_view(name: str, value: Any) -> Any:
    """An exception's value of field `name` in normalised form (as the series' is)."""
    if value is None:
        return None
    if name in ("subject", "location"):
        return one_line(value)
    if name == "body":
        return text_of(value)
    if name == "attendees":
        return _attendees_view(value)
    if name == "show_as":
        return ShowAs(value).value
    if name == "private":
        return bool(value)
    return value


def exception_views(item: Appointment) -> dict[str, dict[str, Any]]:
    """The series' exceptions in normalised form, by `occurrence_key` of their original start.

    What a server rewrites is no change here: a value equal to the series' is None (Graph and
    EWS report an exception as a full item), an exception of a deleted occurrence is no
    exception (deletion wins), and an exception that neither moves nor changes its occurrence
    is none at all.
    """
    rec = item.recurrence
    if rec is None:
        return {}
    series = {name: _override_view(name, getattr(item, name)) for name in EXCEPTION_FIELDS}
    excluded = {_order_key(w) for w in rec.exclusions}
    duration = _order_key(item.end) - _order_key(item.start)
    views: dict[str, dict[str, Any]] = {}
    trivial: dict[str, When] = {}
    for exc in rec.exceptions:
        if _order_key(exc.original_start) in excluded:
            continue
        key = occurrence_key(exc.original_start)
        view: dict[str, Any] = {"start": _when(exc.start), "end": _when(exc.end)}
        for name in sorted(EXCEPTION_FIELDS):
            value = _override_view(name, getattr(exc, name))
            view[name] = None if value == series[name] else value
        views[key] = view
        if (
            view["start"] == key
            and view["end"] == _when(_occurrence_end(item, exc.original_start, duration))
            and all(view[name] is None for name in EXCEPTION_FIELDS)
        ):
            trivial[key] = exc.original_start
        else:
            trivial.pop(key, None)
    if trivial:
        made = _generated(item, max(_order_key(w) for w in trivial.values()) + timedelta(minutes=1))
        for key in trivial:
            if made is None or key in made:
                del views[key]
    return views


def _occurrence_end(item: Appointment, original: When, duration: timedelta) -> When:
    if isinstance(original, datetime):
        return original.astimezone(item.zone) + duration
    return original + duration


def _recurrence_view(item: Appointment) -> dict[str, Any] | None:
    rec = item.recurrence
    if rec is None:
        return None
    exclusions = sorted({_when(w) for w in rec.exclusions})
    if exclusions:
        # An exclusion of a date the rule never makes deletes nothing; servers drop them.
        made = _generated(item, max(_order_key(w) for w in rec.exclusions) + timedelta(minutes=1))
        if made is not None:
            exclusions = [w for w in exclusions if w in made]
    return {
        "rule": canonical_rule(item),
        "exclusions": exclusions,
        "exceptions": exception_views(item),
    }


def _appointment_view(item: Appointment) -> dict[str, Any]:
    return {
        "subject": one_line(item.subject),
        "start": _when(item.start),
        "end": _when(item.end),
        # The zone of a single item is presentation (servers report it in UTC or in the
        # mailbox zone); a timed series needs it to keep its wall-clock time across DST.
        "timezone": (
            canonical_zone(item.timezone)
            if item.recurrence is not None and not item.all_day
            else None
        ),
        "body": text_of(item.body),
        "location": one_line(item.location),
        "private": item.private,
        "show_as": item.show_as.value,
        "categories": sorted({c.strip().casefold() for c in item.categories if c.strip()}),
        "attendees": _attendees_view(item.attendees),
        "reminder_minutes": item.reminder_minutes,
        "recurrence": _recurrence_view(item),
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
    """`target` with `fields` taken from `source`: what a side keeps that the other lacks stays.

    Superseded by `common.capabilities.merge`, which also keeps on the target a value the
    source could not express."""
    wanted = set(fields)
    if wanted & TIMING_FIELDS:
        wanted |= TIMING_FIELDS
    changes = {name: getattr(source, name) for name in wanted if hasattr(source, name)}
    return dataclasses.replace(target, **changes)


# --- recurrence ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One occurrence of an item, with the values it has (an exception's, else the series')."""

    original_start: When
    start: When
    end: When
    subject: str
    location: str
    body: str = ""
    attendees: tuple[Attendee, ...] = ()
    show_as: ShowAs = ShowAs.BUSY
    private: bool = False
    reminder_minutes: int | None = None


def _occurrence(
    item: Appointment,
    original: When,
    start: When,
    end: When,
    exc: RecurrenceException | None = None,
) -> Occurrence:
    def value(name: str) -> Any:
        own = None if exc is None else getattr(exc, name)
        return getattr(item, name) if own is None else own

    return Occurrence(
        original,
        start,
        end,
        value("subject"),
        value("location"),
        body=value("body"),
        attendees=tuple(value("attendees")),
        show_as=ShowAs(value("show_as")),
        private=bool(value("private")),
        reminder_minutes=value("reminder_minutes"),
    )


def occurrences(
    item: Appointment, window_start: datetime, window_end: datetime
) -> list[Occurrence]:
    """The occurrences of `item` overlapping [window_start, window_end), exceptions applied.

    Timed series are expanded in their own zone, so 09:00 stays 09:00 across DST; all-day
    series are expanded on dates and never pass through a zone.
    """
    duration = _order_key(item.end) - _order_key(item.start)
    if item.recurrence is None:
        single = _occurrence(item, item.start, item.start, item.end)
        return [single] if _overlaps(single, window_start, window_end) else []

    rec = item.recurrence
    if item.all_day:
        lo = window_start.astimezone(item.zone).replace(tzinfo=None) - duration
        hi = window_end.astimezone(item.zone).replace(tzinfo=None)
    else:
        lo, hi = window_start - duration, window_end
    rule = _rrule(item)
    excluded = {_order_key(w) for w in rec.exclusions}
    moved = {_order_key(e.original_start): e for e in rec.exceptions}

    found: list[Occurrence] = []
    for raw in rule.between(lo, hi, inc=True):
        original: When = raw.date() if item.all_day else raw
        key = _order_key(original)
        if key in excluded or key in moved:
            continue
        end: When = (raw + duration).date() if item.all_day else raw + duration
        found.append(_occurrence(item, original, original, end))
    for key, exc in moved.items():
        if key in excluded:
            continue
        occ = _occurrence(item, exc.original_start, exc.start, exc.end, exc)
        if _overlaps(occ, window_start, window_end):
            found.append(occ)
    return sorted(
        (o for o in found if _overlaps(o, window_start, window_end)),
        key=lambda o: _order_key(o.start),
    )


def as_single(item: Appointment, occ: Occurrence) -> Appointment:
    """One occurrence of a series as a single appointment with the occurrence's values."""
    return dataclasses.replace(
        item,
        subject=occ.subject,
        location=occ.location,
        body=occ.body,
        attendees=occ.attendees,
        show_as=occ.show_as,
        private=occ.private,
        reminder_minutes=occ.reminder_minutes,
        start=occ.start,
        end=occ.end,
        recurrence=None,
    )


def expand(item: Appointment, window_start: datetime, window_end: datetime) -> list[Appointment]:
    """A series as single appointments inside the window, for a side that cannot hold the rule."""
    return [as_single(item, occ) for occ in occurrences(item, window_start, window_end)]


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


def _decode_exception(data: Mapping[str, Any]) -> RecurrenceException:
    """An exception from its JSON form; JSON written before an exception carried every field
    simply lacks the later keys (None: as the series)."""
    values = {k: _decode_scalar(v) for k, v in data.items()}
    if values.get("attendees") is not None:
        values["attendees"] = tuple(Attendee(**a) for a in values["attendees"])
    if values.get("show_as") is not None:
        values["show_as"] = ShowAs(values["show_as"])
    return RecurrenceException(**values)


def from_json(data: Mapping[str, Any]) -> Item:
    values = {k: _decode_scalar(v) for k, v in data.items() if k != "$type"}
    if data.get("$type") == "Contact":
        values["phones"] = tuple(Phone(**p) for p in values.get("phones", ()))
        values["addresses"] = tuple(Address(**a) for a in values.get("addresses", ()))
        values["emails"] = tuple(values.get("emails", ()))
        return Contact(**values)
    values["show_as"] = ShowAs(values.get("show_as", ShowAs.BUSY.value))
    values["attendees"] = tuple(Attendee(**a) for a in values.get("attendees", ()))
    values["participants"] = tuple(Attendee(**a) for a in values.get("participants", ()))
    rec = values.get("recurrence")
    if rec is not None:
        values["recurrence"] = Recurrence(
            rule=rec["rule"],
            exclusions=_decode_scalar(rec["exclusions"]),
            exceptions=tuple(_decode_exception(e) for e in rec["exceptions"]),
        )
    return Appointment(**values)


def utc_window(now: datetime, days_back: int, days_ahead: int) -> tuple[datetime, datetime]:
    now = now.astimezone(UTC)
    return now - timedelta(days=days_back), now + timedelta(days=days_ahead)
