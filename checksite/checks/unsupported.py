"""[unsupported] Plain answers for set-ups Synchronizer does not support, recognised from
evidence, so nobody waits for a fix that will not come: personal mail addresses, IMAP/POP-only
mail hosting, iCloud, pre-authentication gateways, two-factor authentication on on-premises
Exchange, and Active Directory sign-in for the portal. Each is said once, here."""

from __future__ import annotations

from collections.abc import Iterator

from checksite.checks.autodiscover import discovery
from checksite.checks.context import CheckContext
from checksite.checks.mail_only import mail_only_evidence
from checksite.checks.mail_system import (
    GOOGLE,
    ICLOUD,
    MAY_BE_EXCHANGE,
    MICROSOFT_365,
    PERSONAL,
    mail_system,
    not_applicable,
)
from checksite.checks.model import Step

ID = "unsupported"
TITLE = "Unsupported set-ups"
WHAT_WORKS = (
    "Synchronizer works with an organisation's Microsoft 365, Google Workspace or on-premises "
    "Exchange (Exchange Server Subscription Edition; 2016 and 2019 still work)"
)


def run(context: CheckContext) -> Iterator[Step]:
    system = mail_system(context)
    if system.kind == PERSONAL:
        yield Step(
            "unsupported.personal",
            "Personal mail address",
            "fail",
            f"{context.target.domain} is a personal mail service: its accounts belong to single "
            "people, with no organisation whose calendars and contacts Synchronizer could "
            "connect to SuperOffice.",
            remediation=f"{WHAT_WORKS}: enter an address of your organisation's own domain.",
        )
        return
    if system.kind == ICLOUD:
        yield Step(
            "unsupported.icloud",
            "iCloud Mail",
            "fail",
            "This domain's mail is hosted by iCloud. iCloud offers no calendar and contact "
            "interface for organisations that Synchronizer could use.",
            remediation=f"{WHAT_WORKS}; moving the domain's mailboxes to one of them is the way "
            "forward.",
        )
        return
    if not_applicable(context) is not None or system.kind in (GOOGLE,):
        yield _portal_sign_in()
        return
    found = discovery(context) if system.kind in MAY_BE_EXCHANGE else None
    if found is not None and found.outcome == "none" and system.kind != MICROSOFT_365:
        evidence = mail_only_evidence(context)
        if evidence:
            yield Step(
                "unsupported.imap_pop",
                "IMAP/POP-only mail",
                "fail",
                "This domain's mail is IMAP/POP hosting without Exchange ("
                + "; ".join(evidence)
                + ", and no Exchange answers Autodiscover). IMAP and POP3 carry mail only, not "
                "calendars or contacts, so there is nothing to synchronize with SuperOffice.",
                details={"evidence": list(evidence)},
                remediation=f"{WHAT_WORKS}. If your mailboxes are on Exchange after all, "
                "publish its Autodiscover or give the EWS URL by hand.",
            )
    if found is not None and found.outcome == "login_page":
        yield Step(
            "unsupported.pre_authentication",
            "Pre-authentication gateway (Citrix NetScaler style)",
            "fail",
            "A gateway in front of Exchange answers with a web sign-in page. Synchronizer, "
            "like every Exchange Web Services client, cannot fill in such a form.",
            remediation="Publish /EWS and /autodiscover without form-based pre-authentication "
            "(pass-through to Exchange), or exempt Synchronizer's outbound IP address.",
        )
    if found is not None and found.outcome in ("settings", "found", "login_page", "manual"):
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


def _portal_sign_in() -> Step:
    return Step(
        "unsupported.portal_ad",
        "Active Directory sign-in for the portal",
        "info",
        "The Synchronizer portal signs people in with their SuperOffice credentials "
        "(administrators also with local accounts); Active Directory sign-in is not supported.",
    )
