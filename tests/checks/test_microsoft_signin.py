"""The Microsoft 365 administrator's sign-in from the report page, against the simulated
identity platform (which shows a consent screen for what is not granted yet, as Entra does):
only the permissions the ticked parts of the report need, no offline_access, no prompt=consent;
the id_token verified; the token used only when its tenant is the target's."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from checksite.checks.model import CheckResult
from simulators.runner import SimulatorStack
from simulators.world.microsoft import MicrosoftWorld
from tests.checks.test_admin_signin import finished
from tests.fixtures.checks import find_step
from tests.fixtures.microsoft import answer_consent, consent_screen_permissions

GRAPH = "https://graph.microsoft.com/"


@pytest.fixture
def ms_world(sims: SimulatorStack) -> Iterator[MicrosoftWorld]:
    """The running simulator's world; the consents a test's sign-ins grant are undone after."""
    world: MicrosoftWorld = sims.apps["login"].extensions["microsoft_world"]
    saved = {t.id: (copy.deepcopy(t.user_consents), list(t.granted_scopes)) for t in world.tenants}
    yield world
    for tenant in world.tenants:
        tenant.user_consents, tenant.granted_scopes = saved[tenant.id]


@dataclasses.dataclass
class SignIn:
    authorize: str  # the URL our page sent the browser to
    screen: list[str] | None  # the permissions Microsoft's consent screen asked for, if shown
    response: Any  # our callback's answer


def sign_in(
    client: FlaskClient,
    sim_session: requests.Session,
    report_id: str,
    who: str,
    *,
    parts: tuple[str, ...] = ("plans", "consent"),
    account: str | None = None,
    decision: str = "accept",
) -> SignIn:
    """The administrator ticks `parts`, types `who`, and at Microsoft signs in as `account`
    (another account than the one typed, when given) and answers the consent screen."""
    query = [("login_hint", who), *(("read", p) for p in parts)]
    start = client.get(f"/check/r/{report_id}/signin/microsoft?{urlencode(query)}")
    assert start.status_code == 302, start.text
    authorize = start.headers["Location"]
    if account is not None:
        base, _, query_text = authorize.partition("?")
        params = parse_qs(query_text)
        params["login_hint"] = [account]
        authorize = f"{base}?{urlencode(params, doseq=True)}"
    answer = sim_session.get(authorize, allow_redirects=False)
    screen = None
    if answer.status_code == 200 and "Permissions requested" in answer.text:
        screen = consent_screen_permissions(answer.text)
        answer = answer_consent(sim_session, authorize, answer.text, decision)
    assert answer.status_code == 302, answer.text
    callback = urlsplit(answer.headers["Location"])
    return SignIn(authorize, screen, client.get(f"{callback.path}?{callback.query}"))


def report_after(client: FlaskClient, signed: SignIn) -> dict[str, CheckResult]:
    assert signed.response.status_code == 303, signed.response.text
    report = finished(client, signed.response.headers["Location"].rsplit("/", 1)[1])["report"]
    return {c["id"]: CheckResult.from_dict(c) for c in report["checks"]}


def first_report(client: FlaskClient, target: str) -> str:
    report_id: str = client.post("/api/checks", json={"target": target}).get_json()["id"]
    finished(client, report_id)
    return report_id


def graph_requests(sims: SimulatorStack) -> dict[str, int]:
    stats = sims.session().get(sims.urls["graph"] + "/_sim/stats").json()["endpoints"]
    return {k: v for k, v in stats.items() if " /v1.0/" in k}


def test_the_sign_in_asks_only_for_what_the_report_reads_and_consent_is_incremental(
    check_app: Flask, sims: SimulatorStack, sim_session: requests.Session, ms_world: Any
) -> None:
    client = check_app.test_client()
    first = first_report(client, "adele@contoso.example")
    page = client.get(f"/check/r/{first}").text
    assert "Sign in as a Microsoft 365 administrator" in page
    plans_only = sign_in(client, sim_session, first, "admin@contoso.example", parts=("plans",))
    query = parse_qs(urlsplit(plans_only.authorize).query)
    assert "prompt" not in query  # Microsoft decides when to ask; we never force a grant
    assert set(query["scope"][0].split()) == {
        GRAPH + "LicenseAssignment.Read.All",
        "openid",
        "profile",
    }
    assert query["code_challenge_method"] == ["S256"] and query["state"] and query["nonce"]
    assert plans_only.screen == ["LicenseAssignment.Read.All"]  # the admin saw what is asked
    checks = report_after(client, plans_only)
    skus = find_step(checks["m365_plan"].steps, "m365_plan.skus")
    assert skus.status == "pass"
    assert skus.details["signed_in_as"] == "admin@contoso.example"
    assert find_step(checks["m365_plan"].steps, "m365_plan.user").status == "pass"
    not_ticked = find_step(checks["app_consent"].steps, "app_consent.model")
    assert not_ticked.status == "info" and "did not include reading it" in not_ticked.message
    # Later, the consent part too: Microsoft asks only for what is new.
    both = sign_in(client, sim_session, first, "admin@contoso.example")
    assert "offline_access" not in parse_qs(urlsplit(both.authorize).query)["scope"][0]
    assert both.screen == ["Directory.Read.All", "Policy.Read.All"]
    assert report_after(client, both)["app_consent"].status == "pass"
    again = sign_in(client, sim_session, first, "admin@contoso.example")
    assert again.screen is None  # all granted: no consent screen at all
    tenant = ms_world.tenant("contoso.example")
    assert "Directory.Read.All" not in tenant.granted_scopes  # granted to the admin, not to all


@pytest.mark.parametrize(
    ("target", "tenant_status", "user_status"),
    [
        ("adele@contoso.example", "pass", "pass"),
        ("nomail@contoso.example", "pass", "fail"),
        ("appsonly.example", "fail", None),
        ("dan@humongousinsurance.example", "pass", "pass"),
        ("lynne@humongousinsurance.example", "pass", "fail"),  # Exchange switched off for her
    ],
)
def test_the_plans_read_with_the_sign_in_are_matched_on_service_plans(
    check_app: Flask,
    sim_session: requests.Session,
    ms_world: Any,
    target: str,
    tenant_status: str,
    user_status: str | None,
) -> None:
    client = check_app.test_client()
    first = first_report(client, target)
    domain = target.rpartition("@")[2]
    plan = report_after(client, sign_in(client, sim_session, first, f"admin@{domain}"))["m365_plan"]
    skus = find_step(plan.steps, "m365_plan.skus")
    assert skus.status == tenant_status
    if tenant_status == "fail":
        assert "Microsoft 365 Apps" in skus.message
        assert "no Exchange Online mailbox" in skus.message
        assert "How to fix" not in skus.message and skus.remediation
    if user_status is not None:
        assert find_step(plan.steps, "m365_plan.user").status == user_status


def test_a_licence_with_exchange_switched_off_fails_for_that_user(
    check_app: Flask, sim_session: requests.Session, ms_world: Any
) -> None:
    """lynne@humongousinsurance.example holds Microsoft 365 Business Standard, but Exchange
    Online is switched off in her licence assignment (licenseDetails: EXCHANGE_S_STANDARD
    "Disabled"), so she has no mailbox: the tenant's plan passes, her licence fails."""
    client = check_app.test_client()
    first = first_report(client, "lynne@humongousinsurance.example")
    signed = sign_in(client, sim_session, first, "admin@humongousinsurance.example")
    plan = report_after(client, signed)["m365_plan"]
    assert find_step(plan.steps, "m365_plan.skus").status == "pass"
    user = find_step(plan.steps, "m365_plan.user")
    assert user.status == "fail"
    assert "Exchange Online is switched off for this user" in user.message
    assert user.details["exchange_plans"] == ["Disabled"]
    assert "Licenses and apps" in user.remediation


@pytest.mark.parametrize(
    ("domain", "status", "says"),
    [
        (
            "contoso.example",
            "pass",
            "granted Synchronizer's permissions for the whole organisation",
        ),
        ("fourthcoffee.example", "pass", "Users may consent to apps in this tenant"),
        ("litware.example", "fail", "Users may not consent to apps in this tenant"),
    ],
)
def test_the_consent_is_judged_on_the_delegated_model(
    check_app: Flask,
    sim_session: requests.Session,
    ms_world: Any,
    domain: str,
    status: str,
    says: str,
) -> None:
    client = check_app.test_client()
    first = first_report(client, domain)
    checks = report_after(client, sign_in(client, sim_session, first, f"admin@{domain}"))
    step = find_step(checks["app_consent"].steps, "app_consent.granted")
    assert (step.status, says in step.message) == (status, True), step.message
    if status == "fail":
        assert "/adminconsent?" in step.remediation
        assert "Calendars.ReadWrite: to read and write" in step.remediation
        assert "User.ReadBasic.All" in step.remediation and "offline_access" in step.remediation
    if domain == "fourthcoffee.example":
        assert "Nobody has given Synchronizer access to a mailbox" in step.message


def test_a_sign_in_from_another_tenant_is_not_used_and_the_report_says_so(
    check_app: Flask, sims: SimulatorStack, sim_session: requests.Session, ms_world: Any
) -> None:
    client = check_app.test_client()
    first = first_report(client, "adele@contoso.example")
    sims.reset_controls()
    # The visitor typed Contoso's administrator, but signed in at Microsoft as Fourth Coffee's.
    signed = sign_in(
        client,
        sim_session,
        first,
        "admin@contoso.example",
        account="admin@fourthcoffee.example",
    )
    checks = report_after(client, signed)
    who = find_step(checks["m365_tenant"].steps, "m365_tenant.sign_in")
    assert who.status == "warn"
    assert "admin@fourthcoffee.example signed in with an account of another tenant" in who.message
    assert "Nothing from that sign-in is used" in who.message
    assert "admin@contoso.example" not in who.message  # the name typed is never shown
    assert find_step(checks["m365_plan"].steps, "m365_plan.sign_in_needed").status == "info"
    assert find_step(checks["app_consent"].steps, "app_consent.model").status == "info"
    assert graph_requests(sims) == {}  # Fourth Coffee's token never reached Graph


def test_the_name_shown_is_the_one_microsoft_signed_in(
    check_app: Flask, sim_session: requests.Session, ms_world: Any
) -> None:
    client = check_app.test_client()
    first = first_report(client, "contoso.example")
    signed = sign_in(
        client, sim_session, first, "ceo@contoso.example", account="admin@contoso.example"
    )
    who = find_step(report_after(client, signed)["m365_tenant"].steps, "m365_tenant.sign_in")
    assert who.status == "pass"
    assert who.message.startswith("admin@contoso.example signed in")
    assert "ceo@contoso.example" not in who.message


def test_a_user_who_is_not_an_administrator_cannot_grant_the_reads(
    check_app: Flask, sim_session: requests.Session, ms_world: Any
) -> None:
    client = check_app.test_client()
    first = first_report(client, "adele@contoso.example")
    start = client.get(
        f"/check/r/{first}/signin/microsoft?login_hint=adele@contoso.example&read=plans"
    )
    answer = sim_session.get(start.headers["Location"], allow_redirects=False)
    assert answer.status_code == 302  # Microsoft sends the refusal back
    callback = urlsplit(answer.headers["Location"])
    refused = client.get(f"{callback.path}?{callback.query}")
    assert refused.status_code == 400
    assert "an administrator must approve this" in refused.text


def test_cancelling_microsofts_consent_screen_reads_nothing(
    check_app: Flask, sim_session: requests.Session, ms_world: Any
) -> None:
    client = check_app.test_client()
    first = first_report(client, "contoso.example")
    signed = sign_in(client, sim_session, first, "admin@contoso.example", decision="cancel")
    assert signed.response.status_code == 400
    assert "You cancelled" in signed.response.text


def test_nothing_ticked_asks_for_nothing(check_app: Flask) -> None:
    client = check_app.test_client()
    report_id = first_report(client, "contoso.example")
    refused = client.get(f"/check/r/{report_id}/signin/microsoft?login_hint=admin@contoso.example")
    assert refused.status_code == 400
    assert "tick at least one part" in refused.text


def test_a_callback_without_a_started_sign_in_is_refused(check_app: Flask) -> None:
    response = check_app.test_client().get("/check/oauth/microsoft?code=x&state=y")
    assert response.status_code == 400
    assert "no sign-in under way" in response.text


def test_a_callback_with_another_state_is_refused(check_app: Flask) -> None:
    client = check_app.test_client()
    report_id = first_report(client, "adele@contoso.example")
    assert client.get(f"/check/r/{report_id}/signin/microsoft?read=plans").status_code == 302
    response = client.get("/check/oauth/microsoft?code=forged&state=forged")
    assert response.status_code == 400
    assert "did not match" in response.text


@pytest.mark.parametrize(
    ("domain", "status"), [("contoso.example", "pass"), ("fourthcoffee.example", "fail")]
)
def test_the_application_permission_mode_is_judged_on_its_own_terms(
    check_app: Flask, sim_session: requests.Session, ms_world: Any, domain: str, status: str
) -> None:
    check_app.config["SYNCHRONIZER"] = dataclasses.replace(
        check_app.config["SYNCHRONIZER"], microsoft_permission_mode="application"
    )
    client = check_app.test_client()
    first = first_report(client, domain)
    anonymous = client.get(f"/api/checks/{first}").get_json()["report"]
    model = next(c for c in anonymous["checks"] if c["id"] == "app_consent")["steps"][0]
    assert "application permissions" in model["message"]
    signed = sign_in(client, sim_session, first, f"admin@{domain}", parts=("consent",))
    assert parse_qs(urlsplit(signed.authorize).query)["scope"][0].split()[0] == (
        GRAPH + "Application.Read.All"
    )
    steps = report_after(client, signed)["app_consent"].steps
    granted = find_step(steps, "app_consent.granted")
    assert granted.status == status
    if status == "pass":
        assert "Calendars.ReadWrite" in granted.details["granted"]
        policy = find_step(steps, "app_consent.access_policy")
        assert "New-ApplicationAccessPolicy" in policy.remediation
    else:
        assert "/adminconsent?" in granted.remediation


def test_an_id_token_not_signed_by_microsoft_is_refused(
    check_app: Flask, sims: SimulatorStack, sim_session: requests.Session, ms_world: Any
) -> None:
    client = check_app.test_client()
    first = first_report(client, "contoso.example")
    fault = sim_session.post(
        sims.urls["login"] + "/_sim/faults",
        json={"kind": "id_token_forged", "path": "/oauth2/v2.0/token"},
    )
    assert fault.status_code == 201
    signed = sign_in(client, sim_session, first, "admin@contoso.example")
    assert signed.response.status_code == 400  # no run starts with what it claims
    assert "the id_token is not valid: Signature verification failed" in signed.response.text
