"""[app_consent] Synchronizer's permissions in the tenant, judged on the model this installation
uses (MICROSOFT_PERMISSION_MODE):

- delegated (the product's published model): each user consents for their own mailbox when
  they connect, or an administrator grants the permissions for everyone. That works when the
  organisation granted them, or when users may consent to apps; it fails when neither holds.
- application (an option): an administrator grants application roles, which reach every mailbox
  unless an application access policy restricts them.

Read only with the token of an administrator of the tenant who signed in on the report page;
anonymously the check says what Synchronizer asks for and what a sign-in would tell."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import requests

from checksite.checks.context import CheckContext
from checksite.checks.m365_app import (
    APPLICATION,
    GRAPH_APP_ROLE_NAMES,
    AdminSignIn,
    admin_consent_url,
    admin_of_target,
    consent_reads,
    graph_get,
    permission_mode,
    required_permissions,
)
from checksite.checks.m365_tenant import tenant_of
from checksite.checks.mail_system import MICROSOFT_365, mail_system
from checksite.checks.model import Step, Stopwatch
from common.http import BodyTooLarge
from common.netguard import Blocked, ResolveError

ID = "app_consent"
TITLE = "Synchronizer app consent (Microsoft 365)"
# Microsoft's built-in policy that lets users consent to any permission not reserved for
# administrators; other ManagePermissionGrantsForSelf.* policies allow less
# (https://learn.microsoft.com/en-us/entra/identity/enterprise-apps/configure-user-consent).
USERS_MAY_CONSENT = "ManagePermissionGrantsForSelf.microsoft-user-default-legacy"
SELF_CONSENT = "ManagePermissionGrantsForSelf."
ACCESS_POLICY_DOCS = "https://learn.microsoft.com/en-us/graph/auth-limit-mailbox-access"


class GraphRefused(Exception):
    """Graph answered something other than the data asked for; the message says what."""


def permissions_text(permissions: dict[str, str]) -> str:
    return "; ".join(f"{name}: to {why}" for name, why in permissions.items())


def run(context: CheckContext) -> Iterator[Step]:
    watch = Stopwatch()
    if mail_system(context).kind != MICROSOFT_365:
        yield Step("app_consent.skipped", "App consent", "skip", "Not a Microsoft 365 domain.")
        return
    tenant = tenant_of(context)
    if tenant.id is None:
        yield Step(
            "app_consent.skipped", "App consent", "skip", "The tenant was not found (see above)."
        )
        return
    client_id = context.setting("microsoft_client_id")
    if not client_id:
        yield Step(
            "app_consent.configuration",
            "App consent",
            "skip",
            "This Synchronizer installation has no Microsoft application configured "
            "(MICROSOFT_CLIENT_ID and MICROSOFT_CLIENT_SECRET), so consent cannot be tested.",
        )
        return
    mode = permission_mode(context)
    link = admin_consent_url(context, tenant.id)
    details: dict[str, Any] = {"application_id": client_id, "tenant_id": tenant.id, "mode": mode}
    signed = admin_of_target(context)
    if signed is None or not signed.may(*consent_reads(context)):
        yield _not_read(context, link, details, signed is not None)
        return
    try:
        principal = _service_principal(context, signed, str(client_id))
        if mode == APPLICATION:
            yield from _application_steps(context, signed, principal, link, details, watch)
        else:
            yield _delegated_step(context, signed, principal, link, details, watch)
    except (Blocked, ResolveError, BodyTooLarge, requests.RequestException, ValueError) as exc:
        yield Step("app_consent.granted", "Consent", "warn", f"Could not read it: {exc}")
    except GraphRefused as exc:
        yield Step("app_consent.granted", "Consent", "warn", str(exc))


def _not_read(
    context: CheckContext, link: str, details: dict[str, Any], signed_without_access: bool
) -> Step:
    """Anonymous (or a sign-in that did not include reading it): what we ask for, how consent
    is given, and what a sign-in would tell."""
    permissions = required_permissions(context)
    if permission_mode(context) == APPLICATION:
        model = (
            "Synchronizer uses application permissions here: an administrator grants them once "
            f"for the organisation (at {link} )."
        )
    else:
        model = (
            "Synchronizer asks each user for access to their own mailbox when they connect "
            f"(delegated permissions), or an administrator grants it for everyone at {link} ."
        )
    reason = (
        f"the sign-in did not include reading it ({', '.join(consent_reads(context))})"
        if signed_without_access
        else "an administrator of this tenant signs in on the report page"
    )
    return Step(
        "app_consent.model",
        "What Synchronizer asks for",
        "info",
        f"{model} Whether that is done, and whether your users may consent themselves, is read "
        f"once {reason}. Permissions: {permissions_text(permissions)}.",
        details={**details, "permissions": list(permissions)},
    )


def _get(context: CheckContext, signed: AdminSignIn, path: str, **params: str) -> Any:
    response = graph_get(context, signed.token, path, params or None)
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise GraphRefused(f"Microsoft Graph answered HTTP {response.status_code} for {path}.")
    return response.json()


def _service_principal(
    context: CheckContext, signed: AdminSignIn, client_id: str
) -> dict[str, Any] | None:
    """Our application's service principal in the tenant; None until someone consented."""
    found = _get(context, signed, f"/servicePrincipals(appId='{quote(client_id)}')")
    return found if isinstance(found, dict) else None


def _delegated_step(
    context: CheckContext,
    signed: AdminSignIn,
    principal: dict[str, Any] | None,
    link: str,
    details: dict[str, Any],
    watch: Stopwatch,
) -> Step:
    """Works when the organisation granted the permissions or users may grant them for their
    own mailbox; fails when neither (nobody could connect)."""
    grants: list[dict[str, Any]] = []
    if principal is not None:
        answer = _get(
            context,
            signed,
            "/oauth2PermissionGrants",
            **{"$filter": f"clientId eq '{principal['id']}'"},
        )
        grants = list((answer or {}).get("value", []))
    for_all = {
        scope
        for grant in grants
        if grant.get("consentType") == "AllPrincipals"
        for scope in str(grant.get("scope", "")).split()
    }
    required = required_permissions(context)
    mailbox = [p for p in required if p.endswith(".ReadWrite")]
    users = sum(  # people who connected their own mailbox (not e.g. this sign-in's reads)
        1
        for grant in grants
        if grant.get("consentType") == "Principal"
        and set(mailbox) <= set(str(grant.get("scope", "")).split())
    )
    policy = _get(context, signed, "/policies/authorizationPolicy") or {}
    assigned = list(
        (policy.get("defaultUserRolePermissions") or {}).get("permissionGrantPoliciesAssigned")
        or []
    )
    missing = [p for p in required if p not in for_all]
    details = {
        **details,
        "granted_for_organisation": sorted(for_all),
        "users_who_consented": users,
        "user_consent_policies": assigned,
    }
    present = (
        ""
        if users or (set(mailbox) & for_all)
        else "Nobody has given Synchronizer access to a mailbox in this tenant yet. "
    )
    grant = (
        "A Global Administrator (or Privileged Role / Cloud Application Administrator) grants "
        f"it for everyone once at {link} ."
    )
    if not missing:
        return Step(
            "app_consent.granted",
            "Consent",
            "pass",
            "An administrator granted Synchronizer's permissions for the whole organisation "
            f"({', '.join(required)}).",
            details=details,
            elapsed_ms=watch.ms(),
        )
    already = f" {users} user(s) have done so already." if users else ""
    if USERS_MAY_CONSENT in assigned:
        return Step(
            "app_consent.granted",
            "Consent",
            "pass",
            f"{present}Users may consent to apps in this tenant: each user grants Synchronizer "
            f"access to their own mailbox when they connect.{already}",
            details=details,
            elapsed_ms=watch.ms(),
        )
    if any(p.startswith(SELF_CONSENT) for p in assigned):
        return Step(
            "app_consent.granted",
            "Consent",
            "warn",
            f"{present}Users may consent only to what your consent policy allows "
            f"({', '.join(assigned)}); Microsoft's low-impact policies leave out "
            "Calendars.ReadWrite and Contacts.ReadWrite, so users will be asked to request an "
            f"administrator's approval.{already}",
            details=details,
            remediation=f"{grant} Or classify these permissions as low impact in your "
            f"consent settings. Permissions we request: {permissions_text(required)}.",
            elapsed_ms=watch.ms(),
        )
    return Step(
        "app_consent.granted",
        "Consent",
        "fail",
        f"{present}Users may not consent to apps in this tenant, and Synchronizer is not "
        f"granted for the organisation (missing {', '.join(missing)}): nobody could connect "
        "their mailbox.",
        details={**details, "missing": missing},
        remediation=f"{grant} If admin consent requests are on, an administrator can instead "
        f"approve application id {context.setting('microsoft_client_id')} (Synchronizer) "
        "under Microsoft Entra admin center → Enterprise applications → Admin consent "
        f"requests. Permissions we request: {permissions_text(required)}.",
        elapsed_ms=watch.ms(),
    )


def _application_steps(
    context: CheckContext,
    signed: AdminSignIn,
    principal: dict[str, Any] | None,
    link: str,
    details: dict[str, Any],
    watch: Stopwatch,
) -> Iterator[Step]:
    required = required_permissions(context)
    grant = f"An administrator grants Synchronizer's application permissions once at {link} ."
    if principal is None:
        yield Step(
            "app_consent.granted",
            "Consent",
            "fail",
            "Synchronizer's application permissions are not granted: it is not in this tenant yet.",
            details=details,
            remediation=f"{grant} Permissions we request: {permissions_text(required)}.",
            elapsed_ms=watch.ms(),
        )
        return
    answer = _get(context, signed, f"/servicePrincipals/{principal['id']}/appRoleAssignments")
    roles = sorted(
        GRAPH_APP_ROLE_NAMES.get(str(a.get("appRoleId")), str(a.get("appRoleId")))
        for a in (answer or {}).get("value", [])
    )
    missing = [p for p in required if p not in roles]
    details = {**details, "granted": roles}
    if missing:
        yield Step(
            "app_consent.granted",
            "Consent",
            "fail",
            f"Synchronizer's application permissions lack {', '.join(missing)}.",
            details={**details, "missing": missing},
            remediation=f"{grant} Permissions we request: {permissions_text(required)}.",
            elapsed_ms=watch.ms(),
        )
        return
    yield Step(
        "app_consent.granted",
        "Consent",
        "pass",
        f"Synchronizer holds its application permissions ({', '.join(required)}).",
        details=details,
        elapsed_ms=watch.ms(),
    )
    yield Step(
        "app_consent.access_policy",
        "Which mailboxes it may reach",
        "info",
        "Application permissions reach every mailbox of the tenant unless an application "
        "access policy restricts Synchronizer to the people you synchronize. Microsoft Graph "
        "does not show such policies, so this report cannot tell whether one is in place.",
        remediation="In Exchange Online PowerShell: New-ApplicationAccessPolicy -AppId "
        f"{context.setting('microsoft_client_id')} -PolicyScopeGroupId <a mail-enabled group of "
        "the synchronized people> -AccessRight RestrictAccess, then check it with "
        f"Test-ApplicationAccessPolicy. See {ACCESS_POLICY_DOCS}",
    )
