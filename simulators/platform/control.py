"""The control API every simulator has: fault injection (`/_sim/faults`) and request counters
(`/_sim/stats`). `/_sim/state` belongs to each app.

The middleware wraps the Flask app's `wsgi_app`, so it also sees requests made with Flask's
test client. Generic faults (latency, status, drop) are applied here before the app runs;
app-specific ones are claimed by the app with `claim_fault(kind)`.

A network latency (`SIM_LATENCY_MS` in the app's config, or `PUT /_sim/latency`) delays every
request that arrives over the network once, as a round trip would; the parts of a batch are
dispatched inside the server (`INNER_REQUEST` in their environ) and are not delayed again.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import flask
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RoutingException
from werkzeug.wrappers import Request, Response

GENERIC_KINDS = frozenset({"latency", "status", "drop"})
EXTENSION_KEY = "sim_control"
INNER_REQUEST = "sim.inner_request"  # environ key of a request dispatched inside the server
LATENCY_KEY = "SIM_LATENCY_MS"
CONTROL_PREFIX = "/_sim/"

WSGIEnviron = dict[str, Any]
StartResponse = Callable[..., Any]
ErrorBody = Callable[[int, int | None], tuple[bytes, str]]


class SimulatedDrop(ConnectionAbortedError):
    """Raised after the client's connection was closed on purpose (a `drop` fault).
    werkzeug's server treats it as a client hang-up; with Flask's test client it surfaces
    in the test, which is the closest thing to a dropped connection there."""


class FaultRuleError(ValueError):
    pass


@dataclass
class FaultRule:
    id: int
    kind: str
    spec: dict[str, Any]
    path: re.Pattern[str] | None
    query: re.Pattern[str] | None
    method: str | None
    remaining: int | None  # None: no limit (a fraction rule without a count)
    fraction: float | None
    rng: random.Random
    hits: int = 0

    def matches(self, kind: str, method: str, path: str, query: str) -> bool:
        if kind != self.kind or (self.method and self.method != method.upper()):
            return False
        if self.query is not None and self.query.search(query) is None:
            return False
        return self.path is None or self.path.search(path) is not None

    def as_dict(self) -> dict[str, Any]:
        return {**self.spec, "id": self.id, "remaining": self.remaining, "hits": self.hits}


def _parse_rule(spec: Any, rule_id: int, known_kinds: Iterable[str]) -> FaultRule:
    if not isinstance(spec, dict):
        raise FaultRuleError("a fault rule is a JSON object")
    kind = spec.get("kind")
    known = set(known_kinds)
    if kind not in known:
        raise FaultRuleError(f"unknown fault kind {kind!r}; this simulator knows {sorted(known)}")
    try:
        path = re.compile(spec["path"]) if spec.get("path") else None
        query = re.compile(spec["query"]) if spec.get("query") else None
    except re.error as exc:
        raise FaultRuleError(f"bad path or query regex: {exc}") from exc
    fraction = spec.get("fraction")
    if fraction is not None and not (isinstance(fraction, int | float) and 0 <= fraction <= 1):
        raise FaultRuleError("fraction must be a number from 0 to 1")
    count = spec.get("count", None if fraction is not None else 1)
    if count is not None and (not isinstance(count, int) or count < 1):
        raise FaultRuleError("count must be a positive integer")
    if kind == "status" and not isinstance(spec.get("status"), int):
        raise FaultRuleError("a status fault needs an integer 'status'")
    if kind == "latency" and not isinstance(spec.get("latency_ms"), int | float):
        raise FaultRuleError("a latency fault needs 'latency_ms'")
    method = spec.get("method")
    return FaultRule(
        id=rule_id,
        kind=kind,
        spec=dict(spec),
        path=path,
        query=query,
        method=method.upper() if isinstance(method, str) else None,
        remaining=count,
        fraction=float(fraction) if fraction is not None else None,
        rng=random.Random(spec.get("seed", rule_id)),  # deterministic per rule
    )


@dataclass
class FaultBook:
    """Active fault rules; thread-safe."""

    known_kinds: Callable[[], Iterable[str]]  # read at each add: the app's config may change
    _rules: list[FaultRule] = field(default_factory=list)
    _next_id: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, spec: Any) -> dict[str, Any]:
        with self._lock:
            rule = _parse_rule(spec, self._next_id, self.known_kinds())
            self._next_id += 1
            self._rules.append(rule)
            return rule.as_dict()

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.as_dict() for r in self._rules]

    def claim(
        self, kinds: Iterable[str], method: str, path: str, query: str = ""
    ) -> dict[str, Any] | None:
        """The first rule of one of `kinds` matching this request, consuming one count."""
        wanted = tuple(kinds)
        with self._lock:
            for rule in self._rules:
                if not any(rule.matches(kind, method, path, query) for kind in wanted):
                    continue
                if rule.fraction is not None and rule.rng.random() >= rule.fraction:
                    continue
                rule.hits += 1
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                return rule.as_dict()
        return None


@dataclass
class RequestStats:
    """Requests served per `METHOD rule`; thread-safe."""

    _endpoints: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, key: str) -> None:
        with self._lock:
            self._endpoints[key] += 1

    def reset(self) -> None:
        with self._lock:
            self._endpoints.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": sum(self._endpoints.values()),
                "endpoints": dict(sorted(self._endpoints.items())),
            }


class ControlMiddleware:
    """Wraps `app.wsgi_app`; use `install_control(app, name)` rather than the constructor."""

    def __init__(self, app: flask.Flask, name: str) -> None:
        self.app = app
        self.name = name
        self.wrapped = app.wsgi_app
        self.faults = FaultBook(known_kinds=self._known_kinds)
        self.stats = RequestStats()
        app.wsgi_app = self  # type: ignore[method-assign]
        app.extensions[EXTENSION_KEY] = self

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        query = unquote(environ.get("QUERY_STRING", ""))
        if path.startswith(CONTROL_PREFIX) and not path.startswith("/_sim/state"):
            return self._control(Request(environ))(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        self.stats.count(f"{method} {self._endpoint(environ)}")
        network_ms = float(self.app.config.get(LATENCY_KEY) or 0)
        if network_ms > 0 and not environ.get(INNER_REQUEST):
            time.sleep(network_ms / 1000)
        latency = self.faults.claim(("latency",), method, path, query)
        if latency is not None:
            time.sleep(float(latency["latency_ms"]) / 1000)
        rule = self.faults.claim(("status", "drop"), method, path, query)
        if rule is not None and rule["kind"] == "drop":
            _drop(environ)
        if rule is not None:
            return self._status_response(rule, environ)(environ, start_response)
        return self.wrapped(environ, start_response)

    def _latency(self, request: Request) -> Response:
        """`GET`/`PUT /_sim/latency` `{"latency_ms": 50}`: the network latency of every request."""
        if request.method == "PUT":
            payload = request.get_json(force=True, silent=True)
            value = payload.get("latency_ms") if isinstance(payload, dict) else None
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                return _json({"error": "latency_ms must be a number >= 0"}, 400)
            self.app.config[LATENCY_KEY] = value
        elif request.method != "GET":
            return _json({"error": f"no control endpoint {request.method} {request.path}"}, 405)
        return _json({"name": self.name, "latency_ms": self.app.config.get(LATENCY_KEY) or 0})

    def _known_kinds(self) -> frozenset[str]:
        return GENERIC_KINDS | frozenset(self.app.config.get("SIM_FAULT_KINDS", ()))

    def _endpoint(self, environ: WSGIEnviron) -> str:
        try:
            rule, _ = self.app.url_map.bind_to_environ(environ).match(return_rule=True)
            return rule.rule
        except (HTTPException, RoutingException):
            return environ.get("PATH_INFO", "")

    def _status_response(self, rule: dict[str, Any], environ: WSGIEnviron) -> Response:
        status = int(rule["status"])
        retry_after = rule.get("retry_after")
        retry_after = int(retry_after) if retry_after is not None else None
        if "body" in rule:
            body = str(rule["body"]).encode()
            content_type = str(rule.get("content_type", "text/plain; charset=utf-8"))
        else:
            body, content_type = self._error_body(status, retry_after, environ)
        response = Response(body, status=status, content_type=content_type)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    def _error_body(
        self, status: int, retry_after: int | None, environ: WSGIEnviron
    ) -> tuple[bytes, str]:
        make_body: ErrorBody | None = self.app.config.get("SIM_ERROR_BODY")
        if make_body is None:
            payload = {"error": {"code": status, "message": "Simulated fault"}}
            return json.dumps(payload).encode(), "application/json"
        with self.app.request_context(environ):
            return make_body(status, retry_after)

    def _control(self, request: Request) -> Response:
        if request.path.rstrip("/") == "/_sim/stats":
            if request.method == "DELETE":
                self.stats.reset()
                return Response(status=204)
            return _json({"name": self.name, **self.stats.snapshot()})
        if request.path.rstrip("/") == "/_sim/latency":
            return self._latency(request)
        if request.path.rstrip("/") == "/_sim/faults":
            if request.method == "POST":
                try:
                    return _json(self.faults.add(request.get_json(force=True, silent=True)), 201)
                except FaultRuleError as exc:
                    return _json({"error": str(exc)}, 400)
            if request.method == "DELETE":
                self.faults.clear()
                return Response(status=204)
            return _json({"name": self.name, "faults": self.faults.active()})
        match = re.fullmatch(r"/_sim/faults/(\d+)", request.path)
        if match and request.method == "DELETE":
            found = self.faults.remove(int(match.group(1)))
            return Response(status=204 if found else 404)
        return _json({"error": f"no control endpoint {request.method} {request.path}"}, 404)


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json")


def _drop(environ: WSGIEnviron) -> None:
    sock = environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    raise SimulatedDrop("connection dropped by a simulated fault")


def install_control(app: flask.Flask, name: str) -> ControlMiddleware:
    """Wrap `app` with the control API once; later calls return the same middleware."""
    existing = app.extensions.get(EXTENSION_KEY)
    if isinstance(existing, ControlMiddleware):
        return existing
    return ControlMiddleware(app, name)


def control_of(app: flask.Flask) -> ControlMiddleware:
    """The control middleware of `app` (for fixtures that add faults or read stats in-process)."""
    existing = app.extensions.get(EXTENSION_KEY)
    if not isinstance(existing, ControlMiddleware):
        raise LookupError("this app has no control middleware; call install_control first")
    return existing


def claim_fault(
    *kinds: str, method: str | None = None, path: str | None = None
) -> dict[str, Any] | None:
    """Inside a request: the matching active rule of one of `kinds` (consuming one count),
    or None. `method`/`path` default to the current request's; pass them to check an inner
    request (e.g. one part of a batch; a `?query` in `path` is matched as the query)."""
    if not flask.has_request_context():
        return None
    control = flask.current_app.extensions.get(EXTENSION_KEY)
    if not isinstance(control, ControlMiddleware):
        return None
    if path is None:
        path, query = flask.request.path, unquote(flask.request.query_string.decode("latin-1"))
    else:
        path, _, query = path.partition("?")
        query = unquote(query)
    return control.faults.claim(kinds, method or flask.request.method, path, query)
