"""Who has consented to what: our app's service principal and grants in each tenant.

Consent lives on the world's `Tenant` objects (so Graph's /servicePrincipals and
/oauth2PermissionGrants see what the identity endpoints changed).
"""

from __future__ import annotations

from simulators.world.microsoft import Tenant, User, stable_id

GRAPH_RESOURCE = "https://graph.microsoft.com"
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
# Delegated permissions only an administrator may consent to ("Admin consent required: Yes" in
# https://learn.microsoft.com/en-us/graph/permissions-reference).
ADMIN_CONSENT_SCOPES = frozenset(
    {
        "Application.Read.All",
        "DelegatedPermissionGrant.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
        "LicenseAssignment.Read.All",
        "Organization.Read.All",
        "Policy.Read.All",
        "User.Read.All",
    }
)
_GRAPH_PREFIXES = (GRAPH_RESOURCE + "/", "00000003-0000-0000-c000-000000000000/")


def graph_scopes(scope_param: str) -> tuple[list[str], bool]:
    """Split a requested scope string into Graph permission names and whether `.default` was
    asked for. OpenID scopes are dropped; Graph scopes may carry the resource prefix."""
    names: list[str] = []
    wants_default = False
    for raw in scope_param.split():
        name = raw
        for prefix in _GRAPH_PREFIXES:
            if raw.lower().startswith(prefix.lower()):
                name = raw[len(prefix) :]
        if name in OIDC_SCOPES:
            continue
        if name == ".default":
            wants_default = True
        else:
            names.append(name)
    return names, wants_default


def has_service_principal(tenant: Tenant) -> bool:
    return tenant.consent == "granted" or bool(tenant.user_consents)


def service_principal_id(tenant: Tenant, app_id: str) -> str:
    return stable_id(tenant.id, "servicePrincipal", app_id)


def delegated_grant(tenant: Tenant, user: User) -> set[str]:
    """The delegated scopes this user may get tokens for without being asked."""
    granted = set(tenant.user_consents.get(user.id, []))
    if tenant.consent == "granted":
        granted |= set(tenant.granted_scopes)
    return granted


def grant_admin_consent(tenant: Tenant, scopes: list[str] | None = None) -> None:
    """Consent for the whole organisation (an AllPrincipals grant), with these scopes added."""
    tenant.consent = "granted"
    tenant.granted_scopes.extend(s for s in scopes or [] if s not in tenant.granted_scopes)


def grant_user_consent(tenant: Tenant, user: User, scopes: list[str]) -> None:
    current = tenant.user_consents.setdefault(user.id, [])
    current.extend(s for s in scopes if s not in current)


def revoke_consent(tenant: Tenant) -> None:
    """Used by tests and the demo: an administrator removes our app from the tenant."""
    tenant.consent = "none"
    tenant.user_consents.clear()


def app_not_found_message(app_id: str, tenant: Tenant) -> str:
    return (
        f"Application with identifier '{app_id}' was not found in the directory '{tenant.display_name}'. "
        "This can happen if the application has not been installed by the administrator of the "
        "tenant or consented to by any user in the tenant. You may have sent your authentication "
        "request to the wrong tenant."
    )
