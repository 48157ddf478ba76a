"""Check runs started from the web: each runs in a background thread, its events are kept in
memory for the live page (server-sent events), and the report is stored as a CheckReport.

Several processes each keep their own runs in memory; a page served by another process falls
back to the stored report (the link works everywhere, live progress only where it runs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from checksite.checks.context import Target
from checksite.checks.model import Report
from checksite.checks.registry import CheckSpec
from checksite.checks.runner import RunEvent, stream_checks
from checksite.checks.wiring import make_context
from common.config import Settings
from common.db import Database
from common.models import CheckReport, utcnow

log = logging.getLogger(__name__)
KEEP_FINISHED_SECONDS = 600  # finished runs stay in memory this long for late viewers


@dataclass
class Run:
    id: str
    events: list[RunEvent] = field(default_factory=list)
    done: bool = False
    finished_at: float = 0.0
    changed: threading.Condition = field(default_factory=threading.Condition)

    def add(self, event: RunEvent) -> None:
        with self.changed:
            self.events.append(event)
            if event.kind == "report":
                self.done = True
                self.finished_at = time.monotonic()
            self.changed.notify_all()

    def follow(self, timeout: float) -> Iterator[RunEvent]:
        """Every event so far, then new ones as they come, until the report (or timeout)."""
        index = 0
        deadline = time.monotonic() + timeout
        while True:
            with self.changed:
                while index >= len(self.events) and not self.done:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    self.changed.wait(left)
                batch = self.events[index:]
                index = len(self.events)
                finished = self.done
            yield from batch
            if finished and index >= len(self.events):
                return


class RunRegistry:
    def __init__(self) -> None:
        self._runs: dict[str, Run] = {}
        self._lock = threading.Lock()

    def get(self, run_id: str) -> Run | None:
        with self._lock:
            return self._runs.get(run_id)

    def start(
        self,
        database: Database,
        settings: Settings,
        target: Target,
        specs: list[CheckSpec],
        credentials: dict[str, str] | None = None,
    ) -> str:
        with database.session() as session:
            row = CheckReport(target=target.text, status="running")
            session.add(row)
            session.flush()
            run_id = row.id
        run = Run(run_id)
        with self._lock:
            self._forget_old()
            self._runs[run_id] = run
        worker = threading.Thread(
            target=self._work,
            args=(run, database, settings, target, specs, credentials or {}),
            name=f"check-run-{run_id[:6]}",
            daemon=True,
        )
        worker.start()
        return run_id

    def _work(
        self,
        run: Run,
        database: Database,
        settings: Settings,
        target: Target,
        specs: list[CheckSpec],
        credentials: dict[str, str],
    ) -> None:
        context = make_context(settings, target, credentials)
        for event in stream_checks(context, specs, settings.check_timeout_seconds):
            if event.report is not None:
                try:
                    _save(database, run.id, event.report)
                except Exception:  # the live page still gets its report
                    log.exception("could not store check report %s", run.id)
            run.add(event)

    def _forget_old(self) -> None:
        now = time.monotonic()
        for run_id in [
            i
            for i, r in self._runs.items()
            if r.done and now - r.finished_at > KEEP_FINISHED_SECONDS
        ]:
            del self._runs[run_id]


def _save(database: Database, run_id: str, report: Report) -> None:
    with database.session() as session:
        row = session.get(CheckReport, run_id)
        if row is not None:
            row.status = "done"
            row.verdict = report.verdict
            row.report = report.to_dict()
            row.finished_at = utcnow()


registry = RunRegistry()
