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
GOOGLE_ADMIN_EMAIL = "google_admin_email"


def run(context: CheckContext) -> Iterator[Step]:
    if mail_system(context).kind != GOOGLE:
        yield Step("google_workspace.skipped", "Google", "skip", "Not a Google Workspace domain.")
        return
    signed_in = context.credentials.get(GOOGLE_ADMIN_TOKEN)
    key_file = context.setting("google_service_account_file")
    admin = context.credentials.get(GOOGLE_ADMIN_EMAIL) or context.target.mailbox
    if signed_in:
        yield from _signed_in_steps(context, signed_in, admin)
    if key_file is not None and admin:
        yield from _delegation_steps(context, Path(key_file), admin)
    if not signed_in and (key_file is None or not admin):
        yield Step(
            "google_workspace.configuration",
            "Google access",
            "skip",
            "Sign in as a Google Workspace administrator on the report page to test our app"
            + (
                ", or enter an administrator's address to test domain-wide delegation."
                if key_file is not None
                else " (this installation has no service account, GOOGLE_SERVICE_ACCOUNT_FILE, "
                "for domain-wide delegation)."
            ),
        )


def _signed_in_steps(context: CheckContext, token: str, admin: str | None) -> Iterator[Step]:
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
        f"{admin or 'The administrator'} signed in; "
        + (f"{len(failed)} of {len(NEEDS)} accesses failed." if failed else "every API answers."),
        details={"granted": sorted(granted)},
        children=children,
    )
    if admin and NEEDS[2] not in missing:
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
    info = json.loads(key_file.read_text(encoding="utf-8"))
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
        "Domain-wide delegation, each scope",
        "fail" if failed else "pass",
        f"{len(failed)} of {len(NEEDS)} scopes refused." if failed else "Every scope works.",
        details={"client_id": client_id, "scopes": [n.scope for n in NEEDS]},
        remediation=f"Authorize client id {client_id} for the scopes listed, e.g. at {link}"
        if failed
        else "",
        children=children,
    )
    directory = granted.get(NEEDS[2].scope)
    if directory and not context.credentials.get(GOOGLE_ADMIN_TOKEN):
        roles = lambda: _delegated_token(session, info, admin, ROLES_SCOPE)  # noqa: E731
        yield role_step(context, session, admin, directory, roles)


def _delegated_token(
    session: requests.Session, info: dict[str, object], admin: str, scope: str
) -> tuple[str | None, str]:
    """A token for one more scope through domain-wide delegation, or why there is none."""
    credentials = service_account.Credentials.from_service_account_info(
        info, scopes=[scope], subject=admin
    )
    try:
        credentials.refresh(Request(session))
    except (RefreshError, TransportError, Blocked, ResolveError) as exc:
        return None, (
            f"domain-wide delegation gives no token for {_short(scope)} ({str(exc.args[0])[:80]}); "
            "add that scope to the delegation, or sign in on the report page"
        )
    return str(credentials.token), ""


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
