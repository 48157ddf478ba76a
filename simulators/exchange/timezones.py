"""Windows time zone ids, as EWS names them, mapped to IANA zones (CLDR's table, via tzlocal)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import tz_win, win_tz


def zone_for(windows_id: str | None) -> ZoneInfo:
    """The IANA zone of a Windows zone id; unknown ids count as UTC."""
    try:
        return ZoneInfo(win_tz.get(windows_id or "UTC", "UTC"))
    except ZoneInfoNotFoundError:
        return ZoneInfo("UTC")


def windows_id_for(iana: str) -> str:
    return tz_win.get(iana, "UTC")
