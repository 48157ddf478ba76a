"""[unsupported] Plain answers for set-ups Synchronizer does not support, so nobody waits for
a fix that will not come: IMAP/POP3-only mail, iCloud, pre-authentication gateways, two-factor
authentication on on-premises Exchange, and Active Directory sign-in for the portal."""

from __future__ import annotations

from collections.abc import Iterator

import dns.exception
import dns.resolver

from checksite.checks.autodiscover import discovery
from checksite.checks.context import CheckContext
from checksite.checks.mail_system import GOOGLE, ICLOUD, MICROSOFT_365, NO_MX, mail_system
from checksite.checks.model import Step

ID = "unsupported"
TITLE = "Unsupported set-ups"
MAIL_ONLY_SRV = ("_imaps._tcp", "_imap._tcp", "_pop3s._tcp", "_pop3._tcp", "_submission._tcp")


def run(context: CheckContext) -> Iterator[Step]:
    system = mail_system(context)
    if system.kind == ICLOUD:
        yield Step(
            "unsupported.icloud",
            "iCloud Mail",
            "fail",
            "This domain's mail is hosted by iCloud. iCloud offers no calendar and contact "
            "interface for organisations that Synchronizer could use.",
            remediation="Synchronizer works with Exchange 2016/2019, Microsoft 365 or Google "
            "Workspace; moving the domain's mailboxes to one of them is the way forward.",
        )
        return
    if system.kind in (MICROSOFT_365, GOOGLE, NO_MX) or not system.domain_exists:
        yield _portal_sign_in()
        return
    found = discovery(context)
    if found.outcome in ("none", "skipped"):
        services = _mail_only_services(context)
        if services:
            yield Step(
                "unsupported.imap_pop",
                "IMAP/POP3-only mail",
                "fail",
                "This domain offers mail over "
                + ", ".join(services)
                + " but no Exchange: IMAP and POP3 carry mail only, not calendars or contacts, "
                "so there is nothing to synchronize with SuperOffice.",
                details={"srv_records": services},
                remediation="Synchronizer needs Exchange 2016/2019, Microsoft 365 or Google "
                "Workspace for the mailboxes.",
            )
    if found.outcome == "login_page":
        yield Step(
            "unsupported.pre_authentication",
            "Pre-authentication gateway (Citrix NetScaler style)",
            "fail",
            "A gateway in front of Exchange answers with a web sign-in page. Synchronizer, "
            "like every Exchange Web Services client, cannot fill in such a form.",
            remediation="Publish /EWS and /autodiscover without form-based pre-authentication "
            "(pass-through to Exchange), or exempt Synchronizer's outbound IP address.",
        )
    if found.outcome in ("settings", "found", "login_page", "manual"):
        yield Step(
            "unsupported.two_factor",
            "Two-factor authentication on Exchange",
            "info",
            "Synchronizer signs in to on-premises Exchange with a service account and its "
            "password; two-factor authentication on EWS is not supported.",
            remediation="If EWS sits behind multi-factor authentication, exempt the service "
            "account (or Synchronizer's outbound IP address) from it.",
        )
    yield _portal_sign_in()


def _mail_only_services(context: CheckContext) -> list[str]:
    found = []
    for prefix in MAIL_ONLY_SRV:
        try:
            if context.guard.query(f"{prefix}.{context.target.domain}", "SRV"):
                found.append(prefix.split(".")[0].lstrip("_").upper())
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
            continue
        except dns.exception.Timeout:
            break
    return found


def _portal_sign_in() -> Step:
    return Step(
        "unsupported.portal_ad",
        "Active Directory sign-in for the portal",
        "info",
        "The Synchronizer portal signs people in with their SuperOffice credentials "
        "(administrators also with local accounts); Active Directory sign-in is not supported.",
    )
