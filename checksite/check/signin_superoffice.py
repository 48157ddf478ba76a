"""'Sign in with SuperOffice' from the report page (SuperOffice Online): SuperID's code flow
with state, nonce and PKCE; the id_token, verified against SuperID's keys, says whether the
person is an administrator of the tenant; a new run's [superoffice] check reports it."""

from __future__ import annotations

import json

from flask import Response, redirect, render_template, request, session, url_for

from checksite.check import bp
from checksite.check.starting import rate_limit, settings, start_run
from checksite.check.superid import Flow, SignInFailed, authorize_url, redeem
from checksite.check.views import stored_report
from checksite.checks.context import TargetError
from checksite.checks.superoffice import SUPEROFFICE_SIGN_IN, superoffice_online_tenant
from checksite.checks.wiring import make_guard
from checksite.extensions import limiter
from common.http import BodyTooLarge, guarded_session
from common.netguard import Blocked, ResolveError

FLOW_KEY = "check_superoffice_flow"


def superoffice_sign_in_available() -> bool:
    config = settings()
    return bool(config.superoffice_client_id and config.superoffice_client_secret)


def _callback_url() -> str:
    return url_for("check.superoffice_callback", _external=True)


@bp.get("/check/r/<report_id>/signin/superoffice")
def superoffice_signin(report_id: str) -> Response | tuple[str, int]:
    row = stored_report(report_id)
    tenant = superoffice_online_tenant(row.report if row.status == "done" else None)
    if not superoffice_sign_in_available() or tenant is None:
        reason = "not configured" if tenant else "no SuperOffice Online tenant in this report"
        return render_template("check/signin_error.html", reason=reason), 404
    flow = Flow.new()
    url, context_id = tenant
    session[FLOW_KEY] = {
        "state": flow.state,
        "nonce": flow.nonce,
        "verifier": flow.verifier,
        "target": row.target,
        "superoffice_url": url,
    }
    config = settings()
    where = authorize_url(
        config.superoffice_online_url,
        str(config.superoffice_client_id),
        _callback_url(),
        flow,
        context_id,
    )
    return redirect(where)  # type: ignore[return-value]


@bp.get("/check/oauth/superoffice")
@limiter.limit(rate_limit)  # each callback starts a run, as the form does
def superoffice_callback() -> Response | tuple[str, int]:
    saved: dict[str, str] | None = session.pop(FLOW_KEY, None)
    if saved is None:
        return render_template("check/signin_error.html", reason="no sign-in under way"), 400
    flow = Flow(saved["state"], saved["nonce"], saved["verifier"])
    if not flow.state or request.args.get("state", "") != flow.state:
        return render_template("check/signin_error.html", reason="the sign-in did not match"), 400
    if "error" in request.args:
        reason = f"SuperOffice answered {request.args['error']}"
        return render_template("check/signin_error.html", reason=reason), 400
    config = settings()
    try:
        user = redeem(
            guarded_session(make_guard(config)),
            config.superoffice_online_url,
            str(config.superoffice_client_id),
            str(config.superoffice_client_secret),
            _callback_url(),
            request.args.get("code", ""),
            flow,
        )
    except (SignInFailed, Blocked, ResolveError, BodyTooLarge) as exc:
        return render_template("check/signin_error.html", reason=f"SuperOffice: {exc}"), 400
    who = {
        "ctx": user.context_id,
        "associate_id": user.associate_id,
        "email": user.email,
        "is_administrator": user.is_administrator,
    }
    try:
        report_id = start_run(
            saved["target"],
            superoffice_url=saved["superoffice_url"],
            credentials={SUPEROFFICE_SIGN_IN: json.dumps(who)},
        )
    except TargetError as exc:
        return render_template("check/signin_error.html", reason=str(exc)), 400
    return redirect(url_for("check.report", report_id=report_id), 303)  # type: ignore[return-value]
