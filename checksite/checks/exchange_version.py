"""[exchange_version] For on-premises Exchange: the server version, from EWS itself when we
can sign in (ServerVersionInfo), else from what the server announces (X-OWA-Version, the
Autodiscover ServerVersion). Exchange Server Subscription Edition passes; 2016 and 2019 still
work but are out of Microsoft's support since 14 October 2025 (a warning with the upgrade
path); 2013 and older fail; Exchange Online (15.20 and later) is never told to upgrade."""

from __future__ import annotations

from collections.abc import Iterator

from checksite.checks.autodiscover import discovery
from checksite.checks.context import CheckContext
from checksite.checks.ews_probe import ews_answer
from checksite.checks.exchange_release import (
    Version,
    from_dotted,
    from_server_version_hex,
)
from checksite.checks.model import Step, Stopwatch

ID = "exchange_version"
TITLE = "Exchange version"


def run(context: CheckContext) -> Iterator[Step]:
    watch = Stopwatch()
    found = discovery(context)
    if found.outcome in ("skipped", "cloud"):
        message = (
            found.message
            if found.outcome == "skipped"
            else ("The mailbox lives in Exchange Online: there is no server version to check.")
        )
        yield Step("exchange_version.skipped", "Exchange version", "skip", message)
        return
    evidence: list[Step] = []
    version = None
    if found.ews_url:
        answer = ews_answer(context, found.ews_url)
        message = f"HTTP {answer.status}." if answer.status is not None else answer.message
        if answer.auth_problem:  # the version may still show in the headers
            message += f" {answer.auth_problem}"
        evidence.append(
            Step(
                "exchange_version.ews",
                "EWS request",
                "info" if answer.status is not None and not answer.auth_problem else "warn",
                f"POST {found.ews_url}: {message}",
                details={"http_status": answer.status},
            )
        )
        version = answer.version
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


def _verdict(version: Version, evidence: list[Step], watch: Stopwatch) -> Step:
    release = version.release
    details = {"version": version.dotted, "release": release.name, "source": version.source}
    found = f"{release.name}: version {version.dotted}, from the {version.source}."

    def step(status: str, message: str, remediation: str = "") -> Step:
        return Step(
            "exchange_version.result",
            "Exchange version",
            status,  # type: ignore[arg-type]
            message,
            details={**details, "support": release.support},
            remediation=remediation,
            children=evidence,
            elapsed_ms=watch.ms(),
        )

    if release.support == "current":
        return step("pass", f"{found} Current, supported by Microsoft and by Synchronizer.")
    if release.support == "online":
        return step(
            "pass",
            f"{found} Exchange Online is kept current by Microsoft; there is nothing to "
            "upgrade. Synchronizer reaches Microsoft 365 mailboxes through Microsoft Graph.",
        )
    if release.support == "ended":
        ended = f"since {release.ended}" if release.ended else "(if it is 2019) since October 2025"
        return step(
            "warn",
            f"{found} Synchronizer works with it, but it is out of Microsoft's support {ended}: "
            "no more security updates.",
            release.upgrade,
        )
    if release.support == "unsupported":
        return step(
            "fail",
            f"{found} {release.name} reached the end of Microsoft's support in {release.ended}: "
            "it gets no security updates, and Synchronizer does not support it.",
            release.upgrade,
        )
    return step(
        "warn",
        f"{found} This is not an Exchange version Synchronizer knows; it supports Exchange "
        "Server Subscription Edition (SE), and 2016 and 2019 still work.",
    )
