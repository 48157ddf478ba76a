"""Windows time zone ids, as EWS names them, mapped to IANA zones for recurrence expansion."""

from __future__ import annotations

from zoneinfo import ZoneInfo

# Only the zones a client or the demo world is likely to send; anything else falls back to UTC.
WINDOWS_TO_IANA = {
    "UTC": "UTC",
    "GMT Standard Time": "Europe/London",
    "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris",
    "Central Europe Standard Time": "Europe/Budapest",
    "Central European Standard Time": "Europe/Warsaw",
    "FLE Standard Time": "Europe/Helsinki",
    "E. Europe Standard Time": "Europe/Chisinau",
    "Russian Standard Time": "Europe/Moscow",
    "Eastern Standard Time": "America/New_York",
    "Central Standard Time": "America/Chicago",
    "Mountain Standard Time": "America/Denver",
    "Pacific Standard Time": "America/Los_Angeles",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Singapore Standard Time": "Asia/Singapore",
    "India Standard Time": "Asia/Calcutta",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "New Zealand Standard Time": "Pacific/Auckland",
}
IANA_TO_WINDOWS = {v: k for k, v in WINDOWS_TO_IANA.items()}
IANA_TO_WINDOWS.update(
    {"Europe/Oslo": "W. Europe Standard Time", "Europe/Amsterdam": "W. Europe Standard Time"}
)


def zone_for(windows_id: str | None) -> ZoneInfo:
    return ZoneInfo(WINDOWS_TO_IANA.get(windows_id or "UTC", "UTC"))


def windows_id_for(iana: str) -> str:
    return IANA_TO_WINDOWS.get(iana, "UTC")
