"""The simulated Microsoft identity platform, driven with msal and requests over https."""

from __future__ import annotations

import json
import ssl

import jwt
import msal
import pytest

from simulators.microsoft import tokens
from simulators.world.microsoft import SYNCHRONIZER_APP_ID
from tests.fixtures.microsoft import (
    REDIRECT_URI,
    consent_screen_permissions,
    posted_form,
    query_params,
    sign_in,
)


def _claims(token: str) -> dict:
    return json.loads(tokens.b64url_decode(token.split(".")[1]))


def test_openid_configuration_by_domain_names_the_tenant_id(ms_server, ms_session, ms_world):
    contoso = ms_world.tenant("contoso.example")
    answer = ms_session.get(
        f"{ms_server.url}/contoso.example/v2.0/.well-known/openid-configuration"
    )
    assert answer.status_code == 200
    config = answer.json()
    assert config["issuer"] == f"{ms_server.url}/{contoso.id}/v2.0"
    assert config["token_endpoint"] == f"{ms_server.url}/{contoso.id}/oauth2/v2.0/token"
    assert config["authorization_endpoint"].endswith(f"/{contoso.id}/oauth2/v2.0/authorize")


def test_unknown_tenant_is_aadsts90002(ms_server, ms_session):
    answer = ms_session.get(
        f"{ms_server.url}/nowhere.example/v2.0/.well-known/openid-configuration"
    )
    assert answer.status_code == 400
    assert answer.json()["error_codes"] == [90002]


def test_getuserrealm_managed_federated_unknown(ms_server, ms_session):
    def realm(login: str) -> dict:
        return ms_session.get(
            f"{ms_server.url}/getuserrealm.srf", params={"login": login, "json": 1}
        ).json()

    assert realm("adele@contoso.example")["NameSpaceType"] == "Managed"
    federated = realm("alex@tailwindtraders.example")
    assert federated["NameSpaceType"] == "Federated"
    assert "okta" in federated["AuthURL"]
    assert realm("someone@gmail.example")["NameSpaceType"] == "Unknown"
    msal_realm = ms_session.get(
        f"{ms_server.url}/common/userrealm/alex@tailwindtraders.example",
        params={"api-version": "1.0"},
    ).json()
    assert msal_realm["account_type"] == "Federated"


def test_auth_code_flow_with_pkce_then_refresh(ms_msal, ms_session, ms_world):
    app = ms_msal("contoso.example")
    result = sign_in(
        app,
        ms_session,
        "adele@contoso.example",
        ["https://graph.microsoft.com/Calendars.ReadWrite"],
    )
    assert "access_token" in result, result
    adele = ms_world.tenant("contoso.example").user("adele@contoso.example")
    assert result["id_token_claims"]["oid"] == adele.id
    assert result["id_token_claims"]["preferred_username"] == "adele@contoso.example"
    claims = _claims(result["access_token"])
    assert claims["scp"] == "Calendars.ReadWrite"
    assert claims["tid"] == ms_world.tenant("contoso.example").id
    assert result["refresh_token"]

    accounts = app.get_accounts()
    assert [a["username"] for a in accounts] == ["adele@contoso.example"]
    refreshed = app.acquire_token_silent(
        ["https://graph.microsoft.com/Calendars.ReadWrite"], account=accounts[0], force_refresh=True
    )
    assert refreshed and "access_token" in refreshed
    assert refreshed["access_token"] != result["access_token"]
    assert refreshed.get("token_source") == "identity_provider"


def test_token_scope_lists_graph_scopes_by_short_name_so_msal_cache_hits(
    ms_msal, ms_session, ms_server
):
    # Entra answers `scope` with Graph's short names; msal caches the access token under that
    # list, so a silent call for the same scopes is served from the cache (no refresh grant).
    app = ms_msal("contoso.example")
    scopes = ["Calendars.ReadWrite", "Contacts.ReadWrite"]
    result = sign_in(app, ms_session, "adele@contoso.example", scopes)
    assert "access_token" in result, result
    assert sorted(result["scope"].split()) == [
        "Calendars.ReadWrite",
        "Contacts.ReadWrite",
        "openid",
        "profile",
    ]
    ms_session.delete(f"{ms_server.url}/_sim/stats")
    account = app.get_accounts()[0]
    first = app.acquire_token_silent(scopes, account=account)
    second = app.acquire_token_silent(["Calendars.ReadWrite"], account=account)
    assert first and second
    assert first["access_token"] == second["access_token"] == result["access_token"]
    assert (first.get("token_source"), second.get("token_source")) == ("cache", "cache")
    stats = ms_session.get(f"{ms_server.url}/_sim/stats").json()
    assert stats["total"] == 0, stats  # the refresh token was not redeemed again


def test_id_token_from_the_code_flow_verifies_against_the_published_jwks(
    ms_msal, ms_session, ms_server, ms_world, demo_ca
):
    app = ms_msal("contoso.example")
    result = sign_in(app, ms_session, "adele@contoso.example", ["Calendars.ReadWrite"])
    contoso = ms_world.tenant("contoso.example")
    config = ms_session.get(
        f"{ms_server.url}/{contoso.id}/v2.0/.well-known/openid-configuration"
    ).json()
    assert config["id_token_signing_alg_values_supported"] == ["RS256"]
    jwks = jwt.PyJWKClient(
        config["jwks_uri"], ssl_context=ssl.create_default_context(cafile=demo_ca.ca_file)
    )
    id_token = result["id_token"]
    header = jwt.get_unverified_header(id_token)
    assert header["alg"] == "RS256"
    key = jwks.get_signing_key_from_jwt(id_token)  # found by the header's kid
    assert key.key_id == header["kid"] == header["x5t"]
    claims = jwt.decode(
        id_token,
        key,
        algorithms=["RS256"],
        audience=SYNCHRONIZER_APP_ID,
        issuer=config["issuer"],
    )
    assert claims["preferred_username"] == "adele@contoso.example"
    # The access token is signed by the same key (Graph clients treat it as opaque anyway).
    access = jwt.decode(
        result["access_token"], key, algorithms=["RS256"], audience="https://graph.microsoft.com"
    )
    assert access["scp"] == "Calendars.ReadWrite"
    published = ms_session.get(config["jwks_uri"]).json()["keys"]
    assert [k["kid"] for k in published] == [header["kid"]]
    assert published[0]["issuer"] == config["issuer"]
    assert published[0]["x5c"] and "d" not in published[0]  # the public half only
    tampered = id_token[:-4] + ("AAAA" if not id_token.endswith("AAAA") else "BBBB")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(tampered, key, algorithms=["RS256"], audience=SYNCHRONIZER_APP_ID)


def test_graph_refuses_a_token_with_a_forged_signature(ms_user_token, ms_server, ms_session):
    token = ms_user_token("adele@contoso.example")
    header, payload, _ = token.split(".")
    forged = f"{header}.{payload}.{tokens.b64url(b'not the signature')}"
    answer = ms_session.get(
        f"{ms_server.url}/v1.0/me", headers={"Authorization": f"Bearer {forged}"}
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "IDX10511" in answer.json()["error"]["message"]


def test_wrong_pkce_verifier_is_refused(ms_msal, ms_session):
    app = ms_msal("contoso.example")
    flow = app.initiate_auth_code_flow(
        ["Calendars.ReadWrite"],
        redirect_uri=REDIRECT_URI,
        login_hint="adele@contoso.example",
        response_mode="form_post",
    )
    params = posted_form(ms_session.get(flow["auth_uri"]).text)
    flow["code_verifier"] = "x" * 50
    result = app.acquire_token_by_auth_code_flow(flow, params)
    assert result["error"] == "invalid_grant"
    assert 501481 in result["error_codes"]


def test_client_credentials_token_carries_granted_roles(ms_msal):
    result = ms_msal("contoso.example").acquire_token_for_client(
        ["https://graph.microsoft.com/.default"]
    )
    assert "access_token" in result, result
    claims = _claims(result["access_token"])
    assert claims["idtyp"] == "app"
    assert "Calendars.ReadWrite" in claims["roles"]


def test_client_credentials_in_unconsented_tenant_is_aadsts700016(ms_msal):
    result = ms_msal("fourthcoffee.example").acquire_token_for_client(
        ["https://graph.microsoft.com/.default"]
    )
    assert result["error"] == "unauthorized_client"
    assert result["error_codes"] == [700016]
    assert result["error_description"].startswith("AADSTS700016: Application with identifier")


def test_unknown_application_is_aadsts700016(ms_msal, ms_server, ms_session):
    app = ms_msal("contoso.example", client_id="00000000-1111-2222-3333-444444444444")
    result = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
    assert result["error_codes"] == [700016]
    page = ms_session.get(
        f"{ms_server.url}/contoso.example/oauth2/v2.0/authorize",
        params={
            "client_id": "00000000-1111-2222-3333-444444444444",
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "login_hint": "adele@contoso.example",
        },
        allow_redirects=False,
    )
    assert page.status_code == 400
    assert "AADSTS700016" in page.text


def test_bad_client_secret_is_aadsts7000215(ms_msal):
    result = ms_msal("contoso.example", secret="wrong").acquire_token_for_client(
        ["https://graph.microsoft.com/.default"]
    )
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]


def test_user_in_unconsented_tenant_gets_aadsts65001_without_interaction(ms_msal, ms_session):
    result = sign_in(
        ms_msal("fourthcoffee.example"),
        ms_session,
        "jon@fourthcoffee.example",
        ["Calendars.ReadWrite"],
        prompt="none",
    )
    assert result["error"] == "consent_required"
    assert result["error_description"].startswith("AADSTS65001")


def test_a_missing_consent_shows_the_consent_screen_and_accepting_grants_it(
    ms_msal, ms_session, ms_world
):
    app = ms_msal("fourthcoffee.example")
    unanswered = sign_in(app, ms_session, "jon@fourthcoffee.example", ["Calendars.ReadWrite"])
    assert unanswered["error"] == "page" and "Permissions requested" in unanswered["page"]
    assert consent_screen_permissions(unanswered["page"]) == ["Calendars.ReadWrite"]
    tenant = ms_world.tenant("fourthcoffee.example")
    assert tenant.user_consents == {}  # nothing granted until the user accepts
    result = sign_in(
        app, ms_session, "jon@fourthcoffee.example", ["Calendars.ReadWrite"], consent="accept"
    )
    assert "access_token" in result, result
    assert tenant.user_consents == {
        tenant.user("jon@fourthcoffee.example").id: ["Calendars.ReadWrite"]
    }
    # Incremental: the next sign-in asks only for what is new.
    more = sign_in(
        app, ms_session, "jon@fourthcoffee.example", ["Calendars.ReadWrite", "Contacts.ReadWrite"]
    )
    assert consent_screen_permissions(more["page"]) == ["Contacts.ReadWrite"]
    again = sign_in(app, ms_session, "jon@fourthcoffee.example", ["Calendars.ReadWrite"])
    assert "access_token" in again, again  # granted: no screen


def test_cancelling_the_consent_screen_is_aadsts65004(ms_msal, ms_session, ms_world):
    result = sign_in(
        ms_msal("fourthcoffee.example"),
        ms_session,
        "jon@fourthcoffee.example",
        ["Calendars.ReadWrite"],
        consent="cancel",
    )
    assert result["error"] == "access_denied"
    assert result["error_description"].startswith("AADSTS65004")
    assert ms_world.tenant("fourthcoffee.example").user_consents == {}


def test_only_an_administrator_may_consent_to_admin_permissions(ms_msal, ms_session, ms_world):
    app = ms_msal("contoso.example")
    refused = sign_in(app, ms_session, "adele@contoso.example", ["Directory.Read.All"])
    assert refused["error"] == "access_denied"
    assert refused["error_description"].startswith("AADSTS90094")
    admin = sign_in(
        app, ms_session, "admin@contoso.example", ["Directory.Read.All"], consent="accept"
    )
    assert "access_token" in admin, admin
    tenant = ms_world.tenant("contoso.example")
    assert "Directory.Read.All" not in tenant.granted_scopes  # for the admin only, not for all
    assert tenant.user_consents[tenant.user("admin@contoso.example").id] == ["Directory.Read.All"]


def test_admin_approval_required_is_aadsts90094(ms_msal, ms_session):
    result = sign_in(
        ms_msal("litware.example"),
        ms_session,
        "kim@litware.example",
        ["Calendars.ReadWrite"],
        prompt="consent",
    )
    assert result["error"] == "access_denied"
    assert result["error_description"].startswith("AADSTS90094")


def test_admin_consent_grants_the_tenant(ms_server, ms_session, ms_msal):
    def consent(login: str) -> dict:
        answer = ms_session.get(
            f"{ms_server.url}/litware.example/v2.0/adminconsent",
            params={
                "client_id": SYNCHRONIZER_APP_ID,
                "redirect_uri": REDIRECT_URI,
                "state": "s1",
                "scope": "https://graph.microsoft.com/.default",
                "login_hint": login,
            },
            allow_redirects=False,
        )
        assert answer.status_code == 302
        return query_params(answer.headers["Location"])

    refused = consent("kim@litware.example")
    assert refused["error"] == "access_denied" and refused["state"] == "s1"
    assert refused["error_description"].startswith("AADSTS90093")  # not an administrator
    granted = consent("admin@litware.example")
    assert granted["admin_consent"] == "True" and granted["state"] == "s1"
    assert granted["tenant"]
    result = sign_in(
        ms_msal("litware.example"), ms_session, "kim@litware.example", ["Calendars.ReadWrite"]
    )
    assert "access_token" in result, result
    assert "access_token" in ms_msal("litware.example").acquire_token_for_client(
        ["https://graph.microsoft.com/.default"]
    )


def test_a_redeemed_code_is_aadsts54005(ms_msal, ms_session):
    app = ms_msal("contoso.example")
    flow = app.initiate_auth_code_flow(
        ["Calendars.ReadWrite"],
        redirect_uri=REDIRECT_URI,
        login_hint="adele@contoso.example",
        response_mode="form_post",
    )
    params = posted_form(ms_session.get(flow["auth_uri"]).text)
    assert "access_token" in app.acquire_token_by_auth_code_flow(dict(flow), params)
    again = app.acquire_token_by_auth_code_flow(dict(flow), params)
    assert again["error"] == "invalid_grant"
    assert again["error_codes"] == [54005]


def test_an_unregistered_redirect_uri_is_aadsts50011_on_the_page(ms_msal, ms_session):
    flow = ms_msal("contoso.example").initiate_auth_code_flow(
        ["Calendars.ReadWrite"],
        redirect_uri="https://evil.example/callback",
        login_hint="adele@contoso.example",
        response_mode="form_post",
    )
    answer = ms_session.get(flow["auth_uri"], allow_redirects=False)
    assert answer.status_code != 302  # never sent back to an unknown address
    assert "AADSTS50011" in answer.text


def test_revoked_refresh_token_is_invalid_grant(ms_msal, ms_session, ms_server):
    app = ms_msal("contoso.example")
    result = sign_in(app, ms_session, "megan@contoso.example", ["Calendars.ReadWrite"])
    assert "refresh_token" in result
    fault = ms_session.post(
        f"{ms_server.url}/_sim/faults", json={"kind": "token_revoked", "path": "/oauth2/v2.0/token"}
    )
    assert fault.status_code == 201
    refreshed = app.acquire_token_by_refresh_token(result["refresh_token"], ["Calendars.ReadWrite"])
    assert refreshed["error"] == "invalid_grant"
    assert refreshed["error_codes"] == [50173]
    again = app.acquire_token_by_refresh_token(result["refresh_token"], ["Calendars.ReadWrite"])
    assert again["error_codes"] == [50173]  # revoked for good, not only once


def test_refresh_after_consent_withdrawn_is_aadsts65001(ms_msal, ms_session, ms_server):
    app = ms_msal("contoso.example")
    result = sign_in(app, ms_session, "adele@contoso.example", ["Calendars.ReadWrite"])
    ms_session.post(
        f"{ms_server.url}/_sim/state", json={"tenants": {"contoso.example": {"consent": "none"}}}
    )
    refreshed = app.acquire_token_by_refresh_token(result["refresh_token"], ["Calendars.ReadWrite"])
    assert refreshed["error"] == "invalid_grant"
    assert refreshed["error_codes"] == [65001]


def test_msal_is_unchanged_against_the_authority(ms_server, ms_session):
    """No instance discovery call, tenant discovery by domain: the settings the product uses."""
    app = msal.ConfidentialClientApplication(
        SYNCHRONIZER_APP_ID,
        client_credential="demo-secret~Synchronizer.0123456789abcdef",
        authority=f"{ms_server.url}/contoso.example",
        instance_discovery=False,
        http_client=ms_session,
    )
    assert "access_token" in app.acquire_token_for_client(["https://graph.microsoft.com/.default"])


def test_organizations_authority_signs_in_a_user_of_any_tenant(ms_msal, ms_session, ms_world):
    result = sign_in(
        ms_msal("organizations"), ms_session, "alex@tailwindtraders.example", ["User.Read"]
    )
    assert "access_token" in result, result
    assert result["id_token_claims"]["tid"] == ms_world.tenant("tailwindtraders.example").id
    with pytest.warns(DeprecationWarning):  # msal itself discourages it
        refused = ms_msal("organizations").acquire_token_for_client(
            ["https://graph.microsoft.com/.default"]
        )
    assert refused["error_codes"] == [50059]


def test_authorize_without_login_hint_asks_who_signs_in(ms_server, ms_session):
    page = ms_session.get(
        f"{ms_server.url}/contoso.example/oauth2/v2.0/authorize",
        params={
            "client_id": SYNCHRONIZER_APP_ID,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "state": "x",
        },
    )
    assert page.status_code == 200
    assert "name='login_hint'" in page.text
    assert "name='state' value='x'" in page.text
