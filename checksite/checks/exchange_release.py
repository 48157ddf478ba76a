"""Exchange builds and what they mean: which release a version number is (2013, 2016, 2019,
Subscription Edition, Exchange Online), whether Microsoft still supports it, and how to move
on from it. Pure data and parsing (EWS ServerVersionInfo, X-OWA-Version, MS-OXDISCO)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from defusedxml import ElementTree

SE_FIRST_BUILD = 2562  # Exchange Server SE RTM is 15.2.2562.17 (July 2025); 2019 CU15 is 1748
SUPPORT_ENDED_2016_2019 = "October 2025"  # 14 October 2025, for both
# Builds: https://learn.microsoft.com/exchange/new-features/build-numbers-and-release-dates
# SE installs in place over 2019 CU14/CU15 and coexists with 2016 CU23 (Exchange Team blog,
# "Exchange Server Subscription Edition (SE) is now available", July 2025).


@dataclass(frozen=True)
class Release:
    name: str
    support: str  # current | ended (still works with Synchronizer) | unsupported | online
    ended: str | None = None
    upgrade: str = ""


SE = Release("Exchange Server Subscription Edition (SE)", "current")
ONLINE = Release("Exchange Online (Microsoft 365)", "online")
EXCHANGE_2019 = Release(
    "Exchange Server 2019",
    "ended",
    SUPPORT_ENDED_2016_2019,
    "Upgrade in place to Exchange Server Subscription Edition (SE): on Exchange 2019 CU14 or "
    "CU15, installing SE works like installing a cumulative update (update older CUs to CU15 "
    "first).",
)
EXCHANGE_2016 = Release(
    "Exchange Server 2016",
    "ended",
    SUPPORT_ENDED_2016_2019,
    "Exchange 2016 cannot be upgraded in place: install Exchange Server Subscription Edition "
    "(SE) on new servers (it coexists with Exchange 2016 CU23), move the mailboxes to them and "
    "then remove the Exchange 2016 servers; or move the mailboxes to Microsoft 365.",
)
_LEGACY_UPGRADE = (
    "There is no supported upgrade from it inside the organisation: move the mailboxes to "
    "Microsoft 365, or to Exchange Server Subscription Edition (SE)."
)
EXCHANGE_2013 = Release("Exchange Server 2013", "unsupported", "April 2023", _LEGACY_UPGRADE)
EXCHANGE_2010 = Release("Exchange Server 2010", "unsupported", "October 2020", _LEGACY_UPGRADE)
EXCHANGE_2007 = Release("Exchange Server 2007", "unsupported", "April 2017", _LEGACY_UPGRADE)


def release_of(major: int, minor: int, build: int | None) -> Release:
    if major == 15 and minor >= 20:  # Microsoft's cloud builds: 15.20.x.x
        return ONLINE
    if (major, minor) == (15, 2):
        if build is None:
            return Release(
                "Exchange Server 2019 or Subscription Edition", "ended", None, EXCHANGE_2019.upgrade
            )
        return SE if build >= SE_FIRST_BUILD else EXCHANGE_2019
    known = {(15, 1): EXCHANGE_2016, (15, 0): EXCHANGE_2013, (14, None): EXCHANGE_2010}
    known[(8, None)] = EXCHANGE_2007
    found = known.get((major, minor)) or known.get((major, None))
    if found is not None:
        return found
    return Release(f"Exchange {major}.{minor}", "unknown")


@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    build: int | None
    source: str

    @property
    def dotted(self) -> str:
        return f"{self.major}.{self.minor}" + (f".{self.build}" if self.build is not None else "")

    @property
    def release(self) -> Release:
        return release_of(self.major, self.minor, self.build)


def from_dotted(text: str | None, source: str) -> Version | None:
    match = re.match(r"^\s*([0-9]{1,9})\.([0-9]{1,9})(?:\.([0-9]{1,9}))?", text or "")
    if not match:
        return None
    build = int(match.group(3)) if match.group(3) else None
    return Version(int(match.group(1)), int(match.group(2)), build, source)


def from_server_version_hex(text: str | None) -> Version | None:
    """MS-OXDISCO ServerVersion: 4 bits 0111, 6 bits major, 6 bits minor, 1 bit, 15 bits build."""
    try:
        value = int(text or "", 16)
    except ValueError:
        return None
    return Version(
        (value >> 22) & 0x3F, (value >> 16) & 0x3F, value & 0x7FFF, "Autodiscover ServerVersion"
    )


def from_soap(body: bytes) -> Version | None:
    try:
        root = ElementTree.fromstring(body)
    except Exception:  # defusedxml raises several kinds; all mean "not EWS"
        return None
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.endswith("}ServerVersionInfo"):
            major, minor = (
                _number(element.get("MajorVersion")),
                _number(element.get("MinorVersion")),
            )
            if major is not None and minor is not None:
                build = _number(element.get("MajorBuildNumber"))
                return Version(major, minor, build, "EWS ServerVersionInfo")
    return None


def _number(text: str | None) -> int | None:
    """A version part as the server wrote it, if it is one (servers have sent anything)."""
    return int(text) if text and re.fullmatch(r"[0-9]{1,9}", text.strip()) else None
