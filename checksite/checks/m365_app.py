"""Our Microsoft application, the permissions the product publishes, and the one way the Check
site reads a customer's tenant: with the token of an administrator of that tenant who signed in
on the report page. Our own credentials (client credentials) are never used against a customer,
so an anonymous visitor learns only what Microsoft publishes about a domain."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlencode

import requests

from checksite.checks.context import CheckContext
from checksite.checks.m365_tenant import tenant_of

DELEGATED = "delegated"
APPLICATION = "application"

# The product's published model (MICROSOFT_PERMISSION_MODE=delegated, the default): each user
# signs in and consents for their own mailbox; the administrator who links users reads names.
DELEGATED_PERMISSIONS = {
    "openid": "sign each user in",
    "profile": "show who is signed in",
    "email": "match the signed-in user to their SuperOffice user",
    "offline_access": "keep synchronizing without asking people to sign in again",
    "User.ReadBasic.All": "let the administrator who links users find each colleague's mailbox",
    "Calendars.ReadWrite": "read and write each user's appointments, in their own mailbox",
    "Contacts.ReadWrite": "read and write each user's contacts",
}
# The option (MICROSOFT_PERMISSION_MODE=application): app-only access, which reaches every
# mailbox unless an application access policy restricts it.
APPLICATION_PERMISSIONS = {
    "Calendars.ReadWrite": "read and write the appointments of the people you synchronize",
    "Contacts.ReadWrite": "read and write their contacts",
    "User.Read.All": "find the mailbox of each SuperOffice user",
}
# Microsoft Graph's application roles by id, as published in the permissions reference
# (https://learn.microsoft.com/en-us/graph/permissions-reference).
GRAPH_APP_ROLE_NAMES = {
    "ef54d2bf-783f-4e0f-bca1-3210c0444d99": "Calendars.ReadWrite",
    "6918b873-d17a-4dc1-b314-35f528134491": "Contacts.ReadWrite",
    "df021288-bdef-4463-88db-98f22de89214": "User.Read.All",
    "498476ce-e0fe-48b0-b801-37ba7e2685c6": "Organization.Read.All",
    "7ab1d382-f21e-4acd-a863-ba3e13f7da61": "Directory.Read.All",
    "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30": "Application.Read.All",
}

# What the administrator's sign-in asks for, per part of the report (read-only, least privileged
# per Graph's documentation of each call), so the administrator grants only what is read.
READ_PLANS = ("LicenseAssignment.Read.All",)  # subscribedSkus, users/{id}/licenseDetails
READ_CONSENT = {
    DELEGATED: ("Directory.Read.All", "Policy.Read.All"),  # our grants; may users consent?
    APPLICATION: ("Application.Read.All",),  # our service principal's app role assignments
}
# Broader permissions that also cover a read (a sign-in that already holds one suffices).
COVERED_BY = {
    "LicenseAssignment.Read.All": ("Directory.Read.All",),
    "Application.Read.All": ("Directory.Read.All",),
}

ADMIN_TOKEN = "microsoft_admin_token"  # noqa: S105  (CheckContext.credentials keys)
ADMIN_SIGN_IN = "microsoft_admin_sign_in"  # the verified id_token's facts, as JSON


@dataclass(frozen=True)
class AdminSignIn:
    """Who signed in, from the verified id_token, and what the token may read."""

    token: str
    tenant_id: str
    username: str
    scopes: frozenset[str]

    def may(self, *permissions: str) -> bool:
        return all(
            p in self.scopes or any(b in self.scopes for b in COVERED_BY.get(p, ()))
            for p in permissions
        )


def permission_mode(context: CheckContext) -> str:
    return str(context.setting("microsoft_permission_mode", DELEGATED))


def required_permissions(context: CheckContext) -> dict[str, str]:
    if permission_mode(context) == APPLICATION:
        return APPLICATION_PERMISSIONS
    return DELEGATED_PERMISSIONS


def consent_reads(context: CheckContext) -> tuple[str, ...]:
    return READ_CONSENT[permission_mode(context)]


def admin_sign_in(context: CheckContext) -> AdminSignIn | None:
    """The sign-in handed to this run, whichever tenant it belongs to (see `admin_of_target`)."""
    token = context.credentials.get(ADMIN_TOKEN)
    raw = context.credentials.get(ADMIN_SIGN_IN)
    if not token or not raw:
        return None
    facts = json.loads(raw)
    return AdminSignIn(
        token=token,
        tenant_id=str(facts["tenant_id"]),
        username=str(facts["username"]),
        scopes=frozenset(facts.get("scopes", [])),
    )


def admin_of_target(context: CheckContext) -> AdminSignIn | None:
    """The sign-in, only when it belongs to the target's tenant: its verified tenant id is the
    one Microsoft publishes for the domain. Anything else is not used for this report."""
    signed = admin_sign_in(context)
    tenant = tenant_of(context)
    if signed is None or tenant.id is None or signed.tenant_id.lower() != tenant.id.lower():
        return None
    return signed


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


def graph_get(
    context: CheckContext, token: str, path: str, params: dict[str, str] | None = None
) -> requests.Response:
    graph = context.setting("microsoft_graph_url")
    return context.session().get(
        f"{graph}/v1.0{path}", params=params, headers={"Authorization": f"Bearer {token}"}
    )
