"""The batch endpoints (``/batch/calendar/v3``, ``/batch`` …): ``multipart/mixed`` in, each
part an HTTP request, dispatched through the whole app (so every inner call is counted and can
be faulted, as each counts against Google's quota), and ``multipart/mixed`` out."""

from __future__ import annotations

import secrets
from email.message import Message
from email.parser import Parser
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, request
from werkzeug.test import EnvironBuilder

from simulators.google.errors import GoogleApiError, bad_request
from simulators.platform.control import SimulatedDrop

bp = Blueprint("google_batch", __name__)

MAX_PARTS = 1000


@bp.post("/batch")
@bp.post("/batch/<path:api>")
def batch(api: str = "") -> Response:
    content_type = request.headers.get("Content-Type", "")
    if not content_type.startswith("multipart/mixed"):
        raise bad_request("Batch requests must be multipart/mixed.")
    message = Parser().parsestr(
        f"Content-Type: {content_type}\r\n\r\n" + request.get_data(as_text=True)
    )
    parts = message.get_payload() if message.is_multipart() else None
    if not isinstance(parts, list) or not parts:
        raise bad_request("Invalid multipart request with 0 mime parts.")
    if len(parts) > MAX_PARTS:
        raise GoogleApiError(400, f"A batch may hold at most {MAX_PARTS} calls.", "limitExceeded")
    boundary = "batch_" + secrets.token_hex(12)
    out = []
    for part in parts:
        status, headers, body = _dispatch(part)
        content_id = (part.get("Content-ID") or "").strip("<>")
        out.append(_response_part(boundary, content_id, status, headers, body))
    payload = "".join(out) + f"--{boundary}--\r\n"
    return Response(payload, content_type=f"multipart/mixed; boundary={boundary}")


def _dispatch(part: Message) -> tuple[int, list[tuple[str, str]], bytes]:
    text = part.get_payload()
    if not isinstance(text, str):
        return 400, [], b""
    request_line, _, rest = text.lstrip("\r\n").partition("\n")
    method, target, *_ = request_line.strip().split(" ")
    inner = Parser().parsestr(rest)
    body = inner.get_payload()
    target_parts = urlsplit(target)
    headers = [(k, v) for k, v in inner.items() if k.lower() not in ("host", "content-length")]
    builder = EnvironBuilder(
        path=target_parts.path,
        method=method,
        query_string=target_parts.query,
        headers=headers,
        data=body.encode() if isinstance(body, str) and body else None,
        base_url=request.host_url,
    )
    environ = builder.get_environ()
    captured: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], *_: Any) -> None:
        captured["status"] = int(status.split(" ", 1)[0])
        captured["headers"] = response_headers

    try:
        chunks = current_app.wsgi_app(environ, start_response)
        data = b"".join(chunks)
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    except SimulatedDrop:
        return 503, [("Content-Type", "application/json; charset=UTF-8")], b'{"error": {}}'
    return captured["status"], captured["headers"], data


def _response_part(
    boundary: str, content_id: str, status: int, headers: list[tuple[str, str]], body: bytes
) -> str:
    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in ("content-length", "connection")]
    inner = "\r\n".join(lines) + "\r\n\r\n" + body.decode("utf-8", "replace")
    return (
        f"--{boundary}\r\nContent-Type: application/http\r\n"
        f"Content-ID: <response-{content_id}>\r\n\r\n{inner}\r\n"
    )
