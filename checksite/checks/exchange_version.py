"""[exchange_version] For on-premises Exchange: the server version, from EWS itself when we
can sign in (ServerVersionInfo), else from what the server announces (X-OWA-Version, the
Autodiscover ServerVersion). 2016 and 2019 pass; 2013 and older fail with the reason."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import requests
from defusedxml import ElementTree

from checksite.checks.autodiscover import credentials_for, discovery
from checksite.checks.autodiscover_client import (
    MALFORMED_ANSWER,
    auth_for,
    auth_methods,
    describe_error,
)
from checksite.checks.context import CheckContext
from checksite.checks.exchange_auth import KERBEROS_ONLY, kerberos_only
from checksite.checks.model import Step, Stopwatch
from common.http import BodyTooLarge
from common.netguard import Blocked, ResolveError

ID = "exchange_version"
TITLE = "Exchange version"

GET_FOLDER = b"""<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
    xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
  <soap:Header><t:RequestServerVersion Version="Exchange2013"/></soap:Header>
  <soap:Body>
    <m:GetFolder>
      <m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>
      <m:FolderIds><t:DistinguishedFolderId Id="calendar"/></m:FolderIds>
    </m:GetFolder>
  </soap:Body>
</soap:Envelope>"""
RELEASES = {
    (15, 2): "Exchange Server 2019",
    (15, 1): "Exchange Server 2016",
    (15, 0): "Exchange Server 2013",
    (14, None): "Exchange Server 2010",
    (8, None): "Exchange Server 2007",
}
SUPPORTED = {"Exchange Server 2019", "Exchange Server 2016"}
END_OF_SUPPORT = {
    "Exchange Server 2013": "April 2023",
    "Exchange Server 2010": "October 2020",
    "Exchange Server 2007": "April 2017",
}


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
    def release(self) -> str:
        return RELEASES.get((self.major, self.minor)) or RELEASES.get(
            (self.major, None), f"Exchange {self.dotted}"
        )


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


def run(context: CheckContext) -> Iterator[Step]:
    watch = Stopwatch()
    found = discovery(context)
    if found.outcome == "skipped":
        yield Step("exchange_version.skipped", "Exchange version", "skip", found.message)
        return
    evidence: list[Step] = []
    version = None
    if found.ews_url:
        version = _ask_ews(context, found.ews_url, evidence)
    version = version or from_server_version_hex(found.server_version)
    version = version or from_dotted(found.owa_version, "X-OWA-Version header")
    if version is None:
        yield Step(
            "exchange_version.unknown",
            "Exchange version",
            "skip" if found.outcome in ("none", "loop") else "warn",
            "The Exchange version could not be determined"
            + (" (EWS was not found)." if not found.ews_url else "."),
            children=evidence,
            elapsed_ms=watch.ms(),
        )
        return
    yield _verdict(version, evidence, watch)


def _ask_ews(context: CheckContext, url: str, evidence: list[Step]) -> Version | None:
    session = context.session()
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    watch = Stopwatch()
    try:
        response = session.post(url, data=GET_FOLDER, headers=headers, allow_redirects=False)
        password = context.target.password
        if url != context.target.ews_url:  # found by Autodiscover, not given by the person
            password = credentials_for(context, url, password)
        methods = auth_methods(response)
        if response.status_code == 401 and kerberos_only(
            session, url, methods, data=GET_FOLDER, headers=headers
        ):
            evidence.append(Step("exchange_version.ews", "EWS request", "warn", KERBEROS_ONLY))
            password = None  # NTLM cannot work; the version may still show in the headers
        if response.status_code == 401 and password and context.target.mailbox:
            auth = auth_for(methods, context.target.mailbox, password)
            if auth is not None:
                response = session.post(
                    url, data=GET_FOLDER, headers=headers, allow_redirects=False, auth=auth
                )
    except (Blocked, ResolveError, BodyTooLarge) as exc:
        evidence.append(Step("exchange_version.ews", "EWS request", "warn", str(exc)))
        return None
    except requests.RequestException as exc:
        evidence.append(Step("exchange_version.ews", "EWS request", "warn", describe_error(exc)))
        return None
    except ValueError:  # requests parses a Location even when it does not follow it
        evidence.append(Step("exchange_version.ews", "EWS request", "warn", MALFORMED_ANSWER))
        return None
    except PermissionError:  # requests_ntlm: the server never sent its NTLM challenge
        message = "EWS offers NTLM but never answered the NTLM handshake."
        evidence.append(Step("exchange_version.ews", "EWS request", "warn", message))
        return None
    version = from_soap(response.content) if response.status_code in (200, 500) else None
    message = f"POST {url}: HTTP {response.status_code}."
    if version is None:
        version = from_dotted(response.headers.get("X-OWA-Version"), "X-OWA-Version header")
    evidence.append(
        Step(
            "exchange_version.ews",
            "EWS request",
            "info",
            message,
            details={"http_status": response.status_code},
            elapsed_ms=watch.ms(),
        )
    )
    return version


def _verdict(version: Version, evidence: list[Step], watch: Stopwatch) -> Step:
    details = {"version": version.dotted, "release": version.release, "source": version.source}
    if version.release in SUPPORTED:
        return Step(
            "exchange_version.result",
            "Exchange version",
            "pass",
            f"{version.release} ({version.dotted}, from the {version.source}).",
            details=details,
            children=evidence,
            elapsed_ms=watch.ms(),
        )
    ended = END_OF_SUPPORT.get(version.release)
    reason = (
        f"{version.release} reached the end of Microsoft's support in {ended}: it gets no "
        "security updates, and Synchronizer supports Exchange 2016 and 2019 only."
        if ended
        else f"{version.release} is not a version Synchronizer supports (2016 and 2019)."
    )
    return Step(
        "exchange_version.result",
        "Exchange version",
        "fail",
        f"{version.release} ({version.dotted}, from the {version.source}). {reason}",
        details=details,
        remediation="Upgrade to Exchange Server 2019 (or Exchange Server Subscription "
        "Edition), or move the mailboxes to Microsoft 365.",
        children=evidence,
        elapsed_ms=watch.ms(),
    )
