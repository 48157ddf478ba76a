"""[google_workspace] through the report page, against the Google simulator: a Workspace
administrator signs in; only then are our app and this installation's domain-wide delegation
tested (acting as that administrator, never as a typed address), Google's errors explained,
and the administrator's role read. A sign-in from another Workspace is not used."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from checksite.checks.context import CheckContext, parse_target
from checksite.checks.google_workspace import GOOGLE_ADMIN_HOSTED_DOMAIN, _belongs
from checksite.checks.model import CheckResult
from simulators.google.store import GoogleStore
from simulators.runner import SimulatorStack
from simulators.world.google import PERSONAL_ON_WORKSPACE_DOMAIN, SERVICE_ACCOUNT_CLIENT_ID
from tests.checks.test_admin_signin import finished, google_consent, google_report
from tests.fixtures.checks import Hostile, find_step

CONTACTS = "https://www.googleapis.com/auth/contacts"


@pytest.fixture
def app_with_service_account(check_app: Flask, google_settings: object) -> Flask:
    check_app.config["SYNCHRONIZER"] = dataclasses.replace(
        check_app.config["SYNCHRONIZER"],
        google_service_account_file=google_settings.google_service_account_file,  # type: ignore[attr-defined]
    )
    return check_app


@dataclasses.dataclass
class GoogleState:
    """The running Google simulator's state, and the tokens it had issued before the test."""

    store: GoogleStore
    issued_before: set[str]

    def delegated_subjects(self) -> set[str]:
        """Whom this installation's service account acted as during the test."""
        return {
            t.email
            for key, t in list(self.store.access_tokens.items())
            if key not in self.issued_before and t.client_id == SERVICE_ACCOUNT_CLIENT_ID
        }


@pytest.fixture
def google(sims: SimulatorStack) -> Iterator[GoogleState]:
    """The Google simulator's state; a test's changes to the delegation are undone after."""
    store: GoogleStore = sims.apps["google"].extensions["google_store"]
    saved = {d.name: copy.deepcopy(d.delegation) for d in store.world.domains}
    yield GoogleState(store, set(store.access_tokens))
    for domain in store.world.domains:
        domain.delegation = saved[domain.name]


def signed_in_report(
    client: FlaskClient,
    sims: SimulatorStack,
    sim_session: requests.Session,
    target: str,
    admin: str,
    **options: str,
) -> CheckResult:
    first = client.post("/api/checks", json={"target": target}).get_json()["id"]
    finished(client, first)
    return google_report(client, google_consent(client, sims, sim_session, first, admin, **options))


@pytest.mark.parametrize(
    ("admin", "status", "role"),
    [
        ("alice@northwind.example", "pass", "is a super administrator"),
        ("harry@northwind.example", "warn", "Google refused to list role assignments (403)"),
        ("carol@northwind.example", "fail", "is not an administrator"),
    ],
)
def test_access_delegation_and_role_for_the_administrator_who_signed_in(
    app_with_service_account: Flask,
    sims: SimulatorStack,
    sim_session: requests.Session,
    google: GoogleState,
    admin: str,
    status: str,
    role: str,
) -> None:
    client = app_with_service_account.test_client()
    # The report is about Dave's mailbox; delegation must act as the signed-in administrator.
    check = signed_in_report(client, sims, sim_session, "dave@northwind.example", admin)
    assert check.status == status
    assert role in find_step(check.steps, "google_workspace.role").message
    assert find_step(check.steps, "google_workspace.scope.calendar").status == "pass"
    assert find_step(check.steps, "google_workspace.sign_in").status == "pass"
    assert google.delegated_subjects() <= {admin}
    assert admin in google.delegated_subjects()


def test_a_scope_missing_from_the_delegation_is_explained(
    app_with_service_account: Flask,
    sims: SimulatorStack,
    sim_session: requests.Session,
    google: GoogleState,
) -> None:
    google.store.world.domain("northwind.example").delegation[SERVICE_ACCOUNT_CLIENT_ID].remove(
        CONTACTS
    )
    client = app_with_service_account.test_client()
    check = signed_in_report(
        client, sims, sim_session, "northwind.example", "alice@northwind.example"
    )
    scopes = find_step(check.steps, "google_workspace.scopes")
    assert scopes.status == "fail"
    assert "1 of 3 scopes refused" in scopes.message
    assert "clientIdToAdd=" in scopes.remediation
    step = find_step(check.steps, "google_workspace.scope.contacts")
    assert step.details["error"] == "unauthorized_client"
    assert "Domain-wide delegation" in step.remediation


def test_without_a_service_account_only_our_app_is_tested(
    check_app: Flask, sims: SimulatorStack, sim_session: requests.Session, google: GoogleState
) -> None:
    client = check_app.test_client()
    check = signed_in_report(
        client, sims, sim_session, "northwind.example", "alice@northwind.example"
    )
    assert find_step(check.steps, "google_workspace.app").status == "pass"
    with pytest.raises(KeyError):
        find_step(check.steps, "google_workspace.scopes")
    assert google.delegated_subjects() == set()


def test_a_sign_in_from_another_workspace_is_not_used_and_the_report_says_so(
    app_with_service_account: Flask,
    sims: SimulatorStack,
    sim_session: requests.Session,
    google: GoogleState,
) -> None:
    client = app_with_service_account.test_client()
    first = client.post("/api/checks", json={"target": "tailspin.example"}).get_json()["id"]
    finished(client, first)
    sims.reset_controls()
    check = google_report(
        client, google_consent(client, sims, sim_session, first, "alice@northwind.example")
    )
    who = find_step(check.steps, "google_workspace.sign_in")
    assert who.status == "warn"
    assert "tailspin.example is not one of that Workspace's domains" in who.message
    assert "Nothing from that sign-in is used" in who.message
    assert [s.id for s in check.steps] == ["google_workspace.sign_in"]
    served = sims.session().get(sims.urls["google"] + "/_sim/stats").json()["endpoints"]
    # Only the sign-in itself and the one question "which domains are yours?" with its token.
    assert {k for k in served if "/calendar/" in k or "/people" in k or "/users" in k} == set()
    assert served.get("GET /admin/directory/v1/customer/<customer>/domains") == 1
    assert google.delegated_subjects() == set()  # our service account was not used


def test_a_secondary_domain_of_the_workspace_is_accepted(
    app_with_service_account: Flask, sims: SimulatorStack, sim_session: requests.Session
) -> None:
    client = app_with_service_account.test_client()
    check = signed_in_report(
        client, sims, sim_session, "northwindtraders.example", "alice@northwind.example"
    )
    who = find_step(check.steps, "google_workspace.sign_in")
    assert who.status == "pass"
    assert "northwindtraders.example is one of that Workspace's verified domains" in who.message
    assert find_step(check.steps, "google_workspace.app").status == "pass"
    # A Help Desk admin may not list the domains: membership cannot be confirmed, nothing used.
    harry = signed_in_report(
        client, sims, sim_session, "northwindtraders.example", "harry@northwind.example"
    )
    assert find_step(harry.steps, "google_workspace.sign_in").status == "warn"
    assert "could not be confirmed" in harry.steps[0].message
    assert len(harry.steps) == 1


def test_the_name_shown_is_the_account_google_signed_in(
    check_app: Flask, sims: SimulatorStack, sim_session: requests.Session
) -> None:
    client = check_app.test_client()
    check = signed_in_report(
        client,
        sims,
        sim_session,
        "northwind.example",
        "erin@northwind.example",  # typed on our page
        account="alice@northwind.example",  # chosen at Google
    )
    text = " ".join(s.message for s in check.steps)
    assert "alice@northwind.example signed in" in text
    assert "erin@northwind.example" not in text


def test_a_personal_google_account_on_the_company_domain_is_not_accepted_as_its_administrator(
    app_with_service_account: Flask,
    sims: SimulatorStack,
    sim_session: requests.Session,
    google: GoogleState,
) -> None:
    """End to end through Google's sign-in: a consumer Google account registered with a
    northwind.example address signs in; Google's id_token has no `hd` for it, so it is not the
    Workspace's administrator, and nothing is asked of Google on its behalf."""
    client = app_with_service_account.test_client()
    first = client.post("/api/checks", json={"target": "northwind.example"}).get_json()["id"]
    finished(client, first)
    sims.reset_controls()
    check = google_report(
        client, google_consent(client, sims, sim_session, first, PERSONAL_ON_WORKSPACE_DOMAIN)
    )
    who = find_step(check.steps, "google_workspace.sign_in")
    assert who.status == "warn"
    assert f"{PERSONAL_ON_WORKSPACE_DOMAIN} signed in" in who.message
    assert "a personal Google account" in who.message
    assert "Nothing from that sign-in is used" in who.message
    assert [s.id for s in check.steps] == ["google_workspace.sign_in"]
    served = sims.session().get(sims.urls["google"] + "/_sim/stats").json()["endpoints"]
    assert {k for k in served if "/calendar/" in k or "/people" in k or "/users" in k} == set()
    assert google.delegated_subjects() == set()  # our service account was not used


@pytest.mark.parametrize(("hosted_domain", "status"), [("northwind.example", "pass"), ("", "warn")])
def test_a_personal_google_account_on_the_company_domain_is_not_its_workspace(
    hostile: Hostile, hosted_domain: str, status: str
) -> None:
    """Google's id_token carries `hd` only for a Workspace account; a personal Google account
    can have an address on the company's domain too, and is not the Workspace's."""
    credentials = {GOOGLE_ADMIN_HOSTED_DOMAIN: hosted_domain}
    context = CheckContext(parse_target("northwind.example"), hostile.guard(), None, credentials)
    step = _belongs(context, requests.Session(), "token", "alice@northwind.example")
    assert step.status == status
    if status == "warn":
        assert "a personal Google account" in step.message
        assert "Nothing from that sign-in is used" in step.message
