"""'Sign in with SuperOffice' on the report (Online): SuperID's code flow with state, nonce and
PKCE; the id_token verified against SuperID's JWKS; its is_administrator decides the
[superoffice] check's role step."""

from __future__ import annotations

import dataclasses
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient

from checksite.check.superid import CLAIM, SignInFailed, _verified
from checksite.checks.model import CheckResult, Step
from simulators.runner import SimulatorStack
from simulators.world.superoffice import DEMO_CLIENT_ID, DEMO_PASSWORD
from tests.fixtures.checks import find_step


def finished(client: FlaskClient, report_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        state = client.get(f"/api/checks/{report_id}").get_json()
        if state["status"] == "done":
            return state["report"]  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError("not finished")


def first_report(client: FlaskClient, sims: SimulatorStack) -> str:
    url = f"{sims.urls['superoffice']}/Cust12345"
    body = {"target": "contoso.example", "superoffice_url": url, "only": ["superoffice"]}
    report_id: str = client.post("/api/checks", json=body).get_json()["id"]
    report = finished(client, report_id)
    step = find_step(CheckResult.from_dict(report["checks"][0]).steps, "superoffice.administrator")
    assert step.status == "skip" and "Sign in with SuperOffice" in step.message
    return report_id


def sign_in(client: FlaskClient, sim_session: requests.Session, report_id: str, user: str) -> Any:
    start = client.get(f"/check/r/{report_id}/signin/superoffice")
    assert start.status_code == 302
    authorize = start.headers["Location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["state"] and query["nonce"]
    assert query["acr_values"] == ["tenant:Cust12345"]
    form = {k: v[0] for k, v in query.items()} | {"username": user, "password": DEMO_PASSWORD}
    answer = sim_session.post(authorize.split("?")[0], data=form, allow_redirects=False)
    assert answer.status_code == 302, answer.text
    callback = urlsplit(answer.headers["Location"])
    return client.get(f"{callback.path}?{callback.query}")


def role_after(client: FlaskClient, response: Any) -> Step:
    assert response.status_code == 303, response.text
    report = finished(client, response.headers["Location"].rsplit("/", 1)[1])
    result = CheckResult.from_dict(next(c for c in report["checks"] if c["id"] == "superoffice"))
    return find_step(result.steps, "superoffice.administrator")


def test_an_administrator_signs_in_and_the_role_passes(
    check_app: Flask, sims: SimulatorStack, sim_session: requests.Session
) -> None:
    client = check_app.test_client()
    first = first_report(client, sims)
    assert "Sign in with SuperOffice" in client.get(f"/check/r/{first}").text
    step = role_after(client, sign_in(client, sim_session, first, "adele@contoso.example"))
    assert step.status == "pass"
    assert "adele@contoso.example is an administrator of Cust12345" in step.message


def test_a_user_who_is_not_an_administrator_fails(
    check_app: Flask, sims: SimulatorStack, sim_session: requests.Session
) -> None:
    client = check_app.test_client()
    first = first_report(client, sims)
    step = role_after(client, sign_in(client, sim_session, first, "megan@contoso.example"))
    assert step.status == "fail"
    assert "megan@contoso.example is not an administrator" in step.message


def test_a_callback_with_another_state_is_refused(check_app: Flask, sims: SimulatorStack) -> None:
    client = check_app.test_client()
    first = first_report(client, sims)
    client.get(f"/check/r/{first}/signin/superoffice")
    response = client.get("/check/oauth/superoffice?code=forged&state=forged")
    assert response.status_code == 400 and "did not match" in response.text


def test_an_id_token_not_signed_by_superid_is_refused(
    sims: SimulatorStack, sim_session: requests.Session
) -> None:
    base = sims.urls["superoffice"]
    keys = sim_session.get(f"{base}/login/.well-known/jwks").json()
    kid = keys["keys"][0]["kid"]
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {"iss": base, "aud": DEMO_CLIENT_ID, "iat": now, "exp": now + 600,
              CLAIM + "is_administrator": "True"}  # fmt: skip
    forged = jwt.encode(claims, forger, algorithm="RS256", headers={"kid": kid})
    with pytest.raises(SignInFailed, match="not valid"):
        _verified(forged, keys, DEMO_CLIENT_ID, base)
    with pytest.raises(SignInFailed, match="does not publish"):
        _verified(jwt.encode(claims, forger, algorithm="RS256", headers={"kid": "x"}), keys,
                  DEMO_CLIENT_ID, base)  # fmt: skip


def test_sign_in_callbacks_are_rate_limited_like_the_form(check_app: Flask) -> None:
    settings = check_app.config["SYNCHRONIZER"]
    check_app.config["SYNCHRONIZER"] = dataclasses.replace(settings, check_rate_limit="2/minute")
    client = check_app.test_client()
    for callback in ("superoffice", "google", "microsoft"):
        answers = [client.get(f"/check/oauth/{callback}?state=x").status_code for _ in range(3)]
        assert answers == [400, 400, 429], callback
