"""[superoffice] When a SuperOffice URL is given: the site is reachable, its REST API is enabled,
its version is one Synchronizer supports (Onsite 9 or later; Online is always current), and the
user has the administrator role (Onsite: the given user name and password; Online: SuperID's
verified id_token after "Sign in with SuperOffice" on the report page).

Online URLs (`https://online.superoffice.com/Cust12345`) are resolved through the tenant-state
endpoint first, as SuperOffice asks clients to do, because tenants move between servers."""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Iterator
from typing import Any
from urllib.parse import urlsplit

import requests

from checksite.checks.autodiscover_client import MALFORMED_ANSWER, describe_error
from checksite.checks.context import CheckContext
from checksite.checks.model import Report, Step, Stopwatch
from common.http import BodyTooLarge
from common.netguard import Blocked, ResolveError

ID = "superoffice"
TITLE = "SuperOffice"
MINIMUM_ONSITE_MAJOR = 9
_CONTEXT_ID = re.compile(r"^Cust\d+$", re.IGNORECASE)
RUNNING = ("Running", "OnlineMaintenance")


def run(context: CheckContext) -> Iterator[Step]:
    url = context.target.superoffice_url
    if not url:
        yield Step(
            "superoffice.skipped",
            "SuperOffice",
            "skip",
            "No SuperOffice URL was given (add one to check your CRM as well).",
        )
        return
    session = context.session()
    base = url.rstrip("/")
    parts = urlsplit(base)
    segments = [s for s in parts.path.split("/") if s]
    if segments and _CONTEXT_ID.match(segments[-1]):
        origin = f"{parts.scheme}://{parts.netloc}"
        state = yield from _online_state(session, origin, segments[-1], base)
        if state is None:
            return
        base = str(state["Endpoint"]).rstrip("/")
    online = bool(segments and _CONTEXT_ID.match(segments[-1]))
    steps = list(_api(session, base, online=online))
    yield from steps
    if not steps or steps[-1].id != "superoffice.version":
        return
    username = context.target.superoffice_username
    if online:
        yield _online_administrator_step(context, segments[-1])
    elif username:
        yield _administrator_step(session, base, username, context.target.superoffice_password)


def _get_json(session: requests.Session, url: str) -> tuple[int | None, Any, str]:
    try:
        response = session.get(url, headers={"Accept": "application/json"})
    except (Blocked, ResolveError, BodyTooLarge) as exc:
        return None, None, str(exc)
    except requests.RequestException as exc:
        return None, None, describe_error(exc)
    except ValueError:  # a redirect to an address requests cannot even parse
        return None, None, MALFORMED_ANSWER
    try:
        return response.status_code, response.json(), ""
    except ValueError:
        return response.status_code, None, f"HTTP {response.status_code}, not JSON"


def _online_state(
    session: requests.Session, origin: str, context_id: str, url: str
) -> Generator[Step, None, dict[str, Any] | None]:
    """Steps about the tenant's state; returns the state when its API can be used."""
    watch = Stopwatch()
    status, data, error = _get_json(session, f"{origin}/api/state/{context_id}")
    if status != 200 or not isinstance(data, dict):
        yield Step(
            "superoffice.state",
            "Tenant",
            "fail",
            f"SuperOffice did not answer for {context_id}: {error or f'HTTP {status}'}.",
            elapsed_ms=watch.ms(),
        )
        return None
    state = str(data.get("State", "Unknown"))
    details = {k: data.get(k) for k in ("ContextIdentifier", "State", "Endpoint", "Version")}
    details["url"] = url  # the address given (the report's "Sign in with SuperOffice" uses it)
    if not data.get("Endpoint") or state == "Unknown":
        yield Step(
            "superoffice.state",
            "Tenant",
            "fail",
            f"SuperOffice Online does not know the tenant {context_id}.",
            details=details,
            remediation="Copy the address from your browser after signing in to SuperOffice: "
            "it ends with your customer id (CustNNNNN).",
            elapsed_ms=watch.ms(),
        )
        return None
    if state not in RUNNING:
        yield Step(
            "superoffice.state",
            "Tenant",
            "warn",
            f"The tenant {context_id} is {state}: its API is not available right now.",
            details=details,
            remediation="Try again when SuperOffice's maintenance is over.",
            elapsed_ms=watch.ms(),
        )
        return None
    yield Step(
        "superoffice.state",
        "Tenant",
        "pass",
        f"{context_id} is {state} at {data['Endpoint']}.",
        details=details,
        elapsed_ms=watch.ms(),
    )
    return data


def _api(session: requests.Session, base: str, *, online: bool) -> Iterator[Step]:
    watch = Stopwatch()
    status, data, error = _get_json(session, f"{base}/api")
    if status is None:
        yield Step(
            "superoffice.reachable",
            "Reachable",
            "fail",
            f"{base} could not be reached: {error}",
            remediation="Check the address, and that the SuperOffice site is reachable from "
            "the internet (or from Synchronizer's outbound IP address) over HTTPS.",
            elapsed_ms=watch.ms(),
        )
        return
    yield Step("superoffice.reachable", "Reachable", "pass", f"{base} answers.")
    if status != 200 or not isinstance(data, dict) or "v1" not in data:
        yield Step(
            "superoffice.api",
            "REST API",
            "fail",
            f"{base}/api did not answer as the SuperOffice REST API does ({error or f'HTTP {status}'}).",
            remediation="Enable the REST WebAPI (NetServer web services) of your SuperOffice "
            "installation, and give the address of the SuperOffice web client (ending in "
            "/SuperOffice).",
            elapsed_ms=watch.ms(),
        )
        return
    yield Step(
        "superoffice.api",
        "REST API",
        "pass",
        f"The REST API is enabled ({data.get('ServicesCurrent') or data.get('Services')}).",
        details={"api": data.get("v1")},
        elapsed_ms=watch.ms(),
    )
    yield _version_step(str(data.get("NetServerVersion", "")), online)


ADMIN_RIGHT = "admin-all"
ADMIN_ROLE = "General Administrator"


SUPEROFFICE_SIGN_IN = "superoffice_sign_in"  # CheckContext.credentials: the verified SuperID user


def _online_administrator_step(context: CheckContext, context_id: str) -> Step:
    """Online: the role comes from SuperID's verified id_token (`is_administrator`) after
    "Sign in with SuperOffice" on the report page; Online users have no password to give."""
    raw = context.credentials.get(SUPEROFFICE_SIGN_IN)
    if not raw:
        return Step(
            "superoffice.administrator",
            "Administrator role",
            "skip",
            "SuperOffice Online users sign in with SuperOffice ID, not a password: use "
            '"Sign in with SuperOffice" on the report page to check the administrator role.',
        )
    who = json.loads(raw)
    email, tenant = str(who.get("email", "")), str(who.get("ctx", ""))
    details = {"signed_in": email, "tenant": tenant, "associate_id": who.get("associate_id")}
    title = f"Administrator role of {email}"
    if tenant.lower() != context_id.lower():
        return Step(
            "superoffice.administrator",
            title,
            "fail",
            f"{email} signed in to {tenant}, not to {context_id}.",
            details=details,
            remediation=f"Sign in with a user of {context_id}.",
        )
    if who.get("is_administrator"):
        return Step(
            "superoffice.administrator",
            title,
            "pass",
            f"{email} is an administrator of {context_id} (SuperOffice ID says so).",
            details=details,
        )
    return Step(
        "superoffice.administrator",
        title,
        "fail",
        f"{email} is not an administrator of {context_id}.",
        details=details,
        remediation="Set up Synchronizer with a SuperOffice user who is an administrator "
        "(Settings and maintenance → Users: the user needs administrator rights).",
    )


def _administrator_step(
    session: requests.Session, base: str, username: str, password: str | None
) -> Step:
    """Onsite: sign in with the given user (Basic) and read its role from currentPrincipal."""
    title = f"Administrator role of {username}"
    try:
        response = session.get(
            f"{base}/api/v1/User/currentPrincipal",
            auth=(username, password or ""),
            headers={"Accept": "application/json"},
        )
    except (Blocked, ResolveError, BodyTooLarge) as exc:
        return Step("superoffice.administrator", title, "warn", f"Could not sign in: {exc}")
    except requests.RequestException as exc:
        message = f"Could not sign in: {describe_error(exc)}"
        return Step("superoffice.administrator", title, "warn", message)
    except ValueError:
        message = f"Could not sign in: {MALFORMED_ANSWER}"
        return Step("superoffice.administrator", title, "warn", message)
    if response.status_code == 401:
        return Step(
            "superoffice.administrator",
            title,
            "fail",
            "SuperOffice refused the user name or password.",
            remediation="Check the credentials; the web API must allow user name and password "
            "sign-in (AuthorizeWithUsername in the WebApi configuration).",
        )
    try:
        principal = response.json() if response.status_code == 200 else None
    except ValueError:
        principal = None
    if not isinstance(principal, dict):
        return Step(
            "superoffice.administrator",
            title,
            "warn",
            f"Cannot tell: currentPrincipal answered HTTP {response.status_code}.",
        )
    role = str(principal.get("RoleName", ""))
    rights = principal.get("FunctionRights")
    rights = [str(r) for r in rights] if isinstance(rights, list) else []
    details = {"role": role, "associate": principal.get("Associate")}
    if role == ADMIN_ROLE or ADMIN_RIGHT in rights:
        return Step(
            "superoffice.administrator",
            title,
            "pass",
            f"{username} is an administrator ({role}).",
            details=details,
        )
    return Step(
        "superoffice.administrator",
        title,
        "fail",
        f"{username} has the role {role or 'unknown'}, not {ADMIN_ROLE}.",
        details=details,
        remediation=f"Use a SuperOffice user with the {ADMIN_ROLE} role to set up Synchronizer.",
    )


def _version_step(version: str, online: bool) -> Step:
    details = {"version": version}
    if online:
        return Step(
            "superoffice.version",
            "Version",
            "pass",
            f"SuperOffice Online {version} (always the current release).",
            details=details,
        )
    match = re.match(r"^(\d+)\.", version)
    if match is None:
        return Step("superoffice.version", "Version", "warn", f"Unknown version {version!r}.")
    if int(match.group(1)) >= MINIMUM_ONSITE_MAJOR:
        return Step(
            "superoffice.version", "Version", "pass", f"SuperOffice {version}.", details=details
        )
    return Step(
        "superoffice.version",
        "Version",
        "fail",
        f"SuperOffice {version}: Synchronizer needs SuperOffice Onsite 9 or later.",
        details=details,
        remediation="Upgrade SuperOffice to a supported release (9 or later).",
    )


def superoffice_online_tenant(report: dict[str, Any] | None) -> tuple[str, str] | None:
    """(tenant URL, context id) of the report's SuperOffice Online tenant, when it was found."""
    if not report:
        return None
    for check in Report.from_dict(report).checks:
        for step in check.steps if check.id == "superoffice" else []:
            if step.id == "superoffice.state" and step.status == "pass":
                url, context_id = step.details.get("url"), step.details.get("ContextIdentifier")
                if isinstance(url, str) and isinstance(context_id, str):
                    return url, context_id
    return None
