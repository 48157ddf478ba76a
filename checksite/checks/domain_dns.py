"""[dns] The domain resolves, and its MX records say which mail system it probably uses."""

from __future__ import annotations

from collections.abc import Iterator

from checksite.checks.context import CheckContext
from checksite.checks.mail_system import (
    GOOGLE,
    ICLOUD,
    MICROSOFT_365,
    NO_MX,
    ON_PREMISES,
    OTHER,
    UNKNOWN,
    classify_host,
    mail_system,
)
from checksite.checks.model import Step, Stopwatch

ID = "dns"
TITLE = "Domain and mail servers (DNS)"

NEXT_CHECKS = {
    MICROSOFT_365: "Microsoft 365 checks follow: tenant, plan and app consent.",
    GOOGLE: "Google Workspace checks follow: trusted app, delegation and administrator role.",
    ON_PREMISES: "On-premises checks follow: Autodiscover, TLS and the Exchange version.",
    ICLOUD: "iCloud Mail cannot be synchronized (see the unsupported check).",
    OTHER: "The mail service is not recognised; Autodiscover will show whether Exchange is "
    "behind it.",
}


def run(context: CheckContext) -> Iterator[Step]:
    watch = Stopwatch()
    domain = context.target.domain
    system = mail_system(context)
    if not system.domain_exists:
        yield Step(
            "dns.domain",
            "The domain exists",
            "fail",
            f"{domain} does not exist in DNS.",
            remediation="Check the spelling of the domain or mailbox address.",
            elapsed_ms=watch.ms(),
        )
        return
    if system.kind == UNKNOWN:
        yield Step(
            "dns.domain",
            "The domain resolves",
            "fail",
            system.error,
            remediation="The domain's DNS servers did not answer; try again in a few minutes, "
            "and ask whoever hosts the domain's DNS if it persists.",
            elapsed_ms=watch.ms(),
        )
        return
    yield Step("dns.domain", "The domain exists", "pass", f"{domain} exists in DNS.")
    if system.kind == NO_MX:
        yield Step(
            "dns.mx",
            "Mail servers (MX records)",
            "warn",
            f"{domain} has no MX record, so it receives no mail and its mail system cannot be "
            "told from DNS.",
            remediation="If this is the domain of your mail addresses, publish its MX records; "
            "otherwise enter the domain your mailboxes use.",
            elapsed_ms=watch.ms(),
        )
        return
    children = [
        Step(
            f"dns.mx.{index}",
            record.host,
            "info",
            f"preference {record.preference}: {classify_host(record.host, domain)}",
            details={"preference": record.preference, "host": record.host},
        )
        for index, record in enumerate(system.mx)
    ]
    yield Step(
        "dns.mx",
        "Mail servers (MX records)",
        "pass",
        f"Mail for {domain} goes to {system.label} ({system.mx[0].host}).",
        details={"system": system.kind, "mx": [r.host for r in system.mx]},
        children=children,
        elapsed_ms=watch.ms(),
    )
    yield Step(
        "dns.system",
        "Mail system",
        "info",
        " ".join((NEXT_CHECKS[system.kind], *system.notes)),
        details={"system": system.kind, "label": system.label},
    )
