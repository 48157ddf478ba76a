"""A Google Workspace administrator's sign-in from the report page: the authorization code
flow with state, nonce and PKCE (S256), our OAuth client, the scopes the sync needs plus the
admin's e-mail and the Workspace's domain list; then a run that tests our app with that token.
The token lives in that run only. Who signed in comes from the id_token, verified against
Google's published keys; the run uses the sign-in only for a domain of that Workspace.

If the domain blocks our app, Google shows its "Access blocked: admin_policy_enforced" page and
never sends the administrator back: the report page says so next to the button."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import urlencode

import requests
from flask import Response, redirect, render_template, request, session, url_for

from checksite.check import bp
from checksite.check.id_tokens import TokenRejected, published_keys, verified_claims
from checksite.check.starting import rate_limit, settings, start_run
from checksite.check.views import stored_report
from checksite.checks.context import TargetError, parse_target
from checksite.checks.google_role import ROLES_SCOPE
from checksite.checks.google_workspace import (
    DOMAINS_SCOPE,
    GOOGLE_ADMIN_EMAIL,
    GOOGLE_ADMIN_HOSTED_DOMAIN,
    GOOGLE_ADMIN_SCOPES,
    GOOGLE_ADMIN_TOKEN,
    NEEDS,
)
from checksite.checks.wiring import make_guard
from checksite.extensions import limiter
from common.http import BodyTooLarge, guarded_session
from common.netguard import Blocked, ResolveError

FLOW_KEY = "check_google_flow"
# The roles scope lets [google_workspace] name the administrator's role (optional: without it
# the role step says it cannot tell); the domains scope tells whether the target is one of the
# Workspace's domains when the administrator's address is on another.
SCOPES = ["openid", "email", *(need.scope for need in NEEDS), ROLES_SCOPE, DOMAINS_SCOPE]
ISSUERS = ("https://accounts.google.com", "accounts.google.com")  # Google's id_token issuers


def google_sign_in_available() -> bool:
    config = settings()
    return bool(config.google_client_id and config.google_client_secret)


def _callback_url() -> str:
    return url_for("check.google_callback", _external=True)


@bp.get("/check/r/<report_id>/signin/google")
def google_signin(report_id: str) -> Response | tuple[str, int]:
    row = stored_report(report_id)
    if not google_sign_in_available():
        return render_template("check/signin_error.html", reason="not configured"), 404
    target = parse_target(row.target)
    state = secrets.token_urlsafe(24)
    nonce = secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    session[FLOW_KEY] = {"state": state, "nonce": nonce, "verifier": verifier, "target": row.target}
    config = settings()
    query = {
        "client_id": config.google_client_id,
        "redirect_uri": _callback_url(),
        "response_type": "code",
        "scope": " ".join(SCOPES),
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge.decode().rstrip("="),
        "code_challenge_method": "S256",
        "access_type": "online",
        "prompt": "consent",
        "hd": target.domain,
    }
    login_hint = request.args.get("login_hint", "").strip()[:320]
    if login_hint:
        query["login_hint"] = login_hint
    return redirect(f"{config.google_accounts_url}/o/oauth2/v2/auth?{urlencode(query)}")  # type: ignore[return-value]


@bp.get("/check/oauth/google")
@limiter.limit(rate_limit)  # each callback starts a run, as the form does
def google_callback() -> Response | tuple[str, int]:
    saved: dict[str, Any] | None = session.pop(FLOW_KEY, None)
    if saved is None:
        return render_template("check/signin_error.html", reason="no sign-in under way"), 400
    if not secrets.compare_digest(request.args.get("state", ""), saved["state"]):
        return render_template("check/signin_error.html", reason="the sign-in did not match"), 400
    if "error" in request.args:
        reason = f"Google answered {request.args['error']}"
        return render_template("check/signin_error.html", reason=reason), 400
    config = settings()
    http = guarded_session(make_guard(config))
    try:
        answer = http.post(
            f"{config.google_oauth_url}/token",
            data={
                "grant_type": "authorization_code",
                "code": request.args.get("code", ""),
                "client_id": config.google_client_id,
                "client_secret": config.google_client_secret,
                "redirect_uri": _callback_url(),
                "code_verifier": saved["verifier"],
            },
        )
        token = answer.json()
        access = token.get("access_token") if answer.status_code == 200 else None
        if not access or "id_token" not in token:
            reason = str(token.get("error_description") or token.get("error") or "refused")
            return render_template("check/signin_error.html", reason=reason), 400
        claims = verified_claims(
            str(token["id_token"]),
            published_keys(http, f"{config.google_api_url}/oauth2/v3/certs"),
            audience=str(config.google_client_id),
            issuers=ISSUERS,
            nonce=saved["nonce"],
        )
    except (
        Blocked,
        ResolveError,
        BodyTooLarge,
        requests.RequestException,
        ValueError,
        TokenRejected,
    ) as exc:
        return render_template("check/signin_error.html", reason=f"Google: {exc}"), 400
    if claims.get("email_verified") is not True or not claims.get("email"):
        reason = "Google did not confirm the account's address"
        return render_template("check/signin_error.html", reason=reason), 400
    credentials = {
        GOOGLE_ADMIN_TOKEN: str(access),
        GOOGLE_ADMIN_SCOPES: str(token.get("scope", "")),
        GOOGLE_ADMIN_EMAIL: str(claims["email"]).lower(),
        GOOGLE_ADMIN_HOSTED_DOMAIN: str(claims.get("hd") or "").lower(),
    }
    try:
        report_id = start_run(saved["target"], credentials=credentials)
    except TargetError as exc:
        return render_template("check/signin_error.html", reason=str(exc)), 400
    return redirect(url_for("check.report", report_id=report_id), 303)  # type: ignore[return-value]
