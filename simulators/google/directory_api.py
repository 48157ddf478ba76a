"""Admin SDK Directory API routes (``admin.googleapis.com/admin/directory/v1/…``): users.get,
users.list, roles.list and roleAssignments.list, with Google's authorisation rules: admin data
needs an admin with the users-read privilege; roles need role-management (a Help Desk admin
gets 403 there)."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify, request

from simulators.google import opaque
from simulators.google.auth import check_rate_limits, require_token, store
from simulators.google.errors import GoogleApiError, bad_request, forbidden, int_param
from simulators.world.google import GoogleDomain, GoogleUser

bp = Blueprint("google_directory", __name__, url_prefix="/admin/directory/v1")

_A = "https://www.googleapis.com/auth/admin.directory"
USERS_READ = (_A + ".user", _A + ".user.readonly", "https://www.googleapis.com/auth/cloud-platform")
ROLES_READ = (_A + ".rolemanagement", _A + ".rolemanagement.readonly")
DOMAINS_READ = (_A + ".domain", _A + ".domain.readonly")
MAX_USERS = 500
DEFAULT_USERS = 100
CREATED = "2024-03-04T08:15:00.000Z"
LAST_LOGIN = "2026-11-20T07:42:13.000Z"


def _caller(*scopes: str) -> tuple[GoogleUser, GoogleDomain]:
    token = require_token(*scopes)
    check_rate_limits(token)
    user = store().find_user(token.email)
    domain = store().domain_of(token.email)
    if user is None or domain is None:  # a service account acting as itself
        raise forbidden()
    return user, domain


def _customer_domain(
    caller_domain: GoogleDomain, customer: str | None, name: str | None
) -> GoogleDomain:
    if customer in ("my_customer", caller_domain.customer_id):
        return caller_domain
    if customer is None and name == caller_domain.name:
        return caller_domain
    if customer is None and name is None:
        raise bad_request("Bad Request", "badRequest")
    raise forbidden()


def _is_super(user: GoogleUser) -> bool:
    return any(r.is_super_admin for r in store().roles_of(user))


def user_resource(user: GoogleUser, domain: GoogleDomain, view: str) -> dict[str, Any]:
    public: dict[str, Any] = {
        "kind": "admin#directory#user",
        "id": user.user_id,
        "etag": f'"{user.user_id}/sim"',
        "primaryEmail": user.email,
        "name": {
            "givenName": user.given_name,
            "familyName": user.family_name,
            "fullName": user.full_name,
        },
        "emails": [{"address": user.email, "primary": True}],
    }
    if view == "domain_public":
        return public
    roles = store().roles_of(user)
    resource = {
        **public,
        "isAdmin": _is_super(user),
        "isDelegatedAdmin": any(not r.is_super_admin for r in roles),
        "lastLoginTime": LAST_LOGIN,
        "creationTime": CREATED,
        "agreedToTerms": True,
        "suspended": user.suspended,
        "archived": False,
        "changePasswordAtNextLogin": False,
        "ipWhitelisted": False,
        "languages": [{"languageCode": "en", "preference": "preferred"}],
        "customerId": domain.customer_id,
        "orgUnitPath": "/",
        "isMailboxSetup": True,
        "isEnrolledIn2Sv": bool(roles),
        "isEnforcedIn2Sv": False,
        "includeInGlobalAddressList": True,
    }
    if user.suspended:
        resource["suspensionReason"] = "ADMIN"
    return resource


def _view(caller: GoogleUser) -> str:
    view = request.args.get("viewType", "admin_view")
    if view not in ("admin_view", "domain_public"):
        raise bad_request("Invalid Input: viewType")
    if view == "admin_view" and not store().has_privilege(caller, "USERS_RETRIEVE"):
        raise forbidden()
    return view


@bp.get("/users/<user_key>")
def users_get(user_key: str) -> Response:
    caller, domain = _caller(*USERS_READ)
    view = _view(caller)
    user = store().find_user(user_key)
    if user is None or store().domain_of(user.email) is not domain:
        raise GoogleApiError(404, "Resource Not Found: userKey", "notFound")
    return jsonify(user_resource(user, domain, view))


@bp.get("/users")
def users_list() -> Response:
    caller, caller_domain = _caller(*USERS_READ)
    domain = _customer_domain(
        caller_domain, request.args.get("customer"), request.args.get("domain")
    )
    view = _view(caller)
    size = int_param(request.args.get("maxResults"), "maxResults", DEFAULT_USERS)
    if not 1 <= size <= MAX_USERS:
        raise bad_request("Invalid Input: maxResults")
    order = request.args.get("orderBy", "email")
    keys = {"email": lambda u: u.email, "givenName": lambda u: u.given_name,
            "familyName": lambda u: u.family_name}  # fmt: skip
    if order not in keys:
        raise bad_request("Invalid Input: orderBy")
    chosen = _query_filter(request.args.get("query", ""))
    users = sorted(
        (u for u in domain.users if chosen(user_resource(u, domain, "admin_view"))),
        key=keys[order],
        reverse=request.args.get("sortOrder") == "DESCENDING",
    )
    offset = int((opaque.decode_token(request.args.get("pageToken") or "") or {}).get("o", 0))
    body: dict[str, Any] = {
        "kind": "admin#directory#users",
        "etag": f'"{domain.customer_id}/users"',
        "users": [user_resource(u, domain, view) for u in users[offset : offset + size]],
    }
    if offset + size < len(users):
        body["nextPageToken"] = opaque.encode_token({"o": offset + size})
    return jsonify(body)


QUERY_FIELDS = {
    "email": lambda u: u["primaryEmail"],
    "givenName": lambda u: u["name"]["givenName"],
    "familyName": lambda u: u["name"]["familyName"],
    "name": lambda u: u["name"]["fullName"],
    "isAdmin": lambda u: str(u["isAdmin"]).lower(),
    "isDelegatedAdmin": lambda u: str(u["isDelegatedAdmin"]).lower(),
    "isSuspended": lambda u: str(u["suspended"]).lower(),
}


def _query_filter(query: str) -> Callable[[dict[str, Any]], bool]:
    """The subset of users.list ``query`` syntax sync needs: ``field:value`` (a trailing ``*``
    matches a prefix) and ``field=value``, all terms ANDed, case-insensitive."""
    terms = []
    for term in shlex.split(query):
        field, op, value = term.partition(":") if ":" in term else term.partition("=")
        if not op or field not in QUERY_FIELDS:
            raise bad_request("Invalid Input: query", "invalidInput")
        terms.append((QUERY_FIELDS[field], value.lower()))

    def matches(user: dict[str, Any]) -> bool:
        for get, value in terms:
            actual = get(user).lower()
            if value.endswith("*") and not actual.startswith(value[:-1]):
                return False
            if not value.endswith("*") and actual != value:
                return False
        return True

    return matches


def _role_reader(customer: str) -> GoogleDomain:
    caller, domain = _caller(*ROLES_READ)
    if not store().has_privilege(caller, "ROLE_MANAGEMENT"):
        raise forbidden()
    return _customer_domain(domain, customer, None)


@bp.get("/customer/<customer>/roles")
def roles_list(customer: str) -> Response:
    _role_reader(customer)
    items = [
        {
            "kind": "admin#directory#role",
            "etag": f'"role/{role.role_id}"',
            "roleId": role.role_id,
            "roleName": role.name,
            "roleDescription": role.description,
            "isSystemRole": role.is_system,
            "isSuperAdminRole": role.is_super_admin,
            "rolePrivileges": [
                {"serviceId": "00haapch16h1ysv", "privilegeName": p} for p in role.privileges
            ],
        }
        for role in store().world.roles
    ]
    return jsonify(kind="admin#directory#roles", etag='"roles"', items=items)


@bp.get("/customer/<customer>/roleassignments")
def role_assignments_list(customer: str) -> Response:
    domain = _role_reader(customer)
    user_key = request.args.get("userKey")
    role_id = request.args.get("roleId")
    if user_key and role_id:
        raise bad_request("Invalid Input: specify userKey or roleId, not both")
    if request.args.get("includeIndirectRoleAssignments") == "true" and not user_key:
        raise bad_request("Invalid Input: includeIndirectRoleAssignments needs userKey")
    target = store().find_user(user_key) if user_key else None
    if user_key and (target is None or store().domain_of(target.email) is not domain):
        raise GoogleApiError(404, "Resource Not Found: userKey", "notFound")
    items = []
    for index, user in enumerate(domain.users):
        if target is not None and user is not target:
            continue
        for role in store().roles_of(user):
            if role_id and role.role_id != role_id:
                continue
            assignment_id = f"{int(role.role_id) + 1000 + index}"
            items.append(
                {
                    "kind": "admin#directory#roleAssignment",
                    "etag": f'"assignment/{assignment_id}"',
                    "roleAssignmentId": assignment_id,
                    "roleId": role.role_id,
                    "assignedTo": user.user_id,
                    "assigneeType": "user",
                    "scopeType": "CUSTOMER",
                }
            )
    return jsonify(kind="admin#directory#roleAssignments", etag='"assignments"', items=items)


@bp.get("/customer/<customer>/domains")
def domains_list(customer: str) -> Response:
    """domains.list: the Workspace's verified domains, primary first. Reading them is a super
    administrator's (domain management) privilege; others get 403
    (https://developers.google.com/admin-sdk/directory/reference/rest/v1/domains/list)."""
    caller, domain = _caller(*DOMAINS_READ)
    if not _is_super(caller):
        raise forbidden()
    domain = _customer_domain(domain, customer, None)
    names = [(domain.name, True), *((name, False) for name in domain.secondary_domains)]
    items = [
        {
            "kind": "admin#directory#domain",
            "etag": f'"domain/{name}"',
            "domainName": name,
            "isPrimary": primary,
            "verified": True,
            "creationTime": "1709540100000",
            "domainAliases": [],
        }
        for name, primary in names
    ]
    return jsonify(kind="admin#directory#domains", etag='"domains"', domains=items)
