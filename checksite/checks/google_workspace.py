"""[google_workspace] Our Google access works in the customer's domain: for each scope the sync
needs, a real token (service account with domain-wide delegation, acting as the given admin)
and one cheap call to the API behind it; `admin_policy_enforced` and `unauthorized_client`
are explained; and whether that person is a Help Desk administrator or higher."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import requests
from google.auth.exceptions import RefreshError, TransportError
from google.auth.transport.requests import Request
from google.oauth2 import service_account

from checksite.checks.context import CheckContext
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


def run(context: CheckContext) -> Iterator[Step]:
    if mail_system(context).kind != GOOGLE:
        yield Step("google_workspace.skipped", "Google", "skip", "Not a Google Workspace domain.")
        return
    key_file = context.setting("google_service_account_file")
    if key_file is None:
        yield Step(
            "google_workspace.configuration",
            "Google access",
            "skip",
            "This installation has no Google service account configured "
            "(GOOGLE_SERVICE_ACCOUNT_FILE), so access cannot be tested.",
        )
        return
    admin = context.target.mailbox
    if admin is None:
        yield Step(
            "google_workspace.admin",
            "Google access",
            "skip",
            "Enter an administrator's address (admin@your-domain) to test Google access.",
        )
        return
    info = json.loads(Path(key_file).read_text(encoding="utf-8"))
    info["token_uri"] = f"{context.setting('google_oauth_url')}/token"
    client_id = str(info.get("client_id", ""))
    session = context.session()
    with ThreadPoolExecutor(max_workers=len(NEEDS)) as pool:  # independent: ask at once
        results = list(
            pool.map(lambda need: _scope_step(context, session, info, admin, need), NEEDS)
        )
    children = [step for step, _ in results]
    granted = {need.scope: token for need, (_, token) in zip(NEEDS, results, strict=True) if token}
    failed = [c for c in children if c.status == "fail"]
    link = "https://admin.google.com/ac/owl/domainwidedelegation?" + urlencode(
        {"clientScopeToAdd": ",".join(n.scope for n in NEEDS), "clientIdToAdd": client_id}
    )
    yield Step(
        "google_workspace.scopes",
        "Access for each scope",
        "fail" if failed else "pass",
        f"{len(failed)} of {len(NEEDS)} scopes refused." if failed else "Every scope works.",
        details={"client_id": client_id, "scopes": [n.scope for n in NEEDS]},
        remediation=f"Authorize client id {client_id} for the scopes listed, e.g. at {link}"
        if failed
        else "",
        children=children,
    )
    directory = granted.get(NEEDS[2].scope)
    if directory:
        yield _role_step(context, session, directory, admin)


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


def _role_step(context: CheckContext, session: requests.Session, token: str, admin: str) -> Step:
    api = context.setting("google_api_url")
    url = f"{api}/admin/directory/v1/users/{quote(admin)}?viewType=admin_view"
    try:
        response = session.get(url, headers={"Authorization": f"Bearer {token}"})
        user = response.json() if response.status_code == 200 else None
    except (Blocked, ResolveError, BodyTooLarge, requests.RequestException, ValueError) as exc:
        return Step("google_workspace.role", "Administrator role", "warn", f"Cannot tell: {exc}")
    if response.status_code == 403:
        return Step(
            "google_workspace.role",
            "Administrator role",
            "fail",
            f"{admin} is not an administrator: the directory refused to show the user list.",
            remediation="Use an account with the Help Desk Admin role or higher (Admin console "
            "→ Account → Admin roles).",
        )
    if user is None:
        return Step(
            "google_workspace.role",
            "Administrator role",
            "warn",
            f"Cannot tell: the directory answered {response.status_code} ({_google_reason(response)}).",
        )
    if user.get("isAdmin"):
        return Step(
            "google_workspace.role",
            "Administrator role",
            "pass",
            f"{admin} is a super administrator.",
        )
    if user.get("isDelegatedAdmin"):
        return Step(
            "google_workspace.role",
            "Administrator role",
            "pass",
            f"{admin} holds a delegated administrator role (Help Desk Admin or higher is needed; "
            "the exact role cannot be read with read-only user access).",
        )
    return Step(
        "google_workspace.role",
        "Administrator role",
        "fail",
        f"{admin} is not an administrator.",
        remediation="Use an account with the Help Desk Admin role or higher (Admin console → "
        "Account → Admin roles).",
    )
