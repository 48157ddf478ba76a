"""A black-holed host cannot hold the report past the deadline (+ 1 s): the runner reports
the stuck checks as out of time with what they had found."""

from __future__ import annotations

import time

from checksite.checks.context import CheckContext, parse_target
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
