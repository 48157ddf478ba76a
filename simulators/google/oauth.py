"""Google's token endpoint (``oauth2.googleapis.com/token``, ``/revoke``): authorisation code,
refresh token and service-account JWT bearer grants, with Google's error answers."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, Response, jsonify, request

from simulators.google import id_tokens, opaque
from simulators.google.auth import store
from simulators.google.errors import OAuthError
from simulators.google.jwt_bearer import AssertionRefused, unverified_claims, verify
from simulators.google.store import ACCESS_TOKEN_LIFETIME, AccessToken, RefreshGrant
from simulators.platform.control import claim_fault
from simulators.world.google import OAuthClient

bp = Blueprint("google_oauth", __name__)

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
BLOCKED_DESCRIPTION = (
    "This application is currently blocked by your administrator. "
    "Access to your account data is restricted by policies within your organization."
)


def _client_credentials() -> tuple[str, str]:
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        return auth.username or "", auth.password or ""
    return request.form.get("client_id", ""), request.form.get("client_secret", "")


def _authenticated_client() -> OAuthClient:
    client_id, secret = _client_credentials()
    client = store().find_client(client_id)
    if client is None:
        raise OAuthError("invalid_client", "The OAuth client was not found.", 401)
    if not secrets.compare_digest(client.client_secret, secret):
        raise OAuthError("invalid_client", "Unauthorized", 401)
    return client


def _check_domain_policy(email: str, client_id: str, *, delegated: bool = False) -> None:
    """admin_policy_enforced when the user's domain does not let this client in. A client with
    domain-wide delegation counts as configured; only an explicit block stops it."""
    domain = store().domain_of(email)
    if domain is None:
        blocked = False
    elif delegated:
        blocked = client_id in domain.blocked_clients
    else:
        blocked = not domain.app_allowed(client_id)
    if blocked or claim_fault("admin_policy_enforced") is not None:
        raise OAuthError("admin_policy_enforced", BLOCKED_DESCRIPTION)


@bp.route("/token", methods=["POST"])
@bp.route("/oauth2/v4/token", methods=["POST"])
def token() -> Response:
    grant_type = request.form.get("grant_type", "")
    if grant_type == "authorization_code":
        body = _grant_code()
    elif grant_type == "refresh_token":
        body = _grant_refresh()
    elif grant_type == JWT_BEARER:
        body = _grant_jwt_bearer()
    else:
        raise OAuthError("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-cache, no-store, max-age=0, must-revalidate"
    return response


def _token_body(
    access: AccessToken, refresh: str | None = None, nonce: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": access.token,
        "expires_in": ACCESS_TOKEN_LIFETIME,
        "scope": " ".join(access.scopes),
        "token_type": "Bearer",
    }
    if refresh:
        body["refresh_token"] = refresh
    user = store().find_user(access.email)
    if "openid" in access.scopes and user is not None:
        body["id_token"] = id_tokens.issue(access.client_id, user, access.token, nonce)
    return body


def _grant_code() -> dict[str, Any]:
    client = _authenticated_client()
    with store().lock:
        code = store().codes.get(request.form.get("code", ""))
        if code is None or code.used or code.expires_at < store().now():
            raise OAuthError("invalid_grant", "Malformed auth code.")
        if code.client_id != client.client_id:
            raise OAuthError("invalid_grant", "Bad Request")
        if request.form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError("redirect_uri_mismatch", "Bad Request")
        code.used = True
    _check_domain_policy(code.email, client.client_id)
    refresh = None
    if code.offline:
        refresh = opaque.refresh_token()
        store().refresh_grants[refresh] = RefreshGrant(
            refresh, client.client_id, code.email, list(code.scopes)
        )
    access = store().issue_access_token(
        opaque.access_token(), client.client_id, code.email, list(code.scopes), refresh
    )
    return _token_body(access, refresh, code.nonce)


def _grant_refresh() -> dict[str, Any]:
    client = _authenticated_client()
    grant = store().refresh_grants.get(request.form.get("refresh_token", ""))
    if grant is None or grant.revoked or claim_fault("token_revoked") is not None:
        raise OAuthError("invalid_grant", "Token has been expired or revoked.")
    if grant.client_id != client.client_id:
        raise OAuthError("unauthorized_client", "Unauthorized")
    _check_domain_policy(grant.email, client.client_id)
    scopes = request.form.get("scope", "").split() or grant.scopes
    if not set(scopes) <= set(grant.scopes):
        raise OAuthError("invalid_scope", "Some requested scopes were invalid.")
    access = store().issue_access_token(
        opaque.access_token(), client.client_id, grant.email, scopes, grant.token
    )
    return _token_body(access)


def _grant_jwt_bearer() -> dict[str, Any]:
    assertion = request.form.get("assertion", "")
    try:
        claims = unverified_claims(assertion)
        account = next(
            (a for a in store().world.service_accounts if a.client_email == claims.get("iss")),
            None,
        )
        if account is None:
            raise OAuthError("invalid_grant", "Invalid JWT Signature.")
        claims = verify(assertion, account, request.base_url, store().now())
    except AssertionRefused as exc:
        raise OAuthError(exc.error, exc.description) from exc
    scopes = str(claims["scope"]).split()
    subject = claims.get("sub")
    email = account.client_email
    if subject and subject != account.client_email:
        user = store().find_user(str(subject))
        if user is None:
            raise OAuthError("invalid_grant", "Invalid email or User ID")
        domain = store().domain_of(user.email)
        delegated = set(domain.delegation.get(account.client_id, ())) if domain else set()
        if not set(scopes) <= delegated:
            raise OAuthError(
                "unauthorized_client",
                "Client is unauthorized to retrieve access tokens using this method, or client "
                "not authorized for any of the scopes requested.",
            )
        _check_domain_policy(user.email, account.client_id, delegated=True)
        email = user.email
    access = store().issue_access_token(opaque.access_token(), account.client_id, email, scopes)
    return _token_body(access)


# -- revoke, tokeninfo, userinfo -------------------------------------------------------
@bp.route("/revoke", methods=["POST", "GET"])
@bp.route("/o/oauth2/revoke", methods=["POST", "GET"])
def revoke() -> Response:
    value = request.values.get("token", "")
    with store().lock:
        grant = store().refresh_grants.get(value)
        access = store().access_tokens.pop(value, None)
        if grant is None and access is not None and access.refresh_token:
            grant = store().refresh_grants.get(access.refresh_token)
        if grant is None and access is None:
            raise OAuthError("invalid_token", "Token expired or revoked")
        if grant is not None:
            grant.revoked = True
    return jsonify({})
