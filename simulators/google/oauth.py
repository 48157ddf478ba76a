"""Google's OAuth 2.0 endpoints: consent screen, token, tokeninfo, revoke, userinfo.

Paths are Google's (``accounts.google.com/o/oauth2/v2/auth``, ``oauth2.googleapis.com/token``,
``…/tokeninfo``, ``…/revoke``, ``www.googleapis.com/oauth2/v2/userinfo``), all on one origin.
"""

from __future__ import annotations

import ipaddress
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, jsonify, redirect, render_template_string, request

from simulators.google import id_tokens, opaque
from simulators.google.auth import require_token, store
from simulators.google.consent_pages import BLOCKED_PAGE, CONSENT_PAGE, ERROR_PAGE, SIGN_IN_PAGE
from simulators.google.jwt_bearer import AssertionRefused, unverified_claims, verify
from simulators.google.store import ACCESS_TOKEN_LIFETIME, AccessToken, AuthCode, RefreshGrant
from simulators.platform.control import claim_fault
from simulators.world.google import SCOPE_EMAIL, SCOPE_PROFILE, OAuthClient

bp = Blueprint("google_oauth", __name__)

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
IDENTITY_SCOPES = {"openid", "email", "profile", SCOPE_EMAIL, SCOPE_PROFILE}
CODE_LIFETIME = 600
BLOCKED_DESCRIPTION = (
    "This application is currently blocked by your administrator. "
    "Access to your account data is restricted by policies within your organization."
)


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


@bp.errorhandler(OAuthError)
def _oauth_error(exc: OAuthError) -> tuple[Response, int]:
    return jsonify(error=exc.error, error_description=exc.description), exc.status


def _client(client_id: str) -> OAuthClient | None:
    return next((c for c in store().world.oauth_clients if c.client_id == client_id), None)


def _redirect_allowed(client: OAuthClient, uri: str) -> bool:
    if uri in client.redirect_uris:
        return True
    parts = urlsplit(uri)
    if not client.allow_loopback_redirects or parts.scheme not in ("http", "https"):
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _page(template: str, status: int, **context: Any) -> tuple[str, int]:
    return render_template_string(template, **context), status


def _error_page(status: int, error: str, message: str) -> tuple[str, int]:
    """Google's "Access blocked: Authorization Error" page (the user is not sent back)."""
    return _page(ERROR_PAGE, status, code=str(status), error=error, message=message)


# -- consent screen ------------------------------------------------------------------------
@bp.route("/o/oauth2/v2/auth", methods=["GET"])
@bp.route("/o/oauth2/auth", methods=["GET"])
def authorize() -> Any:
    args = request.args
    client = _client(args.get("client_id", ""))
    if client is None:
        return _error_page(401, "invalid_client", "The OAuth client was not found.")
    redirect_uri = args.get("redirect_uri", "")
    if not _redirect_allowed(client, redirect_uri):
        return _error_page(
            400,
            "redirect_uri_mismatch",
            "You can't sign in to this app because it doesn't comply with "
            "Google's OAuth 2.0 policy.",
        )
    scopes = args.get("scope", "").split()
    if not scopes:
        return _error_page(400, "invalid_request", "Missing required parameter: scope")
    if args.get("response_type") != "code":
        return redirect(
            _with_query(redirect_uri, error="unsupported_response_type", state=args.get("state"))
        )
    email = (args.get("email") or args.get("login_hint") or "").strip().lower()
    if not email:
        return _page(SIGN_IN_PAGE, 200, params=args, error=None)
    user = store().find_user(email)
    if user is None or user.suspended:
        return _page(SIGN_IN_PAGE, 200, params=args, error="Couldn't find your Google Account")
    domain = store().domain_of(user.email)
    blocked = domain is not None and not domain.app_allowed(client.client_id)
    if blocked or claim_fault("admin_policy_enforced") is not None:
        return _page(BLOCKED_PAGE, 400, app=client.name, email=user.email)
    ticket = secrets.token_urlsafe(16)
    store().consent_tickets[ticket] = {
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "email": user.email,
        "scope": " ".join(scopes),
        "state": args.get("state", ""),
        "offline": str(args.get("access_type") == "offline"),
        "include_granted_scopes": args.get("include_granted_scopes", ""),
        "nonce": args.get("nonce", ""),
    }
    return _page(CONSENT_PAGE, 200, app=client.name, email=user.email, scopes=scopes, ticket=ticket)


@bp.route("/o/oauth2/v2/auth/decision", methods=["POST"])
def decide() -> Any:
    """The consent screen's buttons: Allow (with the ticked scopes) or Cancel."""
    ticket = store().consent_tickets.pop(request.form.get("ticket", ""), None)
    if ticket is None:
        return _error_page(400, "invalid_request", "This consent screen has expired. Start again.")
    state = ticket["state"] or None
    if request.form.get("decision") != "allow":
        return redirect(_with_query(ticket["redirect_uri"], error="access_denied", state=state))
    asked = ticket["scope"].split()
    ticked = set(request.form.getlist("scope"))
    # Identity scopes are always granted; the others only when left ticked (granular consent).
    granted = [s for s in asked if s in ticked or s in IDENTITY_SCOPES]
    if ticket["include_granted_scopes"] == "true":
        for grant in store().refresh_grants.values():
            if (grant.email, grant.client_id) == (ticket["email"], ticket["client_id"]):
                granted += [s for s in grant.scopes if s not in granted and not grant.revoked]
    code = opaque.auth_code()
    store().codes[code] = AuthCode(
        code=code,
        client_id=ticket["client_id"],
        redirect_uri=ticket["redirect_uri"],
        email=ticket["email"],
        scopes=granted,
        offline=ticket["offline"] == "True",
        expires_at=store().now() + CODE_LIFETIME,
        nonce=ticket["nonce"] or None,
    )
    domain = ticket["email"].rsplit("@", 1)[-1]
    return redirect(
        _with_query(
            ticket["redirect_uri"],
            state=state,
            code=code,
            scope=" ".join(granted),
            authuser="0",
            hd=domain,
            prompt="consent",
        )
    )


def _with_query(uri: str, **params: str | None) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return uri + ("&" if "?" in uri else "?") + query


# -- token endpoint ------------------------------------------------------------------------
def _client_credentials() -> tuple[str, str]:
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        return auth.username or "", auth.password or ""
    return request.form.get("client_id", ""), request.form.get("client_secret", "")


def _authenticated_client() -> OAuthClient:
    client_id, secret = _client_credentials()
    client = _client(client_id)
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


def _token_info_record() -> Any:
    value = request.values.get("access_token", "")
    record = store().valid_access_token(value)
    if record is None:
        raise OAuthError("invalid_token", "Invalid Value")
    return record


def _subject_id(email: str) -> str:
    user = store().find_user(email)
    if user is not None:
        return user.user_id
    account = next((a for a in store().world.service_accounts if a.client_email == email), None)
    return account.client_id if account else email


@bp.route("/tokeninfo", methods=["GET", "POST"])
@bp.route("/oauth2/v3/tokeninfo", methods=["GET", "POST"])
def tokeninfo() -> Response:
    record = _token_info_record()
    expires_in = int(record.expires_at - store().now())
    return jsonify(
        azp=record.client_id,
        aud=record.client_id,
        sub=_subject_id(record.email),
        scope=" ".join(record.scopes),
        exp=str(int(record.expires_at)),
        expires_in=str(expires_in),
        email=record.email,
        email_verified="true",
        access_type=record.access_type,
    )


@bp.route("/oauth2/v2/tokeninfo", methods=["GET", "POST"])
def tokeninfo_v2() -> Response:
    """The oauth2 v2 API's shape (schema ``Tokeninfo`` in oauth2.v2.json)."""
    record = _token_info_record()
    return jsonify(
        issued_to=record.client_id,
        audience=record.client_id,
        user_id=_subject_id(record.email),
        scope=" ".join(record.scopes),
        expires_in=int(record.expires_at - store().now()),
        email=record.email,
        verified_email=True,
    )


@bp.route("/oauth2/v2/userinfo", methods=["GET"])
@bp.route("/userinfo/v2/me", methods=["GET"])
def userinfo_v2() -> Response:
    record = require_token("openid", "email", "profile", SCOPE_EMAIL, SCOPE_PROFILE)
    user = store().find_user(record.email)
    if user is None:
        return jsonify(id=_subject_id(record.email), email=record.email, verified_email=True)
    return jsonify(
        id=user.user_id,
        email=user.email,
        verified_email=True,
        name=user.full_name,
        given_name=user.given_name,
        family_name=user.family_name,
        hd=user.email.rsplit("@", 1)[-1],
        locale="en",
        picture="https://lh3.googleusercontent.com/a/default-user=s96-c",
    )


@bp.route("/oauth2/v3/userinfo", methods=["GET"])
@bp.route("/v1/userinfo", methods=["GET"])
def userinfo_oidc() -> Response:
    record = require_token("openid", "email", "profile", SCOPE_EMAIL, SCOPE_PROFILE)
    user = store().find_user(record.email)
    claims: dict[str, Any] = {
        "sub": _subject_id(record.email),
        "email": record.email,
        "email_verified": True,
    }
    if user is not None:
        claims.update(
            name=user.full_name,
            given_name=user.given_name,
            family_name=user.family_name,
            hd=user.email.rsplit("@", 1)[-1],
        )
    return jsonify(claims)
