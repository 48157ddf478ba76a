"""SuperOffice's documented REST error body: `{"Error": true, "ErrorType", "ErrorMessage", "ErrorSource"}`."""

from __future__ import annotations

import json

from flask import Response

ERROR_SOURCE = "SuperOffice.Services.Implementation"

_TYPES = {
    400: "SoArgumentException",
    401: "SoAuthenticationException",
    403: "SoAccessDeniedException",
    404: "SoNotFoundException",
    412: "SoPreconditionFailedException",
    421: "SoMisdirectedRequestException",
    429: "SoTooManyRequestsException",
    500: "SoServerException",
    503: "SoServiceUnavailableException",
}


def error_body(status: int, message: str) -> dict[str, object]:
    return {
        "Error": True,
        "ErrorType": _TYPES.get(status, "SoException"),
        "ErrorMessage": message,
        "ErrorSource": ERROR_SOURCE,
    }


class ApiError(Exception):
    """Raised anywhere in a request; rendered as the documented error JSON."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def render(error: ApiError) -> Response:
    response = Response(
        json.dumps(error_body(error.status, error.message)),
        status=error.status,
        mimetype="application/json",
    )
    response.headers.update(error.headers)
    return response


def sim_error_body(status: int, retry_after: int | None) -> tuple[bytes, str]:
    """The vendor-shaped body the platform's status faults use (app.config["SIM_ERROR_BODY"])."""
    message = "Simulated fault" + (f"; retry after {retry_after} s" if retry_after else "")
    return json.dumps(error_body(status, message)).encode(), "application/json"
