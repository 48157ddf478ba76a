"""Every generic fault kind on every simulator it applies to, seen through the client our product
uses there (requests for SuperOffice and Graph, exchangelib for EWS, google-api-python-client
for the Google latency and drop faults not tested elsewhere), with `/_sim/stats`
asserted after each run. App-specific kinds (expired/revoked tokens, expired delta tokens,
ErrorServerBusy) have their own tests next to each simulator; the table in the report of
issues 3 and 4 names them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from exchangelib import BASIC
from exchangelib.errors import ErrorServerBusy, ErrorTimeoutExpired
from exchangelib.protocol import FailFast

from simulators.platform.control import control_of
from tests.fixtures.superoffice import ADMIN, ONSITE


@dataclass
class Target:
    """One simulator as a test drives it: where its control API is, which endpoint the rules
    aim at, one real client call, and the key that call has in `/_sim/stats`."""

    control: str
    session: requests.Session
    path: str  # regex for the rules
    call: Callable[[], Any]
    stats_key: str


@pytest.fixture
def superoffice(so_app: Any, serve: Any, sim_session: requests.Session) -> Target:
    url = serve(so_app).url

    def call() -> requests.Response:
        return sim_session.get(f"{url}{ONSITE}/User/currentPrincipal", headers=ADMIN, timeout=10)

    return Target(
        url,
        sim_session,
        "/User/currentPrincipal$",
        call,
        "GET /<tenant_id>/api/v1/User/currentPrincipal",
    )


@pytest.fixture
def graph_target(graph: Any, ms_server: Any, ms_session: requests.Session) -> Target:
    def call() -> requests.Response:
        return graph.get("/users")

    return Target(ms_server.url, ms_session, "^/v1.0/users$", call, "GET /v1.0/users")


@pytest.fixture
def ews_target(ews_url: str, ews_account: Any) -> Target:
    # Basic: one HTTP request per call (NTLM would add its two handshake requests).
    account = ews_account("alice", retry_policy=FailFast(), auth_type=BASIC)
    _ = account.calendar  # the folder lookups happen once, before any rule is in place
    session = requests.Session()
    session.trust_env = False

    def call() -> None:
        account.calendar.refresh()  # one GetFolder

    control = ews_url.removesuffix("/EWS/Exchange.asmx")
    return Target(control, session, "/EWS/Exchange.asmx$", call, "POST /EWS/Exchange.asmx")


def add_fault(target: Target, **rule: Any) -> None:
    answer = target.session.post(
        f"{target.control}/_sim/faults", json={"path": target.path, **rule}, timeout=5
    )
    assert answer.status_code == 201, answer.text


def calls_counted(target: Target) -> int:
    stats = target.session.get(f"{target.control}/_sim/stats", timeout=5).json()
    return int(stats["endpoints"].get(target.stats_key, 0))


def reset_stats(target: Target) -> None:
    assert target.session.delete(f"{target.control}/_sim/stats", timeout=5).status_code == 204


HTTP_TARGETS = ["superoffice", "graph_target"]


@pytest.mark.parametrize("name", [*HTTP_TARGETS, "ews_target"])
def test_latency_delays_one_call_and_is_counted(request: pytest.FixtureRequest, name: str) -> None:
    target: Target = request.getfixturevalue(name)
    reset_stats(target)
    add_fault(target, kind="latency", latency_ms=400)
    started = time.monotonic()
    target.call()
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    target.call()
    assert time.monotonic() - started < 0.4  # count 1: only the first was delayed
    assert calls_counted(target) == 2


# status, Retry-After, what the vendor's body says
SUPEROFFICE_ERRORS = {429: "SoTooManyRequestsException", 503: None, 500: None}
GRAPH_ERRORS = {429: "TooManyRequests", 503: "ServiceUnavailable", 500: "InternalServerError"}


@pytest.mark.parametrize("status", [429, 503, 500])
def test_status_faults_on_superoffice(superoffice: Target, status: int) -> None:
    reset_stats(superoffice)
    retry_after = {"retry_after": 9} if status != 500 else {}
    add_fault(superoffice, kind="status", status=status, count=2, **retry_after)
    for _ in range(2):
        answer = superoffice.call()
        assert answer.status_code == status
        assert answer.headers.get("Retry-After") == ("9" if status != 500 else None)
        body = answer.json()
        assert body["Error"] is True and body["ErrorType"]  # SuperOffice's documented error JSON
        if SUPEROFFICE_ERRORS[status]:
            assert body["ErrorType"] == SUPEROFFICE_ERRORS[status]
    assert superoffice.call().status_code == 200
    assert calls_counted(superoffice) == 3


@pytest.mark.parametrize("status", [429, 503, 500])
def test_status_faults_on_graph(graph_target: Target, status: int) -> None:
    reset_stats(graph_target)
    retry_after = {"retry_after": 9} if status != 500 else {}
    add_fault(graph_target, kind="status", status=status, count=2, **retry_after)
    for _ in range(2):
        answer = graph_target.call()
        assert answer.status_code == status
        assert answer.headers.get("Retry-After") == ("9" if status != 500 else None)
        assert answer.json()["error"]["code"] == GRAPH_ERRORS[status]
        assert answer.json()["error"]["innerError"]["request-id"]
    assert graph_target.call().status_code == 200
    assert calls_counted(graph_target) == 3


@pytest.mark.parametrize(
    ("status", "message", "back_off"),
    [
        # Exchange's throttling answer: a SOAP fault in a 500, BackOffMilliseconds = 3000.
        (500, "The server cannot service this request right now", 3.0),
        # HTTP.sys or a load balancer; exchangelib then backs off its default 10 s.
        (503, "Caused by HTTP 503 response", 10.0),
    ],
)
def test_status_faults_on_ews_as_exchangelib_sees_them(
    ews_target: Target, status: int, message: str, back_off: float
) -> None:
    reset_stats(ews_target)
    add_fault(ews_target, kind="status", status=status, retry_after=3)
    with pytest.raises(ErrorServerBusy) as raised:  # FailFast: exchangelib gives up at once
        ews_target.call()
    assert message in str(raised.value)
    assert raised.value.back_off == back_off
    ews_target.call()  # the next call is served
    assert calls_counted(ews_target) == 2


@pytest.mark.parametrize("name", HTTP_TARGETS)
def test_dropped_connection_then_service_again(request: pytest.FixtureRequest, name: str) -> None:
    target: Target = request.getfixturevalue(name)
    reset_stats(target)
    add_fault(target, kind="drop")
    with pytest.raises(requests.ConnectionError):
        target.call()
    assert target.call().status_code == 200
    assert calls_counted(target) == 2


def test_dropped_connection_on_ews_as_exchangelib_sees_it(ews_target: Target) -> None:
    reset_stats(ews_target)
    add_fault(ews_target, kind="drop")
    with pytest.raises(ErrorTimeoutExpired, match="ConnectionError"):
        ews_target.call()
    ews_target.call()
    assert calls_counted(ews_target) == 2


@pytest.mark.parametrize("name", HTTP_TARGETS)
def test_a_fraction_of_calls_fails_the_same_way_every_run(
    request: pytest.FixtureRequest, name: str
) -> None:
    target: Target = request.getfixturevalue(name)
    outcomes = []
    for _ in range(2):  # the same seed gives the same calls faulted
        reset_stats(target)
        target.session.delete(f"{target.control}/_sim/faults", timeout=5)
        add_fault(target, kind="status", status=503, retry_after=1, fraction=0.5, seed=42)
        outcomes.append([target.call().status_code for _ in range(12)])
        assert calls_counted(target) == 12
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {200, 503}  # some, not all


# Google's generic faults through google-api-python-client (its own kinds and the vendor-shaped
# 403/429 answers are tested in test_google_*.py).
GOOGLE_EVENTS = "GET /calendar/v3/calendars/<calendar_id>/events"


@pytest.fixture
def google_calendar(google_service: Any, google_token: Any, google_app: Any) -> Any:
    control_of(google_app).stats.reset()
    token = google_token("alice@northwind.example", "https://www.googleapis.com/auth/calendar")
    return google_service("calendar", "v3", token)


def google_events_counted(google_app: Any) -> int:
    return int(control_of(google_app).stats.snapshot()["endpoints"].get(GOOGLE_EVENTS, 0))


def test_latency_on_google_calendar(google_calendar: Any, google_app: Any) -> None:
    control_of(google_app).faults.add({"kind": "latency", "latency_ms": 400, "path": "/events$"})
    started = time.monotonic()
    assert "items" in google_calendar.events().list(calendarId="primary").execute()
    assert time.monotonic() - started >= 0.4
    google_calendar.events().list(calendarId="primary").execute()
    assert google_events_counted(google_app) == 2


def test_dropped_connection_on_google_calendar(google_calendar: Any, google_app: Any) -> None:
    # httplib2 quietly retries a GET once on a dropped connection, so drop two.
    control_of(google_app).faults.add({"kind": "drop", "path": "/events$", "count": 2})
    with pytest.raises(ConnectionError):
        google_calendar.events().list(calendarId="primary").execute()
    assert "items" in google_calendar.events().list(calendarId="primary").execute()
    assert google_events_counted(google_app) == 3
