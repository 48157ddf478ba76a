"""The report arrives by the deadline + 1 s whatever the servers do: headers or a body dripped
one byte every 0.4 s, TLS handshakes that never finish (silent, or dripped), DNS that never
answers. Afterwards no socket and no thread of the run remains: each server saw its client
hang up, the process holds no socket it did not hold before, and every thread has ended."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from checksite.checks.context import CheckContext, parse_target
from checksite.checks.registry import select
from checksite.checks.runner import run_checks
from common.netguard import GuardPolicy, NetGuard
from tests.fixtures.hostile_servers import HostileWorld

DEADLINE_S = 2.5
SYNCHRONIZER = Path(sys.executable).parent / "synchronizer"


def socket_inodes() -> set[str]:
    """The sockets this process holds open (Linux: its descriptors that are sockets)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def run_threads(before: set[threading.Thread]) -> list[str]:
    """Threads started since `before` that still run, the test servers' own excepted."""
    return [
        t.name
        for t in threading.enumerate()
        if t not in before and t.is_alive() and not t.name.startswith("hostile-server")
    ]


def settled(condition: object, timeout: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def guard_for(world: HostileWorld) -> NetGuard:
    return NetGuard(
        GuardPolicy(
            allow_private=True,
            dns_servers=(world.dns.address,),
            ca_bundle=Path(world.ca_file),
            timeout=10.0,  # longer than the run: only the deadline can end it
        )
    )


def test_dripping_and_stalled_servers_end_at_the_deadline_leaving_nothing_open(
    hostile_world: HostileWorld,
) -> None:
    threads_before = set(threading.enumerate())
    sockets_before = socket_inodes()
    context = CheckContext(parse_target("someone@drip.example"), guard_for(hostile_world))
    started = time.monotonic()
    report = run_checks(context, select(), deadline_s=DEADLINE_S)
    elapsed = time.monotonic() - started

    assert elapsed <= DEADLINE_S + 1.0
    checks = {c.id: c for c in report.checks}
    assert checks["autodiscover"].timed_out
    assert checks["autodiscover"].steps[-1].id == "autodiscover.timeout"
    assert checks["dns"].status == "pass"  # what finished in time is reported as found
    # Every hostile server was reached (headers, body and two handshakes held the run) …
    assert hostile_world.connection_count() >= 4
    # … and each saw its client hang up: no connection of the run stays open.
    assert hostile_world.all_closed_by_client(timeout=0.5)
    assert context.guard.sockets.open_count() == 0
    assert settled(lambda: socket_inodes() <= sockets_before), socket_inodes() - sockets_before
    assert run_threads(threads_before) == []


def test_dns_that_never_answers_cannot_hold_the_report(hostile_world: HostileWorld) -> None:
    threads_before = set(threading.enumerate())
    context = CheckContext(parse_target("someone@nodns.example"), guard_for(hostile_world))
    started = time.monotonic()
    report = run_checks(context, select(), deadline_s=DEADLINE_S)
    assert time.monotonic() - started <= DEADLINE_S + 1.0
    assert {c.id for c in report.checks if c.timed_out} >= {"dns"}
    assert run_threads(threads_before) == []


def test_the_command_line_report_arrives_by_the_deadline_counting_the_process_start(
    hostile_world: HostileWorld, tmp_path: Path
) -> None:
    timeout = 3.0
    command = [str(SYNCHRONIZER), "check", "someone@drip.example", "--json"]
    command += ["--timeout", str(timeout), "--allow-private-networks"]
    command += ["--dns-server", hostile_world.dns.address, "--ca-bundle", hostile_world.ca_file]
    env = {**os.environ, "SYNCHRONIZER_INSTANCE_PATH": str(tmp_path)}
    started = time.monotonic()
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=30)
    elapsed = time.monotonic() - started
    assert elapsed <= timeout + 1.0, finished.stderr
    assert finished.returncode == 1, finished.stderr
    report = json.loads(finished.stdout)
    assert [c["timed_out"] for c in report["checks"] if c["id"] == "autodiscover"] == [True]
    assert hostile_world.connection_count() >= 4
    assert hostile_world.all_closed_by_client(timeout=0.5)
