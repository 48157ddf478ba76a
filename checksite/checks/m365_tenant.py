"""[m365_tenant] The Microsoft 365 tenant exists (openid-configuration), its id, and whether
sign-in is Managed or Federated (getuserrealm); federation through a third-party identity
provider is flagged, because every sign-in then depends on that gateway."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from checksite.checks.autodiscover_client import describe_error
from checksite.checks.context import CheckContext
from checksite.checks.mail_system import MICROSOFT_365, mail_system
from checksite.checks.model import Step, Stopwatch
from common.http import BodyTooLarge
from common.netguard import Blocked, ResolveError

ID = "m365_tenant"
TITLE = "Microsoft 365 tenant"
_TENANT_ID = re.compile(r"/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/")
MICROSOFT_HOSTS = ("microsoftonline.com", "microsoft.com", "windows.net", "live.com")


@dataclass(frozen=True)
class Tenant:
    id: str | None
    namespace: str | None = None
    brand: str | None = None
    auth_url: str | None = None
    error: str | None = None


def tenant_of(context: CheckContext) -> Tenant:
    """The tenant behind the target's domain; shared with [m365_plan] and [app_consent]."""
    return context.fact("m365_tenant", lambda: _discover(context))


def _discover(context: CheckContext) -> Tenant:
    authority = context.setting("microsoft_authority_host", "https://login.microsoftonline.com")
    domain = context.target.domain
    session = context.session()
    try:
        response = session.get(f"{authority}/{domain}/v2.0/.well-known/openid-configuration")
    except (Blocked, ResolveError, BodyTooLarge) as exc:
        return Tenant(None, error=str(exc))
    except requests.RequestException as exc:
        return Tenant(None, error=describe_error(exc))
    if response.status_code != 200:
        code = _aadsts(response)
        return Tenant(
            None, error=f"no Microsoft 365 tenant has {domain} ({code or response.status_code})"
        )
    configuration = response.json()
    match = _TENANT_ID.search(configuration.get("token_endpoint", "") + "/")
    tenant_id = match.group(1) if match else None
    login = context.target.mailbox or f"someone@{domain}"
    try:
        realm = session.get(f"{authority}/getuserrealm.srf", params={"login": login, "json": "1"})
        data = realm.json() if realm.status_code == 200 else {}
    except (Blocked, ResolveError, BodyTooLarge, requests.RequestException, ValueError):
        data = {}
    return Tenant(
        tenant_id,
        namespace=data.get("NameSpaceType"),
        brand=data.get("FederationBrandName"),
        auth_url=data.get("AuthURL"),
    )


def _aadsts(response: requests.Response) -> str | None:
    try:
        description = response.json().get("error_description", "")
    except ValueError:
        return None
    match = re.match(r"(AADSTS\d+)", description)
    return match.group(1) if match else None


def run(context: CheckContext) -> Iterator[Step]:
    watch = Stopwatch()
    if mail_system(context).kind != MICROSOFT_365:
        yield Step(
            "m365_tenant.skipped",
            "Microsoft 365 tenant",
            "skip",
            "The domain's mail does not go to Microsoft 365.",
        )
        return
    tenant = tenant_of(context)
    if tenant.id is None:
        yield Step(
            "m365_tenant.exists",
            "The tenant exists",
            "fail",
            f"Microsoft does not know a tenant for {context.target.domain}: {tenant.error}.",
            remediation="Add and verify the domain in the Microsoft 365 admin center "
            "(Settings → Domains), or enter the domain your mailboxes use.",
            elapsed_ms=watch.ms(),
        )
        return
    yield Step(
        "m365_tenant.exists",
        "The tenant exists",
        "pass",
        f"{context.target.domain} belongs to the tenant {tenant.id}.",
        details={"tenant_id": tenant.id},
        elapsed_ms=watch.ms(),
    )
    yield _realm_step(tenant)
    yield _sign_in_step(context, tenant)


def _realm_step(tenant: Tenant) -> Step:
    details = {"namespace_type": tenant.namespace, "brand": tenant.brand}
    if tenant.namespace == "Managed":
        return Step(
            "m365_tenant.realm",
            "Sign-in",
            "pass",
            "Managed: people sign in at Microsoft directly.",
            details=details,
        )
    if tenant.namespace == "Federated":
        gateway = urlsplit(tenant.auth_url or "").hostname or "an unknown host"
        details["auth_host"] = gateway
        if gateway.endswith(MICROSOFT_HOSTS):
            return Step("m365_tenant.realm", "Sign-in", "info", "Federated.", details=details)
        return Step(
            "m365_tenant.realm",
            "Sign-in",
            "warn",
            f"Federated: sign-in goes through a third-party identity provider ({gateway}). "
            "Administrators' sign-in and consent for Synchronizer depend on it.",
            details=details,
            remediation=f"Make sure the administrator who consents can sign in through "
            f"{gateway}, and that it does not block Microsoft's OAuth consent flow.",
        )
    return Step(
        "m365_tenant.realm",
        "Sign-in",
        "warn",
        "Microsoft did not say how people of this domain sign in.",
        details=details,
    )


def _sign_in_step(context: CheckContext, tenant: Tenant) -> Step:
    """Who signed in, and whether that sign-in is used: only an account of this tenant's."""
    from checksite.checks.m365_app import admin_sign_in  # (m365_app needs tenant_of)

    signed = admin_sign_in(context)
    domain = context.target.domain
    if signed is None:
        return Step(
            "m365_tenant.sign_in",
            "Administrator's sign-in",
            "info",
            "Nobody signed in: this report holds only what Microsoft publishes about "
            f"{domain}. An administrator of this tenant can sign in on the report page so the "
            "report also reads your plans and licences and Synchronizer's consent, with the "
            "administrator's own read-only access.",
        )
    details = {"signed_in_tenant": signed.tenant_id, "tenant_id": tenant.id}
    if signed.tenant_id.lower() != str(tenant.id).lower():
        return Step(
            "m365_tenant.sign_in",
            "Administrator's sign-in",
            "warn",
            f"{signed.username} signed in with an account of another tenant "
            f"({signed.tenant_id}), not of {domain}'s tenant ({tenant.id}). Nothing from that "
            "sign-in is used in this report.",
            details=details,
            remediation=f"Sign in with an administrator account of {domain}'s tenant.",
        )
    return Step(
        "m365_tenant.sign_in",
        "Administrator's sign-in",
        "pass",
        f"{signed.username} signed in with an account of this tenant; the report reads with "
        f"that account's access ({', '.join(sorted(signed.scopes)) or 'sign-in only'}).",
        details={**details, "signed_in_as": signed.username},
    )
