"""A black-holed host cannot hold the report past the deadline (+ 1 s): the runner reports
the stuck checks as out of time with what they had found."""

from __future__ import annotations

import time

from checksite.checks.context import CheckContext, parse_target
from checksite.checks.fix_first import fix_first
from checksite.checks.registry import select
from checksite.checks.runner import run_checks
from tests.fixtures.checks import Hostile


def test_a_black_holed_ews_host_ends_at_the_deadline(
    hostile: Hostile, black_hole: tuple[str, int]
) -> None:
    host, port = black_hole
    target = parse_target(
        "someone@onprem.test.example",
        ews_url=f"https://{host}:{port}/EWS/Exchange.asmx",
        oab_url=f"https://{host}:{port}/OAB/",
    )
    context = CheckContext(target, hostile.guard(timeout=10.0))
    started = time.monotonic()
    report = run_checks(context, select(), deadline_s=1.5)
    elapsed = time.monotonic() - started
    assert elapsed < 2.5
    stuck = [c for c in report.checks if c.timed_out]
    # [autodiscover] validates the EWS URL given by hand: it waits on the black hole as well.
    assert {c.id for c in stuck} >= {"tls", "exchange_version", "autodiscover"}
    for check in stuck:
        assert check.status == "fail"
        assert check.steps[-1].id == f"{check.id}.timeout"
    finished = {c.id: c.status for c in report.checks if not c.timed_out}
    assert finished["dns"] == "pass"


def test_the_firewall_check_names_the_host_that_never_answered_before_the_deadline(
    hostile: Hostile, black_hole: tuple[str, int]
) -> None:
    """The other checks' "time limit reached" sends people to [firewall] for the host and port
    they waited on: [firewall] stops waiting shortly before the deadline and says where."""
    host, port = black_hole
    target = parse_target(
        "someone@onprem.test.example", ews_url=f"https://{host}:{port}/EWS/Exchange.asmx"
    )
    context = CheckContext(target, hostile.guard(timeout=10.0))
    report = run_checks(context, select(), deadline_s=3.0)
    firewall = next(c for c in report.checks if c.id == "firewall")
    assert not firewall.timed_out
    step = next(s for s in firewall.steps if s.id == f"firewall.{host}")
    assert step.status == "fail"
    assert f"TCP port {port} accepted the connection" in step.message
    assert "TLS handshake never finished" in step.message
    assert f"TCP port {port}" in step.remediation
    assert [(c.title, c.status) for c in step.children] == [
        ("DNS", "pass"),
        ("TCP", "pass"),
        ("TLS", "fail"),
    ]
    assert fix_first(report)[0].step is step  # the first thing to look at
