"""One log line per request, tagged with a request id that is also returned to the client."""

from __future__ import annotations

import logging
import re
import secrets
import time

from flask import Flask, Response, g, request

log = logging.getLogger("synchronizer.request")

# A request id from a trusted proxy is reused only if it looks like one (no log injection).
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def init_request_log(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)


def _start() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _SAFE_ID.match(incoming) else secrets.token_hex(8)
    g.request_started = time.perf_counter()


def _finish(response: Response) -> Response:
    request_id = g.get("request_id", "-")
    response.headers["X-Request-ID"] = request_id
    elapsed_ms = (time.perf_counter() - g.get("request_started", time.perf_counter())) * 1000
    log.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "request_id": request_id,
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round(elapsed_ms, 1),
            "remote_addr": request.remote_addr,
        },
    )
    return response
