"""Our Microsoft application in the customer's tenant: an app-only token (client credentials,
msal over the guarded session) tells whether it is consented and with which permissions, and
lets [m365_plan] read the tenant's licences without anyone signing in."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import msal
import requests

from checksite.checks.context import CheckContext
from checksite.checks.m365_tenant import tenant_of
from common.http import BodyTooLarge
from common.netguard import Blocked, ResolveError

# What we ask for, and why (shown when consent is missing or incomplete).
REQUIRED_PERMISSIONS = {
    "Calendars.ReadWrite": "read and write the appointments of the people you synchronize",
    "Contacts.ReadWrite": "read and write their contacts",
    "User.Read.All": "find the mailbox of each SuperOffice user",
    "Organization.Read.All": "check that your plans include Exchange Online",
}
# The resource is named by Graph's application id URI, wherever Graph is reached.
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
NOT_CONSENTED = 700016  # AADSTS700016: no service principal for the app in this tenant
# What someone signing in interactively is told when our app is not consented:
CONSENT_REQUIRED = 65001  # nobody consented yet (users may, or an administrator does)
APPROVAL_REQUIRED = 90094  # users may not consent: "approval for apps" (admin consent workflow)


@dataclass
class AppToken:
    token: str | None = None
    roles: list[str] = field(default_factory=list)
    error_code: int | None = None
    error: str | None = None
    configured: bool = True


ADMIN_TOKEN = "microsoft_admin_token"  # noqa: S105  (a dict key: where the token goes)
# "<AADSTS code or 'consented'> <who signed in>": what the interactive sign-in revealed.
CONSENT_SIGN_IN = "microsoft_consent_sign_in"


def admin_token(context: CheckContext) -> str | None:
    """The Graph token of an administrator who signed in on the page (delegated, read-only)."""
    return context.credentials.get(ADMIN_TOKEN)


def app_token(context: CheckContext) -> AppToken:
    return context.fact("m365_app_token", lambda: _acquire(context))


def _acquire(context: CheckContext) -> AppToken:
    client_id = context.setting("microsoft_client_id")
    secret = context.setting("microsoft_client_secret")
    tenant = tenant_of(context)
    if not client_id or not secret:
        return AppToken(configured=False, error="our Microsoft application is not configured")
    if tenant.id is None:
        return AppToken(error=tenant.error or "the tenant was not found")
    authority = context.setting("microsoft_authority_host")
    try:
        application = msal.ConfidentialClientApplication(
            client_id,
            client_credential=secret,
            authority=f"{authority}/{tenant.id}",
            http_client=context.session(),
            instance_discovery=False,
            token_cache=msal.TokenCache(),
        )
        result = application.acquire_token_for_client(scopes=[GRAPH_SCOPE])
    except (Blocked, ResolveError, BodyTooLarge) as exc:
        return AppToken(error=str(exc))
    except (requests.RequestException, ValueError) as exc:
        return AppToken(error=f"the token request failed: {exc}")
    if "access_token" in result:
        claims = _claims(result["access_token"])
        return AppToken(result["access_token"], sorted(claims.get("roles", [])))
    codes = result.get("error_codes") or [None]
    description = str(result.get("error_description", result.get("error", ""))).splitlines()[0]
    return AppToken(error_code=codes[0], error=description)


def _claims(token: str) -> dict[str, Any]:
    """The token's claims, read for display only (the token is used, never trusted here)."""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def admin_consent_url(context: CheckContext, tenant_id: str) -> str:
    authority = context.setting("microsoft_authority_host")
    public_url = str(context.setting("public_url", "")).rstrip("/")
    query = urlencode(
        {
            "client_id": context.setting("microsoft_client_id"),
            "redirect_uri": f"{public_url}/",
        }
    )
    return f"{authority}/{tenant_id}/adminconsent?{query}"


def graph_get(context: CheckContext, token: str, path: str) -> requests.Response:
    graph = context.setting("microsoft_graph_url")
    return context.session().get(
        f"{graph}/v1.0{path}", headers={"Authorization": f"Bearer {token}"}
    )
