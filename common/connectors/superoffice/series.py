"""Recurring appointments: SuperOffice stores one appointment row per occurrence, all sharing
a recurrence rule (`recurrenceRuleId`); an exception is simply a row that was moved or
edited, a deleted occurrence a row that is missing. One series is one canonical item whose
id is `r<rule id>`.

Reading: the rule comes from the `Recurrence` of one row (Daily every n days or every
workday, Weekly on one weekday, Monthly on a day of the month, Yearly; ending after a count
or on a date), expanded in the tenant's zone; each row is matched to the occurrence the rule
makes at its start, a moved row to the nearest occurrence left (same day first); the
series' own values are those most of its rows have, and a row that differs is an exception.
Writing: what SuperOffice can make from a `RecurrenceInfo` (`can_express` says which rules),
then exclusions and exceptions applied row by row.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

from common.connectors.superoffice.mapping import Unmappable, all_day_span, instant
from common.items import (
    Appointment,
    Recurrence,
    RecurrenceException,
    ShowAs,
    When,
    occurrence_key,
)

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
RRULE_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
WORKDAYS = "FR,MO,TH,TU,WE"
MAX_OCCURRENCES = 500  # SuperOffice writes one row per occurrence: long series are refused
# The archive columns a series is read from (with the key).
ROW_COLUMNS = (
    "date", "endDate", "appointment/title", "appointment/description", "location", "isFree",
    "visibleFor", "updatedDate", "registeredDate", "recurrenceRuleId",
)  # fmt: skip


class NotExpressible(ValueError):
    """A rule SuperOffice's recurrence patterns cannot hold."""


# --- rules ---------------------------------------------------------------------------------


def _parts(rule: str) -> dict[str, str]:
    text = rule.strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    found: dict[str, str] = {}
    for part in text.split(";"):
        if part.strip():
            key, _, value = part.partition("=")
            found[key.strip().upper()] = value.strip().upper()
    return found


def recurrence_info(rule: str, first: When, zone: ZoneInfo) -> dict[str, Any]:
    """The RecurrenceInfo SuperOffice makes `rule` from (starting at `first`)."""
    parts = _parts(rule)
    freq = parts.pop("FREQ", "")
    cycle = int(parts.pop("INTERVAL", "1") or 1)
    count, until = parts.pop("COUNT", None), parts.pop("UNTIL", None)
    if parts.get("WKST", "MO") == "MO":
        parts.pop("WKST", None)
    byday = parts.pop("BYDAY", "")
    info: dict[str, Any] = {"IsRecurrence": True}
    local_day = first if isinstance(first, date) and not isinstance(first, datetime) else None
    if local_day is None:
        assert isinstance(first, datetime)
        local_day = first.astimezone(zone).date()
    if freq == "DAILY":
        if byday and ",".join(sorted(byday.split(","))) == WORKDAYS and cycle == 1:
            info.update(Pattern="Daily", DayPattern={"Pattern": "EveryWorkday", "Cycle": 1})
        elif not byday:
            info.update(Pattern="Daily", DayPattern={"Pattern": "EveryCyclicDay", "Cycle": cycle})
        else:
            raise NotExpressible(f"daily on {byday}")
    elif freq == "WEEKLY":
        days = byday.split(",") if byday else [RRULE_DAYS[local_day.weekday()]]
        if len(days) != 1 or days[0] not in RRULE_DAYS:
            raise NotExpressible(f"weekly on {byday}: one weekday only")
        weekday = WEEKDAYS[RRULE_DAYS.index(days[0])]
        info.update(Pattern="Weekly", WeekPattern={"Weekdays": weekday, "Cycle": cycle})
    elif freq == "MONTHLY" and not byday:
        day = int(parts.pop("BYMONTHDAY", local_day.day))
        if not 1 <= day <= 31:
            raise NotExpressible(f"monthly on day {day}")
        info.update(
            Pattern="Monthly", MonthPattern={"Pattern": "DayOfMonth", "Cycle": cycle, "Day": day}
        )
    elif freq == "YEARLY" and not byday:
        month = int(parts.pop("BYMONTH", local_day.month))
        day = int(parts.pop("BYMONTHDAY", local_day.day))
        if (month, day) != (local_day.month, local_day.day):
            raise NotExpressible("yearly on another day than the first occurrence's")
        info.update(
            Pattern="Yearly", YearPattern={"Pattern": "DayOfMonth", "Cycle": cycle, "Day": day}
        )
    else:
        raise NotExpressible(f"{freq or 'no'} frequency with {byday or 'no'} weekdays")
    if parts:
        raise NotExpressible(f"rule parts {sorted(parts)}")
    if count is not None:
        if not 0 < int(count) <= MAX_OCCURRENCES:
            raise NotExpressible(f"{count} occurrences")
        info.update(RecurrenceEndType="Counter", RecurrenceCounter=int(count))
    elif until is not None:
        info.update(RecurrenceEndType="EndDate", EndDate=_until_day(until, zone).isoformat())
    else:
        raise NotExpressible("a series without an end (SuperOffice writes every occurrence)")
    return info


def _until_day(until: str, zone: ZoneInfo) -> date:
    text = until.rstrip("Z")
    if "T" in text:
        moment = datetime.strptime(text, "%Y%m%dT%H%M%S")
        if until.endswith("Z"):
            return moment.replace(tzinfo=UTC).astimezone(zone).date()
        return moment.date()
    return datetime.strptime(text, "%Y%m%d").date()


def expressible(rule: str) -> bool:
    """Whether SuperOffice can hold the rule (the first occurrence's day aside)."""
    try:
        recurrence_info(rule, date(2001, 1, 1), ZoneInfo("UTC"))
    except (NotExpressible, ValueError):
        return False
    parts = _parts(rule)
    return parts.get("FREQ") != "YEARLY" or not ({"BYMONTH", "BYMONTHDAY"} & parts.keys())


def rule_of(info: dict[str, Any]) -> str:
    """RecurrenceInfo → RRULE (without DTSTART)."""
    pattern = info.get("Pattern")
    if pattern == "Daily":
        day = info.get("DayPattern") or {}
        if day.get("Pattern") in ("EveryWorkday", "EveryWeekday"):
            parts = ["FREQ=DAILY", f"BYDAY={WORKDAYS}"]
        else:
            parts = ["FREQ=DAILY", f"INTERVAL={int(day.get('Cycle') or 1)}"]
    elif pattern == "Weekly":
        week = info.get("WeekPattern") or {}
        names = [n.strip() for n in str(week.get("Weekdays") or "").split(",") if n.strip()]
        days = [RRULE_DAYS[WEEKDAYS.index(n)] for n in names if n in WEEKDAYS]
        if not days:
            raise Unmappable(f"weekly recurrence without weekdays: {week!r}")
        parts = ["FREQ=WEEKLY", f"INTERVAL={int(week.get('Cycle') or 1)}",
                 f"BYDAY={','.join(days)}"]  # fmt: skip
    elif pattern == "Monthly":
        month = info.get("MonthPattern") or {}
        if month.get("Pattern", "DayOfMonth") != "DayOfMonth":
            raise Unmappable(f"monthly recurrence {month.get('Pattern')} is not read")
        parts = ["FREQ=MONTHLY", f"INTERVAL={int(month.get('Cycle') or 1)}",
                 f"BYMONTHDAY={int(month.get('Day') or 1)}"]  # fmt: skip
    elif pattern == "Yearly":
        year = info.get("YearPattern") or {}
        parts = ["FREQ=YEARLY", f"INTERVAL={int(year.get('Cycle') or 1)}"]
    else:
        raise Unmappable(f"recurrence pattern {pattern!r} is not read")
    if info.get("RecurrenceEndType") == "EndDate" and info.get("EndDate"):
        end = str(info["EndDate"])[:10].replace("-", "")
        parts.append(f"UNTIL={end}")
    else:
        parts.append(f"COUNT={int(info.get('RecurrenceCounter') or 1)}")
    return ";".join(parts)


# --- rows ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Occ:
    """One occurrence row as the archive lists it."""

    row_id: int
    start: datetime  # UTC
    end: datetime
    title: str
    body: str
    location: str
    free: bool
    private: bool
    updated: datetime
    registered: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> Occ:
        return cls(
            int(row["appointmentId"]),
            _utc(row["date"]),
            _utc(row["endDate"]),
            str(row.get("appointment/title") or ""),
            str(row.get("appointment/description") or ""),
            str(row.get("location") or ""),
            bool(row.get("isFree")),
            str(row.get("visibleFor") or "All") not in ("All", ""),
            _utc(row["updatedDate"]),
            _utc(row["registeredDate"]),
        )


def _utc(text: Any) -> datetime:
    """Archive dates: ISO text without an offset, in the request's zone (UTC for us)."""
    value = datetime.fromisoformat(str(text))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _majority(values: Sequence[Any]) -> Any:
    return Counter(values).most_common(1)[0][0]


def _when(moment: datetime, all_day: bool, zone: ZoneInfo) -> When:
    return moment.astimezone(zone).date() if all_day else moment


def read_series(
    rows: Sequence[dict[str, Any]], entity: dict[str, Any], base: Appointment, zone: ZoneInfo
) -> Appointment:
    """The series of `rows` (one user's rows of one rule, in any order); `base` is the
    mapping of one of its rows (what every occurrence shares: attendees, links, type)."""
    occs = sorted((Occ.of(r) for r in rows), key=lambda o: (o.start, o.row_id))
    if not occs:
        raise Unmappable("a series without rows")
    info = entity.get("Recurrence") or {}
    rule = rule_of(info)
    all_day = base.all_day
    durations = [o.end - o.start for o in occs]
    duration = _majority(durations)
    first_day = instant(info["StartDate"], "Recurrence.StartDate").astimezone(zone).date()
    clock = _majority([o.start.astimezone(zone).time() for o in occs])
    local_first = datetime.combine(first_day, time(0) if all_day else clock)
    expected: list[When] = []
    for raw in rrulestr(rule, dtstart=local_first):
        if len(expected) > MAX_OCCURRENCES * 2:
            break
        expected.append(raw.date() if all_day else raw.replace(tzinfo=zone).astimezone(UTC))
    start: When
    end: When
    if all_day:
        start, end = all_day_span(occs[0].start, occs[0].start + duration, zone)
        start, end = first_day, first_day + (end - start)
    else:
        start = local_first.replace(tzinfo=zone).astimezone(UTC)
        end = start + duration
    series = dataclasses.replace(
        base,
        subject=_majority([o.title for o in occs]),
        body=_majority([o.body for o in occs]),
        location=_majority([o.location for o in occs]),
        show_as=ShowAs.FREE if _majority([o.free for o in occs]) else ShowAs.BUSY,
        private=_majority([o.private for o in occs]),
        start=start,
        end=end,
        last_modified=max(o.updated for o in occs),
    )
    matched = match(occs, expected, all_day, zone)
    exclusions = frozenset(w for w in expected if occurrence_key(w) not in matched)
    exceptions = []
    for _, (original, occ) in sorted(matched.items()):
        exc = _exception(series, original, occ, all_day, zone, duration)
        if exc is not None:
            exceptions.append(exc)
    rec = Recurrence(rule, exclusions=exclusions, exceptions=tuple(exceptions))
    return dataclasses.replace(series, recurrence=rec)


def match(
    occs: Sequence[Occ], expected: Sequence[When], all_day: bool, zone: ZoneInfo
) -> dict[str, tuple[When, Occ]]:
    """Each row matched to the occurrence of the rule it stands for, by occurrence key."""
    free = {occurrence_key(w): w for w in expected}
    matched: dict[str, tuple[When, Occ]] = {}
    moved: list[Occ] = []
    for occ in occs:
        key = occurrence_key(_when(occ.start, all_day, zone))
        if key in free:
            matched[key] = (free.pop(key), occ)
        else:
            moved.append(occ)
    for occ in moved:
        if not free:
            raise Unmappable(f"row {occ.row_id} is no occurrence of its series' rule")
        key = min(free, key=lambda k: _distance(free[k], occ, zone))
        matched[key] = (free.pop(key), occ)
    return matched


def _distance(original: When, occ: Occ, zone: ZoneInfo) -> tuple[bool, float]:
    """How far a moved row is from an occurrence: another day first, then in time."""
    if isinstance(original, datetime):
        moment, day = original, original.astimezone(zone).date()
    else:
        moment, day = datetime.combine(original, time(0), zone).astimezone(UTC), original
    other_day = day != occ.start.astimezone(zone).date()
    return other_day, abs((moment - occ.start).total_seconds())


def _exception(
    series: Appointment,
    original: When,
    occ: Occ,
    all_day: bool,
    zone: ZoneInfo,
    duration: timedelta,
) -> RecurrenceException | None:
    start = _when(occ.start, all_day, zone)
    if all_day:
        first, after = all_day_span(occ.start, occ.end, zone)
        start, end = first, after
    else:
        end = occ.end
    changes = {
        "subject": occ.title if occ.title != series.subject else None,
        "body": occ.body if occ.body != series.body else None,
        "location": occ.location if occ.location != series.location else None,
        "show_as": (ShowAs.FREE if occ.free else ShowAs.BUSY)
        if occ.free != (series.show_as is ShowAs.FREE)
        else None,
        "private": occ.private if occ.private != series.private else None,
    }
    length = series.end - series.start if all_day else duration  # type: ignore[operator]
    expected_end: When = original + length
    if start == original and end == expected_end and all(v is None for v in changes.values()):
        return None
    return RecurrenceException(original, start, end, **changes)  # type: ignore[arg-type]
