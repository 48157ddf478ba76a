"""SuperOffice Online over https with requests: SuperID (OIDC code flow + PKCE, refresh, RS256
id_token checked against the JWKS), /api/state and 421, the system-user ticket flow."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import flask
import jwt
import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from simulators.world.superoffice import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    SuperOfficeWorld,
)
from tests.fixtures.simulators import Serve
from tests.fixtures.superoffice import basic

CLAIM = "http://schemes.superoffice.net/identity/"
REDIRECT = "http://127.0.0.1:5000/auth/superoffice/callback"


@pytest.fixture
def base_url(so_app: flask.Flask, serve: Serve) -> str:
    return serve(so_app).url


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    return verifier, challenge


def sign_in(
    http: requests.Session, base: str, username: str, password: str = DEMO_PASSWORD, **extra: str
) -> requests.Response:
    """Open the authorize page, then submit its form the way a browser would."""
    params = {"client_id": DEMO_CLIENT_ID, "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid",
              "state": "st-1", "nonce": "n-1", **extra}  # fmt: skip
    page = http.get(f"{base}/login/common/oauth/authorize", params=params)
    assert page.status_code == 200 and "<form" in page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    assert fields["client_id"] == DEMO_CLIENT_ID
    return http.post(f"{base}/login/common/oauth/authorize", data={**fields, "username": username, "password": password},
                     allow_redirects=False)  # fmt: skip


def code_flow(http: requests.Session, base: str, username: str, **extra: str) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    answer = sign_in(
        http, base, username, code_challenge=challenge, code_challenge_method="S256", **extra
    )
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["st-1"]
    tokens = http.post(f"{base}/login/common/oauth/tokens", data={
        "grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": REDIRECT,
        "client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET, "code_verifier": verifier})  # fmt: skip
    assert tokens.status_code == 200, tokens.text
    return tokens.json()  # type: ignore[no-any-return]


def verified_claims(http: requests.Session, base: str, token: str) -> dict[str, Any]:
    config = http.get(f"{base}/login/.well-known/openid-configuration").json()
    keys = http.get(config["jwks_uri"]).json()["keys"]
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWK(next(k for k in keys if k["kid"] == kid)).key
    return jwt.decode(
        token, key, algorithms=["RS256"], audience=DEMO_CLIENT_ID, issuer=config["issuer"]
    )  # type: ignore[no-any-return]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- OIDC ----------------------------------------------------------------------------------------


def test_discovery_matches_superid(so_https: requests.Session, base_url: str) -> None:
    config = so_https.get(f"{base_url}/login/.well-known/openid-configuration").json()
    assert config["issuer"] == base_url
    assert config["authorization_endpoint"] == f"{base_url}/login/common/oauth/authorize"
    assert config["token_endpoint"] == f"{base_url}/login/common/oauth/tokens"
    assert config["scopes_supported"] == ["openid"]
    assert "client_credentials" not in config["grant_types_supported"]
    assert "userinfo_endpoint" not in config


def test_code_flow_with_pkce_gives_a_verifiable_id_token(
    so_https: requests.Session, base_url: str
) -> None:
    tokens = code_flow(so_https, base_url, "adele@contoso.example")
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    assert tokens["access_token"].startswith("8A:Cust12345.")
    claims = verified_claims(so_https, base_url, tokens["id_token"])
    assert claims["nonce"] == "n-1"
    assert claims[CLAIM + "ctx"] == "Cust12345"
    assert claims[CLAIM + "is_administrator"] == "True"
    assert claims[CLAIM + "email"] == "adele@contoso.example"
    assert claims[CLAIM + "webapi_url"] == f"{base_url}/Cust12345/api/"
    assert claims[CLAIM + "system_token"].startswith("SynchronizerDemo-")
    me = so_https.get(
        f"{base_url}/Cust12345/api/v1/User/currentPrincipal", headers=bearer(tokens["access_token"])
    ).json()
    assert (
        me["AssociateId"] == int(claims[CLAIM + "associateid"])
        and me["EMailAddress"] == "adele@contoso.example"
    )
    assert me["DatabaseContextIdentifier"] == "Cust12345"


def test_a_normal_user_is_no_administrator_and_gets_no_system_token(
    so_https: requests.Session, base_url: str
) -> None:
    claims = verified_claims(
        so_https, base_url, code_flow(so_https, base_url, "megan@contoso.example")["id_token"]
    )
    assert claims[CLAIM + "is_administrator"] == "False" and CLAIM + "system_token" not in claims


def test_acr_values_picks_the_tenant(so_https: requests.Session, base_url: str) -> None:
    tokens = code_flow(so_https, base_url, "ola@appsonly.example", acr_values="tenant:Cust23456")
    assert tokens["access_token"].startswith("8A:Cust23456.")
    refused = sign_in(so_https, base_url, "ola@appsonly.example", acr_values="tenant:Cust12345")
    assert refused.status_code == 200 and "Wrong e-mail or password" in refused.text


def test_token_of_one_tenant_does_not_open_another(
    so_https: requests.Session, base_url: str
) -> None:
    tokens = code_flow(so_https, base_url, "adele@contoso.example")
    response = so_https.get(
        f"{base_url}/Cust23456/api/v1/User/currentPrincipal", headers=bearer(tokens["access_token"])
    )
    assert response.status_code == 401 and response.json()["Error"] is True


def test_wrong_password_shows_the_form_again(so_https: requests.Session, base_url: str) -> None:
    answer = sign_in(so_https, base_url, "adele@contoso.example", password="nope")
    assert (
        answer.status_code == 200
        and 'role="alert"' in answer.text
        and "Location" not in answer.headers
    )


def test_code_is_single_use_and_pkce_is_checked(so_https: requests.Session, base_url: str) -> None:
    verifier, challenge = pkce_pair()
    answer = sign_in(
        so_https,
        base_url,
        "lee@contoso.example",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET}  # fmt: skip
    wrong = so_https.post(
        f"{base_url}/login/common/oauth/tokens", data={**form, "code_verifier": "x" * 43}
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    # the failed attempt used the code up, as with any single-use code
    again = so_https.post(
        f"{base_url}/login/common/oauth/tokens", data={**form, "code_verifier": verifier}
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [({"client_secret": "wrong"}, 401, "invalid_client"), ({"grant_type": "client_credentials"}, 400, "unsupported_grant_type"),
     ({"grant_type": "password"}, 400, "unsupported_grant_type"), ({"refresh_token": "unknown"}, 400, "invalid_grant")],
)  # fmt: skip
def test_token_endpoint_errors(
    so_https: requests.Session, base_url: str, form: dict[str, str], status: int, error: str
) -> None:
    data = {"grant_type": "refresh_token", "refresh_token": "x", "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET, **form}  # fmt: skip
    response = so_https.post(f"{base_url}/login/common/oauth/tokens", data=data)
    assert (response.status_code, response.json()["error"]) == (status, error)


def test_unknown_redirect_uri_is_refused_without_redirecting(
    so_https: requests.Session, base_url: str
) -> None:
    params = {
        "client_id": DEMO_CLIENT_ID,
        "redirect_uri": "https://evil.example/cb",
        "response_type": "code",
        "scope": "openid",
    }
    response = so_https.get(
        f"{base_url}/login/common/oauth/authorize", params=params, allow_redirects=False
    )
    assert response.status_code == 400


def test_refresh_with_basic_client_auth_then_revocation(
    so_https: requests.Session, base_url: str, so_app: flask.Flask
) -> None:
    tokens = code_flow(so_https, base_url, "megan@contoso.example")
    refreshed = so_https.post(f"{base_url}/login/common/oauth/tokens", auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
                              data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})  # fmt: skip
    assert refreshed.status_code == 200
    fresh = refreshed.json()
    assert (
        fresh["access_token"] != tokens["access_token"]
        and fresh["refresh_token"] == tokens["refresh_token"]
    )
    assert verified_claims(so_https, base_url, fresh["id_token"])[CLAIM + "ctx"] == "Cust12345"
    assert (
        so_https.get(
            f"{base_url}/Cust12345/api/v1/User/currentAssociate",
            headers=bearer(fresh["access_token"]),
        ).json()["Name"]
        == "megan@contoso.example"
    )
    so_https.post(f"{base_url}/_sim/faults", json={"kind": "token_revoked"})
    revoked = so_https.post(f"{base_url}/login/common/oauth/tokens", auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
                            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})  # fmt: skip
    assert revoked.status_code == 400 and revoked.json()["error"] == "invalid_grant"
    # revocation is permanent and takes the user's access tokens with it
    assert (
        so_https.get(
            f"{base_url}/Cust12345/api/v1/User/currentPrincipal",
            headers=bearer(fresh["access_token"]),
        ).status_code
        == 401
    )
    stats = so_https.get(f"{base_url}/_sim/stats").json()
    assert stats["endpoints"]["POST /login/common/oauth/tokens"] == 3


def test_basic_is_not_allowed_in_online(so_https: requests.Session, base_url: str) -> None:
    response = so_https.get(
        f"{base_url}/Cust12345/api/v1/User/currentPrincipal", headers=basic("adele@contoso.example")
    )
    assert (
        response.status_code == 401
        and response.json()["ErrorMessage"] == "Basic is not allowed in Online"
    )


def test_onsite_basic_over_https(so_https: requests.Session, base_url: str) -> None:
    response = so_https.get(
        f"{base_url}/SuperOffice/api/v1/User/currentPrincipal", headers=basic("ALICE")
    )
    assert response.status_code == 200 and response.json()["UserName"] == "ALICE"
    assert (
        so_https.get(
            f"{base_url}/SuperOffice/api/v1/User/currentPrincipal", headers=basic("ALICE", "x")
        ).status_code
        == 401
    )


# --- tenant state and 421 ------------------------------------------------------------------------


def test_api_state_resolves_the_tenant_host(so_https: requests.Session, base_url: str) -> None:
    port = urlsplit(base_url).port
    state = so_https.get(f"{base_url}/api/state/Cust12345").json()
    assert state["State"] == "Running" and state["IsRunning"] is True
    assert (
        state["Endpoint"] == f"{base_url}/Cust12345" and state["Api"] == f"{base_url}/Cust12345/api"
    )
    assert dt.datetime.fromisoformat(state["ValidUntil"].replace("Z", "+00:00")) > dt.datetime.now(
        dt.UTC
    )
    moved = so_https.get(f"{base_url}/api/state/Cust56789").json()
    assert moved["Endpoint"] == f"https://localhost:{port}/Cust56789"
    unknown = so_https.get(f"{base_url}/api/state/Cust99999").json()
    assert (unknown["State"], unknown["IsRunning"]) == ("Unknown", False)
    down = so_https.get(f"{base_url}/api/state/Cust67890").json()
    assert (down["State"], down["IsRunning"]) == ("OfflineMaintenance", False)


def test_wrong_host_is_421_and_the_state_endpoint_works(
    so_https: requests.Session, base_url: str
) -> None:
    tokens = code_flow(so_https, base_url, "alice@wingtip.example")
    wrong = so_https.get(
        f"{base_url}/Cust56789/api/v1/User/currentPrincipal", headers=bearer(tokens["access_token"])
    )
    assert (
        wrong.status_code == 421
        and wrong.json()["ErrorMessage"] == "Wrong subdomain used to access tenant"
    )
    endpoint = so_https.get(f"{base_url}/api/state/Cust56789").json()["Endpoint"]
    right = so_https.get(
        f"{endpoint}/api/v1/User/currentPrincipal", headers=bearer(tokens["access_token"])
    )
    assert right.status_code == 200 and right.json()["DatabaseContextIdentifier"] == "Cust56789"


def test_tenant_moved_fault_and_offline_tenant(so_https: requests.Session, base_url: str) -> None:
    tokens = code_flow(so_https, base_url, "adele@contoso.example")
    so_https.post(f"{base_url}/_sim/faults", json={"kind": "tenant_moved", "path": "^/Cust12345/"})
    url = f"{base_url}/Cust12345/api/v1/User/currentPrincipal"
    assert so_https.get(url, headers=bearer(tokens["access_token"])).status_code == 421
    assert so_https.get(url, headers=bearer(tokens["access_token"])).status_code == 200
    assert so_https.get(f"{base_url}/Cust67890/api/v1/User/currentPrincipal").status_code == 503


def test_dropped_connection_and_latency_faults(so_https: requests.Session, base_url: str) -> None:
    so_https.post(f"{base_url}/_sim/faults", json={"kind": "drop", "path": "/api/state/"})
    with pytest.raises(requests.ConnectionError):
        so_https.get(f"{base_url}/api/state/Cust12345")
    so_https.post(
        f"{base_url}/_sim/faults",
        json={"kind": "latency", "latency_ms": 300, "path": "/api/state/"},
    )
    started = dt.datetime.now()
    assert so_https.get(f"{base_url}/api/state/Cust12345").status_code == 200
    assert (dt.datetime.now() - started).total_seconds() >= 0.3


# --- system user ---------------------------------------------------------------------------------


def signed_system_token(
    system_token: str, key: rsa.RSAPrivateKey, when: dt.datetime | None = None
) -> str:
    stamp = (when or dt.datetime.now(dt.UTC)).strftime("%Y%m%d%H%M")
    message = f"{system_token}.{stamp}".encode()
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return f"{system_token}.{stamp}.{base64.b64encode(signature).decode()}"


def authenticate_system_user(
    http: requests.Session, base: str, signed: str, context: str = "Cust12345"
) -> dict[str, Any]:
    body = {
        "SignedSystemToken": signed,
        "ApplicationToken": DEMO_CLIENT_SECRET,
        "ContextIdentifier": context,
        "ReturnTokenType": "JWT",
    }
    response = http.post(f"{base}/Login/api/PartnerSystemUser/Authenticate", json=body)
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def test_system_user_ticket_flow(
    so_https: requests.Session, base_url: str, so_world: SuperOfficeWorld
) -> None:
    partner = so_world.apps[0]
    key = serialization.load_pem_private_key(partner.private_key_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    system_token = verified_claims(
        so_https, base_url, code_flow(so_https, base_url, "adele@contoso.example")["id_token"]
    )[CLAIM + "system_token"]
    answer = authenticate_system_user(so_https, base_url, signed_system_token(system_token, key))
    assert answer["IsSuccessful"] is True and answer["ErrorMessage"] == ""
    ticket = verified_claims(so_https, base_url, answer["Token"])[CLAIM + "ticket"]
    assert ticket.startswith("7T:")
    headers = {"Authorization": f"SOTicket {ticket}", "SO-AppToken": DEMO_CLIENT_SECRET}
    me = so_https.get(f"{base_url}/Cust12345/api/v1/User/currentPrincipal", headers=headers).json()
    assert me["UserType"] == "SystemAssociate" and me["RoleType"] == "System"
    # the system user sees every diary, private appointments included
    private = so_https.get(f"{base_url}/Cust12345/api/v1/Appointment", headers=headers,
                           params={"$filter": "visibleFor equals 'Associate'", "$select": "associateId"}).json()["value"]  # fmt: skip
    assert private
    without_app_token = so_https.get(
        f"{base_url}/Cust12345/api/v1/User/currentPrincipal",
        headers={"Authorization": f"SOTicket {ticket}"},
    )
    assert without_app_token.status_code == 401


def test_system_user_refusals(
    so_https: requests.Session, base_url: str, so_world: SuperOfficeWorld
) -> None:
    partner = so_world.apps[0]
    key = partner.private_key
    token = partner.system_token("Cust12345")
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    cases = {
        "signature": authenticate_system_user(so_https, base_url, signed_system_token(token, other_key)),
        "expired": authenticate_system_user(so_https, base_url, signed_system_token(token, key, stale)),
        "malformed": authenticate_system_user(so_https, base_url, "garbage"),
        "unconsented": authenticate_system_user(so_https, base_url, signed_system_token(partner.system_token("Cust34567"), key), "Cust34567"),
    }  # fmt: skip
    for name, answer in cases.items():
        assert (
            answer["IsSuccessful"] is False and answer["Token"] is None and answer["ErrorMessage"]
        ), name


def test_concurrent_writes_and_reads(so_https: requests.Session, base_url: str) -> None:
    """Many clients at once: every request succeeds and every write is kept."""
    api = f"{base_url}/SuperOffice/api/v1/Appointment"
    headers = basic("ALICE")

    def create(n: int) -> int:
        body = {
            "Title": f"Parallel {n}",
            "StartDate": "2026-03-12T10:00:00",
            "EndDate": "2026-03-12T11:00:00",
        }
        return so_https.post(api, headers=headers, json=body).status_code

    def read(_: int) -> int:
        return so_https.get(
            api, headers=headers, params={"$select": "appointment/title,date"}
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda n: (create if n % 2 else read)(n), range(40)))
    assert set(statuses) == {200}
    made = so_https.get(
        api,
        headers=headers,
        params={"$filter": "appointment/title begins 'Parallel'", "$select": "appointment/title"},
    ).json()
    assert len(made["value"]) == 20


def test_a_tenant_moved_to_another_host_is_found_there_and_refused_where_it_was(
    so_https: requests.Session, base_url: str
) -> None:
    """`/_sim/state` moves a tenant as SuperOffice moves tenants between servers. Mistakes
    caught: the old host still answering (a client that never re-resolves would pass), the
    lookup still naming the old host (a client that re-resolves would loop on 421)."""
    port = urlsplit(base_url).port
    tokens = code_flow(so_https, base_url, "adele@contoso.example")
    url = "/Cust12345/api/v1/User/currentPrincipal"
    assert so_https.get(base_url + url, headers=bearer(tokens["access_token"])).status_code == 200
    moved = so_https.post(
        f"{base_url}/_sim/state", json={"tenants": {"Cust12345": {"api_host": "localhost"}}}
    )
    assert moved.status_code == 204
    old = so_https.get(base_url + url, headers=bearer(tokens["access_token"]))
    assert old.status_code == 421 and old.json()["ErrorMessage"].startswith("Wrong subdomain")
    endpoint = so_https.get(f"{base_url}/api/state/Cust12345").json()["Endpoint"]
    assert endpoint == f"https://localhost:{port}/Cust12345"
    new = so_https.get(f"https://localhost:{port}{url}", headers=bearer(tokens["access_token"]))
    assert new.status_code == 200
    # One tenant's export, not the whole world's.
    only = so_https.get(f"{base_url}/_sim/state", params={"tenant": "Cust12345"}).json()
    assert list(only["tenants"]) == ["Cust12345"]
