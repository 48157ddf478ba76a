"""SimServer and the loopback address pool."""

from __future__ import annotations

import http.client
import ipaddress
import random
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import flask
import pytest
import requests

from simulators.platform.addresses import AddressPool
from simulators.platform.ca import DemoCA
from simulators.platform.server import SimServer
from tests.fixtures.simulators import Serve


def slow_app(delay: float = 0.0) -> flask.Flask:
    app = flask.Flask(__name__)

    @app.get("/")
    def root() -> str:
        time.sleep(delay)
        return flask.request.scheme

    return app


def test_start_returns_listening_and_stop_frees_the_port(
    demo_ca: DemoCA, sim_session: requests.Session
) -> None:
    started = time.monotonic()
    server = SimServer(slow_app(), ssl_context=demo_ca.server_context(["127.0.0.1"])).start()
    assert time.monotonic() - started < 0.5
    assert server.url == f"https://127.0.0.1:{server.port}"
    assert sim_session.get(server.url + "/", timeout=5).text == "https"
    server.stop()
    with pytest.raises(requests.ConnectionError):
        sim_session.get(server.url + "/", timeout=5)
    with SimServer(slow_app(), port=server.port) as again:  # the same port, right away
        assert sim_session.get(again.url + "/", timeout=5).text == "http"


def test_plain_http_and_ipv6(serve: Serve, sim_session: requests.Session) -> None:
    plain = serve(slow_app(), tls=False)
    assert plain.url.startswith("http://127.0.0.1:")
    assert sim_session.get(plain.url + "/", timeout=5).text == "http"
    v6 = serve(slow_app(), host="::1", hostnames=["::1", "localhost"])
    assert v6.url == f"https://[::1]:{v6.port}"
    assert sim_session.get(v6.url + "/", timeout=5).text == "https"


def test_requests_are_served_concurrently(serve: Serve, sim_session: requests.Session) -> None:
    server = serve(slow_app(delay=0.3))
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(
            pool.map(lambda _: sim_session.get(server.url + "/", timeout=5).text, range(6))
        )
    assert answers == ["https"] * 6
    assert time.monotonic() - started < 1.2  # six 0.3 s requests, not one after another


def test_a_client_stalling_the_handshake_blocks_nobody(
    serve: Serve, sim_session: requests.Session
) -> None:
    server = serve(slow_app())
    with socket.create_connection((server.host, server.port)) as stalled:
        stalled.sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, then silence
        started = time.monotonic()
        assert sim_session.get(server.url + "/", timeout=5).text == "https"
        assert time.monotonic() - started < 1.0


def test_a_taken_port_raises_instead_of_exiting(serve: Serve) -> None:
    server = serve(slow_app(), tls=False)
    with pytest.raises(OSError):
        SimServer(slow_app(), port=server.port).start()


def test_address_pool_uses_one_random_loopback_slash_24() -> None:
    pool = AddressPool(rng=random.Random(7))
    assert pool.network.prefixlen == 24
    assert pool.network.subnet_of(ipaddress.IPv4Network("127.0.0.0/8"))
    assert pool.network != ipaddress.IPv4Network("127.0.0.0/24")
    first = pool.allocate("Autodiscover.Contoso.Example.")
    assert pool.allocate("autodiscover.contoso.example") == first
    assert pool.address_of("AUTODISCOVER.contoso.example") == first
    other = pool.allocate("mail.contoso.example")
    assert other != first
    assert ipaddress.ip_address(other) in pool.network
    anonymous = pool.allocate()
    assert anonymous not in {first, other}
    moved = pool.reassign("mail.contoso.example")
    assert moved not in {first, other, anonymous}
    pool.assign("alias.contoso.example", first)
    assert pool.assigned() == {
        "autodiscover.contoso.example": first,
        "mail.contoso.example": moved,
        "alias.contoso.example": first,
    }


def test_address_pool_limits() -> None:
    with pytest.raises(ValueError, match="not a loopback"):
        AddressPool("10.0.0.0/24")
    tiny = AddressPool("127.9.9.0/30")
    tiny.allocate("a.example")
    tiny.allocate("b.example")
    with pytest.raises(RuntimeError, match="no free address"):
        tiny.allocate("c.example")


def keep_alive_app() -> flask.Flask:
    app = flask.Flask(__name__)

    @app.route("/port", methods=["GET", "POST"])
    def port() -> str:
        return str(flask.request.environ["REMOTE_PORT"])

    @app.post("/unauthorized")
    def unauthorized() -> tuple[str, int, dict[str, str]]:
        # Answers before reading the body, as an NTLM or Basic challenge does.
        return "no", 401, {"WWW-Authenticate": "Basic"}

    @app.get("/streamed")
    def streamed() -> flask.Response:
        return flask.Response(iter([b"one ", b"two"]))  # no Content-Length: chunked

    return app


def test_connections_are_kept_alive_across_requests_and_error_answers(
    serve: Serve, sim_session: requests.Session
) -> None:
    server = serve(keep_alive_app())
    answers = [
        sim_session.get(server.url + "/port", timeout=5),
        sim_session.post(server.url + "/unauthorized", data=b"x" * 200_000, timeout=5),
        sim_session.get(server.url + "/streamed", timeout=5),
        sim_session.post(server.url + "/port", data=b"y" * 5000, timeout=5),
    ]
    assert [a.status_code for a in answers] == [200, 401, 200, 200]
    assert all("Connection" not in a.headers for a in answers)
    assert answers[2].headers["Transfer-Encoding"] == "chunked"
    assert answers[2].text == "one two"
    assert answers[0].text == answers[3].text  # the same client port: one TCP connection


def test_answers_on_a_kept_alive_connection_are_not_held_back(
    serve: Serve, sim_session: requests.Session
) -> None:
    """Fifty requests one after another on one kept-alive TLS connection. werkzeug writes a
    response's headers and body separately; with Nagle's algorithm on the server's socket the
    body waits for the client's delayed ACK, 40 ms on Linux, so every answer arrived 40 ms
    late (mistake: a simulator slower than any real service, which made 5,000 SuperOffice
    reads take minutes more in bench/sync_m365.py)."""
    server = serve(slow_app())
    sim_session.get(server.url + "/", timeout=5)  # the connection and its handshake
    started = time.monotonic()
    for _ in range(50):
        assert sim_session.get(server.url + "/", timeout=5).text == "https"
    assert time.monotonic() - started < 50 * 0.02  # held back, it takes at least 2 s


def test_pipelined_requests_with_unread_bodies_are_each_answered(serve: Serve) -> None:
    server = serve(keep_alive_app(), tls=False)
    body = b"z" * 100_000
    unread = b"POST /unauthorized HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    last = b"GET /port HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection((server.host, server.port), timeout=5) as client:
        client.sendall(unread + unread + last)
        received = b""
        while chunk := client.recv(65536):  # the server closes after the last one
            received += chunk
    assert received.count(b"HTTP/1.1 401 UNAUTHORIZED\r\n") == 2
    assert received.count(b"HTTP/1.1 200 OK\r\n") == 1
    assert received.count(b"Connection: close\r\n") == 1  # only on the answer that asked


def test_http_1_0_clients_get_a_1_0_answer_and_a_close(serve: Serve) -> None:
    server = serve(keep_alive_app(), tls=False)
    with socket.create_connection((server.host, server.port), timeout=5) as client:
        client.sendall(b"GET /streamed HTTP/1.0\r\n\r\n")
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"Transfer-Encoding" not in head
    assert body == b"one two"


def test_idle_kept_alive_connections_do_not_hold_up_stop(
    demo_ca: DemoCA, sim_session: requests.Session
) -> None:
    server = SimServer(keep_alive_app(), ssl_context=demo_ca.server_context(["127.0.0.1"]))
    server.start()
    assert sim_session.get(server.url + "/port", timeout=5).status_code == 200  # pooled, idle
    idle = http.client.HTTPSConnection(
        server.host,
        server.port,
        timeout=5,
        context=ssl.create_default_context(cafile=demo_ca.ca_file),
    )
    idle.request("GET", "/port")
    assert idle.getresponse().read()  # served, and the connection stays open
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.0
    assert idle.sock is not None
    assert idle.sock.recv(1) == b""  # closed by the server, not left to its 30 s timeout
    idle.close()
    with pytest.raises(requests.ConnectionError):  # the pooled connection answers nobody now
        sim_session.get(server.url + "/port", timeout=5)
