"""An administrator's sign-in from the report page (Microsoft 365): the authorization code flow
with state and PKCE (msal), read-only delegated scopes, and a new run that uses the token for
the checks that need an administrator's view. The token lives in that run's memory only.

When the report says our app is not consented, the sign-in asks instead for our app's own
permissions, as a first use would: Microsoft's answer (AADSTS65001 consent required, or
AADSTS90094 admin approval required) goes to [app_consent] of the new run."""

from __future__ import annotations

import re
import warnings
from typing import Any

import msal
from flask import Response, redirect, render_template, request, session, url_for

from checksite.check import bp
from checksite.check.starting import rate_limit, settings, start_run
from checksite.check.views import stored_report
from checksite.checks.app_consent import consent_missing
from checksite.checks.context import TargetError, parse_target
from checksite.checks.m365_app import (
    ADMIN_TOKEN,
    APPROVAL_REQUIRED,
    CONSENT_REQUIRED,
    CONSENT_SIGN_IN,
    GRAPH_SCOPE,
)
from checksite.checks.wiring import make_guard
from checksite.extensions import csrf, limiter
from common.http import guarded_session

ADMIN_SCOPES = ["Directory.Read.All"]  # read-only: plans, licences, our app's grants
FLOW_KEY = "check_microsoft_flow"
_AADSTS = re.compile(r"AADSTS(\d+)")


def _application() -> msal.ConfidentialClientApplication:
    config = settings()
    return msal.ConfidentialClientApplication(
        config.microsoft_client_id,
        client_credential=config.microsoft_client_secret,
        authority=f"{config.microsoft_authority_host}/organizations",
        http_client=guarded_session(make_guard(config)),
        instance_discovery=False,
        token_cache=msal.TokenCache(),
    )


def microsoft_sign_in_available() -> bool:
    config = settings()
    return bool(config.microsoft_client_id and config.microsoft_client_secret)


@bp.get("/check/r/<report_id>/signin/microsoft")
def microsoft_signin(report_id: str) -> Response | tuple[str, int]:
    row = stored_report(report_id)
    if not microsoft_sign_in_available():
        return render_template("check/signin_error.html", reason="not configured"), 404
    target = parse_target(row.target)
    login_hint = request.args.get("login_hint", "").strip()[:320] or None
    probe = row.status == "done" and consent_missing(row.report)
    with warnings.catch_warnings():
        # msal recommends form_post, but a cross-site POST back would not carry our
        # SameSite=Lax session cookie (where the flow's state and PKCE verifier wait).
        warnings.simplefilter("ignore", UserWarning)
        flow = _application().initiate_auth_code_flow(
            [GRAPH_SCOPE] if probe else ADMIN_SCOPES,
            redirect_uri=url_for("check.microsoft_callback", _external=True),
            login_hint=login_hint,
            domain_hint=target.domain,
            # consent probe: no forced prompt, so Microsoft answers as it would on first use;
            # otherwise the administrator sees what the read-only access covers
            prompt=None if probe else "consent",
            response_mode="query",
        )
    session[FLOW_KEY] = {
        "flow": flow,
        "target": row.target,
        "probe": probe,
        "who": login_hint or "",
    }
    return redirect(flow["auth_uri"])  # type: ignore[return-value]


@bp.route("/check/oauth/microsoft", methods=["GET", "POST"])
@csrf.exempt  # Microsoft posts back here; the flow's state is the protection
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
    reason = str(result.get("error_description") or result.get("error") or "refused")
    code = _AADSTS.match(reason)
    who = saved.get("who") or "the person who signed in"
    if saved.get("probe") and code and int(code.group(1)) in (CONSENT_REQUIRED, APPROVAL_REQUIRED):
        credentials = {CONSENT_SIGN_IN: f"{code.group(1)} {who}"}
    elif saved.get("probe") and "access_token" in result:
        credentials = {CONSENT_SIGN_IN: f"consented {who}"}
    elif "access_token" in result:
        credentials = {ADMIN_TOKEN: result["access_token"]}
    else:
        return render_template("check/signin_error.html", reason=reason.splitlines()[0]), 400
    try:
        report_id = start_run(saved["target"], credentials=credentials)
    except TargetError as exc:
        return render_template("check/signin_error.html", reason=str(exc)), 400
    return redirect(url_for("check.report", report_id=report_id), 303)  # type: ignore[return-value]
