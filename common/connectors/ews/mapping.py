"""exchangelib's items and canonical items, both ways: calendar items and their series,
contacts, time zones, our stamp. Nothing here does I/O.

Outlook's recurrence patterns are the same in EWS and Graph (daily, weekly, absolute and
relative monthly and yearly; an end by date, by count or none), so a rule is translated
through Graph's form of them (`graph.mapping.pattern_of` / `rule_of`), with what EWS adds:
a relative pattern names one day (or the groups Day, Weekday, WeekendDay) and a yearly one
has no interval.

Sources: the CalendarItem, Contact, Recurrence and ExtendedFieldURI elements of the EWS
reference (https://learn.microsoft.com/exchange/client-developer/web-service-reference/
calendaritem, …/contact, …/recurrence-recurrencetype, …/extendedfielduri), and
exchangelib's models of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from exchangelib import Body, EWSDate, EWSDateTime, EWSTimeZone, HTMLBody
from exchangelib.errors import UnknownTimeZone
from exchangelib.extended_properties import ExtendedProperty
from exchangelib.indexed_properties import EmailAddress, PhoneNumber, PhysicalAddress
from exchangelib.items import CalendarItem
from exchangelib.items import Contact as EwsContact
from exchangelib.properties import Attendee as EwsAttendee
from exchangelib.properties import Mailbox
from exchangelib.recurrence import (
    AbsoluteMonthlyPattern,
    AbsoluteYearlyPattern,
    DailyPattern,
    EndDatePattern,
    NoEndPattern,
    NumberedPattern,
    RelativeMonthlyPattern,
    RelativeYearlyPattern,
    WeeklyPattern,
)
from exchangelib.recurrence import Recurrence as EwsRecurrence

from common.connectors.graph import mapping as outlook
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

Unmappable = outlook.Unmappable

# --- our stamp ------------------------------------------------------------------------------

STAMP_FIELD = "synchronizer_stamp"


class Stamp(ExtendedProperty):
    """Our correlation id: the named String property Graph's connector writes too (one
    MAPI property), so a mailbox moved between Exchange and Microsoft 365 keeps its pairs."""

    property_set_id = outlook.STAMP_PROPERTY_SET.strip("{}")
    property_name = "SynchronizerCorrelationId"
    property_type = "String"


def register_stamp() -> None:
    """Make the stamp a field of exchangelib's calendar items and contacts (once per
    process: exchangelib keeps fields on its classes)."""
    for model in (CalendarItem, EwsContact):
        if STAMP_FIELD not in {f.name for f in model.FIELDS}:
            model.register(STAMP_FIELD, Stamp)


def stamp_of(item: Any) -> str | None:
    value = getattr(item, STAMP_FIELD, None)
    return str(value) if value else None


# --- values ---------------------------------------------------------------------------------

_SHOW_AS_OUT = {
    ShowAs.FREE: "Free",
    ShowAs.TENTATIVE: "Tentative",
    ShowAs.BUSY: "Busy",
    ShowAs.OUT_OF_OFFICE: "OOF",
    ShowAs.ELSEWHERE: "WorkingElsewhere",
}
_SHOW_AS_IN = {value: key for key, value in _SHOW_AS_OUT.items()}  # NoData reads as busy
_PRIVATE = frozenset({"Private", "Confidential"})  # "Personal" is a label, not privacy

# What an occurrence of a series can have of its own, as an update writes it.
WRITTEN_EXCEPTION_FIELDS = (
    "subject",
    "body",
    "location",
    "legacy_free_busy_status",
    "required_attendees",
    "optional_attendees",
    "reminder_is_set",
    "reminder_minutes_before_start",
    "start",
    "end",
)
# What an update writes of a single item or a series master (the pattern apart).
WRITTEN_EVENT_FIELDS = (*WRITTEN_EXCEPTION_FIELDS, "sensitivity", "categories", "is_all_day")
_ZONES = ("_start_timezone", "_end_timezone")  # without them exchangelib reads dates in UTC
EXCEPTION_FIELDS = (
    *WRITTEN_EXCEPTION_FIELDS, "is_all_day", *_ZONES, "original_start", "last_modified_time"
)  # fmt: skip
EVENT_FIELDS = (
    *WRITTEN_EVENT_FIELDS,
    *_ZONES,
    "type",
    "recurrence",
    "modified_occurrences",
    "deleted_occurrences",
    "organizer",
    "uid",
    "datetime_created",
    "last_modified_time",
    STAMP_FIELD,
)


def plain(moment: datetime) -> datetime:
    """exchangelib's EWSDateTime as a plain aware datetime in UTC."""
    return datetime(
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
        tzinfo=UTC,
    ) - (moment.utcoffset() or timedelta(0))


def _day(value: date) -> date:
    return date(value.year, value.month, value.day)


def ews_zone(name: str) -> EWSTimeZone:
    """The zone as exchangelib writes it (a Windows zone on the wire); a zone Windows has no
    name for is `Unmappable` (Exchange could not hold the series' wall-clock time)."""
    for candidate in (name, iana_zone(outlook.graph_zone(name))):
        try:
            return EWSTimeZone(candidate)
        except (UnknownTimeZone, ValueError):
            continue
    raise Unmappable(f"Exchange has no time zone for {name!r}")


def zone_name_of(item: Any) -> str:
    """The IANA zone an item lives in: its start zone; UTC when it has none."""
    zone = getattr(item, "_start_timezone", None)
    key = getattr(zone, "key", None)
    if not key:
        return "UTC"
    try:
        return ZoneInfo(iana_zone(str(key))).key
    except (ValueError, KeyError) as exc:
        raise Unmappable(f"item {getattr(item, 'id', '?')}: unknown time zone {key!r}") from exc


def _timing_of(item: Any, zone_name: str) -> tuple[When, When]:
    if item.is_all_day:
        return _as_date(item.start, zone_name), _as_date(item.end, zone_name)
    zone = ZoneInfo(zone_name)
    return plain(item.start).astimezone(zone), plain(item.end).astimezone(zone)


def _as_date(value: Any, zone_name: str) -> date:
    if isinstance(value, datetime):
        return plain(value).astimezone(ZoneInfo(zone_name)).date()
    return _day(value)


def _attendees_of(item: Any) -> tuple[Attendee, ...]:
    found: list[Attendee] = []
    for required, people in ((True, item.required_attendees), (False, item.optional_attendees)):
        for person in people or ():
            box = person.mailbox
            email = str(getattr(box, "email_address", "") or "").strip()
            if not email:
                continue
            name = str(getattr(box, "name", "") or "")
            found.append(Attendee(email, "" if name == email else name, required))
    return tuple(found)


def _attendees_out(attendees: Iterable[Attendee], required: bool) -> list[EwsAttendee] | None:
    chosen = [
        EwsAttendee(mailbox=Mailbox(email_address=a.email, name=a.name or a.email))
        for a in attendees
        if a.required == required
    ]
    return chosen or None


def _body_out(text: str, participants: Iterable[Attendee] = ()) -> Body | HTMLBody | None:
    written = outlook.with_participants(text, tuple(participants))
    if not written:
        return None
    return HTMLBody(written) if is_html(written) else Body(written)


def _body_of(item: Any) -> str:
    return outlook.without_participants(str(item.body or ""))


def _reminder_of(item: Any) -> int | None:
    if not item.reminder_is_set:
        return None
    minutes = item.reminder_minutes_before_start
    return int(minutes) if minutes is not None else None


# --- calendar items -------------------------------------------------------------------------


def appointment_of(item: Any, mailbox: str) -> Appointment:
    """A single calendar item (or a series master's own values) as an appointment."""
    zone_name = zone_name_of(item)
    try:
        start, end = _timing_of(item, zone_name)
    except (TypeError, AttributeError) as exc:
        raise Unmappable(f"item {item.id}: no start or end ({exc})") from exc
    attendees = _attendees_of(item)
    organizer = str(getattr(item.organizer, "email_address", "") or "").lower()
    # A meeting's identity only for meetings: with attendees, or someone else's invitation.
    meeting = bool(attendees) or (organizer not in ("", mailbox.lower()))
    return Appointment(
        subject=str(item.subject or ""),
        start=start,
        end=end,
        timezone=zone_name,
        body=_body_of(item),
        location=str(item.location or ""),
        private=str(item.sensitivity or "Normal") in _PRIVATE,
        show_as=_SHOW_AS_IN.get(str(item.legacy_free_busy_status or "Busy"), ShowAs.BUSY),
        categories=frozenset(str(c) for c in item.categories or ()),
        attendees=attendees,
        reminder_minutes=_reminder_of(item),
        organizer=organizer if meeting else "",
        uid=(str(item.uid) if item.uid else None) if meeting else None,
        last_modified=plain(item.last_modified_time) if item.last_modified_time else None,
    )


def created_of(item: Any) -> datetime | None:
    return plain(item.datetime_created) if item.datetime_created else None


def fill_event(target: Any, item: Appointment) -> None:
    """Set the written fields of `target` (a CalendarItem) from `item`; attendees are
    exactly those given (the engine passes only whom the profile invites, and lists the
    others in `participants`, which go into the body as a note)."""
    zone = ews_zone(item.timezone)
    target.subject = item.subject
    target.body = _body_out(item.body, item.participants)
    target.location = item.location or None
    target.sensitivity = "Private" if item.private else "Normal"
    target.legacy_free_busy_status = _SHOW_AS_OUT[item.show_as]
    target.categories = sorted(item.categories) or None
    target.required_attendees = _attendees_out(item.attendees, True)
    target.optional_attendees = _attendees_out(item.attendees, False)
    target.reminder_is_set = item.reminder_minutes is not None
    target.reminder_minutes_before_start = item.reminder_minutes or 0
    _fill_timing(target, item.start, item.end, zone)


def _fill_timing(target: Any, start: When, end: When, zone: EWSTimeZone) -> None:
    target._start_timezone = zone
    target._end_timezone = zone
    if isinstance(start, datetime) and isinstance(end, datetime):
        target.is_all_day = False
        target.start = _ews_datetime(start, zone)
        target.end = _ews_datetime(end, zone)
    else:
        target.is_all_day = True
        target.start = EWSDate(start.year, start.month, start.day)
        target.end = EWSDate(end.year, end.month, end.day)


def _ews_datetime(moment: datetime, zone: EWSTimeZone) -> EWSDateTime:
    local = moment.astimezone(zone)
    return local if isinstance(local, EWSDateTime) else EWSDateTime.from_datetime(local)


def fill_exception(target: Any, exc: RecurrenceException, series: Appointment) -> None:
    """The fields that make an occurrence the exception `exc` (what it does not override
    takes the series' value, so an exception undone looks like the rest again)."""

    def value(name: str) -> Any:
        own = getattr(exc, name)
        return getattr(series, name) if own is None else own

    attendees = value("attendees")
    target.subject = value("subject")
    target.body = _body_out(value("body"), series.participants)
    target.location = value("location") or None
    target.legacy_free_busy_status = _SHOW_AS_OUT[ShowAs(value("show_as"))]
    target.required_attendees = _attendees_out(attendees, True)
    target.optional_attendees = _attendees_out(attendees, False)
    reminder = value("reminder_minutes")
    target.reminder_is_set = reminder is not None
    target.reminder_minutes_before_start = reminder or 0
    _fill_timing(target, exc.start, exc.end, ews_zone(series.timezone))
    target.is_all_day = series.all_day


# --- series ---------------------------------------------------------------------------------

_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_GROUPS = {
    8: _DAY_NAMES,  # Day
    9: _DAY_NAMES[:5],  # Weekday
    10: _DAY_NAMES[5:],  # WeekendDay
}
_GROUP_OF = {frozenset(days): number for number, days in _GROUPS.items()}
_INDEX = ("first", "second", "third", "fourth", "last")


def _weekday_number(value: Any) -> int:
    """exchangelib gives enum values as 1-based numbers or as names."""
    if isinstance(value, int):
        return value
    names = [*(d.capitalize() for d in _DAY_NAMES), "Day", "Weekday", "WeekendDay"]
    return names.index(str(value)) + 1


def _days_of(value: Any) -> list[str]:
    number = _weekday_number(value)
    return list(_GROUPS[number]) if number in _GROUPS else [_DAY_NAMES[number - 1]]


def _number(value: Any, names: tuple[str, ...]) -> int:
    if isinstance(value, int):
        return value
    return [n.lower() for n in names].index(str(value).lower()) + 1


_MONTHS = tuple(
    datetime(2026, m, 1).strftime("%B") for m in range(1, 13)
)  # January … (exchangelib's enum)


def _pattern_json(pattern: Any) -> dict[str, Any]:
    """An exchangelib pattern in Graph's form (what `outlook.rule_of` reads)."""
    kind = type(pattern)
    if kind is DailyPattern:
        return {"type": "daily", "interval": pattern.interval}
    if kind is WeeklyPattern:
        days = [d for w in pattern.weekdays or () for d in _days_of(w)]
        first = _DAY_NAMES[_weekday_number(pattern.first_day_of_week or 1) - 1]
        return {
            "type": "weekly",
            "interval": pattern.interval,
            "daysOfWeek": days,
            "firstDayOfWeek": first,
        }
    if kind is AbsoluteMonthlyPattern:
        return {
            "type": "absoluteMonthly",
            "interval": pattern.interval,
            "dayOfMonth": pattern.day_of_month,
        }
    if kind is RelativeMonthlyPattern:
        return {
            "type": "relativeMonthly",
            "interval": pattern.interval,
            "daysOfWeek": _days_of(pattern.weekday),
            "index": _INDEX[_number(pattern.week_number, _INDEX) - 1],
        }
    if kind is AbsoluteYearlyPattern:
        return {
            "type": "absoluteYearly",
            "interval": 1,
            "dayOfMonth": pattern.day_of_month,
            "month": _number(pattern.month, _MONTHS),
        }
    if kind is RelativeYearlyPattern:
        return {
            "type": "relativeYearly",
            "interval": 1,
            "daysOfWeek": _days_of(pattern.weekday),
            "index": _INDEX[_number(pattern.week_number, _INDEX) - 1],
            "month": _number(pattern.month, _MONTHS),
        }
    raise Unmappable(f"recurrence pattern {kind.__name__}")


def _boundary_json(boundary: Any) -> dict[str, Any]:
    start = boundary.start
    found: dict[str, Any] = {"startDate": _day(start).isoformat()}
    if isinstance(boundary, NumberedPattern):
        found.update(type="numbered", numberOfOccurrences=boundary.number)
    elif isinstance(boundary, EndDatePattern):
        found.update(type="endDate", endDate=_day(boundary.end).isoformat())
    else:
        found["type"] = "noEnd"
    return found


def rule_of(recurrence: Any) -> str:
    """The RRULE of an exchangelib Recurrence."""
    return outlook.rule_of(
        {"pattern": _pattern_json(recurrence.pattern), "range": _boundary_json(recurrence.boundary)}
    )


def recurrence_out(item: Appointment) -> EwsRecurrence:
    """exchangelib's Recurrence for the item's rule; `Unmappable` for what EWS cannot hold."""
    found = outlook.recurrence_json(item)
    assert found is not None
    pattern, range_ = found["pattern"], found["range"]
    kind, interval = pattern["type"], int(pattern.get("interval") or 1)
    days = [str(d).lower() for d in pattern.get("daysOfWeek") or ()]
    ews_pattern: Any
    if kind == "daily":
        ews_pattern = DailyPattern(interval=interval)
    elif kind == "weekly":
        ews_pattern = WeeklyPattern(
            interval=interval,
            weekdays=[_DAY_NAMES.index(d) + 1 for d in days],
            first_day_of_week=_DAY_NAMES.index(str(pattern.get("firstDayOfWeek"))) + 1,
        )
    elif kind == "absoluteMonthly":
        ews_pattern = AbsoluteMonthlyPattern(interval=interval, day_of_month=pattern["dayOfMonth"])
    elif kind in ("relativeMonthly", "relativeYearly"):
        weekday = _one_weekday(days)
        week_number = _INDEX.index(str(pattern["index"])) + 1
        if kind == "relativeMonthly":
            ews_pattern = RelativeMonthlyPattern(
                interval=interval, weekday=weekday, week_number=week_number
            )
        else:
            _no_interval(interval)
            ews_pattern = RelativeYearlyPattern(
                weekday=weekday, week_number=week_number, month=int(pattern["month"])
            )
    elif kind == "absoluteYearly":
        _no_interval(interval)
        ews_pattern = AbsoluteYearlyPattern(
            day_of_month=pattern["dayOfMonth"], month=int(pattern["month"])
        )
    else:
        raise Unmappable(f"recurrence pattern {kind!r}")
    start = date.fromisoformat(range_["startDate"])
    boundary: Any
    if range_["type"] == "numbered":
        boundary = NumberedPattern(start=start, number=int(range_["numberOfOccurrences"]))
    elif range_["type"] == "endDate":
        boundary = EndDatePattern(start=start, end=date.fromisoformat(range_["endDate"]))
    else:
        boundary = NoEndPattern(start=start)
    return EwsRecurrence(pattern=ews_pattern, boundary=boundary)


def _one_weekday(days: list[str]) -> int:
    if len(days) == 1:
        return _DAY_NAMES.index(days[0]) + 1
    group = _GROUP_OF.get(frozenset(days))
    if group is None:
        raise Unmappable(f"EWS repeats on one day, or on every day, weekday or weekend day: {days}")
    return group


def _no_interval(interval: int) -> None:
    if interval != 1:
        raise Unmappable("EWS yearly patterns repeat every year")


def can_express(recurrence: Recurrence) -> bool:
    """Whether Exchange can hold the rule as a series (the engine expands it otherwise)."""
    if not outlook.can_express(recurrence):
        return False
    anchor = datetime(2026, 1, 5, 9, tzinfo=UTC)
    probe = Appointment("probe", anchor, anchor + timedelta(hours=1), recurrence=recurrence)
    try:
        recurrence_out(probe)
    except (Unmappable, ValueError, KeyError):
        return False
    return True


def original_of(value: datetime, series: Appointment) -> When:
    moment = plain(value).astimezone(series.zone)
    return moment.date() if series.all_day else moment


def series_of(master: Any, exceptions: Mapping[str, Any], mailbox: str) -> Appointment:
    """A recurring master and its modified occurrences (read by id) as one series: the rule
    from its pattern, deletions from DeletedOccurrences, exceptions with the fields that
    differ from the series'."""
    base = appointment_of(master, mailbox)
    series = replace(base, recurrence=Recurrence(rule_of(master.recurrence)))
    exclusions = frozenset(original_of(d.start, series) for d in master.deleted_occurrences or ())
    found: list[RecurrenceException] = []
    times = [base.last_modified] if base.last_modified else []
    for occurrence in master.modified_occurrences or ():
        raw = exceptions.get(occurrence.id)
        if raw is None:
            raise Unmappable(f"series {master.id}: exception {occurrence.id} cannot be read")
        own = appointment_of(raw, mailbox)
        if own.last_modified:
            times.append(own.last_modified)
        original = original_of(occurrence.original_start, series)
        start, end = _timing_of(raw, series.timezone)
        found.append(_exception(own, series, original, start, end))
    ordered = tuple(sorted(found, key=lambda e: outlook.occurrence_key(e.original_start)))
    return replace(
        series,
        recurrence=Recurrence(
            series.recurrence.rule if series.recurrence else "", exclusions, ordered
        ),
        last_modified=max(times) if times else None,
    )


def _exception(
    own: Appointment, series: Appointment, original: When, start: When, end: When
) -> RecurrenceException:
    def differing(name: str) -> Any:
        value = getattr(own, name)
        return None if value == getattr(series, name) else value

    return RecurrenceException(
        original_start=original,
        start=start,
        end=end,
        subject=differing("subject"),
        location=differing("location"),
        body=differing("body"),
        attendees=differing("attendees"),
        show_as=differing("show_as"),
        reminder_minutes=differing("reminder_minutes"),
    )


def instance_index(series: Appointment, original: When) -> int:
    """The 1-based position EWS gives the occurrence originally at `original` (its
    OccurrenceItemId InstanceIndex): counted by the pattern alone, deleted ones included."""
    assert series.recurrence is not None
    bare = replace(series, recurrence=Recurrence(series.recurrence.rule))
    first = _utc(series.start) - timedelta(seconds=1)
    target = _utc(original)
    made = occurrences(bare, first, target + timedelta(seconds=1))
    keys = [_utc(o.original_start) for o in made]
    if target not in keys:
        raise Unmappable(f"{original} is no occurrence of the series")
    return keys.index(target) + 1


def _utc(value: When) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


# --- contacts -------------------------------------------------------------------------------

CONTACT_FIELDS = (
    "given_name",
    "surname",
    "middle_name",
    "company_name",
    "job_title",
    "email_addresses",
    "phone_numbers",
    "physical_addresses",
    "datetime_created",
    "last_modified_time",
    STAMP_FIELD,
)
WRITTEN_CONTACT_FIELDS = [
    "given_name",
    "surname",
    "middle_name",
    "display_name",
    "company_name",
    "job_title",
    "email_addresses",
    "phone_numbers",
    "physical_addresses",
]
MAX_EMAILS = 3  # EmailAddress1..3
_PHONE_LABELS = {
    "work": ("BusinessPhone", "BusinessPhone2"),
    "home": ("HomePhone", "HomePhone2"),
    "mobile": ("MobilePhone",),
    "other": ("OtherTelephone",),
}
_PHONE_KINDS = {label: kind for kind, labels in _PHONE_LABELS.items() for label in labels}
_ADDRESS_LABELS = {"work": "Business", "home": "Home", "other": "Other"}
_ADDRESS_KINDS = {label: kind for kind, label in _ADDRESS_LABELS.items()}


def fill_contact(target: Any, item: Contact) -> None:
    """Set the written fields of an exchangelib Contact from `item`. Outlook has slots, not
    lists: three e-mail addresses, two work and two home numbers, one mobile and one other
    number, one address of each kind; what does not fit is left out (the side declares its
    three e-mail slots; the rest is rare enough to say so here)."""
    target.given_name = item.given_name or None
    target.surname = item.family_name or None
    target.middle_name = item.middle_name or None
    target.display_name = " ".join(n for n in (item.given_name, item.family_name) if n) or (
        item.emails[0] if item.emails else item.company or "-"
    )
    target.company_name = item.company or None
    target.job_title = item.job_title or None
    target.email_addresses = [
        EmailAddress(email=e, label=f"EmailAddress{n}")
        for n, e in enumerate(item.emails[:MAX_EMAILS], start=1)
    ] or None
    phones: list[PhoneNumber] = []
    used: set[str] = set()
    for phone in item.phones:
        kind = phone.kind.lower() if phone.kind.lower() in _PHONE_LABELS else "work"
        label = next((lb for lb in _PHONE_LABELS[kind] if lb not in used), None)
        if label is not None:
            used.add(label)
            phones.append(PhoneNumber(label=label, phone_number=phone.number))
    target.phone_numbers = phones or None
    addresses: dict[str, PhysicalAddress] = {}
    for address in item.addresses:
        label = _ADDRESS_LABELS.get(address.kind.lower(), "Other")
        addresses.setdefault(
            label,
            PhysicalAddress(
                label=label,
                street=address.street or None,
                city=address.city or None,
                state=address.region or None,
                country=address.country or None,
                zipcode=address.postal_code or None,
            ),
        )
    target.physical_addresses = list(addresses.values()) or None


def contact_of(item: Any) -> Contact:
    slots = sorted(item.email_addresses or (), key=lambda e: str(e.label))
    phones = sorted(
        item.phone_numbers or (), key=lambda p: (_phone_order(str(p.label)), str(p.label))
    )
    addresses = [
        Address(
            kind=_ADDRESS_KINDS.get(str(a.label), "other"),
            street=str(a.street or ""),
            city=str(a.city or ""),
            postal_code=str(a.zipcode or ""),
            region=str(a.state or ""),
            country=str(a.country or ""),
        )
        for a in sorted(item.physical_addresses or (), key=lambda a: str(a.label))
        if any((a.street, a.city, a.zipcode, a.state, a.country))
    ]
    return Contact(
        given_name=str(item.given_name or ""),
        family_name=str(item.surname or ""),
        middle_name=str(item.middle_name or ""),
        company=str(item.company_name or ""),
        job_title=str(item.job_title or ""),
        emails=tuple(str(e.email) for e in slots if e.email),
        phones=tuple(
            Phone(str(p.phone_number), _PHONE_KINDS.get(str(p.label), "work"))
            for p in phones
            if p.phone_number
        ),
        addresses=tuple(addresses),
        last_modified=plain(item.last_modified_time) if item.last_modified_time else None,
    )


def _phone_order(label: str) -> int:
    order = [lb for labels in _PHONE_LABELS.values() for lb in labels]
    return order.index(label) if label in order else len(order)
