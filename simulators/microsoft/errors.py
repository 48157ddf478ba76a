"""Error bodies in the exact shapes Microsoft's services send.

Identity platform: `{"error", "error_description", "error_codes", "timestamp", "trace_id",
"correlation_id", "error_uri"}` with the AADSTS code leading the description.
Graph: `{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}`.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from flask import Response, request


def _now() -> datetime:
    return datetime.now(UTC)


def aadsts_description(code: int, message: str) -> str:
    trace, correlation = uuid.uuid4(), uuid.uuid4()
    stamp = _now().strftime("%Y-%m-%d %H:%M:%SZ")
    return (
        f"AADSTS{code}: {message} Trace ID: {trace} Correlation ID: {correlation} "
        f"Timestamp: {stamp}"
    )


def aad_error(error: str, code: int, message: str, status: int = 400) -> Response:
    body = {
        "error": error,
        "error_description": aadsts_description(code, message),
        "error_codes": [code],
        "timestamp": _now().strftime("%Y-%m-%d %H:%M:%SZ"),
        "trace_id": str(uuid.uuid4()),
        "correlation_id": str(uuid.uuid4()),
        "error_uri": f"{request.host_url.rstrip('/')}/error?code={code}",
    }
    return Response(json.dumps(body), status=status, mimetype="application/json")


def graph_error_body(code: str, message: str) -> dict:
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": _now().strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": str(uuid.uuid4()),
                "client-request-id": request.headers.get("client-request-id", str(uuid.uuid4())),
            },
        }
    }


class GraphError(Exception):
    """Raised anywhere in a Graph handler; rendered by the blueprint's error handler."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def response(self) -> Response:
        resp = Response(
            json.dumps(graph_error_body(self.code, self.message)),
            status=self.status,
            mimetype="application/json",
        )
        resp.headers.update(self.headers)
        return resp


def not_found(message: str = "The specified object was not found in the store.") -> GraphError:
    return GraphError(404, "ErrorItemNotFound", message)


def bad_request(message: str, code: str = "ErrorInvalidRequest") -> GraphError:
    return GraphError(400, code, message)


_STATUS_CODES = {
    400: ("BadRequest", "Bad request."),
    401: ("InvalidAuthenticationToken", "Access token is empty."),
    403: ("ErrorAccessDenied", "Access is denied. Check credentials and try again."),
    404: ("ResourceNotFound", "Resource could not be discovered."),
    409: ("ErrorIrresolvableConflict", "Conflict."),
    429: ("TooManyRequests", "Too many requests."),
    500: ("InternalServerError", "An internal server error occurred."),
    502: ("BadGateway", "Bad gateway."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable."),
    504: ("GatewayTimeout", "Gateway timeout."),
}


def sim_error_body(status: int, retry_after: int | None) -> tuple[bytes, str]:
    """Body for the platform's generic `status` fault (SIM_ERROR_BODY), shaped like Graph's."""
    code, message = _STATUS_CODES.get(status, ("UnknownError", "An error occurred."))
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": _now().strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": str(uuid.uuid4()),
                "client-request-id": str(uuid.uuid4()),
            },
        }
    }
    return json.dumps(body).encode(), "application/json"
