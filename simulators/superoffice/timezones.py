"""SO-TimeZone: which zone dates are shown in, and whether offsets are included.

SuperOffice stores StartDate/EndDate in the tenant's base time zone and returns them without an
offset; `SO-TimeZone: <code or id>` converts them, and `, includeTZOffset` adds the offset.
CreatedDate/UpdatedDate are UTC. The codes below are a subset of SuperOffice's location codes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Location:
    location_id: int
    code: str
    name: str
    cities: str
    iana: str


LOCATIONS = [
    Location(1, "UTC", "Coordinated Universal Time", "UTC", "UTC"),
    Location(2, "NO", "Norway", "Oslo", "Europe/Oslo"),
    Location(3, "NL", "Netherlands", "Amsterdam", "Europe/Amsterdam"),
    Location(4, "GB", "United Kingdom", "London", "Europe/London"),
    Location(5, "DE", "Germany", "Berlin", "Europe/Berlin"),
    Location(6, "US-NY", "USA Eastern", "New York", "America/New_York"),
    Location(7, "US-CA", "USA Pacific", "Los Angeles", "America/Los_Angeles"),
    Location(8, "AU-NSW", "Australia Eastern", "Sydney", "Australia/Sydney"),
    Location(9, "IN", "India", "Kolkata", "Asia/Kolkata"),
    Location(10, "JP", "Japan", "Tokyo", "Asia/Tokyo"),
]


def by_iana(iana: str) -> Location:
    return next(loc for loc in LOCATIONS if loc.iana == iana)


def find(code_or_id: str) -> Location | None:
    key = code_or_id.strip()
    for loc in LOCATIONS:
        if key.upper() == loc.code or key == str(loc.location_id) or key == loc.iana:
            return loc
    return None


@dataclass(frozen=True)
class Presentation:
    """How a request wants local dates: in which zone, with or without offset."""

    zone: ZoneInfo
    include_offset: bool

    def format_local(self, value: dt.datetime) -> str:
        local = value.astimezone(self.zone)
        if self.include_offset:
            return local.isoformat(timespec="seconds")
        return local.replace(tzinfo=None).isoformat(timespec="seconds")

    def parse_local(self, text: str) -> dt.datetime:
        """A date from a request body: an explicit offset wins, else this zone."""
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.zone)
        return value.astimezone(dt.UTC)


class UnknownTimeZone(ValueError):
    pass


def presentation(header: str | None, base_iana: str) -> Presentation:
    """Parse an SO-TimeZone header value such as `US-NY` or `UTC, includeTZOffset`."""
    if not header:
        return Presentation(ZoneInfo(base_iana), include_offset=False)
    parts = [p.strip() for p in header.split(",") if p.strip()]
    include = any(p.lower() == "includetzoffset" for p in parts)
    codes = [p for p in parts if p.lower() != "includetzoffset"]
    if not codes:
        return Presentation(ZoneInfo(base_iana), include)
    loc = find(codes[0])
    if loc is None:
        raise UnknownTimeZone(codes[0])
    return Presentation(ZoneInfo(loc.iana), include)


def format_utc(value: dt.datetime) -> str:
    """CreatedDate/UpdatedDate: UTC, shown without an offset like the real API."""
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds")
