"""One runner for the page, the API and the CLI: the checks run concurrently under one
deadline, and their steps stream out as they finish.

A check that is still running at the deadline is reported with the steps it had produced and
a "ran out of time" step. Then every socket of the run is shut down (a server dripping bytes
into a header, a TLS handshake that never finishes), which ends the check threads' network
calls at once; the runner waits for those threads before the report, so none outlives the run,
and anything they yield late is ignored.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from checksite.checks.context import CheckContext, FactFailed
from checksite.checks.model import CheckResult, Report, Step, Stopwatch
from checksite.checks.names_for_people import step_for_people
from checksite.checks.registry import CheckSpec
from common.http import BodyTooLarge
from common.netguard import Blocked, DeadlineExceeded, ResolveError

log = logging.getLogger(__name__)
# After the deadline, how long the threads of a run get to notice their closed sockets.
THREAD_GRACE_S = 0.25


@dataclass
class RunEvent:
    """`step` (a check produced a step), `check` (a check is complete), `report` (the end)."""

    kind: Literal["step", "check", "report"]
    check_id: str | None = None
    step: Step | None = None
    check: CheckResult | None = None
    report: Report | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "check_id": self.check_id}
        if self.step is not None:
            data["step"] = self.step.to_dict()
        if self.check is not None:
            data["check"] = self.check.to_dict()
        if self.report is not None:
            data["report"] = self.report.to_dict()
        return data


def run_checks(
    context: CheckContext,
    specs: Iterable[CheckSpec],
    deadline_s: float,
    on_event: Callable[[RunEvent], None] | None = None,
    *,
    started: float | None = None,
) -> Report:
    """Run to completion (or the deadline) and return the report."""
    report: Report | None = None
    for event in stream_checks(context, specs, deadline_s, started=started):
        if on_event is not None:
            on_event(event)
        report = event.report or report
    assert report is not None
    return report


def stream_checks(
    context: CheckContext,
    specs: Iterable[CheckSpec],
    deadline_s: float,
    *,
    started: float | None = None,
) -> Iterator[RunEvent]:
    """Start every check, yield events as they happen; the last event is the report.

    The deadline counts from `started` (a time.monotonic() value, e.g. when the process
    began), else from now."""
    specs = list(specs)
    watch = Stopwatch()
    deadline = (time.monotonic() if started is None else started) + deadline_s
    context.guard = context.guard.with_deadline(deadline)
    events: queue.Queue[tuple[str, str, Any]] = queue.Queue()
    results = {spec.id: CheckResult(spec.id, spec.title) for spec in specs}
    threads = [
        threading.Thread(
            target=_work, args=(spec, context, events), name=f"check-{spec.id}", daemon=True
        )
        for spec in specs
    ]
    for thread in threads:
        thread.start()

    pending = [spec.id for spec in specs]
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            kind, check_id, payload = events.get(timeout=left)
        except queue.Empty:
            break
        if check_id not in pending:
            continue  # late news from a check already reported as out of time
        result = results[check_id]
        if kind == "step":
            payload = step_for_people(payload, context.target.domain)
            result.steps.append(payload)
            yield RunEvent("step", check_id, step=payload)
        else:
            result.elapsed_ms = payload
            pending.remove(check_id)
            yield RunEvent("check", check_id, check=result)

    for check_id in pending:
        result = results[check_id]
        result.timed_out = True
        result.elapsed_ms = watch.ms()
        timeout_step = _timeout_step(check_id, deadline_s)
        result.steps.append(timeout_step)
        yield RunEvent("step", check_id, step=timeout_step)
        yield RunEvent("check", check_id, check=result)

    _end_run(context, threads, deadline)
    report = Report(
        target=context.target.text_for_people,
        checks=[results[spec.id] for spec in specs],
        elapsed_ms=watch.ms(),
        deadline_s=deadline_s,
    )
    yield RunEvent("report", report=report)


def _end_run(context: CheckContext, threads: list[threading.Thread], deadline: float) -> None:
    """Close every socket of the run and wait for its threads: nothing outlives the run."""
    sockets = context.guard.sockets
    sockets.close_all()
    until = max(deadline, time.monotonic()) + THREAD_GRACE_S
    # Checks' own threads first: they may still start background work while they end.
    for thread in [*threads, *context.threads()]:
        thread.join(max(0.0, until - time.monotonic()))
    stuck = [t.name for t in [*threads, *context.threads()] if t.is_alive()]
    if stuck:
        log.warning("check threads still running after the deadline: %s", ", ".join(stuck))
        return
    sockets.close_left_open()


def _work(spec: CheckSpec, context: CheckContext, events: queue.Queue[Any]) -> None:
    watch = Stopwatch()
    try:
        for step in spec.run(context):
            events.put(("step", spec.id, step))
    except DeadlineExceeded:
        return  # out of time: the runner reports it (a "done" now could beat its clock)
    except FactFailed as exc:
        step = Step(
            f"{spec.id}.depends",
            "Not checked",
            "skip",
            f"This check needs the {exc.name.replace('_', ' ')} result, which could not be "
            "determined; the check where it failed says why.",
            details={"fact": exc.name},
        )
        events.put(("step", spec.id, step))
    except (Blocked, ResolveError, BodyTooLarge) as exc:
        events.put(("step", spec.id, Step(f"{spec.id}.network", "Network", "fail", str(exc))))
    except Exception as exc:  # a bug in one check must not take the report down
        step = Step(
            f"{spec.id}.error",
            "The check stopped unexpectedly",
            "fail",
            f"{type(exc).__name__}: {exc}",
            remediation="This is a problem in the Check site, not in your set-up; "
            "please report it with this message.",
        )
        events.put(("step", spec.id, step))
    events.put(("done", spec.id, watch.ms()))


def _timeout_step(check_id: str, deadline_s: float) -> Step:
    return Step(
        id=f"{check_id}.timeout",
        title="Time limit reached",
        status="fail",
        message=f"The check did not finish within {deadline_s:g} seconds; the steps above "
        "are what it found before the time ran out.",
        remediation="If a step above waits for one of your servers, that server (or a firewall "
        "in front of it) does not answer; the firewall check names its host and port. "
        "Otherwise run the check again.",
    )
