"""Expansion of recurring events into instances (RFC 5545 rules via dateutil)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

from simulators.google import event_times
from simulators.google.errors import bad_request

# Open-ended series are expanded this far past "now", and never beyond this many instances.
DEFAULT_HORIZON = timedelta(days=730)
MAX_INSTANCES = 2000


def rule_set(master: dict[str, Any]) -> Any:
    start = master["start"]
    dtstart = event_times.local_start(start)
    tzids = {start["timeZone"]: ZoneInfo(start["timeZone"])} if start.get("timeZone") else {}
    try:
        return rrulestr(
            "\n".join(master["recurrence"]), dtstart=dtstart, forceset=True, tzids=tzids
        )
    except (ValueError, TypeError) as exc:
        raise bad_request("Invalid recurrence rule.") from exc


def validate(master: dict[str, Any]) -> None:
    lines = master.get("recurrence")
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise bad_request("Invalid recurrence rule.")
    for line in lines:
        if line.split(":", 1)[0].split(";", 1)[0] not in ("RRULE", "EXRULE", "RDATE", "EXDATE"):
            raise bad_request("Invalid recurrence rule.")
    if "dateTime" in master["start"] and not master["start"].get("timeZone"):
        raise bad_request("Missing time zone definition for start time.", "required")
    rule_set(master)


def occurrence_starts(
    master: dict[str, Any],
    window_start: datetime | None,
    window_end: datetime | None,
    now: datetime,
) -> list[datetime]:
    """Original start times (aware, or naive for all-day) within the window."""
    rules = rule_set(master)
    all_day = "date" in master["start"]
    end = window_end or now + DEFAULT_HORIZON
    duration = _duration(master)
    out: list[datetime] = []
    for moment in rules:
        aware = moment.replace(tzinfo=UTC) if all_day else moment
        if aware >= end:
            break
        if window_start is not None and aware + duration <= window_start:
            continue
        out.append(moment)
        if len(out) >= MAX_INSTANCES:
            break
    return out


def _duration(master: dict[str, Any]) -> timedelta:
    return event_times.instant(master["end"], "UTC") - event_times.instant(master["start"], "UTC")


def instance_of(master: dict[str, Any], original_start: datetime) -> dict[str, Any]:
    """The generated (unmodified) instance of `master` starting at `original_start`."""
    all_day = "date" in master["start"]
    instance = copy.deepcopy(master)
    instance.pop("recurrence", None)
    start, end = event_times.shifted(master["start"], original_start, _duration(master))
    instance["id"] = f"{master['id']}_{event_times.instance_suffix(original_start, all_day)}"
    instance["recurringEventId"] = master["id"]
    instance["originalStartTime"] = dict(start)
    instance["start"], instance["end"] = start, end
    return instance


def find_instance(master: dict[str, Any], instance_id: str, now: datetime) -> dict[str, Any] | None:
    """The generated instance with this id, if the series has such an occurrence."""
    suffix = instance_id[len(master["id"]) + 1 :]
    all_day = "date" in master["start"]
    for moment in occurrence_starts(master, None, None, now + DEFAULT_HORIZON * 5):
        if event_times.instance_suffix(moment, all_day) == suffix:
            return instance_of(master, moment)
    return None
