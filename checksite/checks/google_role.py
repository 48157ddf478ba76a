"""Is the Google administrator a Help Desk Admin or higher? users.get (admin view) tells a super
administrator; for a delegated administrator the role assignments and the roles (Admin SDK
roleAssignments.list with userKey, roles.list) name the role. Google refuses those two lists
to a Help Desk Admin (403): then the answer is "cannot tell", with what to check by hand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests

from checksite.checks.context import CheckContext
from checksite.checks.model import Status, Step
from common.http import BodyTooLarge
from common.netguard import Blocked, ResolveError

ROLES_SCOPE = "https://www.googleapis.com/auth/admin.directory.rolemanagement.readonly"
HELP_DESK = "_HELP_DESK_ADMIN_ROLE"
# Help Desk Admin's privileges, if roles.list does not list the system role itself.
HELP_DESK_PRIVILEGES = frozenset(
    {"USERS_RETRIEVE", "USERS_RESET_PASSWORD", "ORGANIZATION_UNITS_RETRIEVE"}
)
STEP_ID, TITLE = "google_workspace.role", "Administrator role"
BY_HAND = (
    "Check by hand: Admin console → Directory → Users → {admin} → Admin roles and privileges. "
    "Super Admin, Help Desk Admin, or a role with Help Desk Admin's privileges (read users, "
    "reset passwords, read organisational units) is enough."
)
TOO_LOW = (
    "Use an account with the Help Desk Admin role or higher (Admin console → Account → "
    "Admin roles), or assign that role to {admin}."
)


RolesAccess = Callable[[], tuple[str | None, str]]
"""A token that may read roles, or None and why; asked only for a delegated administrator."""


def role_step(
    context: CheckContext,
    session: requests.Session,
    admin: str,
    token: str,
    roles_access: RolesAccess,
) -> Step:
    """`token` may read users; `roles_access()` gives one that may read roles (or why not)."""
    api = context.setting("google_api_url")
    user_url = f"{api}/admin/directory/v1/users/{quote(admin)}?viewType=admin_view"
    status, user = _get(session, user_url, token)
    if status == 403:
        return Step(
            STEP_ID,
            TITLE,
            "fail",
            f"{admin} is not an administrator: Google refused the administrator's view of the "
            "user (it needs at least Help Desk Admin's privilege to read users).",
            remediation=TOO_LOW.format(admin=admin),
        )
    if status != 200 or not isinstance(user, dict):
        return _cannot_tell(admin, f"the directory answered {_said(status, user)}")
    if user.get("isAdmin"):
        return Step(STEP_ID, TITLE, "pass", f"{admin} is a super administrator (Super Admin).")
    if not user.get("isDelegatedAdmin"):
        return Step(
            STEP_ID,
            TITLE,
            "fail",
            f"{admin} is not an administrator.",
            remediation=TOO_LOW.format(admin=admin),
        )
    roles_token, no_roles_reason = roles_access()
    if roles_token is None:
        return _cannot_tell(
            admin, f"{admin} holds a delegated administrator role; {no_roles_reason}"
        )
    base = f"{api}/admin/directory/v1/customer/my_customer"
    roles: Any = None
    status, assignments = _get(
        session,
        f"{base}/roleassignments?userKey={quote(admin)}&includeIndirectRoleAssignments=true",
        roles_token,
    )
    if status == 200:
        status, roles = _get(session, f"{base}/roles", roles_token)
    if status == 403:
        return _cannot_tell(
            admin,
            f"{admin} holds a delegated administrator role, but Google refused to list role "
            "assignments (403), as it does for a Help Desk Admin, who may not read roles. "
            "Reading users works, which is the privilege Synchronizer needs",
        )
    if status != 200 or not isinstance(assignments, dict) or not isinstance(roles, dict):
        return _cannot_tell(admin, f"the role lists answered {_said(status, roles)}")
    return _decide(admin, assignments.get("items") or [], roles.get("items") or [])


def _decide(admin: str, assignments: list[Any], roles: list[Any]) -> Step:
    by_id = {str(r.get("roleId")): r for r in roles if isinstance(r, dict)}
    help_desk = next((r for r in by_id.values() if r.get("roleName") == HELP_DESK), None)
    needed = _privileges(help_desk) if help_desk else set(HELP_DESK_PRIVILEGES)
    held = [by_id.get(str(a.get("roleId")), {}) for a in assignments if isinstance(a, dict)]
    details = {"roles": [_name(r) for r in held]}
    enough = [
        r
        for r in held
        if r.get("isSuperAdminRole") or r.get("roleName") == HELP_DESK or _covers(r, needed)
    ]
    if enough:
        whole = [
            r
            for r, a in zip(held, assignments, strict=False)
            if r in enough and a.get("scopeType", "CUSTOMER") == "CUSTOMER"
        ]
        status: Status = "pass" if whole else "warn"
        note = "" if whole else " only for an organisational unit: users elsewhere are not seen"
        return Step(
            STEP_ID,
            TITLE,
            status,
            f"{admin} holds {_name((whole or enough)[0])}, Help Desk Admin or higher{note}.",
            details=details,
            remediation="" if whole else "Assign the role for the whole organisation.",
        )
    names = ", ".join(_name(r) for r in held) or "no role"
    return Step(
        STEP_ID,
        TITLE,
        "fail",
        f"{admin} holds {names}: none includes Help Desk Admin's privileges "
        f"({', '.join(sorted(needed))}).",
        details=details,
        remediation=TOO_LOW.format(admin=admin),
    )


def _privileges(role: dict[str, Any]) -> set[str]:
    return {
        str(p.get("privilegeName")) for p in role.get("rolePrivileges") or [] if isinstance(p, dict)
    }


def _covers(role: dict[str, Any], needed: set[str]) -> bool:
    """Every needed privilege is held, directly or through its family's `…_ALL`."""
    held = _privileges(role)
    families = {p[: -len("ALL")] for p in held if p.endswith("_ALL")}
    return all(p in held or any(p.startswith(f) for f in families) for p in needed)


def _name(role: dict[str, Any]) -> str:
    name, description = role.get("roleName") or "an unknown role", role.get("roleDescription")
    return f"{description} ({name})" if description else str(name)


def _cannot_tell(admin: str, reason: str) -> Step:
    return Step(
        STEP_ID,
        TITLE,
        "warn",
        f"Cannot tell whether {admin} is Help Desk Admin or higher: {reason}.",
        remediation=BY_HAND.format(admin=admin),
    )


def _get(session: requests.Session, url: str, token: str) -> tuple[int | None, Any]:
    try:
        response = session.get(url, headers={"Authorization": f"Bearer {token}"})
    except (Blocked, ResolveError, BodyTooLarge, requests.RequestException) as exc:
        return None, str(exc)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, None


def _said(status: int | None, body: Any) -> str:
    if status is None:
        return f"nothing ({body})"
    error = body.get("error") if isinstance(body, dict) else None
    reason = error.get("message") if isinstance(error, dict) else None
    return f"HTTP {status}" + (f" ({reason})" if reason else "")
