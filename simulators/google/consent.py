"""Google's sign-in and consent screens (``accounts.google.com/o/oauth2/v2/auth``): pick the
account, refuse apps the domain does not allow (``admin_policy_enforced``), let the user untick
scopes, and send an authorisation code back to the app."""

from __future__ import annotations

import ipaddress
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, redirect, render_template_string, request

from simulators.google import opaque
from simulators.google.auth import store
from simulators.google.consent_pages import BLOCKED_PAGE, CONSENT_PAGE, ERROR_PAGE, SIGN_IN_PAGE
from simulators.google.store import AuthCode
from simulators.platform.control import claim_fault
from simulators.world.google import SCOPE_EMAIL, SCOPE_PROFILE, OAuthClient

bp = Blueprint("google_consent", __name__)

IDENTITY_SCOPES = {"openid", "email", "profile", SCOPE_EMAIL, SCOPE_PROFILE}
CODE_LIFETIME = 600


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
    client = store().find_client(args.get("client_id", ""))
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
    user = store().find_user(ticket["email"])
    hosted_domain = store().hosted_domain(user) if user is not None else None
    return redirect(
        _with_query(
            ticket["redirect_uri"],
            state=state,
            code=code,
            scope=" ".join(granted),
            authuser="0",
            hd=hosted_domain,  # only for a Workspace account, as in the id_token
            prompt="consent",
        )
    )


def _with_query(uri: str, **params: str | None) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return uri + ("&" if "?" in uri else "?") + query
