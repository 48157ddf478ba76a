"""Graph JSON batching: POST /v1.0/$batch with at most 20 requests, `dependsOn` ordering and 424
for a failed dependency. Each part is dispatched through the whole WSGI stack (control middleware
included), so each is counted, faulted and throttled on its own, as Graph does."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, current_app, request
from werkzeug.test import EnvironBuilder, run_wsgi_app

from simulators.microsoft.errors import GraphError, graph_error_body
from simulators.microsoft.graph_common import bp, json_body, json_response

MAX_REQUESTS = 20
_PASSED_HEADERS = ("Authorization", "Prefer", "client-request-id")


def _validate(parts: Any) -> list[dict]:
    if not isinstance(parts, list) or not parts:
        raise GraphError(400, "BadRequest", "Invalid batch payload format.")
    if len(parts) > MAX_REQUESTS:
        raise GraphError(
            400, "BadRequest", f"The number of batch requests exceeds the limit of {MAX_REQUESTS}."
        )
    seen: set[str] = set()
    for part in parts:
        if not isinstance(part, dict) or not all(part.get(k) for k in ("id", "method", "url")):
            raise GraphError(
                400, "BadRequest", "Invalid batch payload format: id, method and url are required."
            )
        key = str(part["id"]).lower()
        if key in seen:
            raise GraphError(
                400, "BadRequest", f"Batch request ids must be unique: '{part['id']}'."
            )
        seen.add(key)
        if "body" in part and not any(
            h.lower() == "content-type" for h in (part.get("headers") or {})
        ):
            raise GraphError(
                400,
                "BadRequest",
                f"Content-Type header is required for request '{part['id']}' with a body.",
            )
        for dep in _dependencies(part):
            if dep.lower() not in seen - {key}:
                raise GraphError(
                    400,
                    "BadRequest",
                    f"Request '{part['id']}' depends on '{dep}', which does not precede it.",
                )
    return parts


def _dependencies(part: dict) -> list[str]:
    deps = part.get("dependsOn") or []
    return [str(d) for d in (deps if isinstance(deps, list) else [deps])]


def _dispatch(part: dict) -> dict:
    url = str(part["url"])
    path, _, query = url.lstrip("/").partition("?")
    if not path.startswith("v1.0/"):
        path = f"v1.0/{path}"
    headers = {h: request.headers[h] for h in _PASSED_HEADERS if h in request.headers}
    headers.update({str(k): str(v) for k, v in (part.get("headers") or {}).items()})
    data = json.dumps(part["body"]).encode() if "body" in part else None
    builder = EnvironBuilder(
        path=f"/{path}",
        query_string=query,
        method=str(part["method"]).upper(),
        headers=list(headers.items()),
        data=data,
        base_url=request.host_url,
    )
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    app_iter, status, response_headers = run_wsgi_app(current_app.wsgi_app, environ)
    try:
        raw = b"".join(app_iter)
    finally:
        if hasattr(app_iter, "close"):
            app_iter.close()
    answer: dict[str, Any] = {
        "id": part["id"],
        "status": int(status.split()[0]),
        "headers": {
            k: v for k, v in response_headers.items() if k.lower() not in ("content-length",)
        },
    }
    if raw:
        try:
            answer["body"] = json.loads(raw)
        except ValueError:
            answer["body"] = raw.decode("utf-8", "replace")
    return answer


@bp.post("/$batch")
def batch() -> Response:
    parts = _validate(json_body().get("requests"))
    results: dict[str, dict] = {}
    for part in parts:
        failed = [d for d in _dependencies(part) if results[d.lower()]["status"] >= 400]
        if failed:
            body = graph_error_body(
                "FailedDependency", f"Dependent request(s) {', '.join(failed)} failed."
            )
            results[str(part["id"]).lower()] = {
                "id": part["id"],
                "status": 424,
                "headers": {"Content-Type": "application/json"},
                "body": body,
            }
            continue
        results[str(part["id"]).lower()] = _dispatch(part)
    return json_response({"responses": list(results.values())})
