"""Google OAuth against the simulator: consent screen, code exchange, refresh with google-auth,
service-account JWT bearer with domain-wide delegation, tokeninfo, revoke."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import google.auth.transport.requests
import pytest
import requests
from google.auth.exceptions import RefreshError
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from simulators.platform.control import control_of
from simulators.world.google import (
    HEALTHY_DOMAIN,
    PERSONAL_ON_WORKSPACE_DOMAIN,
    SCOPE_CALENDAR,
    SCOPE_CONTACTS,
    SCOPE_DOMAINS_RO,
    SCOPE_EMAIL,
    SCOPE_ROLES_RO,
    SYNCHRONIZER_CLIENT_ID,
    SYNCHRONIZER_CLIENT_SECRET,
)

REDIRECT = "http://127.0.0.1:5000/portal/google/callback"
ALICE = "alice@northwind.example"


def _consent(
    session: requests.Session, base: str, email: str, scopes: list[str], **extra: str
) -> requests.Response:
    """Open the consent screen as a browser would; returns the screen's response."""
    params = {
        "client_id": SYNCHRONIZER_CLIENT_ID,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": " ".join(scopes),
        "state": "xyz",
        "access_type": "offline",
        "login_hint": email,
        **extra,
    }
    return session.get(base + "/o/oauth2/v2/auth", params=params)


def _approve(session: requests.Session, base: str, screen: requests.Response, **form: Any) -> dict:
    ticket = re.search(r'name="ticket" value="([^"]+)"', screen.text)
    assert ticket, screen.text
    answer = session.post(
        base + "/o/oauth2/v2/auth/decision",
        data={"ticket": ticket.group(1), "decision": "allow", **form},
        allow_redirects=False,
    )
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _redeem(session: requests.Session, base: str, code: str) -> dict:
    """The app's side of the code flow: the authorisation code for tokens."""
    answer = session.post(
        base + "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": SYNCHRONIZER_CLIENT_ID,
            "client_secret": SYNCHRONIZER_CLIENT_SECRET,
        },
    )
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _user_credentials(session: requests.Session, base: str, scopes: list[str]) -> Any:
    screen = _consent(session, base, ALICE, scopes)
    callback = _approve(session, base, screen, scope=scopes)
    tokens = _redeem(session, base, callback["code"])
    return user_credentials.Credentials(
        tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        token_uri=base + "/token",
        client_id=SYNCHRONIZER_CLIENT_ID,
        client_secret=SYNCHRONIZER_CLIENT_SECRET,
        scopes=scopes,
    )


def _openid_sign_in(
    session: requests.Session, base: str, auth_request: Any, screen: requests.Response, **form: Any
) -> tuple[dict, dict, dict]:
    """Allow the consent screen, redeem the code: (callback query, tokens, verified id_token)."""
    from google.oauth2 import id_token

    callback = _approve(session, base, screen, **form)
    tokens = _redeem(session, base, callback["code"])
    claims = id_token.verify_token(
        tokens["id_token"],
        auth_request,
        audience=SYNCHRONIZER_CLIENT_ID,
        certs_url=base + "/oauth2/v1/certs",
    )
    return callback, tokens, claims


@pytest.fixture
def auth_request(sim_session: requests.Session) -> Any:
    return google.auth.transport.requests.Request(session=sim_session)


def test_consent_code_exchange_and_refresh(
    google_server: Any, sim_session: requests.Session, auth_request: Any
) -> None:
    base = google_server.url
    screen = _consent(sim_session, base, ALICE, [SCOPE_CALENDAR, SCOPE_CONTACTS, SCOPE_EMAIL])
    assert screen.status_code == 200 and "wants access to your Google Account" in screen.text
    # Granular consent: the user unticks contacts.
    callback = _approve(sim_session, base, screen, scope=[SCOPE_CALENDAR])
    assert callback["state"] == "xyz" and callback["hd"] == HEALTHY_DOMAIN
    assert callback["scope"].split() == [SCOPE_CALENDAR, SCOPE_EMAIL]

    creds = _user_credentials(sim_session, base, [SCOPE_CALENDAR, SCOPE_EMAIL])
    old = creds.token
    creds.refresh(auth_request)
    assert creds.token != old and creds.valid
    info = sim_session.get(base + "/tokeninfo", params={"access_token": creds.token}).json()
    assert info["email"] == ALICE and info["aud"] == SYNCHRONIZER_CLIENT_ID
    assert set(info["scope"].split()) == {SCOPE_CALENDAR, SCOPE_EMAIL}
    assert info["access_type"] == "offline"


def test_include_granted_scopes_adds_earlier_grants(
    google_server: Any, sim_session: requests.Session
) -> None:
    base = google_server.url
    _user_credentials(sim_session, base, [SCOPE_CALENDAR])
    screen = _consent(sim_session, base, ALICE, [SCOPE_CONTACTS], include_granted_scopes="true")
    callback = _approve(sim_session, base, screen, scope=[SCOPE_CONTACTS])
    assert set(callback["scope"].split()) == {SCOPE_CALENDAR, SCOPE_CONTACTS}


def test_codes_are_single_use_and_bound_to_the_redirect(
    google_server: Any, sim_session: requests.Session
) -> None:
    base = google_server.url
    callback = _approve(sim_session, base, _consent(sim_session, base, ALICE, [SCOPE_CALENDAR]))
    form = {
        "grant_type": "authorization_code",
        "code": callback["code"],
        "redirect_uri": "http://127.0.0.1:9/other",
        "client_id": SYNCHRONIZER_CLIENT_ID,
        "client_secret": SYNCHRONIZER_CLIENT_SECRET,
    }
    assert sim_session.post(base + "/token", data=form).json()["error"] == "redirect_uri_mismatch"
    form["redirect_uri"] = REDIRECT
    assert sim_session.post(base + "/token", data=form).status_code == 200
    again = sim_session.post(base + "/token", data=form)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    form["client_secret"] = "wrong"
    assert sim_session.post(base + "/token", data=form).json()["error"] == "invalid_client"


def test_user_can_deny_consent(google_server: Any, sim_session: requests.Session) -> None:
    base = google_server.url
    screen = _consent(sim_session, base, ALICE, [SCOPE_CALENDAR])
    ticket = re.search(r'name="ticket" value="([^"]+)"', screen.text).group(1)  # type: ignore[union-attr]
    answer = sim_session.post(
        base + "/o/oauth2/v2/auth/decision",
        data={"ticket": ticket, "decision": "deny"},
        allow_redirects=False,
    )
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["error"] == ["access_denied"] and query["state"] == ["xyz"]


def test_untrusted_domain_gets_admin_policy_enforced_at_consent(
    google_server: Any, sim_session: requests.Session
) -> None:
    screen = _consent(sim_session, google_server.url, "uma@tailspin.example", [SCOPE_CALENDAR])
    assert screen.status_code == 400
    assert "Error 400: admin_policy_enforced" in screen.text
    assert "ticket" not in screen.text  # no way back to the app


def test_refresh_after_revocation_is_invalid_grant(
    google_server: Any, sim_session: requests.Session, auth_request: Any
) -> None:
    creds = _user_credentials(sim_session, google_server.url, [SCOPE_CALENDAR])
    revoked = sim_session.post(google_server.url + "/revoke", data={"token": creds.refresh_token})
    assert revoked.status_code == 200
    with pytest.raises(RefreshError) as err:
        creds.refresh(auth_request)
    assert err.value.args[1]["error"] == "invalid_grant"
    assert err.value.retryable is False


def test_refresh_after_admin_blocks_app_is_admin_policy_enforced(
    google_server: Any, sim_session: requests.Session, auth_request: Any, google_app: Any
) -> None:
    creds = _user_credentials(sim_session, google_server.url, [SCOPE_CALENDAR])
    sim_session.post(
        google_server.url + "/_sim/state/actions",
        json={"action": "block_app", "domain": HEALTHY_DOMAIN},
    ).raise_for_status()
    with pytest.raises(RefreshError) as err:
        creds.refresh(auth_request)
    assert err.value.args[0].startswith("admin_policy_enforced")
    assert err.value.args[1]["error"] == "admin_policy_enforced"


def test_token_faults_on_refresh(
    google_server: Any, sim_session: requests.Session, auth_request: Any, google_app: Any
) -> None:
    creds = _user_credentials(sim_session, google_server.url, [SCOPE_CALENDAR])
    control = control_of(google_app)
    for kind, error in (
        ("token_revoked", "invalid_grant"),
        ("admin_policy_enforced", "admin_policy_enforced"),
    ):
        control.faults.add({"kind": kind, "path": "^/token$"})
        with pytest.raises(RefreshError) as err:
            creds.refresh(auth_request)
        assert err.value.args[1]["error"] == error
    creds.refresh(auth_request)  # the faults were one-shot
    assert creds.valid


def _service_account(google_world: Any, base: str, scopes: list[str], subject: str | None) -> Any:
    info = google_world.service_accounts[0].key_info(base + "/token")
    creds = service_account.Credentials.from_service_account_info(info, scopes=scopes)
    return creds.with_subject(subject) if subject else creds


def test_service_account_with_domain_wide_delegation(
    google_server: Any, google_world: Any, sim_session: requests.Session, auth_request: Any
) -> None:
    base = google_server.url
    creds = _service_account(google_world, base, [SCOPE_CALENDAR, SCOPE_EMAIL], ALICE)
    creds.refresh(auth_request)
    info = sim_session.post(base + "/oauth2/v2/tokeninfo", params={"access_token": creds.token})
    assert info.json()["email"] == ALICE
    assert SCOPE_CALENDAR in info.json()["scope"].split()
    events = sim_session.get(
        base + "/calendar/v3/calendars/primary/events",
        headers={"Authorization": f"Bearer {creds.token}"},
    )
    assert events.status_code == 200 and events.json()["items"]


@pytest.mark.parametrize(
    ("scopes", "subject", "error"),
    [
        ([SCOPE_ROLES_RO], ALICE, "unauthorized_client"),  # scope not delegated
        ([SCOPE_CALENDAR], "uma@tailspin.example", "unauthorized_client"),  # no DWD at all
        ([SCOPE_CALENDAR], "nobody@northwind.example", "invalid_grant"),
        # A personal account on Northwind's domain is not Northwind's to delegate.
        ([SCOPE_CALENDAR], PERSONAL_ON_WORKSPACE_DOMAIN, "unauthorized_client"),
    ],
)
def test_service_account_refusals(
    google_server: Any,
    google_world: Any,
    auth_request: Any,
    scopes: list[str],
    subject: str,
    error: str,
) -> None:
    creds = _service_account(google_world, google_server.url, scopes, subject)
    with pytest.raises(RefreshError) as err:
        creds.refresh(auth_request)
    assert err.value.args[1]["error"] == error


def test_service_account_key_must_match(
    google_server: Any, google_world: Any, auth_request: Any
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info = google_world.service_accounts[0].key_info(google_server.url + "/token")
    info["private_key"] = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    creds = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE_CALENDAR])
    with pytest.raises(RefreshError) as err:
        creds.with_subject(ALICE).refresh(auth_request)
    assert err.value.args[1]["error_description"] == "Invalid JWT Signature."


def test_tokeninfo_and_userinfo(
    google_server: Any, google_token: Any, sim_session: requests.Session
) -> None:
    bad = sim_session.get(google_server.url + "/tokeninfo", params={"access_token": "nope"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_token"
    token = google_token(ALICE, SCOPE_EMAIL)
    me = sim_session.get(
        google_server.url + "/oauth2/v2/userinfo", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert me["email"] == ALICE and me["hd"] == HEALTHY_DOMAIN


def test_google_auth_oauthlib_web_flow(
    google_server: Any, sim_session: requests.Session, demo_ca: Any
) -> None:
    """The portal's way in: google-auth-oauthlib's Flow, its URLs pointed at the simulator."""
    from google_auth_oauthlib.flow import Flow

    base = google_server.url
    flow = Flow.from_client_config(
        {
            "web": {
                "client_id": SYNCHRONIZER_CLIENT_ID,
                "client_secret": SYNCHRONIZER_CLIENT_SECRET,
                "auth_uri": base + "/o/oauth2/v2/auth",
                "token_uri": base + "/token",
                "redirect_uris": [REDIRECT],
            }
        },
        scopes=[SCOPE_CALENDAR, SCOPE_CONTACTS],
        redirect_uri=REDIRECT,
    )
    url, state = flow.authorization_url(
        access_type="offline", prompt="consent", include_granted_scopes="true", login_hint=ALICE
    )
    screen = sim_session.get(url)
    callback = _approve(sim_session, base, screen, scope=[SCOPE_CALENDAR, SCOPE_CONTACTS])
    assert callback["state"] == state
    # verify= per request: requests-oauthlib's session would otherwise honour REQUESTS_CA_BUNDLE.
    flow.fetch_token(code=callback["code"], verify=demo_ca.ca_file)
    creds = flow.credentials
    assert creds.refresh_token and set(creds.granted_scopes or []) == {
        SCOPE_CALENDAR,
        SCOPE_CONTACTS,
    }


def test_openid_id_token_verifies_with_google_auth(
    google_server: Any, sim_session: requests.Session, auth_request: Any
) -> None:

    base = google_server.url
    screen = _consent(sim_session, base, ALICE, ["openid", SCOPE_EMAIL], nonce="n-0S6")
    _callback, tokens, claims = _openid_sign_in(sim_session, base, auth_request, screen)
    assert claims["iss"] == "https://accounts.google.com"
    assert (claims["email"], claims["hd"], claims["nonce"]) == (ALICE, HEALTHY_DOMAIN, "n-0S6")
    config = sim_session.get(base + "/.well-known/openid-configuration").json()
    assert config["token_endpoint"] == base + "/token"
    assert sim_session.get(config["jwks_uri"]).json()["keys"][0]["kid"]


def test_authorized_http_refreshes_after_a_401(
    google_server: Any,
    google_app: Any,
    sim_session: requests.Session,
    demo_ca: Any,
) -> None:
    """google_auth_httplib2 refreshes on 401 and retries, as the daemon's clients will."""
    import google_auth_httplib2
    import httplib2
    from googleapiclient.discovery import build

    creds = _user_credentials(sim_session, google_server.url, [SCOPE_CALENDAR])
    http = google_auth_httplib2.AuthorizedHttp(creds, http=httplib2.Http(ca_certs=demo_ca.ca_file))
    calendar = build(
        "calendar",
        "v3",
        http=http,
        static_discovery=True,
        client_options={"api_endpoint": google_server.url + "/calendar/v3/"},
    )
    control = control_of(google_app)
    control.stats.reset()
    control.faults.add({"kind": "token_expired", "path": "/events$"})
    before = creds.token
    assert calendar.events().list(calendarId="primary").execute()["items"]
    assert creds.token != before
    endpoints = control.stats.snapshot()["endpoints"]
    assert endpoints["POST /token"] == 1
    assert endpoints["GET /calendar/v3/calendars/<calendar_id>/events"] == 2


def test_sign_in_page_and_bad_requests(google_server: Any, sim_session: requests.Session) -> None:
    base = google_server.url
    params = {
        "client_id": SYNCHRONIZER_CLIENT_ID,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": SCOPE_CALENDAR,
    }
    sign_in = sim_session.get(base + "/o/oauth2/v2/auth", params=params)
    assert sign_in.status_code == 200 and 'name="email"' in sign_in.text
    unknown = sim_session.get(
        base + "/o/oauth2/v2/auth", params={**params, "email": "ghost@northwind.example"}
    )
    assert "find your Google Account" in unknown.text
    known = sim_session.get(base + "/o/oauth2/v2/auth", params={**params, "email": ALICE})
    assert 'name="ticket"' in known.text

    bad_client = sim_session.get(base + "/o/oauth2/v2/auth", params={**params, "client_id": "x"})
    assert bad_client.status_code == 401 and "invalid_client" in bad_client.text
    elsewhere = {**params, "redirect_uri": "https://evil.example/cb"}
    mismatch = sim_session.get(base + "/o/oauth2/v2/auth", params=elsewhere)
    assert mismatch.status_code == 400 and "redirect_uri_mismatch" in mismatch.text
    grant = sim_session.post(base + "/token", data={"grant_type": "password"})
    assert grant.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize(
    ("account", "hosted_domain"), [(ALICE, HEALTHY_DOMAIN), (PERSONAL_ON_WORKSPACE_DOMAIN, None)]
)
def test_hd_only_for_an_account_of_a_workspace(
    google_server: Any,
    sim_session: requests.Session,
    auth_request: Any,
    account: str,
    hosted_domain: str | None,
) -> None:
    """Google sets `hd` only for a Workspace (or Cloud) organisation's account; a personal
    Google account whose address is on the Workspace's domain has none, and is not let into
    the Workspace's Admin API."""
    base = google_server.url
    screen = _consent(sim_session, base, account, ["openid", SCOPE_EMAIL, SCOPE_DOMAINS_RO])
    callback, tokens, claims = _openid_sign_in(
        sim_session, base, auth_request, screen, scope=[SCOPE_DOMAINS_RO]
    )
    assert callback.get("hd") == hosted_domain
    assert (claims["email"], claims.get("hd")) == (account, hosted_domain)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    for path in ("/oauth2/v2/userinfo", "/oauth2/v3/userinfo"):
        info = sim_session.get(base + path, headers=bearer).json()
        assert (info["email"], info.get("hd")) == (account, hosted_domain)
    domains = sim_session.get(
        base + "/admin/directory/v1/customer/my_customer/domains", headers=bearer
    )
    assert domains.status_code == (200 if hosted_domain else 403)
