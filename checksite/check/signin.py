"""An administrator's sign-in from the report page (Microsoft 365): the authorization code flow
with state, nonce and PKCE (msal), and a new run that reads the tenant with that token. The
token lives in that run's memory only.

The sign-in asks only for what the report reads, part by part as the administrator ticks it
(plans: LicenseAssignment.Read.All; Synchronizer's consent: Directory.Read.All and
Policy.Read.All, or Application.Read.All in application mode), read-only, without
offline_access and without `prompt=consent`: Microsoft shows its consent screen for what is not
granted yet (incremental consent) and nothing more. Who signed in, and in which tenant, comes
from the verified id_token; the run uses the token only if that tenant is the target's."""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from typing import Any

import jwt
import msal
import requests
from flask import Response, redirect, render_template, request, session, url_for

from checksite.check import bp
from checksite.check.id_tokens import TokenRejected, published_keys, verified_claims
from checksite.check.starting import rate_limit, settings, start_run
from checksite.check.views import stored_report
from checksite.checks.context import TargetError, parse_target
from checksite.checks.m365_app import (
    ADMIN_SIGN_IN,
    ADMIN_TOKEN,
    DELEGATED,
    READ_CONSENT,
    READ_PLANS,
)
from checksite.checks.wiring import make_guard
from checksite.extensions import csrf, limiter
from common.http import BodyTooLarge, guarded_session
from common.netguard import Blocked, ResolveError

FLOW_KEY = "check_microsoft_flow"
PARTS = ("plans", "consent")  # what the administrator may tick on the report page
GRAPH = "https://graph.microsoft.com/"
_AADSTS = re.compile(r"AADSTS(\d+)")
REFUSALS = {
    "90094": "Microsoft says an administrator must approve this: sign in with an administrator "
    "of the tenant (Global Administrator, Global Reader or another role that may read it).",
    "65004": "You cancelled Microsoft's consent screen, so nothing was read.",
}


def _http() -> requests.Session:
    return guarded_session(make_guard(settings()))


def _application() -> msal.ConfidentialClientApplication:
    config = settings()
    return msal.ConfidentialClientApplication(
        config.microsoft_client_id,
        client_credential=config.microsoft_client_secret,
        authority=f"{config.microsoft_authority_host}/organizations",
        http_client=_http(),
        instance_discovery=False,
        token_cache=msal.TokenCache(),
        exclude_scopes=["offline_access"],  # the report reads once; it keeps no refresh token
    )


def microsoft_sign_in_available() -> bool:
    config = settings()
    return bool(config.microsoft_client_id and config.microsoft_client_secret)


def scopes_for(parts: list[str], mode: str) -> list[str]:
    """The Graph permissions for the parts of the report the administrator chose."""
    chosen: list[str] = []
    if "plans" in parts:
        chosen += READ_PLANS
    if "consent" in parts:
        chosen += READ_CONSENT[mode]
    return [f"{GRAPH}{scope}" for scope in dict.fromkeys(chosen)]


@bp.get("/check/r/<report_id>/signin/microsoft")
def microsoft_signin(report_id: str) -> Response | tuple[str, int]:
    row = stored_report(report_id)
    if not microsoft_sign_in_available():
        return render_template("check/signin_error.html", reason="not configured"), 404
    parts = [p for p in request.args.getlist("read") if p in PARTS]
    if not parts:  # the administrator unticked everything: there is nothing to ask for
        reason = "tick at least one part of the report for the sign-in to read"
        return render_template("check/signin_error.html", reason=reason), 400
    target = parse_target(row.target)
    login_hint = request.args.get("login_hint", "").strip()[:320] or None
    with warnings.catch_warnings():
        # msal recommends form_post, but a cross-site POST back would not carry our
        # SameSite=Lax session cookie (where the flow's state and PKCE verifier wait).
        warnings.simplefilter("ignore", UserWarning)
        flow = _application().initiate_auth_code_flow(
            scopes_for(parts, settings().microsoft_permission_mode or DELEGATED),
            redirect_uri=url_for("check.microsoft_callback", _external=True),
            login_hint=login_hint,  # a convenience for Microsoft's page; never shown by us
            domain_hint=target.domain,
            response_mode="query",
        )
    session[FLOW_KEY] = {"flow": flow, "target": row.target}
    return redirect(flow["auth_uri"])  # type: ignore[return-value]


@bp.route("/check/oauth/microsoft", methods=["GET", "POST"])
@csrf.exempt  # Microsoft may post back here; the flow's state is the protection
@limiter.limit(rate_limit)  # each callback starts a run, as the form does
def microsoft_callback() -> Response | tuple[str, int]:
    saved: dict[str, Any] | None = session.pop(FLOW_KEY, None)
    if saved is None:
        return render_template("check/signin_error.html", reason="no sign-in under way"), 400
    answer = request.form.to_dict() if request.method == "POST" else request.args.to_dict()
    try:
        result = _application().acquire_token_by_auth_code_flow(saved["flow"], answer)
    except ValueError:  # state mismatch: not the sign-in we started
        return render_template("check/signin_error.html", reason="the sign-in did not match"), 400
    if "access_token" not in result or "id_token" not in result:
        reason = str(result.get("error_description") or result.get("error") or "refused")
        code = _AADSTS.match(reason)
        shown = REFUSALS.get(code.group(1), "") if code else ""
        return render_template(
            "check/signin_error.html", reason=shown or reason.splitlines()[0]
        ), 400
    try:
        who = _verified_identity(str(result["id_token"]), _sent_nonce(saved["flow"]))
    except (TokenRejected, Blocked, ResolveError, BodyTooLarge) as exc:
        return render_template("check/signin_error.html", reason=f"Microsoft: {exc}"), 400
    granted = [s.removeprefix(GRAPH) for s in str(result.get("scope", "")).split()]
    who["scopes"] = [s for s in granted if "." in s]  # Graph permissions, not openid/profile
    credentials = {ADMIN_TOKEN: str(result["access_token"]), ADMIN_SIGN_IN: json.dumps(who)}
    try:
        report_id = start_run(saved["target"], credentials=credentials)
    except TargetError as exc:
        return render_template("check/signin_error.html", reason=str(exc)), 400
    return redirect(url_for("check.report", report_id=report_id), 303)  # type: ignore[return-value]


def _sent_nonce(flow: dict[str, Any]) -> str:
    """msal keeps a secret in the flow and sends its SHA-256 (hex) as the nonce."""
    return hashlib.sha256(str(flow.get("nonce", "")).encode("ascii")).hexdigest()


def _verified_identity(id_token: str, nonce: str) -> dict[str, Any]:
    """Tenant and user name from the id_token, verified against Microsoft's published keys;
    the issuer must be the one Microsoft's multi-tenant discovery names for that tenant."""
    config = settings()
    http = _http()
    try:
        discovery = http.get(
            f"{config.microsoft_authority_host}/organizations/v2.0/.well-known/openid-configuration"
        ).json()
        template, jwks_uri = str(discovery["issuer"]), str(discovery["jwks_uri"])
        tenant = str(jwt.decode(id_token, options={"verify_signature": False}).get("tid", ""))
    except (requests.RequestException, ValueError, KeyError, TypeError, jwt.PyJWTError) as exc:
        raise TokenRejected(f"the sign-in could not be verified: {exc}") from None
    claims = verified_claims(
        id_token,
        published_keys(http, jwks_uri),
        audience=str(config.microsoft_client_id),
        issuers=(template.replace("{tenantid}", tenant),),
        nonce=nonce,
    )
    if not tenant or claims.get("tid") != tenant:
        raise TokenRejected("the id_token names no tenant")
    username = claims.get("preferred_username") or claims.get("upn") or claims.get("sub")
    return {"tenant_id": tenant, "username": str(username)}
