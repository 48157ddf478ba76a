"""What an EWS failure means and what to do about it, from the exception exchangelib raised:
the wording of the [ews_access] steps (each cause with its fix, as the Remote Connectivity
Analyzer gives them)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from exchangelib.errors import (
    EWSError,
    RedirectError,
    TransportError,
    UnauthorizedError,
)

from checksite.checks.autodiscover_client import MALFORMED_ANSWER
from checksite.checks.model import Status
from common.http import BodyTooLarge
from common.netguard import Blocked, ResolveError

IMPERSONATION_HOWTO = (
    "https://learn.microsoft.com/en-us/exchange/client-developer/exchange-web-services/"
    "how-to-configure-impersonation"
)
RESPONSE_CODES = (
    "https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/responsecode"
)


@dataclass(frozen=True)
class Finding:
    status: Status
    message: str  # what went wrong, in plain words
    remediation: str
    code: str  # the EWS response code or the kind of failure, for the evidence


@dataclass(frozen=True)
class Who:
    """Who signed in (`account`: the mailbox itself, or a service account impersonating
    `mailbox`), through which EWS URL."""

    account: str
    mailbox: str
    url: str
    impersonating: bool = False

    @property
    def owa(self) -> str:
        """Outlook on the web, where a person can try the password (on the EWS host)."""
        parts = urlsplit(self.url)
        return f" ({parts.scheme}://{parts.netloc}/owa)" if parts.netloc else ""


class Failed(Exception):
    """A step that judged the answer itself (Autodiscover's, say): its finding as is."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


def explain(exc: Exception, who: Who) -> Finding:
    code = type(exc).__name__
    if isinstance(exc, Failed):
        return exc.finding
    if isinstance(exc, UnauthorizedError):
        return Finding(
            "fail",
            f"The server did not accept the password of {who.account} (HTTP 401).",
            password_help(who),
            code,
        )
    if code == "ErrorNonExistentMailbox":
        return Finding("fail", *_no_mailbox(who), code)
    if code in ("ErrorImpersonateUserDenied", "ErrorImpersonationDenied"):
        return Finding("fail", *_impersonation_denied(who), code)
    if code == "ErrorImpersonationFailed":
        return Finding(
            "fail",
            f"Exchange could not impersonate {who.mailbox}: the server failed to act as that "
            "user (ErrorImpersonationFailed).",
            "This is on the Exchange server's side: check its application event log; the "
            "usual causes are the account the EWS application pool runs as, Exchange not "
            "reaching Active Directory, or a trust between forests.",
            code,
        )
    if code == "ErrorAccessDenied":
        return Finding(
            "fail",
            f"{who.account} may not open the calendar of {who.mailbox} (ErrorAccessDenied).",
            "EWS may be switched off for this mailbox (Get-CASMailbox shows EwsEnabled) or "
            "blocked by the organisation's EWS application policy (Get-OrganizationConfig "
            "shows EwsApplicationAccessPolicy, EwsAllowList and EwsBlockList).",
            code,
        )
    if code == "ErrorServerBusy":
        back_off = getattr(exc, "back_off", None)
        wait = f" and asks to wait {back_off:g} s" if back_off else ""
        return Finding(
            "warn",
            f"Exchange is throttling {who.account}{wait} (ErrorServerBusy).",
            "Synchronizer waits as the server asks. If this happens often, give the account a "
            "throttling policy with more room (New-ThrottlingPolicy with a higher "
            "EwsMaxConcurrency, then Set-ThrottlingPolicyAssociation).",
            code,
        )
    if isinstance(exc, RedirectError):
        return Finding(
            "fail",
            "EWS does not answer: it sends the request on to another address "
            f"({exc.url}), typically the sign-in page of a gateway in front of Exchange.",
            "Let /EWS/ through the gateway without its own sign-in page (no pre-"
            "authentication for EWS), or publish EWS directly. Synchronizer signs in to "
            "Exchange itself and cannot fill in a web form.",
            "redirect",
        )
    if isinstance(exc, TransportError) and "auth type" in str(exc):
        return Finding(
            "fail",
            "EWS offers no sign-in method Synchronizer can use: it needs NTLM or Basic "
            "(Kerberos alone cannot be used from outside your network).",
            "Switch on Windows authentication (NTLM) for the EWS virtual directory: "
            "Set-WebServicesVirtualDirectory -Identity '<server>\\EWS (Default Web Site)' "
            "-WindowsAuthentication $true.",
            "no_usable_authentication",
        )
    if isinstance(exc, Blocked | ResolveError):
        return Finding(
            "fail",
            str(exc),
            "See the firewall check for this host.",
            code,
        )
    if isinstance(exc, BodyTooLarge):
        return Finding(
            "fail",
            f"EWS answered with more data than the Check site reads ({exc}).",
            "A proxy in front of Exchange may answer instead of it; open the EWS URL in a "
            "browser to see what answers.",
            "too_large",
        )
    if isinstance(exc, TransportError | requests.RequestException):
        return Finding(
            "fail",
            f"The Check site could not talk to EWS at {who.url}: the connection failed or "
            "the answer was not EWS.",
            "See the firewall and TLS checks for this host: they show where the connection stops.",
            code,
        )
    if isinstance(exc, EWSError):
        return Finding(
            "fail",
            f"EWS answered {code}: {exc}",
            f"Microsoft lists what each EWS response code means: {RESPONSE_CODES}",
            code,
        )
    if isinstance(exc, ValueError):  # requests parses a Location even when not following it
        return Finding(
            "fail",
            f"EWS at {who.url} answered, but not readably: {MALFORMED_ANSWER}",
            "Open the EWS URL in a browser to see what answers: a proxy or gateway in front "
            "of Exchange may send this answer instead of it.",
            "malformed_answer",
        )
    raise exc


def password_help(who: Who) -> str:
    return (
        "Check the service account's password; if it is right, the account may be locked, "
        "its password expired, or its sign-in name differ from what was given: give it as "
        "DOMAIN\\user or as its user principal name."
        if who.impersonating
        else f"Check the password by signing in to Outlook on the web{who.owa} with the "
        "same address. If it works there but not here, the server may not accept the e-mail "
        "address as sign-in name (its user principal name differs): ask your administrator."
    )


def _no_mailbox(who: Who) -> tuple[str, str]:
    subject = (
        f"{who.mailbox} is not a mailbox on this Exchange server"
        if who.impersonating
        else f"{who.account} signs in, but has no mailbox on this Exchange server"
    )
    return (
        f"{subject} (ErrorNonExistentMailbox).",
        "Check that the address is the primary address of a mailbox on this server "
        "(Get-Mailbox shows PrimarySmtpAddress). A mailbox moved to Exchange Online is "
        "reached through Microsoft 365, not through this server.",
    )


def _impersonation_denied(who: Who) -> tuple[str, str]:
    return (
        f"{who.account} may not impersonate {who.mailbox}: the service account has no "
        "ApplicationImpersonation role, or the role's management scope does not include "
        "this mailbox.",
        "In the Exchange Management Shell: New-ManagementRoleAssignment -Name "
        f"'Synchronizer impersonation' -Role ApplicationImpersonation -User {who.account}. "
        "To limit it, add -CustomRecipientWriteScope with a management scope that holds "
        f"every user who synchronizes. Microsoft's how-to: {IMPERSONATION_HOWTO}",
    )
