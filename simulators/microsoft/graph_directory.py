"""Graph directory endpoints: users, licences (subscribedSkus, licenseDetails), our app's service
principal, its application-role assignments and delegated permission grants."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from flask import Response

from simulators.microsoft import consent
from simulators.microsoft.errors import GraphError
from simulators.microsoft.graph_common import (
    bp,
    caller,
    filter_equals,
    json_response,
    mailbox_of,
    metadata,
    paged,
    require,
    select,
    target_user,
    world,
)
from simulators.world.microsoft import GRAPH_APP_ID, GRAPH_APP_ROLES, Tenant, User, stable_id

_READ_USERS = ("User.ReadBasic.All", "User.Read.All", "Directory.Read.All", "User.ReadWrite.All")
_READ_ORG = ("Organization.Read.All", "Directory.Read.All", "Organization.ReadWrite.All")
# subscribedSkus: LicenseAssignment.Read.All is the least privileged permission (delegated and
# application), https://learn.microsoft.com/en-us/graph/api/subscribedsku-list
_READ_SKUS = ("LicenseAssignment.Read.All", *_READ_ORG)
_READ_POLICIES = ("Policy.Read.All", "Policy.ReadWrite.Authorization")
# What users may consent to: Microsoft's built-in permission grant policies.
USER_CONSENT_ALL = "ManagePermissionGrantsForSelf.microsoft-user-default-legacy"
_READ_APPS = ("Application.Read.All", "Directory.Read.All", "Application.ReadWrite.All")
_READ_GRANTS = ("Directory.Read.All", "DelegatedPermissionGrant.ReadWrite.All")
_READ_LICENSES = ("User.Read", "LicenseAssignment.Read.All", "User.Read.All", "Directory.Read.All")


@cache
def sku_table() -> dict[str, dict]:
    """skuPartNumber -> {skuId, servicePlans}, derived from Microsoft's licensing table by
    tools/derive_m365_skus.py."""
    text = resources.files("simulators.microsoft").joinpath("skus.json").read_text("utf-8")
    return json.loads(text)


def _user_json(user: User, tenant: Tenant) -> dict:
    return {
        "businessPhones": [],
        "displayName": user.display_name,
        "givenName": user.given_name,
        "jobTitle": user.job_title or None,
        "mail": user.mail,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": "en-US",
        "surname": user.surname,
        "userPrincipalName": user.user_principal_name,
        "id": user.id,
    }


@bp.get("/me")
def me() -> Response:
    user = target_user(None)
    who = require(("User.Read", "User.ReadBasic.All", "User.Read.All", "Directory.Read.All"), ())
    return json_response(
        {"@odata.context": metadata("users/$entity"), **select([_user_json(user, who.tenant)])[0]}
    )


@bp.get("/users")
def users() -> Response:
    who = require(_READ_USERS, _READ_USERS, directory=True)
    wanted = filter_equals()
    found = [_user_json(u, who.tenant) for u in who.tenant.users]
    for key, value in wanted.items():
        found = [u for u in found if str(u.get(key) or "").lower() == value.lower()]
    return paged(found, metadata("users"), default_top=100)


@bp.get("/users/<user_key>")
def user(user_key: str) -> Response:
    who = caller()
    if (
        who.user is None
        or who.user.id != user_key
        and who.user.user_principal_name.lower() != user_key.lower()
    ):
        require(_READ_USERS, _READ_USERS, directory=True)
    found = target_user(user_key, directory=True)
    return json_response(
        {"@odata.context": metadata("users/$entity"), **select([_user_json(found, who.tenant)])[0]}
    )


def _plans(part: str, status: str = "Success") -> list[dict]:
    return [
        {
            "servicePlanId": p["servicePlanId"],
            "servicePlanName": p["servicePlanName"],
            "provisioningStatus": status,
            "appliesTo": "User" if p["servicePlanName"] != "EXCHANGE_S_FOUNDATION" else "Company",
        }
        for p in sku_table()[part]["servicePlans"]
    ]


@bp.get("/subscribedSkus")
def subscribed_skus() -> Response:
    who = require(_READ_SKUS, _READ_SKUS, directory=True)
    tenant = who.tenant
    values = []
    for sku in tenant.skus:
        info = sku_table()[sku.part_number]
        consumed = sku.consumed or sum(sku.part_number in u.licenses for u in tenant.users)
        values.append(
            {
                "accountName": tenant.initial_domain.split(".")[0],
                "accountId": tenant.id,
                "appliesTo": "User",
                "capabilityStatus": sku.capability_status,
                "consumedUnits": consumed,
                "id": f"{tenant.id}_{info['skuId']}",
                "skuId": info["skuId"],
                "skuPartNumber": sku.part_number,
                "subscriptionIds": [stable_id(tenant.id, "subscription", sku.part_number)],
                "prepaidUnits": {
                    "enabled": sku.enabled,
                    "suspended": 0,
                    "warning": 0,
                    "lockedOut": 0,
                },
                "servicePlans": _plans(sku.part_number),
            }
        )
    return json_response({"@odata.context": metadata("subscribedSkus"), "value": select(values)})


def _license_details(user_key: str | None) -> Response:
    require(
        _READ_LICENSES,
        ("LicenseAssignment.Read.All", "User.Read.All", "Directory.Read.All"),
        directory=True,
    )
    user = target_user(user_key, directory=True)
    values = [
        {
            "id": stable_id(user.id, "license", part),
            "skuId": sku_table()[part]["skuId"],
            "skuPartNumber": part,
            "servicePlans": [
                {k: v for k, v in p.items() if k != "provisioningStatus"}
                | {
                    "provisioningStatus": "Disabled"
                    if p["servicePlanName"] in user.disabled_plans
                    else "Success"
                }
                for p in _plans(part)
            ],
        }
        for part in user.licenses
    ]
    return json_response(
        {"@odata.context": metadata(f"users('{user.id}')/licenseDetails"), "value": select(values)}
    )


@bp.get("/me/licenseDetails")
def my_license_details() -> Response:
    return _license_details(None)


@bp.get("/users/<user_key>/licenseDetails")
def license_details(user_key: str) -> Response:
    return _license_details(user_key)


def _mailbox_settings(user_key: str | None) -> Response:
    require(
        ("MailboxSettings.Read", "MailboxSettings.ReadWrite"),
        ("MailboxSettings.Read", "MailboxSettings.ReadWrite"),
    )
    user = target_user(user_key)
    mailbox_of(user)
    return json_response(
        {
            "@odata.context": metadata(f"users('{user.id}')/mailboxSettings"),
            "timeZone": user.time_zone,
            "dateFormat": "dd.MM.yyyy",
            "timeFormat": "HH:mm",
            "userPurpose": "user",
            "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
            "language": {"locale": "en-US", "displayName": "English (United States)"},
            "workingHours": {
                "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                "startTime": "08:00:00.0000000",
                "endTime": "17:00:00.0000000",
                "timeZone": {"name": user.time_zone},
            },
        }
    )


@bp.get("/me/mailboxSettings")
def my_mailbox_settings() -> Response:
    return _mailbox_settings(None)


@bp.get("/users/<user_key>/mailboxSettings")
def mailbox_settings(user_key: str) -> Response:
    return _mailbox_settings(user_key)


# --- our application in the tenant ---------------------------------------------------------


def _graph_sp_id(tenant: Tenant) -> str:
    return stable_id(tenant.id, "servicePrincipal", GRAPH_APP_ID)


def _service_principals(tenant: Tenant) -> list[dict]:
    found = [
        {
            "id": _graph_sp_id(tenant),
            "appId": GRAPH_APP_ID,
            "appDisplayName": "Microsoft Graph",
            "displayName": "Microsoft Graph",
            "servicePrincipalType": "Application",
            "accountEnabled": True,
            "appOwnerOrganizationId": "f8cdef31-a31e-4b4a-93e4-5f571e91255a",
        }
    ]
    if consent.has_service_principal(tenant):
        for app in world().apps:
            found.append(
                {
                    "id": consent.service_principal_id(tenant, app.app_id),
                    "appId": app.app_id,
                    "appDisplayName": app.display_name,
                    "displayName": app.display_name,
                    "servicePrincipalType": "Application",
                    "accountEnabled": True,
                    "signInAudience": "AzureADMultipleOrgs",
                    "appOwnerOrganizationId": "0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
                    "replyUrls": list(app.redirect_uris),
                    "servicePrincipalNames": [app.app_id],
                    "tags": ["WindowsAzureActiveDirectoryIntegratedApp"],
                }
            )
    return found


@bp.get("/servicePrincipals")
def service_principals() -> Response:
    who = require(_READ_APPS, _READ_APPS, directory=True)
    found = _service_principals(who.tenant)
    for key, value in filter_equals().items():
        found = [sp for sp in found if str(sp.get(key, "")).lower() == value.lower()]
    return paged(found, metadata("servicePrincipals"), default_top=100)


@bp.get("/servicePrincipals(appId='<app_id>')")
def service_principal_by_app_id(app_id: str) -> Response:
    who = require(_READ_APPS, _READ_APPS, directory=True)
    for sp in _service_principals(who.tenant):
        if sp["appId"] == app_id:
            return json_response({"@odata.context": metadata("servicePrincipals/$entity"), **sp})
    raise GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource 'servicePrincipals(appId='{app_id}')' does not exist or one of its queried reference-property objects are not present.",
    )


@bp.get("/servicePrincipals/<sp_id>/appRoleAssignments")
def app_role_assignments(sp_id: str) -> Response:
    who = require(_READ_APPS, _READ_APPS, directory=True)
    sp = next((s for s in _service_principals(who.tenant) if s["id"] == sp_id), None)
    if sp is None:
        raise GraphError(
            404,
            "Request_ResourceNotFound",
            f"Resource '{sp_id}' does not exist or one of its queried reference-property objects are not present.",
        )
    values = []
    if sp["appId"] != GRAPH_APP_ID and who.tenant.consent == "granted":
        for role in who.tenant.granted_roles:
            values.append(
                {
                    "id": stable_id(sp_id, "assignment", role),
                    "appRoleId": GRAPH_APP_ROLES.get(role, stable_id("role", role)),
                    "createdDateTime": "2024-01-15T09:30:00Z",
                    "deletedDateTime": None,
                    "principalDisplayName": sp["displayName"],
                    "principalId": sp_id,
                    "principalType": "ServicePrincipal",
                    "resourceDisplayName": "Microsoft Graph",
                    "resourceId": _graph_sp_id(who.tenant),
                }
            )
    return json_response(
        {
            "@odata.context": metadata(f"servicePrincipals('{sp_id}')/appRoleAssignments"),
            "value": values,
        }
    )


@bp.get("/oauth2PermissionGrants")
def oauth2_permission_grants() -> Response:
    who = require(_READ_GRANTS, _READ_GRANTS, directory=True)
    tenant = who.tenant
    grants = []
    for app in world().apps:
        if not consent.has_service_principal(tenant):
            continue
        client_id = consent.service_principal_id(tenant, app.app_id)
        base = {"clientId": client_id, "resourceId": _graph_sp_id(tenant)}
        if tenant.consent == "granted":
            grants.append(
                {
                    "id": stable_id(client_id, "grant", "all"),
                    **base,
                    "consentType": "AllPrincipals",
                    "principalId": None,
                    "scope": " ".join(tenant.granted_scopes),
                }
            )
        for user_id, scopes in tenant.user_consents.items():
            grants.append(
                {
                    "id": stable_id(client_id, "grant", user_id),
                    **base,
                    "consentType": "Principal",
                    "principalId": user_id,
                    "scope": " ".join(scopes),
                }
            )
    for key, value in filter_equals().items():
        grants = [gr for gr in grants if str(gr.get(key, "")).lower() == value.lower()]
    return json_response(
        {"@odata.context": metadata("oauth2PermissionGrants"), "value": select(grants)}
    )


@bp.get("/organization")
def organization() -> Response:
    who = require(
        ("User.Read", "Organization.Read.All", "Directory.Read.All"), _READ_ORG, directory=True
    )
    tenant = who.tenant
    return json_response(
        {
            "@odata.context": metadata("organization"),
            "value": [
                {
                    "id": tenant.id,
                    "displayName": tenant.display_name,
                    "verifiedDomains": [
                        {
                            "name": d,
                            "isDefault": i == 0,
                            "isInitial": d == tenant.initial_domain,
                            "type": "Managed"
                            if tenant.namespace_type == "Managed" or d == tenant.initial_domain
                            else "Federated",
                            "capabilities": "Email, OfficeCommunicationsOnline",
                        }
                        for i, d in enumerate(tenant.domains)
                    ],
                }
            ],
        }
    )


@bp.get("/policies/authorizationPolicy")
def authorization_policy() -> Response:
    """The tenant's authorization policy (v1.0: a single object). Users may consent to apps
    unless the tenant requires an administrator's approval: then no permission grant policy is
    assigned to the default user role (https://learn.microsoft.com/en-us/graph/api/authorizationpolicy-get,
    https://learn.microsoft.com/en-us/entra/identity/enterprise-apps/configure-user-consent)."""
    who = require(_READ_POLICIES, _READ_POLICIES, directory=True)
    may_consent = who.tenant.consent != "admin_approval_required"
    return json_response(
        {
            "@odata.context": metadata("policies/authorizationPolicy/$entity"),
            "id": "authorizationPolicy",
            "displayName": "Authorization Policy",
            "description": "Used to manage authorization related settings across the company.",
            "allowInvitesFrom": "everyone",
            "allowedToUseSSPR": True,
            "blockMsolPowerShell": False,
            "defaultUserRolePermissions": {
                "allowedToCreateApps": True,
                "allowedToCreateSecurityGroups": True,
                "allowedToReadOtherUsers": True,
                "permissionGrantPoliciesAssigned": [USER_CONSENT_ALL] if may_consent else [],
            },
        }
    )
