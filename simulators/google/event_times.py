"""Event start/end values (``EventDateTime``): validation, normalisation and instants."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from simulators.google.errors import bad_request


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise bad_request(f"Invalid time zone definition for start time: {name}") from exc


def parse_rfc3339(value: str) -> datetime:
    """RFC 3339 date-time; naive when the value carries no offset."""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, AttributeError) as exc:
        raise bad_request(f"Invalid value for date-time: {value}") from exc


def format_datetime(moment: datetime) -> str:
    text = moment.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def normalize(value: Any, which: str) -> dict[str, Any]:
    """A client's start/end as Google stores it; 400 for what Google refuses."""
    if not isinstance(value, dict) or not (value.get("date") or value.get("dateTime")):
        raise bad_request(f"Missing {which} time.", "required")
    if value.get("date") and value.get("dateTime"):
        raise bad_request(f"Invalid {which} time: both date and dateTime are set.")
    if value.get("date"):
        try:
            day = date.fromisoformat(str(value["date"]))
        except ValueError as exc:
            raise bad_request(f"Invalid {which} date.") from exc
        out: dict[str, Any] = {"date": day.isoformat()}
        if value.get("timeZone"):
            out["timeZone"] = value["timeZone"]
        return out
    moment = parse_rfc3339(str(value["dateTime"]))
    tz_name = value.get("timeZone")
    if moment.tzinfo is None:
        if not tz_name:
            raise bad_request(f"Missing time zone definition for {which} time.", "required")
        moment = moment.replace(tzinfo=zone(tz_name))
    elif tz_name:
        moment = moment.astimezone(zone(tz_name))
    out = {"dateTime": format_datetime(moment)}
    if tz_name:
        out["timeZone"] = tz_name
    return out


def is_all_day(value: dict[str, Any]) -> bool:
    return "date" in value


def instant(value: dict[str, Any], calendar_zone: str) -> datetime:
    """The UTC instant of a start/end (all-day values start at midnight in the calendar zone)."""
    if "date" in value:
        day = date.fromisoformat(value["date"])
        return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(calendar_zone)).astimezone(
            UTC
        )
    return parse_rfc3339(value["dateTime"]).astimezone(UTC)


def local_start(value: dict[str, Any]) -> datetime:
    """The start as recurrence rules see it: wall time in its zone, naive for all-day."""
    if "date" in value:
        day = date.fromisoformat(value["date"])
        return datetime(day.year, day.month, day.day)
    moment = parse_rfc3339(value["dateTime"])
    return moment.astimezone(ZoneInfo(value["timeZone"])) if value.get("timeZone") else moment


def shifted(
    template: dict[str, Any], start: datetime, duration: timedelta
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(start, end) values of one occurrence starting at `start`, like the master's."""
    if "date" in template:
        first = start.date()
        return {"date": first.isoformat()}, {"date": (first + duration).isoformat()}
    tz_name = template.get("timeZone")
    end = (start.astimezone(UTC) + duration).astimezone(start.tzinfo)
    extra = {"timeZone": tz_name} if tz_name else {}
    return (
        {"dateTime": format_datetime(start), **extra},
        {"dateTime": format_datetime(end), **extra},
    )


def instance_suffix(original_start: datetime, all_day: bool) -> str:
    """The part after ``_`` in an instance id: UTC stamp, or the date for all-day series."""
    if all_day:
        return original_start.strftime("%Y%m%d")
    return original_start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
