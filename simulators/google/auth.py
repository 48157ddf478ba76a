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


def rate_limit_fault() -> None:
    """Google's own rate-limit answers, injected with the `rate_limit` / `user_rate_limit` kinds.

    (A plain `status` fault with 403 or 429 gives `rateLimitExceeded` via SIM_ERROR_BODY.)
    """
    rule = claim_fault("rate_limit", "user_rate_limit")
    if rule is None:
        return
    reason = "userRateLimitExceeded" if rule["kind"] == "user_rate_limit" else "rateLimitExceeded"
    status = int(rule.get("status", 403))
    raise rate_limited(status, reason, rule.get("retry_after"))
