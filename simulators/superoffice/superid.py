"""SuperID, the Online identity provider (`/login/...`), the tenant lookup `/api/state/{ctx}`
and the partner system-user flow (`/Login/api/PartnerSystemUser/Authenticate`).

OIDC authorization code flow (PKCE S256/plain optional), refresh tokens, RS256 id_tokens with
SuperOffice's claims under `http://schemes.superoffice.net/identity/`; only scope `openid`; no
UserInfo endpoint and no client_credentials grant, like the real one.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import zlib
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Blueprint, Response, current_app, redirect, render_template_string, request
from flask.typing import ResponseReturnValue
from markupsafe import escape

from simulators.superoffice.credentials import Grant
from simulators.superoffice.faults import TOKEN_REVOKED, claim
from simulators.superoffice.model import AssociateRecord, TenantData
from simulators.world.superoffice import PartnerApp

bp = Blueprint("so_superid", __name__)

CLAIM = "http://schemes.superoffice.net/identity/"
SYSTEM_TOKEN_SKEW = dt.timedelta(minutes=5)

_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SuperOffice ID - sign in</title></head>
<body><h1>SuperOffice</h1><p>Sign in to {{ app_name }}</p>
{% if error %}<p role="alert" class="error">{{ error }}</p>{% endif %}
<form method="post" action="">
{% for name, value in hidden.items() %}<input type="hidden" name="{{ name }}" value="{{ value }}">
{% endfor %}
<label>E-mail <input name="username" type="email" value="{{ username }}" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Log in</button></form></body></html>"""

AUTHORIZE_PARAMS = ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce",
                    "code_challenge", "code_challenge_method", "acr_values", "login_hint")  # fmt: skip


def sim() -> Any:
    return current_app.extensions["superoffice"]


def issuer() -> str:
    return request.host_url.rstrip("/")


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    return _json({"error": error, "error_description": description}, status)


# --- discovery -----------------------------------------------------------------------------------


@bp.get("/login/.well-known/openid-configuration")
def openid_configuration() -> Response:
    base = issuer()
    return _json({
        "issuer": base,
        "authorization_endpoint": f"{base}/login/common/oauth/authorize",
        "token_endpoint": f"{base}/login/common/oauth/tokens",
        "jwks_uri": f"{base}/login/.well-known/jwks",
        "response_types_supported": ["code", "id_token", "code id_token", "token id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid"],
        "grant_types_supported": ["authorization_code", "refresh_token", "implicit"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "code_challenge_methods_supported": ["S256", "plain"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", *[CLAIM + c for c in
                             ("ctx", "associateid", "email", "upn", "is_administrator", "webapi_url",
                              "netserver_url", "system_token", "serial", "company_name")]],
    })  # fmt: skip


@bp.get("/login/.well-known/jwks")
def jwks() -> Response:
    key = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(sim().signing_key.public_key()))
    key.update({"kid": sim().key_id, "use": "sig", "alg": "RS256"})
    return _json({"keys": [key]})


# --- authorize -----------------------------------------------------------------------------------


def _redirect_allowed(app: PartnerApp, uri: str) -> bool:
    if uri in app.redirect_uris:
        return True
    host = urlsplit(uri).hostname or ""
    return current_app.config["SO_ALLOW_LOOPBACK_REDIRECTS"] and host in (
        "127.0.0.1",
        "localhost",
        "::1",
    )


def _with_query(uri: str, params: dict[str, str]) -> str:
    return uri + ("&" if "?" in uri else "?") + urlencode({k: v for k, v in params.items() if v})


@bp.route("/login/common/oauth/authorize", methods=["GET", "POST"])
def authorize() -> ResponseReturnValue:
    params = {name: (request.values.get(name) or "") for name in AUTHORIZE_PARAMS}
    app = sim().apps.get(params["client_id"])
    if app is None or not _redirect_allowed(app, params["redirect_uri"]):
        return Response(f"<h1>Invalid request</h1><p>Unknown client_id or redirect_uri {escape(params['redirect_uri'])}</p>",
                        status=400, mimetype="text/html")  # fmt: skip
    back = {"state": params["state"]}
    if params["response_type"] != "code":
        return redirect(
            _with_query(params["redirect_uri"], {"error": "unsupported_response_type", **back})
        )
    if "openid" not in params["scope"].split():
        return redirect(_with_query(params["redirect_uri"], {"error": "invalid_scope", **back}))
    if params["code_challenge"] and params["code_challenge_method"] not in ("S256", "plain", ""):
        return redirect(_with_query(params["redirect_uri"], {"error": "invalid_request", **back}))
    username = request.form.get("username", params["login_hint"])
    if request.method == "GET":
        return _login_page(app, params, username)
    found = _sign_in(username, request.form.get("password", ""), params["acr_values"])
    if isinstance(found, str):
        return _login_page(app, params, username, found)
    data, assoc = found
    grant = Grant(
        data.context_id, assoc.associate_id, app.client_id, redirect_uri=params["redirect_uri"],
        code_challenge=params["code_challenge"],
        code_challenge_method=params["code_challenge_method"] or ("plain" if params["code_challenge"] else ""),
        nonce=params["nonce"],
    )  # fmt: skip
    code = sim().credentials.issue_code(grant)
    return redirect(_with_query(params["redirect_uri"], {"code": code, **back}))


def _login_page(
    app: PartnerApp, params: dict[str, str], username: str, error: str = ""
) -> Response:
    hidden = {k: v for k, v in params.items() if v and k != "login_hint"}
    page = render_template_string(
        _LOGIN_PAGE, app_name=app.name, hidden=hidden, username=username, error=error
    )
    return Response(page, status=200, mimetype="text/html")


def _sign_in(
    username: str, password: str, acr_values: str
) -> tuple[TenantData, AssociateRecord] | str:
    wanted = ""
    for value in acr_values.split():
        if value.startswith("tenant:"):
            wanted = value.removeprefix("tenant:").lower()
    for data in sim().tenants.values():
        if data.config.kind != "online" or (wanted and data.context_id.lower() != wanted):
            continue
        assoc = data.associate_by_username(username) if username else None
        if assoc is None or assoc.deleted or assoc.kind != "InternalAssociate":
            continue
        if hmac.compare_digest(assoc.password.encode(), password.encode()):
            return data, assoc
        return "Wrong e-mail or password"
    return "Wrong e-mail or password"


# --- tokens --------------------------------------------------------------------------------------


def _client() -> PartnerApp | None:
    client_id = request.form.get("client_id", "")
    secret = request.form.get("client_secret", "")
    if request.authorization and request.authorization.type == "basic":
        client_id = request.authorization.username or ""
        secret = request.authorization.password or ""
    app = sim().apps.get(client_id)
    if app is None or not hmac.compare_digest(app.client_secret.encode(), secret.encode()):
        return None
    return app


def _pkce_ok(grant: Grant, verifier: str) -> bool:
    if not grant.code_challenge:
        return True
    if grant.code_challenge_method == "S256":
        digest = hashlib.sha256(verifier.encode()).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    else:
        computed = verifier
    return bool(verifier) and hmac.compare_digest(computed, grant.code_challenge)


@bp.post("/login/common/oauth/tokens")
def tokens() -> Response:
    app = _client()
    if app is None:
        return _oauth_error("invalid_client", "Unknown client or wrong client secret", 401)
    grant_type = request.form.get("grant_type", "")
    if grant_type == "authorization_code":
        grant = sim().credentials.take_code(request.form.get("code", ""))
        if grant is None or grant.client_id != app.client_id:
            return _oauth_error("invalid_grant", "The code is invalid, used or expired")
        if grant.redirect_uri != request.form.get("redirect_uri", ""):
            return _oauth_error(
                "invalid_grant", "redirect_uri does not match the authorization request"
            )
        if not _pkce_ok(grant, request.form.get("code_verifier", "")):
            return _oauth_error("invalid_grant", "PKCE verification failed")
        return _token_response(app, grant)
    if grant_type == "refresh_token":
        token = request.form.get("refresh_token", "")
        grant = sim().credentials.refresh(token)
        if grant is not None and claim(TOKEN_REVOKED):
            sim().credentials.revoke_user(grant.context_id, grant.associate_id)
            grant = None
        if grant is None or grant.client_id != app.client_id:
            return _oauth_error("invalid_grant", "The refresh token is invalid or was revoked")
        return _token_response(app, grant, refresh_token=token)
    return _oauth_error("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")


def _token_response(app: PartnerApp, grant: Grant, refresh_token: str | None = None) -> Response:
    data = sim().tenant(grant.context_id)
    assoc = data.associates.get(grant.associate_id) if data else None
    if data is None or assoc is None or assoc.deleted:
        return _oauth_error("invalid_grant", "The user is no longer active")
    access, refresh = sim().credentials.issue_tokens(grant, refresh_token=refresh_token)
    return _json({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": refresh,
        "id_token": _id_token(app, data, assoc, grant.nonce),
    })  # fmt: skip


def _sign(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, sim().signing_key, algorithm="RS256", headers={"kid": sim().key_id})


def tenant_endpoint(data: TenantData) -> str:
    host = request.host
    if data.config.api_host:
        _, _, port = host.rpartition(":") if ":" in host else ("", "", "")
        host = data.config.api_host + (f":{port}" if port else "")
    return f"{request.scheme}://{host}/{data.context_id}"


def _id_token(app: PartnerApp, data: TenantData, assoc: AssociateRecord, nonce: str) -> str:
    now = dt.datetime.now(dt.UTC)
    endpoint = tenant_endpoint(data)
    claims: dict[str, Any] = {
        "iss": issuer(),
        "aud": app.client_id,
        "sub": assoc.email,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + dt.timedelta(hours=1)).timestamp()),
        CLAIM + "ctx": data.context_id,
        CLAIM + "associateid": str(assoc.associate_id),
        CLAIM + "email": assoc.email,
        CLAIM + "upn": assoc.email,
        CLAIM + "so_primary_email_address": assoc.email,
        CLAIM + "is_administrator": "True" if assoc.is_administrator else "False",
        CLAIM + "initials": assoc.username.split("@")[0].upper(),
        CLAIM + "company_name": data.config.name,
        CLAIM + "serial": str(zlib.crc32(data.context_id.encode())),
        CLAIM + "identityprovider": "central-superid",
        CLAIM + "webapi_url": f"{endpoint}/api/",
        CLAIM + "netserver_url": f"{endpoint}/Remote/Services88/",
    }
    if nonce:
        claims["nonce"] = nonce
    if app.server_to_server and assoc.is_administrator and data.context_id in app.consented_tenants:
        claims[CLAIM + "system_token"] = app.system_token(data.context_id)
    return _sign(claims)


# --- tenant state --------------------------------------------------------------------------------


@bp.get("/api/state/<context_id>")
def tenant_state(context_id: str) -> Response:
    data = sim().tenant(context_id)
    valid_until = (
        (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    )
    if data is None or data.config.kind != "online":
        return _json({"ContextIdentifier": context_id, "Endpoint": "", "State": "Unknown",
                      "IsRunning": False, "ValidUntil": valid_until, "Api": ""})  # fmt: skip
    endpoint = tenant_endpoint(data)
    state = data.config.state
    return _json({
        "ContextIdentifier": data.context_id,
        "Endpoint": endpoint,
        "State": state,
        "IsRunning": state in ("Running", "OnlineMaintenance"),
        "ValidUntil": valid_until,
        "Api": f"{endpoint}/api",
        "Version": data.config.version,
    })  # fmt: skip


# --- system user ---------------------------------------------------------------------------------


def _system_failure(message: str) -> Response:
    return _json({"IsSuccessful": False, "Token": None, "ErrorMessage": message})


@bp.post("/Login/api/PartnerSystemUser/Authenticate")
@bp.post("/login/api/PartnerSystemUser/Authenticate")
def system_user() -> Response:
    body = request.get_json(silent=True) or {}
    app = next(
        (a for a in sim().apps.values() if a.client_secret == body.get("ApplicationToken")), None
    )
    data = sim().tenant(str(body.get("ContextIdentifier", "")))
    if app is None:
        return _system_failure("Unknown ApplicationToken")
    if data is None or data.config.kind != "online" or data.context_id not in app.consented_tenants:
        return _system_failure("The application is not approved for this tenant")
    error = _check_signed_token(app, data, str(body.get("SignedSystemToken", "")))
    if error:
        return _system_failure(error)
    system = data.system_associate()
    ticket = sim().credentials.issue_ticket(data.context_id, system.associate_id, app.client_id)
    if str(body.get("ReturnTokenType", "JWT")).upper() != "JWT":
        return _json({"IsSuccessful": True, "Token": ticket, "ErrorMessage": ""})
    now = dt.datetime.now(dt.UTC)
    token = _sign({
        "iss": issuer(), "aud": app.client_id, "sub": f"system-{data.context_id}",
        "iat": int(now.timestamp()), "exp": int((now + dt.timedelta(hours=6)).timestamp()),
        CLAIM + "ticket": ticket, CLAIM + "ctx": data.context_id,
        CLAIM + "associateid": str(system.associate_id),
        CLAIM + "webapi_url": f"{tenant_endpoint(data)}/api/",
    })  # fmt: skip
    return _json({"IsSuccessful": True, "Token": token, "ErrorMessage": ""})


def _check_signed_token(app: PartnerApp, data: TenantData, signed: str) -> str:
    """`{system_token}.{yyyyMMddHHmm}.{base64 RSA-SHA256 signature}` by the partner's key."""
    try:
        system_token, stamp, signature = signed.rsplit(".", 2)
        when = dt.datetime.strptime(stamp, "%Y%m%d%H%M").replace(tzinfo=dt.UTC)
        raw_signature = base64.b64decode(signature, validate=True)
    except (ValueError, binascii.Error):
        return "SignedSystemToken is malformed"
    if not hmac.compare_digest(system_token, app.system_token(data.context_id)):
        return "Unknown system token"
    if abs(dt.datetime.now(dt.UTC) - when) > SYSTEM_TOKEN_SKEW:
        return "SignedSystemToken has expired"
    public_key = serialization.load_pem_public_key(app.public_key_pem.encode())
    assert isinstance(public_key, rsa.RSAPublicKey)
    try:
        public_key.verify(
            raw_signature, f"{system_token}.{stamp}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        return "The signature does not verify with the registered key"
    return ""
