"""Expanding an EWS Recurrence element into occurrences, in the series' own time zone (DST-correct)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from dateutil import rrule
from lxml import etree

from .timezones import zone_for
from .xmlns import child_text, local, t

WEEKDAYS = {
    "Monday": rrule.MO,
    "Tuesday": rrule.TU,
    "Wednesday": rrule.WE,
    "Thursday": rrule.TH,
    "Friday": rrule.FR,
    "Saturday": rrule.SA,
    "Sunday": rrule.SU,
}
DAY_GROUPS = {
    "Day": list(WEEKDAYS.values()),
    "Weekday": [rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR],
    "WeekendDay": [rrule.SA, rrule.SU],
}
WEEK_INDEX = {"First": 1, "Second": 2, "Third": 3, "Fourth": 4, "Last": -1}
MONTHS = {
    name: n
    for n, name in enumerate(
        [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ],
        start=1,
    )
}
# A series without an end is expanded this far; enough for any calendar view a client asks for.
NO_END_HORIZON = timedelta(days=3 * 366)
_OCC_PREFIX = b"\x00\x03\x24\x00\x00\x07"


@dataclass(frozen=True)
class Occurrence:
    index: int  # 1-based position in the series, as EWS InstanceIndex counts
    original_start: datetime  # UTC
    start: datetime
    end: datetime


def parse_utc(value: str | None) -> datetime:
    """An xs:dateTime as an aware UTC datetime (no offset means UTC)."""
    if not value:
        raise ValueError("a date and time is missing")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def occurrence_id(master_id: str, original_start: datetime) -> str:
    raw = f"{master_id}|{format_utc(original_start)}".encode()
    return base64.b64encode(_OCC_PREFIX + raw).decode()


def parse_occurrence_id(item_id: str) -> tuple[str, datetime] | None:
    try:
        raw = base64.b64decode(item_id, validate=True)
    except ValueError:
        return None
    if not raw.startswith(_OCC_PREFIX):
        return None
    master_id, _, when = raw[len(_OCC_PREFIX) :].decode().rpartition("|")
    return master_id, parse_utc(when)


def _days(text: str | None) -> list[rrule.weekday]:
    days: list[rrule.weekday] = []
    for name in (text or "").split():
        days.extend(DAY_GROUPS.get(name, [WEEKDAYS[name]] if name in WEEKDAYS else []))
    return days


def _pattern_kwargs(pattern: etree._Element) -> dict:
    kind = local(pattern.tag)
    interval = int(child_text(pattern, t("Interval")) or 1)
    if kind == "DailyRecurrence":
        return {"freq": rrule.DAILY, "interval": interval}
    if kind == "WeeklyRecurrence":
        first = child_text(pattern, t("FirstDayOfWeek")) or "Sunday"
        return {
            "freq": rrule.WEEKLY,
            "interval": interval,
            "byweekday": _days(child_text(pattern, t("DaysOfWeek"))),
            "wkst": WEEKDAYS[first],
        }
    if kind == "AbsoluteMonthlyRecurrence":
        day = int(child_text(pattern, t("DayOfMonth")) or 1)
        return {"freq": rrule.MONTHLY, "interval": interval, "bymonthday": day}
    nth = WEEK_INDEX.get(child_text(pattern, t("DayOfWeekIndex")) or "First", 1)
    days = [d(nth) for d in _days(child_text(pattern, t("DaysOfWeek")))]
    if kind == "RelativeMonthlyRecurrence":
        return {"freq": rrule.MONTHLY, "interval": interval, "byweekday": days}
    month = MONTHS.get(child_text(pattern, t("Month")) or "January", 1)
    if kind == "AbsoluteYearlyRecurrence":
        day = int(child_text(pattern, t("DayOfMonth")) or 1)
        return {"freq": rrule.YEARLY, "bymonth": month, "bymonthday": day}
    if kind == "RelativeYearlyRecurrence":
        return {"freq": rrule.YEARLY, "bymonth": month, "byweekday": days}
    raise ValueError(f"unsupported recurrence pattern {kind}")


def _date(text: str | None) -> date:
    # EWS dates may carry a zone suffix ("2026-03-02+01:00"); the date part is what counts.
    return date.fromisoformat((text or "")[:10])


def expand(
    recurrence: etree._Element, start_utc: datetime, end_utc: datetime, tz_id: str | None
) -> list[Occurrence]:
    """All occurrences of a series (a series without an end is cut at NO_END_HORIZON)."""
    pattern, series_range = recurrence[0], recurrence[1]
    zone = zone_for(tz_id)
    local_start = start_utc.astimezone(zone)
    duration = end_utc - start_utc
    first_day = _date(child_text(series_range, t("StartDate")))
    dtstart = datetime.combine(first_day, local_start.time().replace(tzinfo=None))
    kwargs = _pattern_kwargs(pattern)
    range_kind = local(series_range.tag)
    if range_kind == "NumberedRecurrence":
        kwargs["count"] = int(child_text(series_range, t("NumberOfOccurrences")) or 1)
    elif range_kind == "EndDateRecurrence":
        last_day = _date(child_text(series_range, t("EndDate")))
        kwargs["until"] = datetime.combine(last_day, time(23, 59, 59))
    else:
        kwargs["until"] = dtstart + NO_END_HORIZON
    occurrences = []
    for index, naive in enumerate(rrule.rrule(dtstart=dtstart, **kwargs), start=1):
        begin = naive.replace(tzinfo=zone).astimezone(UTC)
        occurrences.append(Occurrence(index, begin, begin, begin + duration))
    return occurrences
