"""How far in time an item reaches: what tells "left the window by time" from "deleted"."""

from __future__ import annotations

from datetime import UTC, datetime, time

from dateutil.rrule import rrulestr

from common.items import Appointment, normalise_rule


def _utc(value: datetime | object) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.combine(value, time(), UTC)  # type: ignore[arg-type]


def last_end(item: Appointment) -> datetime | None:
    """When the item's last occurrence ends (UTC), or None for a series without an end.

    A single item ends at its end; a series at its last occurrence plus its duration (moved
    occurrences count too). dateutil does the rule arithmetic."""
    end = _utc(item.end)
    if item.recurrence is None:
        return end
    rule = normalise_rule(item.recurrence.rule)
    if "UNTIL=" not in rule and "COUNT=" not in rule:
        return None
    start = item.start
    if isinstance(start, datetime):
        dtstart = start.astimezone(item.zone)
    else:
        dtstart = datetime.combine(start, time())
    try:
        last = rrulestr(rule, dtstart=dtstart)[-1]
    except (ValueError, IndexError):
        return None  # a rule dateutil cannot read: treat as open-ended, never as gone
    duration = end - _utc(item.start)
    latest = _utc(last if last.tzinfo else last.replace(tzinfo=UTC)) + duration
    for exception in item.recurrence.exceptions:
        latest = max(latest, _utc(exception.end))
    return latest
