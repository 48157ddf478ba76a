"""Live progress wherever the page lands: with several workers, the SSE request may reach an app
(process) other than the one running the check. That app streams the steps from the stored row
as they are persisted, not just the final report. Two app instances share one database here:
one runs, the other streams."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

from flask import Flask

from checksite import create_app
from checksite.check.runs import follow_stored
from common.db import Database
from common.schema import upgrade
from simulators.runner import SimulatorStack
from tests.fixtures.checks import sim_settings_for


def two_apps(sims: SimulatorStack, tmp_path: Path) -> tuple[Flask, Flask]:
    settings = sim_settings_for(
        sims, tmp_path / "instance", check_rate_limit="1000 per minute", check_timeout_seconds=2.5
    )
    upgrade(Database(settings.database_url))
    return create_app(settings), create_app(settings)


def sse_events(
    body: Any, heartbeats: list[float] | None = None
) -> list[tuple[float, str, dict[str, Any]]]:
    """(arrival time, kind, data) of each server-sent event, read as the stream arrives; the
    arrival times of comment lines (the stream's heartbeat) go to `heartbeats`."""
    seen, buffer = [], ""
    heartbeats = heartbeats if heartbeats is not None else []
    for chunk in body:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            if block.startswith(":"):
                heartbeats.append(time.monotonic())  # a comment: EventSource ignores it
                continue
            fields = dict(line.split(": ", 1) for line in block.splitlines())
            seen.append((time.monotonic(), fields["event"], json.loads(fields["data"])))
    return seen


def test_another_app_streams_the_steps_as_they_are_stored(
    sims: SimulatorStack, tmp_path: Path, black_hole: tuple[str, int]
) -> None:
    runner, viewer = two_apps(sims, tmp_path)
    host, port = black_hole  # EWS never answers: the run lasts until its deadline
    started = runner.test_client().post(
        "/api/checks",
        json={
            "target": "alice@proseware.example",
            "ews_url": f"https://{host}:{port}/EWS/Exchange.asmx",
            "oab_url": f"https://{host}:{port}/OAB/",
        },
    )
    report_id = started.get_json()["id"]
    response = viewer.test_client().get(f"/check/r/{report_id}/events", buffered=False)
    heartbeats: list[float] = []
    events = sse_events(response.response, heartbeats)
    kinds = [kind for _, kind, _ in events]
    assert kinds[-1] == "report" and "gone" not in kinds
    # While nothing arrives the stream still writes (so a viewer who left is noticed).
    arrivals = sorted([at for at, _, _ in events] + heartbeats)
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert heartbeats and max(gaps) < 1.6
    assert "step" in kinds and "check" in kinds
    first_check = next(at for at, kind, _ in events if kind == "check")
    assert events[-1][0] - first_check > 1.0  # the finished checks came while it still ran
    checks = {data["check_id"] for _, kind, data in events if kind == "check"}
    # [autodiscover] validates the black-holed EWS URL given by hand, so it waits too.
    assert "dns" in checks
    report = events[-1][2]["report"]
    assert [c["timed_out"] for c in report["checks"] if c["id"] == "tls"] == [True]


def test_each_step_is_in_the_row_while_the_run_goes_on(
    sims: SimulatorStack, tmp_path: Path, black_hole: tuple[str, int]
) -> None:
    runner, _ = two_apps(sims, tmp_path)
    host, port = black_hole
    report_id = (
        runner.test_client()
        .post(
            "/api/checks",
            json={"target": "alice@proseware.example", "ews_url": f"https://{host}:{port}/EWS/"},
        )
        .get_json()["id"]
    )
    database = Database(runner.config["SYNCHRONIZER"].database_url)
    time.sleep(1.0)  # dns has finished, tls is stuck at the black hole
    stored = list(follow_stored(database, report_id, timeout=0.0))
    assert any(e["kind"] == "check" and e["check_id"] == "dns" for e in stored)
    assert all(e["kind"] != "report" for e in stored)
