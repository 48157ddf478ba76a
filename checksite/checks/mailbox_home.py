"""Where a hybrid's mailbox lives: in Exchange Online or on the organisation's own Exchange.
Evidence, strongest first: the on-premises Autodiscover answer with the mailbox password
(settings, or a redirect to the tenant's routing address), then Exchange Online's public
Autodiscover v2, which needs no credentials.

Exchange Online's Autodiscover v2, as Microsoft documents it: for a mailbox it holds, a 200 with
the protocol's `Url` on its own host; for a hybrid's mailbox still on-premises, "Exchange Online
determines that the user's mailbox is on-premises and returns a 302-redirect ... with the
on-premises Autodiscover URL" (https://autodiscover.contoso.com/autodiscover/autodiscover.json?
Email=...&Protocol=...): "Using hybrid Modern Authentication with Outlook for iOS and Android",
Connection flow, step 1 (https://learn.microsoft.com/exchange/clients/outlook-for-ios-and-android/use-hybrid-modern-auth).
It also redirects "to the right cloud" (another Microsoft host), and a call that does not end
in a 200 "could be caused by using an invalid smtp address" (Microsoft's CSS-Exchange,
Shared/Get-ProtocolEndpointViaAutoDv2.ps1): neither says where the mailbox is.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import requests

from checksite.checks.autodiscover import discovery
from checksite.checks.autodiscover_client import describe_error
from checksite.checks.context import CheckContext
from common.http import BodyTooLarge
from common.netguard import Blocked, ResolveError

DEFAULT_OUTLOOK = "https://outlook.office365.com"
CLOUD = "cloud"
ON_PREMISES = "onpremises"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Home:
    where: str  # cloud | onpremises | unknown
    evidence: str


def mailbox_home(context: CheckContext) -> Home:
    return context.fact("mailbox_home", lambda: _find(context))


def _find(context: CheckContext) -> Home:
    mailbox = context.target.mailbox
    if mailbox is None:
        return Home(UNKNOWN, "no mailbox address was given")
    found = discovery(context)
    if found.outcome == "cloud":
        return Home(CLOUD, f"on-premises Autodiscover redirects it to {found.mailbox}")
    if found.outcome == "settings" and found.mailbox == mailbox:
        return Home(ON_PREMISES, f"on-premises Autodiscover gives its settings ({found.ews_url})")
    return _ask_exchange_online(context, mailbox)


def _ask_exchange_online(context: CheckContext, mailbox: str) -> Home:
    outlook = str(context.setting("microsoft_outlook_url", DEFAULT_OUTLOOK)).rstrip("/")
    url = f"{outlook}/autodiscover/autodiscover.json/v1.0/{quote(mailbox, safe='@')}"
    try:
        response = context.session().get(url, params={"Protocol": "EWS"}, allow_redirects=False)
    except (Blocked, ResolveError, BodyTooLarge) as exc:
        return Home(UNKNOWN, f"Exchange Online's Autodiscover could not be asked: {exc}")
    except requests.RequestException as exc:
        return Home(UNKNOWN, f"Exchange Online's Autodiscover failed: {describe_error(exc)}")
    if response.is_redirect:
        return _redirected(outlook, response.headers.get("Location", ""))
    try:
        answer = response.json() if response.status_code == 200 else None
    except ValueError:
        answer = None
    ews = answer.get("Url") if isinstance(answer, dict) else None
    if not isinstance(ews, str) or not urlsplit(ews).hostname:
        return Home(
            UNKNOWN,
            f"Exchange Online's Autodiscover did not name its EWS URL (HTTP {response.status_code})",
        )
    if _microsoft_host(urlsplit(ews).hostname or "", outlook):
        return Home(CLOUD, "Exchange Online's Autodiscover gives Exchange Online's own EWS URL")
    return Home(
        ON_PREMISES,
        f"Exchange Online's Autodiscover sends it to {urlsplit(ews).hostname} ({ews})",
    )


# Exchange Online's hosts in Microsoft's clouds (worldwide, US Government, Germany, China), to
# which Autodiscover v2 sends an address it does not answer for itself.
MICROSOFT_CLOUD_HOSTS = (
    "outlook.com",
    "office365.com",
    "office.com",
    "office365.us",
    "office.de",
    "outlook.cn",
    "microsoft.com",
)
ON_PREMISES_AUTODISCOVER_PATH = "/autodiscover/autodiscover.json"


def _redirected(outlook: str, location: str) -> Home:
    """A redirect from Exchange Online's Autodiscover v2: to an on-premises Autodiscover for a
    hybrid's mailbox on-premises; within Microsoft's clouds it says nothing about the mailbox."""
    try:
        target = urlsplit(location)
        host = (target.hostname or "").lower()
    except ValueError:
        host = ""
    if not host:
        return Home(UNKNOWN, "Exchange Online's Autodiscover redirected without a valid address")
    if _microsoft_host(host, outlook):
        return Home(
            UNKNOWN,
            f"Exchange Online's Autodiscover passes the address on to {host} (another part of "
            "Microsoft's cloud, or an address it does not know)",
        )
    if target.scheme != "https" or not target.path.lower().startswith(
        ON_PREMISES_AUTODISCOVER_PATH
    ):
        return Home(UNKNOWN, f"Exchange Online's Autodiscover redirected to {location}")
    return Home(
        ON_PREMISES,
        f"Exchange Online's Autodiscover redirects it to the on-premises Autodiscover on {host}",
    )


def _microsoft_host(host: str, outlook: str) -> bool:
    host = host.lower()
    return host == (urlsplit(outlook).hostname or "").lower() or any(
        host == suffix or host.endswith("." + suffix) for suffix in MICROSOFT_CLOUD_HOSTS
    )
