"""[google_workspace] Our Google access works in the customer's domain, tested only for a
Workspace administrator who signed in on the report page (anonymously nothing is asked of
Google: the installation's credentials are never used on a visitor's behalf). The sign-in is
used only when the account belongs to the target's Workspace (its address is on the target
domain, or the target is one of that Workspace's verified domains). Then: the scopes the
administrator granted and one cheap call per API; with this installation's service account,
domain-wide delegation for each scope, acting as that administrator; `admin_policy_enforced`
and `unauthorized_client` explained; and whether that person is a Help Desk administrator or
higher."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import requests
from google.auth.exceptions import RefreshError, TransportError
from google.auth.transport.requests import Request
from google.oauth2 import service_account

from checksite.checks.context import CheckContext
from checksite.checks.google_role import ROLES_SCOPE, role_step
from checksite.checks.mail_system import GOOGLE, mail_system
from checksite.checks.model import Step, Stopwatch
from common.http import BodyTooLarge
from common.netguard import Blocked, ResolveError

ID = "google_workspace"
TITLE = "Google Workspace access"
AUTH = "https://www.googleapis.com/auth/"


@dataclass(frozen=True)
class Need:
    scope: str
    purpose: str
    probe: str  # a cheap GET on the API this scope opens, relative to GOOGLE_API_URL


NEEDS = (
    Need(AUTH + "calendar", "appointments", "/calendar/v3/users/me/calendarList?maxResults=1"),
    Need(
        AUTH + "contacts",
        "contacts",
        "/v1/people/me/connections?personFields=names&pageSize=1",
    ),
    Need(
        AUTH + "admin.directory.user.readonly",
        "finding the users' mailboxes",
        "/admin/directory/v1/users?customer=my_customer&maxResults=1",
    ),
)
EXPLAIN = {
    "admin_policy_enforced": "The domain's policy blocks our app: in the Admin console, "
    "Security → Access and data control → API controls → Manage third-party app access, add "
    "the Synchronizer client as Trusted (or allow the Calendar and Contacts services).",
    "unauthorized_client": "Domain-wide delegation for our service account is missing this "
    "scope: in the Admin console, Security → API controls → Domain-wide delegation, add the "
    "client id with the scopes listed here.",
    "invalid_grant": "Google does not know this user in the domain (or the account is "
    "suspended); enter an active administrator's address.",
}


GOOGLE_ADMIN_TOKEN = "google_admin_token"  # noqa: S105  (CheckContext.credentials keys)
GOOGLE_ADMIN_SCOPES = "google_admin_scopes"
GOOGLE_ADMIN_EMAIL = "google_admin_email"  # from the verified id_token
# The id_token's `hd`: set only for an account of a Google Workspace (or Cloud) organisation,
# absent for a personal Google account, even one whose address is on the company's domain.
GOOGLE_ADMIN_HOSTED_DOMAIN = "google_admin_hosted_domain"
DOMAINS_SCOPE = AUTH + "admin.directory.domain.readonly"


def run(context: CheckContext) -> Iterator[Step]:
    if mail_system(context).kind != GOOGLE:
        yield Step("google_workspace.skipped", "Google", "skip", "Not a Google Workspace domain.")
        return
    token = context.credentials.get(GOOGLE_ADMIN_TOKEN)
    admin = context.credentials.get(GOOGLE_ADMIN_EMAIL)
    key_file = context.setting("google_service_account_file")
    if not token or not admin:
        yield _sign_in_needed(context, key_file is not None)
        return
    session = context.session()
    belongs = _belongs(context, session, token, admin)
    yield belongs
    if belongs.status != "pass":
        return  # nothing from another organisation's sign-in is used
    yield from _signed_in_steps(context, token, admin)
    if key_file is not None:
        yield from _delegation_steps(context, Path(key_file), admin)


def _sign_in_needed(context: CheckContext, has_service_account: bool) -> Step:
    return Step(
        "google_workspace.sign_in_needed",
        "Google access",
        "info",
        f"Nobody signed in: this report asks nothing of Google about {context.target.domain}. "
        "A Google Workspace administrator can sign in on the report page to test Synchronizer's "
        "access to Calendar, Contacts and the directory"
        + (
            ", this installation's domain-wide delegation, and the administrator's role."
            if has_service_account
            else " and the administrator's role."
        ),
    )


def _belongs(context: CheckContext, session: requests.Session, token: str, admin: str) -> Step:
    """The signed-in account is of the target's Workspace: its address is on the target
    domain, or the target is one of the Workspace's verified domains (domains.list)."""
    domain = context.target.domain
    title = "Administrator's sign-in"
    workspace_account = bool(context.credentials.get(GOOGLE_ADMIN_HOSTED_DOMAIN))
    if admin.rpartition("@")[2] == domain and workspace_account:
        return Step("google_workspace.sign_in", title, "pass", f"{admin} signed in.")
    granted = set(context.credentials.get(GOOGLE_ADMIN_SCOPES, "").split())
    domains: list[str] = []
    if DOMAINS_SCOPE in granted:
        api = context.setting("google_api_url")
        try:
            response = session.get(
                f"{api}/admin/directory/v1/customer/my_customer/domains",
                headers={"Authorization": f"Bearer {token}"},
            )
            if response.status_code == 200:
                listed = response.json().get("domains") or []
                domains = [
                    str(d.get("domainName", "")).lower() for d in listed if d.get("verified")
                ]
        except (Blocked, ResolveError, BodyTooLarge, requests.RequestException, ValueError):
            domains = []
    if domain in domains:
        return Step(
            "google_workspace.sign_in",
            title,
            "pass",
            f"{admin} signed in; {domain} is one of that Workspace's verified domains.",
            details={"workspace_domains": domains},
        )
    if domains:
        why = f"{domain} is not one of that Workspace's domains ({', '.join(domains)})"
    elif not workspace_account:
        why = "it is a personal Google account, not an account of a Google Workspace"
    else:
        why = f"it could not be confirmed that {domain} belongs to that account's Workspace"
    return Step(
        "google_workspace.sign_in",
        title,
        "warn",
        f"{admin} signed in, but {why}. Nothing from that sign-in is used in this report.",
        details={"workspace_domains": domains},
        remediation=f"Sign in with a super administrator of {domain}'s Google Workspace.",
    )


def _signed_in_steps(context: CheckContext, token: str, admin: str) -> Iterator[Step]:
    """The administrator consented to our app: the scopes granted, and one call per API."""
    granted = set(context.credentials.get(GOOGLE_ADMIN_SCOPES, "").split())
    session = context.session()
    missing = [n for n in NEEDS if n.scope not in granted]
    children = [_probe(context, session, token, need) for need in NEEDS if need not in missing]
    children += [
        Step(
            f"google_workspace.app.{_short(need.scope)}",
            f"{_short(need.scope)} ({need.purpose})",
            "fail",
            "Not granted: the box was unticked on Google's consent screen.",
            remediation="Sign in again and leave every permission ticked.",
        )
        for need in missing
    ]
    failed = [c for c in children if c.status == "fail"]
    yield Step(
        "google_workspace.app",
        "Our app in your domain (signed in)",
        "fail" if failed else "pass",
        f"{admin} signed in; "
        + (f"{len(failed)} of {len(NEEDS)} accesses failed." if failed else "every API answers."),
        details={"granted": sorted(granted)},
        children=children,
    )
    if NEEDS[2] not in missing:
        reason = "the sign-in did not grant reading admin roles (" + _short(ROLES_SCOPE) + ")"
        roles = (token, "") if ROLES_SCOPE in granted else (None, reason)
        yield role_step(context, session, admin, token, lambda: roles)


def _probe(context: CheckContext, session: requests.Session, token: str, need: Need) -> Step:
    watch = Stopwatch()
    step_id = f"google_workspace.app.{_short(need.scope)}"
    title = f"{_short(need.scope)} ({need.purpose})"
    api = context.setting("google_api_url")
    try:
        response = session.get(api + need.probe, headers={"Authorization": f"Bearer {token}"})
    except (Blocked, ResolveError, BodyTooLarge, requests.RequestException) as exc:
        return Step(step_id, title, "fail", f"The API call failed: {exc}")
    if response.status_code == 200:
        return Step(step_id, title, "pass", "The API answers.", elapsed_ms=watch.ms())
    return Step(
        step_id,
        title,
        "fail",
        f"The API answered {response.status_code} ({_google_reason(response)}).",
        remediation="Turn the service on for the users' organisational unit (Admin console → "
        "Apps → Google Workspace) and check the administrator's privileges.",
        elapsed_ms=watch.ms(),
    )


def _short(scope: str) -> str:
    return scope.rsplit("/", 1)[1]


def _delegation_steps(context: CheckContext, key_file: Path, admin: str) -> Iterator[Step]:
    """This installation's service account, acting as the signed-in administrator (never as a
    typed address): a token for each scope, then one call to its API."""
    info = json.loads(key_file.read_text(encoding="utf-8"))
    info["token_uri"] = f"{context.setting('google_oauth_url')}/token"
    client_id = str(info.get("client_id", ""))
    session = context.session()
    with ThreadPoolExecutor(max_workers=len(NEEDS)) as pool:  # independent: ask at once
        results = list(
            pool.map(lambda need: _scope_step(context, session, info, admin, need), NEEDS)
        )
    children = [step for step, _ in results]
    failed = [c for c in children if c.status == "fail"]
    link = "https://admin.google.com/ac/owl/domainwidedelegation?" + urlencode(
        {"clientScopeToAdd": ",".join(n.scope for n in NEEDS), "clientIdToAdd": client_id}
    )
    yield Step(
        "google_workspace.scopes",
        "Domain-wide delegation, each scope",
        "fail" if failed else "pass",
        f"{len(failed)} of {len(NEEDS)} scopes refused." if failed else "Every scope works.",
        details={"client_id": client_id, "scopes": [n.scope for n in NEEDS]},
        remediation=f"Authorize client id {client_id} for the scopes listed, e.g. at {link}"
        if failed
        else "",
        children=children,
    )


def _scope_step(
    context: CheckContext,
    session: requests.Session,
    info: dict[str, object],
    admin: str,
    need: Need,
) -> tuple[Step, str | None]:
    watch = Stopwatch()
    step_id = f"google_workspace.scope.{need.scope.rsplit('/', 1)[1]}"
    title = f"{need.scope.rsplit('/', 1)[1]} ({need.purpose})"
    credentials = service_account.Credentials.from_service_account_info(
        info, scopes=[need.scope], subject=admin
    )
    try:
        credentials.refresh(Request(session))
    except RefreshError as exc:
        code = (
            exc.args[1].get("error")
            if len(exc.args) > 1 and isinstance(exc.args[1], dict)
            else None
        )
        return (
            Step(
                step_id,
                title,
                "fail",
                f"No token: {code or exc.args[0]}.",
                details={"error": code},
                remediation=EXPLAIN.get(code or "", ""),
                elapsed_ms=watch.ms(),
            ),
            None,
        )
    except (TransportError, Blocked, ResolveError) as exc:
        return Step(step_id, title, "fail", f"Google could not be reached: {exc}"), None
    token = str(credentials.token)
    api = context.setting("google_api_url")
    try:
        response = session.get(api + need.probe, headers={"Authorization": f"Bearer {token}"})
    except (Blocked, ResolveError, BodyTooLarge, requests.RequestException) as exc:
        return Step(step_id, title, "warn", f"Token granted; the API call failed: {exc}"), token
    if response.status_code == 200:
        return (
            Step(
                step_id, title, "pass", "Token granted and the API answers.", elapsed_ms=watch.ms()
            ),
            token,
        )
    reason = _google_reason(response)
    return (
        Step(
            step_id,
            title,
            "fail",
            f"Token granted, but the API answered {response.status_code} ({reason}).",
            remediation="Turn the service on for the users' organisational unit (Admin console "
            "→ Apps → Google Workspace) and check the administrator's privileges.",
            elapsed_ms=watch.ms(),
        ),
        token,
    )


def _google_reason(response: requests.Response) -> str:
    try:
        error = response.json().get("error", {})
        return str((error.get("errors") or [{}])[0].get("reason") or error.get("status"))
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}"
