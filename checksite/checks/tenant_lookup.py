"""Microsoft's public tenant lookup for a domain (no credentials): openid-configuration gives
the tenant id, getuserrealm how people sign in. It is evidence for the mail system whatever the
MX says, so it is computed once per run and shared ([dns], [m365_tenant], [m365_plan], …).

"Microsoft says there is no tenant" (AADSTS90002) and "we could not ask Microsoft" are kept
apart: only the first is evidence about the customer's domain."""

from __future__ import annotations

import re
from dataclasses import dataclass

import requests

from checksite.checks.autodiscover_client import describe_error
from checksite.checks.context import CheckContext
from common.http import BodyTooLarge
from common.netguard import Blocked, ResolveError

DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
_TENANT_ID = re.compile(r"/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/")


@dataclass(frozen=True)
class Tenant:
    id: str | None
    namespace: str | None = None
    brand: str | None = None
    auth_url: str | None = None
    error: str | None = None
    lookup_failed: bool = False  # we could not ask Microsoft (our side, or Microsoft's)


def tenant_of(context: CheckContext) -> Tenant:
    """The tenant behind the target's domain, looked up once per run."""
    return context.fact("m365_tenant", lambda: lookup(context, context.target.domain))


def tenant_id_of_domain(context: CheckContext, domain: str) -> str | None:
    """The tenant id of another domain (e.g. where Autodiscover redirected an address)."""
    if domain == context.target.domain:
        return tenant_of(context).id
    return context.fact(f"m365_tenant:{domain}", lambda: lookup(context, domain, realm=False)).id


def lookup(context: CheckContext, domain: str, *, realm: bool = True) -> Tenant:
    authority = context.setting("microsoft_authority_host", DEFAULT_AUTHORITY)
    session = context.session()
    try:
        response = session.get(f"{authority}/{domain}/v2.0/.well-known/openid-configuration")
    except (Blocked, ResolveError, BodyTooLarge) as exc:
        return Tenant(None, error=f"Microsoft's tenant lookup failed: {exc}", lookup_failed=True)
    except requests.RequestException as exc:
        return Tenant(
            None,
            error=f"Microsoft's tenant lookup failed: {describe_error(exc)}",
            lookup_failed=True,
        )
    code = _aadsts(response)
    if response.status_code == 400 and code is not None:
        return Tenant(None, error=f"no Microsoft 365 tenant has {domain} ({code})")
    try:
        configuration = response.json() if response.status_code == 200 else None
    except ValueError:
        configuration = None
    if not isinstance(configuration, dict):
        return Tenant(
            None,
            error=f"Microsoft's tenant lookup answered HTTP {response.status_code}",
            lookup_failed=True,
        )
    match = _TENANT_ID.search(str(configuration.get("token_endpoint", "")) + "/")
    if match is None:
        return Tenant(None, error="Microsoft's answer named no tenant", lookup_failed=True)
    data = _realm(context, session, authority, domain) if realm else {}
    return Tenant(
        match.group(1),
        namespace=data.get("NameSpaceType"),
        brand=data.get("FederationBrandName"),
        auth_url=data.get("AuthURL"),
    )


def _realm(
    context: CheckContext, session: requests.Session, authority: str, domain: str
) -> dict[str, str]:
    login = context.target.mailbox or f"someone@{domain}"
    try:
        realm = session.get(f"{authority}/getuserrealm.srf", params={"login": login, "json": "1"})
        data = realm.json() if realm.status_code == 200 else {}
    except (Blocked, ResolveError, BodyTooLarge, requests.RequestException, ValueError):
        data = {}
    return data if isinstance(data, dict) else {}


def _aadsts(response: requests.Response) -> str | None:
    try:
        description = response.json().get("error_description", "")
    except (ValueError, AttributeError):
        return None
    match = re.match(r"(AADSTS\d+)", str(description))
    return match.group(1) if match else None
