"""Graph JSON batching: POST /v1.0/$batch with at most 20 requests.

As Outlook runs them: parts without `dependsOn` run in parallel, up to four at a time; a part
runs once every part it depends on has finished, and gets 424 if one of them failed. Each part
is dispatched through the whole WSGI stack (control middleware included), so each is counted,
faulted and throttled on its own: four parallel parts hold four of the mailbox's four request
slots, and the parts of a second batch running at the same time get 429 with `Retry-After`.

A part's `url` is relative to the version (`/me/events`, not `/v1.0/me/events`); it carries its
own headers: the batch's `Authorization` applies to every part, nothing else of the outer
request (notably not `Prefer`) does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import urlsplit

from flask import Response, current_app, request
from werkzeug.test import EnvironBuilder, run_wsgi_app

from simulators.microsoft.errors import GraphError, graph_error_body
from simulators.microsoft.graph_common import V1, bp, json_body, json_response
from simulators.platform.control import INNER_REQUEST

MAX_REQUESTS = 20
PARALLEL_PARTS = 4  # Outlook runs up to four requests of a batch at a time
_INHERITED_HEADERS = ("Authorization",)


def _invalid(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def _validate(parts: Any) -> list[dict]:
    if not isinstance(parts, list) or not parts:
        raise _invalid("Invalid batch payload format.")
    if len(parts) > MAX_REQUESTS:
        raise _invalid(f"The number of batch requests exceeds the limit of {MAX_REQUESTS}.")
    seen: set[str] = set()
    for part in parts:
        if not isinstance(part, dict) or not all(part.get(k) for k in ("id", "method", "url")):
            raise _invalid("Invalid batch payload format: id, method and url are required.")
        key = str(part["id"]).lower()
        if key in seen:
            raise _invalid(f"Batch request ids must be unique: '{part['id']}'.")
        seen.add(key)
        if urlsplit(str(part["url"])).scheme:
            raise _invalid(
                f"Invalid request URL '{part['url']}' in request '{part['id']}': the url must be "
                "relative to the version, for example '/me/events'."
            )
        if "body" in part and not any(
            h.lower() == "content-type" for h in (part.get("headers") or {})
        ):
            raise _invalid(
                f"Content-Type header is required for request '{part['id']}' with a body."
            )
        for dep in _dependencies(part):
            if dep.lower() not in seen - {key}:
                raise _invalid(
                    f"Request '{part['id']}' depends on '{dep}', which does not precede it."
                )
    return parts


def _dependencies(part: dict) -> list[str]:
    deps = part.get("dependsOn") or []
    return [str(d) for d in (deps if isinstance(deps, list) else [deps])]


def _environ(part: dict, inherited: dict[str, str], host_url: str) -> dict:
    path, _, query = str(part["url"]).partition("?")
    headers = dict(inherited)
    headers.update({str(k): str(v) for k, v in (part.get("headers") or {}).items()})
    data = json.dumps(part["body"]).encode() if "body" in part else None
    builder = EnvironBuilder(
        path=f"{V1}/{path.lstrip('/')}",
        query_string=query,
        method=str(part["method"]).upper(),
        headers=list(headers.items()),
        data=data,
        base_url=host_url,
    )
    try:
        environ = builder.get_environ()
        environ[INNER_REQUEST] = True  # no second network round trip for a part
        return environ
    finally:
        builder.close()


def _run(app: Callable, part: dict, environ: dict) -> dict:
    app_iter, status, response_headers = run_wsgi_app(app, environ)
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


def _failed_dependency(part: dict, failed: list[str]) -> dict:
    return {
        "id": part["id"],
        "status": 424,
        "headers": {"Content-Type": "application/json"},
        "body": graph_error_body(
            "FailedDependency", f"Dependent request(s) {', '.join(failed)} failed."
        ),
    }


@bp.post("/$batch")
def batch() -> Response:
    parts = _validate(json_body().get("requests"))
    wsgi_app = current_app.wsgi_app
    inherited = {h: request.headers[h] for h in _INHERITED_HEADERS if h in request.headers}
    environs = {str(p["id"]).lower(): _environ(p, inherited, request.host_url) for p in parts}
    pending = {str(p["id"]).lower(): p for p in parts}
    results: dict[str, dict] = {}
    running: dict[Future, str] = {}
    with ThreadPoolExecutor(max_workers=PARALLEL_PARTS, thread_name_prefix="graph-batch") as pool:
        while pending or running:
            for key, part in list(pending.items()):
                deps = [d.lower() for d in _dependencies(part)]
                if len(running) >= PARALLEL_PARTS or not all(d in results for d in deps):
                    continue
                del pending[key]
                failed = [d for d in _dependencies(part) if results[d.lower()]["status"] >= 400]
                if failed:
                    results[key] = _failed_dependency(part, failed)
                    continue
                running[pool.submit(_run, wsgi_app, part, environs[key])] = key
            if running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    results[running.pop(future)] = future.result()
    # Graph answers in any order; clients must match responses to requests by id.
    return json_response({"responses": list(reversed(list(results.values())))})
