"""Google-shaped API errors.

Google APIs answer errors with ``{"error": {"code", "message", "errors": [...], "status"}}``;
Calendar and Directory put the reason in ``errors[].reason``, People puts it in
``details[]`` (``google.rpc.ErrorInfo``). googleapiclient's ``HttpError.error_details`` reads
either, and its retry logic looks at ``errors[].reason`` for 403 rate limits.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    410: "NOT_FOUND",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class GoogleApiError(Exception):
    """Raised inside a handler; turned into Google's JSON error body by the app."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str,
        *,
        domain: str = "global",
        status: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        location: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.status = status or STATUS_NAMES.get(code, "UNKNOWN")
        self.details = details
        self.headers = headers or {}
        self.location = location

    def body(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "message": self.message,
            "domain": self.domain,
            "reason": self.reason,
        }
        if self.location:
            item.update(location=self.location, locationType="header")
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "errors": [item],
            "status": self.status,
        }
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}

    def response(self) -> Response:
        return Response(
            json.dumps(self.body()),
            status=self.code,
            content_type="application/json; charset=UTF-8",
            headers=self.headers,
        )


class OAuthError(Exception):
    """An OAuth endpoint's refusal: ``{"error", "error_description"}``, as google-auth parses it."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def response(self) -> Response:
        body = {"error": self.error, "error_description": self.description}
        return Response(json.dumps(body), status=self.status, content_type="application/json")


def error_info(reason: str, domain: str, **metadata: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": domain,
    }
    if metadata:
        info["metadata"] = metadata
    return info


def bad_request(message: str, reason: str = "invalid") -> GoogleApiError:
    return GoogleApiError(400, message, reason)


def int_param(value: str | None, name: str, default: int) -> int:
    """An integer query parameter; 400 ``invalidParameter`` when it is not one."""
    if value in (None, ""):
        return default
    try:
        return int(str(value))
    except ValueError as exc:
        raise bad_request(
            f"Invalid value '{value}'. Values must match the integer format.", "invalidParameter"
        ) from exc


def not_found(message: str = "Not Found") -> GoogleApiError:
    return GoogleApiError(404, message, "notFound")


def forbidden(message: str = "Not Authorized to access this resource/api") -> GoogleApiError:
    return GoogleApiError(403, message, "forbidden")


def unauthenticated() -> GoogleApiError:
    return GoogleApiError(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
        "cookie or other valid authentication credential. "
        "See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "authError",
        location="Authorization",
        headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
    )


def insufficient_scopes() -> GoogleApiError:
    return GoogleApiError(
        403,
        "Request had insufficient authentication scopes.",
        "insufficientPermissions",
        details=[error_info("ACCESS_TOKEN_SCOPE_INSUFFICIENT", "googleapis.com")],
    )


def rate_limited(status: int, reason: str, retry_after: int | None = None) -> GoogleApiError:
    """403 ``rateLimitExceeded`` / ``userRateLimitExceeded`` or 429, as Google reports them."""
    messages = {
        "rateLimitExceeded": "Rate Limit Exceeded",
        "userRateLimitExceeded": "User Rate Limit Exceeded",
        "quotaExceeded": "Quota exceeded",
    }
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    status_name = "RESOURCE_EXHAUSTED" if status == 429 else "PERMISSION_DENIED"
    return GoogleApiError(
        status,
        messages.get(reason, "Rate Limit Exceeded"),
        reason,
        domain="usageLimits",
        status=status_name,
        headers=headers,
    )


def error_body_for_status(status: int, retry_after: int | None) -> tuple[bytes, str]:
    """The body the control middleware sends with an injected status fault."""
    if status in (403, 429):
        err = rate_limited(status, "rateLimitExceeded", retry_after)
    elif status == 503:
        err = GoogleApiError(503, "The service is currently unavailable.", "backendError")
    elif status >= 500:
        err = GoogleApiError(status, "Backend Error", "backendError")
    elif status == 401:
        err = unauthenticated()
    else:
        err = GoogleApiError(status, "Injected error", "injected")
    return json.dumps(err.body()).encode(), "application/json; charset=UTF-8"
