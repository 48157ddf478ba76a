"""[dns] The domain resolves, where its MX records point, and which mail system it uses with
the evidence for it (MX, SPF, Microsoft's tenant lookup): the fact the other checks follow."""

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
    PERSONAL,
    UNDETERMINED,
    UNKNOWN,
    classify_host,
    filter_of,
    mail_system,
)
from checksite.checks.model import Step, Stopwatch
from checksite.checks.own_network import OURS

ID = "dns"
TITLE = "Domain and mail servers (DNS)"

NEXT_CHECKS = {
    MICROSOFT_365: "Microsoft 365 checks follow: tenant, plan and app consent; Autodiscover "
    "shows whether on-premises Exchange is still there too (a hybrid).",
    GOOGLE: "Google Workspace checks follow: trusted app, delegation and administrator role.",
    ON_PREMISES: "On-premises checks follow: Autodiscover, TLS and the Exchange version.",
    ICLOUD: "iCloud Mail cannot be synchronized (see the unsupported check).",
    OTHER: "The mail service is not Microsoft 365 or Google; Autodiscover will show whether "
    "Exchange is behind it.",
    UNDETERMINED: "Autodiscover will show whether Exchange is behind the filtering service.",
    NO_MX: "Autodiscover will show whether Exchange answers for the domain anyway.",
}
MX_LABELS = {
    MICROSOFT_365: "Microsoft 365 (Exchange Online Protection)",
    GOOGLE: "Google",
    ICLOUD: "iCloud Mail",
    ON_PREMISES: "a server of the domain itself",
    OTHER: "another mail service",
}


def run(context: CheckContext) -> Iterator[Step]:
    watch = Stopwatch()
    domain = context.target.domain
    if context.target.notes:
        yield Step("dns.input", "What was checked", "info", " ".join(context.target.notes))
    system = mail_system(context)
    if system.kind == PERSONAL:
        yield Step(
            "dns.system",
            "Mail system",
            "info",
            f"{domain} is a personal mail service, not an organisation's domain (see "
            "Unsupported set-ups).",
            details={"system": system.kind, "label": system.label},
        )
        return
    if not system.domain_exists:
        yield Step(
            "dns.domain",
            "The domain exists",
            "fail",
            f"{domain} does not exist in DNS.",
            details={"queried": domain},  # the DNS (ASCII) form, also of a domain like faß.de
            remediation="Check the spelling of the domain or mailbox address.",
            elapsed_ms=watch.ms(),
        )
        return
    if system.kind == UNKNOWN:
        yield _unknown(system.error, system.ours, watch)
        return
    yield Step(
        "dns.domain",
        "The domain exists",
        "pass",
        f"{domain} exists in DNS.",
        details={"queried": domain},
    )
    yield _mx_step(context, watch)
    yield Step(
        "dns.system",
        "Mail system",
        "info",
        f"{system.label[:1].upper()}{system.label[1:]}"
        + (f", from: {'; '.join(system.evidence)}." if system.evidence else ".")
        + " "
        + " ".join((NEXT_CHECKS.get(system.kind, ""), *system.notes)),
        details={"system": system.kind, "label": system.label, "evidence": system.evidence},
    )


def _unknown(error: str, ours: bool, watch: Stopwatch) -> Step:
    if ours:
        return Step(
            "dns.domain",
            "The Check site's DNS resolver",
            "fail",
            f"{error[:1].upper()}{error[1:]} {OURS}",
            remediation="Try again in a few minutes. Operators: check the resolver the Check "
            "site uses (CHECK_DNS_SERVERS, else the system's).",
            elapsed_ms=watch.ms(),
        )
    return Step(
        "dns.domain",
        "The domain resolves",
        "fail",
        f"{error[:1].upper()}{error[1:]}; the Check site's own resolver answers, so the "
        "domain's DNS servers are failing.",
        remediation="The domain's DNS servers did not answer; try again in a few minutes, "
        "and ask whoever hosts the domain's DNS if it persists.",
        elapsed_ms=watch.ms(),
    )


def _mx_step(context: CheckContext, watch: Stopwatch) -> Step:
    domain = context.target.domain
    system = mail_system(context)
    if not system.mx:
        return Step(
            "dns.mx",
            "Mail servers (MX records)",
            "warn",
            f"{domain} has no MX record, so it receives no mail.",
            remediation="If this is the domain of your mail addresses, publish its MX records; "
            "otherwise enter the domain your mailboxes use.",
            elapsed_ms=watch.ms(),
        )
    children = [
        Step(
            f"dns.mx.{index}",
            record.host,
            "info",
            f"preference {record.preference}: {_mx_label(record.host, domain)}",
            details={"preference": record.preference, "host": record.host},
        )
        for index, record in enumerate(system.mx)
    ]
    first = system.mx[0].host
    return Step(
        "dns.mx",
        "Mail servers (MX records)",
        "pass",
        f"Mail for {domain} goes to {first} ({_mx_label(first, domain)}).",
        details={"system": system.kind, "mx": [r.host for r in system.mx]},
        children=children,
        elapsed_ms=watch.ms(),
    )


def _mx_label(host: str, domain: str) -> str:
    gateway = filter_of(host)
    if gateway is not None:
        return f"{gateway}, a mail filtering service"
    return MX_LABELS.get(classify_host(host, domain), "another mail service")
