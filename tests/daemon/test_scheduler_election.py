"""Scheduler election across processes, on SQLite and on a real PostgreSQL: of several
schedulers exactly one ticks; when it is killed another takes over once its lease expires,
and when it is stopped it hands over at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from common.db import Database
from daemon.scheduler import current_leader

pytestmark = pytest.mark.postgres

SCHEDULER = """
import signal, sys, threading
from datetime import timedelta
from common.db import Database
from daemon.scheduler import Scheduler

url, log, name = sys.argv[1:4]
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())

def tick(now):
    with open(log, "a") as out:
        out.write(f"{name} {now.timestamp()}\\n")

Scheduler(Database(url), tick, every=timedelta(seconds=0.1), ttl=timedelta(seconds=1.5),
          owner=name).run(stop)
"""


@pytest.fixture
def start(db: Database, tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def run(name: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-c", SCHEDULER, db.url, str(tmp_path / "ticks"), name]
        )
        started.append(process)
        return process

    yield run
    for process in started:
        process.kill()
        process.wait()


def ticks(tmp_path: Path) -> list[str]:
    path = tmp_path / "ticks"
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def runs(names: list[str]) -> list[str]:
    """The ticking schedulers in order, one entry per uninterrupted run of ticks."""
    return [name for i, name in enumerate(names) if i == 0 or names[i - 1] != name]


def test_one_ticks_a_killed_one_is_replaced_a_stopped_one_hands_over(
    db: Database, tmp_path: Path, start: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    first = start("first")
    wait_for(lambda: "first" in ticks(tmp_path), 10)
    second = start("second")
    third = start("third")
    time.sleep(1.5)  # both waiting ones have tried several times
    assert set(ticks(tmp_path)) == {"first"}
    leader = current_leader(db)
    assert leader is not None and leader.owner == "first"

    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = time.monotonic()
    wait_for(lambda: set(ticks(tmp_path)) - {"first"} != set(), 5)
    took_over = time.monotonic() - killed_at
    assert 0.5 < took_over < 3.5  # after the killed one's lease expired, not before

    successor = runs(ticks(tmp_path))[-1]
    leaving = second if successor == "second" else third
    count = len(ticks(tmp_path))
    leaving.send_signal(signal.SIGTERM)
    assert leaving.wait(timeout=5) == 0
    stopped_at = time.monotonic()
    wait_for(lambda: len(runs(ticks(tmp_path))) == 3, 5)
    assert time.monotonic() - stopped_at < 1.0  # handed over: no waiting out the lease
    assert len(ticks(tmp_path)) > count

    order = runs(ticks(tmp_path))
    assert order[0] == "first" and len(order) == len(set(order)) == 3, order
