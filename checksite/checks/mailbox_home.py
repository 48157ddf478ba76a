"""Where a hybrid's mailbox lives: in Exchange Online or on the organisation's own Exchange.
Evidence, strongest first: the on-premises Autodiscover answer with the mailbox password
(settings, or a redirect to the tenant's routing address), then Exchange Online's public
Autodiscover v2, which needs no credentials."""

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
    if urlsplit(ews).netloc.lower() == urlsplit(outlook).netloc.lower():
        return Home(CLOUD, "Exchange Online's Autodiscover gives Exchange Online's own EWS URL")
    return Home(
        ON_PREMISES,
        f"Exchange Online's Autodiscover sends it to {urlsplit(ews).hostname} ({ews})",
    )
