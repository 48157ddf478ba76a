"""Bearer-token checks for the API blueprints."""

from __future__ import annotations

from flask import current_app, request

from simulators.google.errors import (
    GoogleApiError,
    insufficient_scopes,
    rate_limited,
    unauthenticated,
)
from simulators.google.store import AccessToken, GoogleStore
from simulators.platform.control import claim_fault


def store() -> GoogleStore:
    return current_app.extensions["google_store"]


def require_token(*accepted_scopes: str) -> AccessToken:
    """The caller's valid access token holding one of `accepted_scopes`, else Google's 401/403.

    The `token_expired` / `token_revoked` faults make a valid token fail once, as when Google
    expires or revokes it between two calls.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value:
        raise unauthenticated()
    if claim_fault("token_expired", "token_revoked") is not None:
        raise unauthenticated()
    record = store().valid_access_token(value.strip())
    if record is None:
        raise unauthenticated()
    if accepted_scopes and not set(accepted_scopes) & set(record.scopes):
        raise insufficient_scopes()
    user = store().find_user(record.email)
    if user is not None and user.suspended:
        raise GoogleApiError(403, "The user account is suspended.", "forbidden")
    return record


def check_rate_limits(token: AccessToken) -> None:
    """Google's rate-limit answers: injected with the `rate_limit` / `user_rate_limit` fault
    kinds, or earned by exceeding the per-user quota set with the `set_user_quota` action.

    (A plain `status` fault with 403 or 429 gives `rateLimitExceeded` via SIM_ERROR_BODY.)
    """
    rule = claim_fault("rate_limit", "user_rate_limit")
    if rule is not None:
        kind = rule["kind"]
        reason = "userRateLimitExceeded" if kind == "user_rate_limit" else "rateLimitExceeded"
        raise rate_limited(int(rule.get("status", 403)), reason, rule.get("retry_after"))
    if not store().spend_quota(token.email):
        raise rate_limited(403, "userRateLimitExceeded")
