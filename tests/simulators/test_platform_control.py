"""The control API every simulator carries: faults of every kind, request counters, state."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import flask
import pytest
import requests

from simulators.platform.control import (
    SimulatedDrop,
    claim_fault,
    control_of,
    install_control,
)
from simulators.platform.server import SimServer

APP_KINDS = {"token_expired", "token_revoked", "delta_expired"}


def graph_like_app() -> flask.Flask:
    """A tiny app in the shape of a real simulator: routes, app-specific faults, a state."""
    app = flask.Flask(__name__)
    app.config["SIM_FAULT_KINDS"] = APP_KINDS
    state: dict[str, Any] = {"events": ["e1"]}

    def error_body(status: int, retry_after: int | None) -> tuple[bytes, str]:
        code = "TooManyRequests" if status == 429 else f"Http{status}"
        payload = {"error": {"code": code, "retryAfter": retry_after, "path": flask.request.path}}
        return json.dumps(payload).encode(), "application/json"

    app.config["SIM_ERROR_BODY"] = error_body

    @app.get("/v1.0/me/events/<event_id>")
    def event(event_id: str) -> Any:
        if claim_fault("token_expired") is not None:
            return {"error": {"code": "InvalidAuthenticationToken"}}, 401
        return {"id": event_id}

    @app.post("/v1.0/me/events")
    def create_event() -> Any:
        return {"id": "new"}, 201

    @app.get("/v1.0/me/calendarView/delta")
    def delta() -> Any:
        if claim_fault("delta_expired") is not None:
            return {"error": {"code": "syncStateNotFound"}}, 410
        return {"value": []}

    @app.post("/oauth2/token")
    def token() -> Any:
        rule = claim_fault("token_revoked")
        if rule is not None:
            return {"error": "invalid_grant", "error_description": rule.get("reason", "")}, 400
        return {"access_token": "t"}

    @app.post("/v1.0/$batch")
    def batch() -> Any:
        answers = []
        for part in flask.request.get_json()["requests"]:
            rule = claim_fault("status", method=part["method"], path=part["url"])
            answers.append({"id": part["id"], "status": rule["status"] if rule else 200})
        return {"responses": answers}

    @app.route("/_sim/state", methods=["GET", "POST"])
    def sim_state() -> Any:
        if flask.request.method == "POST":
            state.clear()
            state.update(flask.request.get_json())
        return dict(state)

    install_control(app, "graph-like")
    return app


@pytest.fixture
def server(serve: Any) -> SimServer:
    return serve(graph_like_app())


@pytest.fixture
def http(server: SimServer, sim_session: requests.Session) -> Any:
    """`http(method, path, **kw)` against the server, over https with the demo CA."""

    def call(method: str, path: str, **kwargs: Any) -> requests.Response:
        return sim_session.request(method, server.url + path, timeout=10, **kwargs)

    return call


def add_fault(http: Any, **rule: Any) -> dict[str, Any]:
    response = http("POST", "/_sim/faults", json=rule)
    assert response.status_code == 201, response.text
    return response.json()


def test_status_429_with_retry_after_and_the_apps_error_body(http: Any) -> None:
    add_fault(http, kind="status", status=429, retry_after=7, path=r"^/v1\.0/me/events/")
    throttled = http("GET", "/v1.0/me/events/a")
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "7"
    assert throttled.json() == {
        "error": {"code": "TooManyRequests", "retryAfter": 7, "path": "/v1.0/me/events/a"}
    }
    assert http("GET", "/v1.0/me/events/a").json() == {"id": "a"}  # count defaults to 1


def test_status_503_with_retry_after_and_500_without(http: Any) -> None:
    add_fault(http, kind="status", status=503, retry_after=2)
    unavailable = http("GET", "/v1.0/me/events/b")
    assert (unavailable.status_code, unavailable.headers["Retry-After"]) == (503, "2")
    add_fault(http, kind="status", status=500)
    failed = http("GET", "/v1.0/me/events/b")
    assert failed.status_code == 500
    assert "Retry-After" not in failed.headers
    assert failed.json()["error"]["code"] == "Http500"


def test_a_literal_body_replaces_the_apps_error_body(http: Any) -> None:
    add_fault(
        http, kind="status", status=502, body="<html>Bad gateway</html>", content_type="text/html"
    )
    response = http("GET", "/v1.0/me/events/c")
    assert (response.status_code, response.text) == (502, "<html>Bad gateway</html>")
    assert response.headers["Content-Type"].startswith("text/html")


def test_latency_delays_the_answer_and_other_faults_still_apply(http: Any) -> None:
    add_fault(http, kind="latency", latency_ms=300, path="events")
    add_fault(http, kind="status", status=503, path="events")
    started = time.monotonic()
    response = http("GET", "/v1.0/me/events/d")
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 503
    started = time.monotonic()
    assert http("GET", "/v1.0/me/events/d").status_code == 200
    assert time.monotonic() - started < 0.3


def test_drop_closes_the_connection_without_an_answer(http: Any) -> None:
    add_fault(http, kind="drop", path="events")
    with pytest.raises(requests.ConnectionError):
        http("GET", "/v1.0/me/events/e")
    assert http("GET", "/v1.0/me/events/e").status_code == 200


def test_count_faults_exactly_the_next_n_matching_requests(http: Any) -> None:
    add_fault(http, kind="status", status=429, retry_after=1, count=3, path="events")
    codes = [http("GET", f"/v1.0/me/events/{i}").status_code for i in range(5)]
    assert codes == [429, 429, 429, 200, 200]


def test_fraction_faults_a_deterministic_share_of_requests(server: SimServer) -> None:
    control = control_of(server.app)
    client = server.app.test_client()

    def pattern(seed: int) -> list[int]:
        control.faults.clear()
        control.faults.add({"kind": "status", "status": 503, "fraction": 0.5, "seed": seed})
        return [client.get("/v1.0/me/events/x").status_code for _ in range(200)]

    first = pattern(seed=11)
    assert 70 < first.count(503) < 130
    assert pattern(seed=11) == first
    control.faults.clear()
    control.faults.add({"kind": "status", "status": 503, "fraction": 1.0, "count": 4})
    assert [client.get("/v1.0/me/events/x").status_code for _ in range(6)] == [503] * 4 + [200] * 2
    control.faults.add({"kind": "status", "status": 503, "fraction": 0})
    assert all(client.get("/v1.0/me/events/x").status_code == 200 for _ in range(20))


def test_method_and_path_pattern_select_the_requests(http: Any) -> None:
    add_fault(http, kind="status", status=500, method="post", path=r"/events$", count=5)
    assert http("GET", "/v1.0/me/events/f").status_code == 200
    assert http("GET", "/v1.0/me/calendarView/delta").status_code == 200
    assert http("POST", "/v1.0/me/events").status_code == 500


def test_query_pattern_selects_requests_by_their_query_string(http: Any) -> None:
    add_fault(http, kind="delta_expired", query=r"\$deltatoken=", count=5)
    assert http("GET", "/v1.0/me/calendarView/delta?startDateTime=x").status_code == 200
    assert http("GET", "/v1.0/me/calendarView/delta?%24deltatoken=abc").status_code == 410
    add_fault(http, kind="status", status=429, query="top=1")
    parts = [
        {"id": "1", "method": "GET", "url": "/me/events?$top=2"},
        {"id": "2", "method": "GET", "url": "/me/events?$top=1"},
    ]
    response = http("POST", "/v1.0/$batch", json={"requests": parts})
    assert [p["status"] for p in response.json()["responses"]] == [200, 429]


def test_app_specific_kinds_are_claimed_by_the_app(http: Any) -> None:
    add_fault(http, kind="token_expired", path="events")
    add_fault(http, kind="token_revoked", reason="AADSTS50173: the grant was revoked")
    add_fault(http, kind="delta_expired", count=2)
    assert http("GET", "/v1.0/me/events/g").status_code == 401
    assert http("GET", "/v1.0/me/events/g").status_code == 200
    revoked = http("POST", "/oauth2/token")
    assert revoked.json() == {
        "error": "invalid_grant",
        "error_description": "AADSTS50173: the grant was revoked",
    }
    assert http("POST", "/oauth2/token").status_code == 200
    codes = [http("GET", "/v1.0/me/calendarView/delta").status_code for _ in range(3)]
    assert codes == [410, 410, 200]


def test_claim_fault_can_check_one_part_of_a_batch(http: Any) -> None:
    add_fault(http, kind="status", status=429, path="/me/events/2$")
    parts = [{"id": str(i), "method": "GET", "url": f"/me/events/{i}"} for i in range(1, 4)]
    response = http("POST", "/v1.0/$batch", json={"requests": parts})
    assert [p["status"] for p in response.json()["responses"]] == [200, 429, 200]


def test_bad_rules_are_refused_with_the_reason(http: Any) -> None:
    cases = [
        ({"kind": "token_expird"}, "unknown fault kind"),
        ({"kind": "status"}, "integer 'status'"),
        ({"kind": "latency"}, "latency_ms"),
        ({"kind": "drop", "path": "("}, "bad path or query regex"),
        ({"kind": "drop", "query": "[a"}, "bad path or query regex"),
        ({"kind": "drop", "count": 0}, "positive integer"),
        ({"kind": "drop", "fraction": 2}, "from 0 to 1"),
        (["not", "an", "object"], "JSON object"),
    ]
    for rule, reason in cases:
        response = http("POST", "/_sim/faults", json=rule)
        assert response.status_code == 400
        assert reason in response.json()["error"]
    assert http("GET", "/_sim/faults").json()["faults"] == []


def test_faults_can_be_listed_removed_one_by_one_and_cleared(http: Any) -> None:
    first = add_fault(http, kind="status", status=500, count=2)
    second = add_fault(http, kind="drop", path="never-matches")
    listed = http("GET", "/_sim/faults").json()
    assert listed["name"] == "graph-like"
    assert [(f["id"], f["remaining"]) for f in listed["faults"]] == [
        (first["id"], 2),
        (second["id"], 1),
    ]
    http("GET", "/v1.0/me/events/h")
    assert http("GET", "/_sim/faults").json()["faults"][0]["hits"] == 1
    assert http("DELETE", f"/_sim/faults/{first['id']}").status_code == 204
    assert http("DELETE", f"/_sim/faults/{first['id']}").status_code == 404
    assert http("DELETE", "/_sim/faults").status_code == 204
    assert http("GET", "/_sim/faults").json()["faults"] == []


def test_stats_count_requests_per_route_including_faulted_ones(http: Any) -> None:
    add_fault(http, kind="status", status=429, path="events/2")
    for i in range(3):
        http("GET", f"/v1.0/me/events/{i}")
    http("POST", "/v1.0/me/events")
    http("GET", "/no/such/path")
    http("GET", "/_sim/faults")  # control calls are not counted
    stats = http("GET", "/_sim/stats").json()
    assert stats == {
        "name": "graph-like",
        "total": 5,
        "endpoints": {
            "GET /no/such/path": 1,
            "GET /v1.0/me/events/<event_id>": 3,
            "POST /v1.0/me/events": 1,
        },
    }
    assert http("DELETE", "/_sim/stats").status_code == 204
    assert http("GET", "/_sim/stats").json()["total"] == 0


def test_stats_are_exact_under_concurrent_requests(http: Any) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda i: http("GET", f"/v1.0/me/events/{i}").status_code, range(40)))
    assert codes == [200] * 40
    assert http("GET", "/_sim/stats").json()["endpoints"] == {"GET /v1.0/me/events/<event_id>": 40}


def test_state_is_the_apps_own_endpoint(http: Any) -> None:
    assert http("GET", "/_sim/state").json() == {"events": ["e1"]}
    assert http("POST", "/_sim/state", json={"events": []}).json() == {"events": []}
    assert http("GET", "/_sim/state").json() == {"events": []}
    assert http("GET", "/_sim/stats").json()["endpoints"]["GET /_sim/state"] == 2


def test_with_the_flask_test_client_a_drop_raises(server: SimServer) -> None:
    control_of(server.app).faults.add({"kind": "drop"})
    with pytest.raises(SimulatedDrop):
        server.app.test_client().get("/v1.0/me/events/i")
    assert server.app.test_client().get("/v1.0/me/events/i").status_code == 200


def test_install_control_is_idempotent_and_claim_needs_a_request() -> None:
    app = graph_like_app()
    assert install_control(app, "again") is control_of(app)
    assert control_of(app).name == "graph-like"
    assert claim_fault("delta_expired") is None
    with pytest.raises(LookupError):
        control_of(flask.Flask("bare"))


def test_default_error_body_is_json() -> None:
    app = flask.Flask("plain")
    app.add_url_rule("/", "root", lambda: "ok")
    control = install_control(app, "plain")
    control.faults.add({"kind": "status", "status": 503, "retry_after": 5})
    response = app.test_client().get("/")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json() == {"error": {"code": 503, "message": "Simulated fault"}}


def test_fault_kinds_declared_after_install_are_accepted() -> None:
    app = flask.Flask("late")
    control = install_control(app, "late")
    with pytest.raises(ValueError, match="unknown fault kind"):
        control.faults.add({"kind": "server_busy"})
    app.config["SIM_FAULT_KINDS"] = {"server_busy"}
    assert control.faults.add({"kind": "server_busy"})["kind"] == "server_busy"


def test_network_latency_delays_each_request_once_and_is_set_through_the_control_api(
    http: Any, server: SimServer, sim_session: requests.Session
) -> None:
    """Mistakes caught: a latency that is not applied, one read once at start-up (the
    control API must change it), a negative or non-numeric value accepted."""
    assert sim_session.get(f"{server.url}/_sim/latency").json()["latency_ms"] == 0
    put = sim_session.put(f"{server.url}/_sim/latency", json={"latency_ms": 250})
    assert put.status_code == 200 and put.json()["latency_ms"] == 250
    started = time.monotonic()
    assert http("GET", "/v1.0/me/events/f").status_code == 200
    assert time.monotonic() - started >= 0.25
    for bad in ({"latency_ms": -1}, {"latency_ms": "50"}, {}):
        assert sim_session.put(f"{server.url}/_sim/latency", json=bad).status_code == 400
    assert sim_session.put(f"{server.url}/_sim/latency", json={"latency_ms": 0}).status_code == 200
    started = time.monotonic()
    assert http("GET", "/v1.0/me/events/f").status_code == 200
    assert time.monotonic() - started < 0.25
