"""The live-progress stream cannot starve the web server, and rate limits hold across
processes without Redis, keyed by the client's address (IPv6: its /64).

Streams are limited per client and in total, counted in the database like the rate limits, so
separate server processes share both; the production server (gunicorn with the gthread worker
class, as the README says) keeps serving pages while streams are held."""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask

from checksite.check.streams import StreamSlots
from common.config import Settings
from common.db import Database
from common.schema import upgrade

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).parent / "gunicorn"


def limited(app: Flask, **changes: object) -> Flask:
    app.config["SYNCHRONIZER"] = dataclasses.replace(app.config["SYNCHRONIZER"], **changes)
    return app


def start_a_run(app: Flask, black_hole: tuple[str, int]) -> str:
    host, port = black_hole  # EWS never answers: the run lasts until its deadline
    body = {"target": "alice@proseware.example", "ews_url": f"https://{host}:{port}/EWS/"}
    return str(app.test_client().post("/api/checks", json=body).get_json()["id"])


def open_stream(app: Flask, report_id: str, address: str) -> object:
    return app.test_client().get(
        f"/check/r/{report_id}/events",
        buffered=False,
        environ_base={"REMOTE_ADDR": address},
    )


def test_streams_are_limited_per_client_and_in_total(
    check_app: Flask, black_hole: tuple[str, int]
) -> None:
    app = limited(check_app, check_streams_per_client=1, check_streams_total=2)
    report_id = start_a_run(app, black_hole)
    first = open_stream(app, report_id, "198.51.100.1")
    assert first.status_code == 200  # type: ignore[attr-defined]
    again = open_stream(app, report_id, "198.51.100.1")
    assert again.status_code == 429  # type: ignore[attr-defined]
    assert again.headers["Retry-After"] == "5"  # type: ignore[attr-defined]
    other = open_stream(app, report_id, "198.51.100.2")
    assert other.status_code == 200  # type: ignore[attr-defined]
    third = open_stream(app, report_id, "198.51.100.3")
    assert third.status_code == 429  # type: ignore[attr-defined]  # the process is full
    first.close()  # type: ignore[attr-defined]  # a viewer went away: its slot is free
    back = open_stream(app, report_id, "198.51.100.1")
    assert back.status_code == 200  # type: ignore[attr-defined]


def test_streams_of_one_ipv6_client_count_by_its_slash_64(
    check_app: Flask, black_hole: tuple[str, int]
) -> None:
    app = limited(check_app, check_streams_per_client=1, check_streams_total=10)
    report_id = start_a_run(app, black_hole)
    held = [open_stream(app, report_id, "2001:db8:1:2::1")]  # held: a dropped one is closed
    codes = [held[0].status_code]  # type: ignore[attr-defined]
    for address in ("2001:db8:1:2:ffff::9", "2001:db8:1:3::1", "::ffff:198.51.100.9"):
        held.append(open_stream(app, report_id, address))
        codes.append(held[-1].status_code)  # type: ignore[attr-defined]
    held.append(open_stream(app, report_id, "198.51.100.9"))  # the same as the mapped one
    codes.append(held[-1].status_code)  # type: ignore[attr-defined]
    assert codes == [200, 429, 200, 200, 429]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def production_server_options() -> list[str]:
    """The worker options of the README's production command (so the docs are what is tested)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"`gunicorn ([^`]*) wsgi:app`", readme)
    assert match is not None, "the README gives the production gunicorn command"
    options = match.group(1).split()
    bind = options.index("--bind")
    return options[:bind] + options[bind + 2 :]


@pytest.fixture
def serve_production(tmp_path: Path) -> Iterator[object]:
    started: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str], *extra: str) -> str:
        port = free_port()
        command = [str(GUNICORN), *production_server_options(), *extra]
        command += ["--bind", f"127.0.0.1:{port}", "wsgi:app"]
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stderr=subprocess.DEVNULL
        )
        started.append(process)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return f"http://127.0.0.1:{port}"
            except OSError:
                assert process.poll() is None, "gunicorn exited"
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        "SYNCHRONIZER_INSTANCE_PATH": str(settings.instance_path),
        "SYNCHRONIZER_TRUSTED_PROXIES": "1",  # the tests play the proxy: X-Forwarded-For
        **{f"SYNCHRONIZER_{k.upper()}": v for k, v in extra.items()},
    }


def test_rate_limits_hold_across_processes_without_redis(
    settings: Settings, serve_production: object
) -> None:
    upgrade(Database(settings.database_url))
    env = environment(settings, check_rate_limit="3 per minute")
    servers = [serve_production(env, "--workers", "1"), serve_production(env, "--workers", "1")]  # type: ignore[operator]

    def post(server: int, client: str) -> int:
        response = requests.post(
            f"{servers[server]}/api/checks",
            data="x",
            headers={"Content-Type": "text/plain", "X-Forwarded-For": client},
            timeout=10,
        )
        return response.status_code

    # Three requests in all, whichever process took them; then both refuse.
    assert [post(i % 2, "2001:db8:5:6::1") for i in range(4)] == [400, 400, 400, 429]
    assert post(1, "2001:db8:5:6:abcd::2") == 429  # the same /64
    assert post(0, "2001:db8:5:7::1") == 400  # the next /64 is someone else


def test_the_production_server_serves_pages_while_streams_are_held(
    settings: Settings, serve_production: object, black_hole: tuple[str, int]
) -> None:
    upgrade(Database(settings.database_url))
    env = environment(
        settings,
        check_streams_per_client="1",
        check_streams_total="2",
        check_timeout_seconds="6",
        check_allow_private_networks="true",
        check_rate_limit="100 per minute",
    )
    server = serve_production(env, "--workers", "1")  # type: ignore[operator]
    host, port = black_hole
    body = {"target": "alice@proseware.example", "ews_url": f"https://{host}:{port}/EWS/"}
    report_id = requests.post(f"{server}/api/checks", json=body, timeout=10).json()["id"]
    url = f"{server}/check/r/{report_id}/events"

    def stream(client: str) -> requests.Response:
        return requests.get(url, headers={"X-Forwarded-For": client}, stream=True, timeout=10)

    held = [stream("198.51.100.1"), stream("198.51.100.2")]
    try:
        assert [r.status_code for r in held] == [200, 200]
        assert stream("198.51.100.3").status_code == 429  # the process's share is taken
        assert stream("198.51.100.1").status_code == 429  # and this client has its one
        started = time.monotonic()
        page = requests.get(
            f"{server}/check", headers={"X-Forwarded-For": "198.51.100.4"}, timeout=10
        )
        assert page.status_code == 200
        assert time.monotonic() - started < 2.0  # not queued behind the streams
    finally:
        for response in held:
            response.close()


def test_stream_limits_hold_across_processes(
    settings: Settings, serve_production: object, black_hole: tuple[str, int]
) -> None:
    """Two server processes on one database: a client's streams and the total are counted
    together, whichever process serves them (a per-process count would allow twice as many)."""
    upgrade(Database(settings.database_url))
    env = environment(
        settings,
        check_streams_per_client="1",
        check_streams_total="2",
        check_timeout_seconds="6",
        check_allow_private_networks="true",
        check_rate_limit="100 per minute",
    )
    servers = [serve_production(env, "--workers", "1"), serve_production(env, "--workers", "1")]  # type: ignore[operator]
    host, port = black_hole
    body = {"target": "alice@proseware.example", "ews_url": f"https://{host}:{port}/EWS/"}
    report_id = requests.post(f"{servers[0]}/api/checks", json=body, timeout=10).json()["id"]

    def stream(server: int, client: str) -> requests.Response:
        url = f"{servers[server]}/check/r/{report_id}/events"
        return requests.get(url, headers={"X-Forwarded-For": client}, stream=True, timeout=10)

    held = [stream(0, "198.51.100.1")]
    try:
        assert held[0].status_code == 200
        assert stream(1, "198.51.100.1").status_code == 429  # its one stream is on the other
        held.append(stream(1, "198.51.100.2"))
        assert held[1].status_code == 200
        assert stream(0, "198.51.100.3").status_code == 429  # two in all, one on each
        assert stream(1, "198.51.100.3").status_code == 429
        held.pop(0).close()  # a viewer went away: its slot is free for everyone
        deadline = time.monotonic() + 5
        while (answer := stream(1, "198.51.100.3")).status_code != 200:
            assert time.monotonic() < deadline, "the closed stream's slot was not released"
            time.sleep(0.1)
        held.append(answer)
    finally:
        for response in held:
            response.close()


def test_a_slot_held_by_a_process_that_died_frees_itself_after_its_lease(
    migrated_database: Database,
) -> None:
    slots = StreamSlots(migrated_database)  # on SQLite and on PostgreSQL
    assert slots.acquire("198.51.100.1", 1, 5, lease_s=0.5) is not None  # never released
    assert slots.acquire("198.51.100.1", 1, 5, lease_s=0.5) is None
    assert slots.in_use() == 1
    time.sleep(0.6)
    assert slots.in_use() == 0
    release = slots.acquire("198.51.100.1", 1, 5, lease_s=0.5)
    assert release is not None
    release()
    assert slots.in_use() == 0
