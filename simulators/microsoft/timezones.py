"""Graph's dateTimeTimeZone values: Windows or IANA zone names, seven fractional digits."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import tz_win, win_tz

from simulators.microsoft.errors import GraphError

_UTC_NAMES = {"utc", "tzone://microsoft/utc", "etc/utc", "coordinated universal time", "gmt"}


def zone(name: str) -> tzinfo:
    """The zone for a Windows ("W. Europe Standard Time") or IANA ("Europe/Berlin") name."""
    if name.strip().lower() in _UTC_NAMES:
        return UTC
    iana = win_tz.get(name, name)
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        raise GraphError(
            400,
            "TimeZoneNotSupportedException",
            f"A valid TimeZone value must be specified. The following TimeZone value is not supported: '{name}'.",
        ) from None


def windows_name(name: str) -> str:
    """Outlook reports originalStartTimeZone in Windows names."""
    if name.strip().lower() in _UTC_NAMES:
        return "UTC"
    return name if name in win_tz else tz_win.get(name, name)


def parse_local(value: str) -> datetime:
    """A naive local time from Graph's `dateTime` (up to seven fractional digits, no offset)."""
    text = value.strip().rstrip("Z")
    if "." in text:
        whole, fraction = text.split(".", 1)
        text = f"{whole}.{fraction[:6]}"
    try:
        return datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        raise GraphError(
            400,
            "ErrorInvalidRequest",
            f"Cannot convert the literal '{value}' to the expected type 'Edm.DateTime'.",
        ) from None


def parse_dtz(value: object) -> tuple[datetime, str]:
    """(aware datetime, zone name as given) from a dateTimeTimeZone object."""
    if not isinstance(value, dict) or "dateTime" not in value:
        raise GraphError(
            400, "ErrorInvalidRequest", "A dateTimeTimeZone value needs dateTime and timeZone."
        )
    name = str(value.get("timeZone") or "UTC")
    local = parse_local(str(value["dateTime"]))
    return local.replace(tzinfo=zone(name)), name


def format_local(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0"


def format_dtz(moment: datetime, zone_name: str) -> dict[str, str]:
    return {"dateTime": format_local(moment.astimezone(zone(zone_name))), "timeZone": zone_name}


def odata_timestamp(moment: datetime) -> str:
    """Edm.DateTimeOffset as Graph writes it: UTC, seven fractional digits, `Z`."""
    return format_local(moment.astimezone(UTC)) + "Z"


def parse_query_time(value: str) -> datetime:
    """startDateTime/endDateTime query parameters: ISO 8601, UTC unless an offset is given."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise GraphError(
            400,
            "ErrorInvalidParameter",
            f"The value '{value}' of parameter 'startDateTime/endDateTime' is invalid.",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
