"""Expand Graph's patternedRecurrence (pattern + range) into occurrence start times.

Occurrences keep their wall-clock time in the recurrence time zone, so a 09:00 meeting stays at
09:00 across a DST change. dateutil's rrule does the calendar arithmetic.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo

from dateutil import rrule

from simulators.microsoft.errors import GraphError

_DAYS = {
    "monday": rrule.MO,
    "tuesday": rrule.TU,
    "wednesday": rrule.WE,
    "thursday": rrule.TH,
    "friday": rrule.FR,
    "saturday": rrule.SA,
    "sunday": rrule.SU,
}
_INDEX = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
PATTERN_TYPES = (
    "daily",
    "weekly",
    "absoluteMonthly",
    "relativeMonthly",
    "absoluteYearly",
    "relativeYearly",
)
RANGE_TYPES = ("endDate", "noEnd", "numbered")


def _invalid(message: str) -> GraphError:
    return GraphError(400, "ErrorInvalidRequest", f"Invalid recurrence: {message}")


def _weekdays(pattern: dict, index: int | None = None) -> list:
    days = pattern.get("daysOfWeek") or []
    try:
        return [_DAYS[d.lower()](index) if index else _DAYS[d.lower()] for d in days]
    except (KeyError, AttributeError):
        raise _invalid(f"unknown day in daysOfWeek {days!r}") from None


def validate(recurrence: dict) -> None:
    pattern, range_ = recurrence.get("pattern"), recurrence.get("range")
    if not isinstance(pattern, dict) or not isinstance(range_, dict):
        raise _invalid("pattern and range are required")
    if pattern.get("type") not in PATTERN_TYPES:
        raise _invalid(f"pattern type {pattern.get('type')!r}")
    if range_.get("type") not in RANGE_TYPES:
        raise _invalid(f"range type {range_.get('type')!r}")
    if not range_.get("startDate"):
        raise _invalid("range.startDate is required")
    if range_["type"] == "numbered" and int(range_.get("numberOfOccurrences") or 0) < 1:
        raise _invalid("numberOfOccurrences must be positive")
    if range_["type"] == "endDate" and not range_.get("endDate"):
        raise _invalid("range.endDate is required")
    if pattern["type"] in ("weekly", "relativeMonthly", "relativeYearly") and not pattern.get(
        "daysOfWeek"
    ):
        raise _invalid("daysOfWeek is required for this pattern")
    _rule(recurrence, time(9))  # raises on anything dateutil cannot express


def _rule(recurrence: dict, start_time: time) -> rrule.rrule:
    pattern, range_ = recurrence["pattern"], recurrence["range"]
    kind = pattern["type"]
    interval = int(pattern.get("interval") or 1)
    dtstart = datetime.combine(date.fromisoformat(range_["startDate"]), start_time)
    options: dict = {"dtstart": dtstart, "interval": interval}
    if range_["type"] == "numbered":
        options["count"] = int(range_["numberOfOccurrences"])
    elif range_["type"] == "endDate":
        options["until"] = datetime.combine(date.fromisoformat(range_["endDate"]), time.max)
    index = _INDEX.get(str(pattern.get("index") or "first").lower(), 1)
    if kind == "daily":
        return rrule.rrule(rrule.DAILY, **options)
    if kind == "weekly":
        first_day = str(pattern.get("firstDayOfWeek") or "sunday").lower()
        return rrule.rrule(
            rrule.WEEKLY, byweekday=_weekdays(pattern), wkst=_DAYS[first_day], **options
        )
    if kind == "absoluteMonthly":
        return rrule.rrule(
            rrule.MONTHLY, bymonthday=int(pattern.get("dayOfMonth") or dtstart.day), **options
        )
    if kind == "relativeMonthly":
        return rrule.rrule(rrule.MONTHLY, byweekday=_weekdays(pattern, index), **options)
    month = int(pattern.get("month") or dtstart.month)
    if kind == "absoluteYearly":
        return rrule.rrule(
            rrule.YEARLY,
            bymonth=month,
            bymonthday=int(pattern.get("dayOfMonth") or dtstart.day),
            **options,
        )
    return rrule.rrule(rrule.YEARLY, bymonth=month, byweekday=_weekdays(pattern, index), **options)


def occurrences(
    recurrence: dict,
    first_start: datetime,
    duration: timedelta,
    zone: tzinfo,
    window_start: datetime,
    window_end: datetime,
) -> list[datetime]:
    """Aware start times (in `zone`) of the occurrences overlapping [window_start, window_end).

    `first_start` is the series master's start in `zone`; its wall time is the time of day of
    every occurrence."""
    rule = _rule(recurrence, first_start.astimezone(zone).time().replace(tzinfo=None))
    # Search in local wall time with a day's margin for offsets and the duration.
    lower = window_start.astimezone(zone).replace(tzinfo=None) - duration - timedelta(days=1)
    upper = window_end.astimezone(zone).replace(tzinfo=None) + timedelta(days=1)
    found = []
    for local in rule.between(lower, upper, inc=True):
        start = local.replace(tzinfo=zone)
        if start < window_end and start + duration > window_start:
            found.append(start)
    return found
