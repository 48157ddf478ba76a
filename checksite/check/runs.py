"""Check runs started from the web: each runs in a background thread, its events are kept in
memory for the live page (server-sent events), and stored as they arrive in the CheckReport row
(`report = {"events": [...]}` while running, the report itself once done).

Several processes each keep their own runs in memory; a page served by another process (another
gunicorn worker) follows the run through its row instead (`follow_stored`), so progress is live
wherever the page lands.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

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
POLL_SECONDS = 0.25  # how often a page served by another process reads the run's row
# A run still "running" this long after its deadline lost its process (a worker restarted).
INTERRUPTED_GRACE_SECONDS = 30.0


def effective_status(row: CheckReport, deadline_s: float, now: datetime | None = None) -> str:
    """The row's status, or "interrupted" for a run that can no longer finish."""
    overdue = timedelta(seconds=deadline_s + INTERRUPTED_GRACE_SECONDS)
    if row.status == "running" and (now or utcnow()) - row.created_at > overdue:
        return "interrupted"
    return row.status


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

    def follow(self, timeout: float, heartbeat_s: float | None = None) -> Iterator[RunEvent | None]:
        """Every event so far, then new ones as they come, until the report (or timeout); a
        None after each `heartbeat_s` without one (the page's stream writes something then,
        which is how a server learns that its viewer has gone)."""
        index = 0
        deadline = time.monotonic() + timeout
        while True:
            with self.changed:
                while index >= len(self.events) and not self.done:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    if heartbeat_s is not None and left > heartbeat_s:
                        if not self.changed.wait(heartbeat_s) and index >= len(self.events):
                            break  # the heartbeat is yielded outside the lock
                    else:
                        self.changed.wait(left)
                batch = self.events[index:]
                index = len(self.events)
                finished = self.done
            if not batch and not finished:
                yield None
                continue
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
            row = CheckReport(target=target.text_for_people, status="running")
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
        progress: list[dict[str, Any]] = []
        for event in stream_checks(context, specs, settings.check_timeout_seconds):
            try:
                if event.report is not None:
                    _save(database, run.id, event.report)
                else:
                    progress.append(event.to_dict())
                    _save_progress(database, run.id, progress)
            except Exception:  # this process's page still gets every event from memory
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


def _save_progress(database: Database, run_id: str, progress: list[dict[str, Any]]) -> None:
    with database.session() as session:
        row = session.get(CheckReport, run_id)
        if row is not None and row.status == "running":
            row.report = {"events": list(progress)}  # a new value: JSON columns are not tracked


def follow_stored(
    database: Database,
    run_id: str,
    timeout: float,
    poll_s: float = POLL_SECONDS,
    heartbeat_s: float | None = None,
) -> Iterator[dict[str, Any] | None]:
    """The events of a run living in another process, read from its row: every event so far,
    then new ones as they are stored (one cheap read per `poll_s`), until the report (as a
    `report` event) or the timeout; a None after each `heartbeat_s` without an event."""
    sent = 0
    deadline = time.monotonic() + timeout
    last_yield = time.monotonic()
    while True:
        with database.session() as session:
            row = session.get(CheckReport, run_id)
            status, stored = (row.status, row.report) if row is not None else ("gone", {})
        events = (stored or {}).get("events", []) if status == "running" else []
        if events[sent:]:
            last_yield = time.monotonic()
        elif heartbeat_s is not None and time.monotonic() - last_yield >= heartbeat_s:
            last_yield = time.monotonic()
            yield None
        yield from events[sent:]
        sent = max(sent, len(events))
        if status == "done":
            yield {"kind": "report", "report": stored}
            return
        if status != "running" or time.monotonic() + poll_s > deadline:
            return
        time.sleep(poll_s)


def _save(database: Database, run_id: str, report: Report) -> None:
    with database.session() as session:
        row = session.get(CheckReport, run_id)
        if row is not None:
            row.status = "done"
            row.verdict = report.verdict
            row.report = report.to_dict()
            row.finished_at = utcnow()
