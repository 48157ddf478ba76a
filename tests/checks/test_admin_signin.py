"""The Google Workspace administrator's sign-in from the report page: state + PKCE against the
simulated Google, then a run that tests our app with the administrator's token. (Microsoft's:
test_microsoft_signin.py.)"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from flask import Flask
from flask.testing import FlaskClient

from checksite.checks.model import CheckResult
from simulators.runner import SimulatorStack
from tests.fixtures.checks import find_step


def finished(client: FlaskClient, report_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        state = client.get(f"/api/checks/{report_id}").get_json()
        if state["status"] == "done":
            return state  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError("not finished")


def google_consent(
    client: FlaskClient,
    sims: SimulatorStack,
    sim_session: requests.Session,
    report_id: str,
    admin: str,
    untick: str | None = None,
    account: str | None = None,
) -> Any:
    """The visitor types `admin`; at Google signs in as `account` (another account than the one
    typed, when given), leaves every box ticked but `untick`, and allows."""
    start = client.get(f"/check/r/{report_id}/signin/google", query_string={"login_hint": admin})
    assert start.status_code == 302
    authorize = start.headers["Location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["state"] and query["nonce"]
    if account is not None:
        query["login_hint"] = [account]
        authorize = authorize.split("?", 1)[0] + "?" + urlencode(query, doseq=True)
    page = sim_session.get(authorize)
    if page.status_code != 200 or "ticket" not in page.text:
        return page  # Google's own error page: the administrator never comes back
    ticket = re.search(r'name="ticket" value="([^"]+)"', page.text)
    assert ticket is not None
    scopes = [s for s in re.findall(r'name="scope" value="([^"]+)"', page.text) if s != untick]
    answer = sim_session.post(
        sims.urls["google"] + "/o/oauth2/v2/auth/decision",
        data={"ticket": ticket.group(1), "scope": scopes, "decision": "allow"},
        allow_redirects=False,
    )
    callback = urlsplit(answer.headers["Location"])
    return client.get(f"{callback.path}?{callback.query}")


def google_report(client: FlaskClient, response: Any) -> CheckResult:
    assert response.status_code == 303, response.text
    report = finished(client, response.headers["Location"].rsplit("/", 1)[1])["report"]
    return CheckResult.from_dict(next(c for c in report["checks"] if c["id"] == "google_workspace"))


def test_a_google_administrator_signs_in_and_our_app_is_tested(
    check_app: Flask, sims: SimulatorStack, sim_session: requests.Session
) -> None:
    client = check_app.test_client()
    first = client.post("/api/checks", json={"target": "northwind.example"}).get_json()["id"]
    finished(client, first)
    assert "Sign in as a Google Workspace administrator" in client.get(f"/check/r/{first}").text
    check = google_report(
        client, google_consent(client, sims, sim_session, first, "alice@northwind.example")
    )
    app = find_step(check.steps, "google_workspace.app")
    assert app.status == "pass"
    assert "alice@northwind.example signed in" in app.message
    assert find_step(check.steps, "google_workspace.role").status == "pass"


def test_an_unticked_scope_is_reported(
    check_app: Flask, sims: SimulatorStack, sim_session: requests.Session
) -> None:
    client = check_app.test_client()
    first = client.post("/api/checks", json={"target": "northwind.example"}).get_json()["id"]
    finished(client, first)
    response = google_consent(
        client,
        sims,
        sim_session,
        first,
        "alice@northwind.example",
        untick="https://www.googleapis.com/auth/contacts",
    )
    step = find_step(google_report(client, response).steps, "google_workspace.app.contacts")
    assert step.status == "fail"
    assert "unticked" in step.message


def test_a_domain_that_blocks_our_app_never_comes_back(
    check_app: Flask, sims: SimulatorStack, sim_session: requests.Session
) -> None:
    client = check_app.test_client()
    first = client.post("/api/checks", json={"target": "tailspin.example"}).get_json()["id"]
    finished(client, first)
    page = client.get(f"/check/r/{first}").text
    assert "admin_policy_enforced" in page  # the report page warns about it beforehand
    blocked = google_consent(client, sims, sim_session, first, "tom@tailspin.example")
    assert blocked.status_code == 400
    assert "admin_policy_enforced" in blocked.text


def test_a_help_desk_admin_signs_in_and_the_role_is_cannot_tell(
    check_app: Flask, sims: SimulatorStack, sim_session: requests.Session
) -> None:
    client = check_app.test_client()
    first = client.post("/api/checks", json={"target": "northwind.example"}).get_json()["id"]
    finished(client, first)
    check = google_report(
        client, google_consent(client, sims, sim_session, first, "harry@northwind.example")
    )
    role = find_step(check.steps, "google_workspace.role")
    assert role.status == "warn"
    assert "Google refused to list role assignments (403)" in role.message
    assert "harry@northwind.example → Admin roles" in role.remediation
