"""The Microsoft 365 administrator sign-in from the report page: state + PKCE against the
simulated identity platform, then a run that reads the plans with the administrator's token."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

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


def sign_in(
    client: FlaskClient,
    sim_session: requests.Session,
    report_id: str,
    who: str = "admin@contoso.example",
) -> Any:
    start = client.get(f"/check/r/{report_id}/signin/microsoft", query_string={"login_hint": who})
    assert start.status_code == 302
    authorize = start.headers["Location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["state"] and query["login_hint"] == [who]
    answer = sim_session.get(authorize, allow_redirects=False)  # the simulated admin consents
    assert answer.status_code == 302, answer.text
    callback = urlsplit(answer.headers["Location"])
    return client.get(f"{callback.path}?{callback.query}")


def test_an_administrator_signs_in_and_the_plans_are_read_with_that_token(
    check_app: Flask, sim_session: requests.Session
) -> None:
    client = check_app.test_client()
    first = client.post("/api/checks", json={"target": "adele@contoso.example"}).get_json()["id"]
    finished(client, first)
    page = client.get(f"/check/r/{first}").text
    assert "Sign in as a Microsoft 365 administrator" in page
    done = sign_in(client, sim_session, first)
    assert done.status_code == 303
    second = done.headers["Location"].rsplit("/", 1)[1]
    assert second != first
    report = finished(client, second)["report"]
    plan = CheckResult.from_dict(next(c for c in report["checks"] if c["id"] == "m365_plan"))
    skus = find_step(plan.steps, "m365_plan.skus")
    assert skus.status == "pass"
    assert skus.details["read_with"] == "an administrator's sign-in"


def consent_after_sign_in(
    client: FlaskClient, sim_session: requests.Session, domain: str, who: str
) -> CheckResult:
    first = client.post("/api/checks", json={"target": domain}).get_json()["id"]
    report = finished(client, first)["report"]
    before = CheckResult.from_dict(next(c for c in report["checks"] if c["id"] == "app_consent"))
    assert "look the same" in find_step(before.steps, "app_consent.granted").message
    assert "approval for apps" in client.get(f"/check/r/{first}").text
    done = sign_in(client, sim_session, first, who)
    assert done.status_code == 303, done.text  # Microsoft's refusal is evidence, not a dead end
    report = finished(client, done.headers["Location"].rsplit("/", 1)[1])["report"]
    return CheckResult.from_dict(next(c for c in report["checks"] if c["id"] == "app_consent"))


def test_a_sign_in_tells_approval_for_apps_from_never_consented(
    check_app: Flask, sim_session: requests.Session
) -> None:
    client = check_app.test_client()
    locked = consent_after_sign_in(client, sim_session, "litware.example", "kim@litware.example")
    step = find_step(locked.steps, "app_consent.granted")
    assert step.status == "fail"
    assert "Approval for apps is on" in step.message and "AADSTS90094" in step.message
    app_id = check_app.config["SYNCHRONIZER"].microsoft_client_id
    assert f"approves application id {app_id}" in step.remediation
    assert "Admin consent requests" in step.remediation and "/adminconsent?" in step.remediation
    assert "Calendars.ReadWrite: to read and write" in step.remediation
    never = consent_after_sign_in(
        client, sim_session, "fourthcoffee.example", "admin@fourthcoffee.example"
    )
    step = find_step(never.steps, "app_consent.granted")
    assert "never been consented" in step.message and "AADSTS65001" in step.message
    assert "/adminconsent?" in step.remediation and "Contacts.ReadWrite" in step.remediation
    assert "Admin consent requests" not in step.remediation


def test_a_callback_without_a_started_sign_in_is_refused(check_app: Flask) -> None:
    response = check_app.test_client().get("/check/oauth/microsoft?code=x&state=y")
    assert response.status_code == 400
    assert "no sign-in under way" in response.text


def test_a_callback_with_another_state_is_refused(
    check_app: Flask, sim_session: requests.Session
) -> None:
    client = check_app.test_client()
    report_id = client.post("/api/checks", json={"target": "adele@contoso.example"}).get_json()[
        "id"
    ]
    finished(client, report_id)
    client.get(f"/check/r/{report_id}/signin/microsoft")
    response = client.get("/check/oauth/microsoft?code=forged&state=forged")
    assert response.status_code == 400
    assert "did not match" in response.text


def google_consent(
    client: FlaskClient,
    sims: SimulatorStack,
    sim_session: requests.Session,
    report_id: str,
    admin: str,
    untick: str | None = None,
) -> Any:
    start = client.get(f"/check/r/{report_id}/signin/google", query_string={"login_hint": admin})
    assert start.status_code == 302
    authorize = start.headers["Location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["state"]
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
