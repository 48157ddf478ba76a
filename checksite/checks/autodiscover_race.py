"""The Autodiscover methods run at once, and Outlook's order picks the winner, without letting
a method that hangs hold the verdict.

Outlook tries the methods one after another and takes the first that works; running them
concurrently gives the same winner as long as we wait for every method before it. A method
that never answers (a website on the bare domain that accepts the connection and stays
silent) would then hold the result until the deadline. So once a method has answered, the
methods before it that are still running get a short grace; then they are stopped (their
sockets closed) and reported as hanging: a real problem for Outlook, which does wait for them.
Methods after the winner are stopped at once: nobody would try them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass

from checksite.checks.autodiscover_client import Exchange
from checksite.checks.context import CheckContext
from common.netguard import NetGuard

# Seconds the methods before an answering one still get (Outlook's order needs their answer).
GRACE_S = 1.5

Work = Callable[[NetGuard], list[Exchange]]


@dataclass
class MethodOutcome:
    """What one method came to: its exchanges, or `hung` (stopped while it still waited)."""

    exchanges: list[Exchange]
    elapsed_ms: int
    hung: bool = False
    skipped: bool = False  # stopped because an earlier method had already won


@dataclass
class _Running:
    guard: NetGuard
    future: Future[list[Exchange]]
    started: float


def race(
    context: CheckContext,
    methods: list[tuple[str, Work]],
    works: Callable[[list[Exchange]], bool],
    grace_s: float = GRACE_S,
) -> tuple[list[MethodOutcome], int | None]:
    """Each method's outcome (in the given order) and the index of the winner, if any."""
    running = []
    for name, work in methods:
        guard = context.guard.cancellable()  # its own sockets, to stop it on its own
        future = context.background(f"autodiscover {name}", work, guard)
        running.append(_Running(guard, future, time.monotonic()))
    outcomes: list[MethodOutcome | None] = [None] * len(running)
    answered_at: float | None = None
    while True:
        for index, run in enumerate(running):
            if outcomes[index] is None and run.future.done():
                outcomes[index] = _finished(run)
        winner = _winner(outcomes, works)
        timeout: float | None = None
        if winner is None:
            if all(o is not None for o in outcomes):
                return [o for o in outcomes if o is not None], None
        else:
            answered_at = answered_at or time.monotonic()
            grace_left = answered_at + grace_s - time.monotonic()
            if all(o is not None for o in outcomes[:winner]) or grace_left <= 0:
                return _stop_the_rest(running, outcomes, winner), winner
            timeout = grace_left
        pending = [run.future for run, o in zip(running, outcomes, strict=True) if o is None]
        # Never past the run's deadline: then remaining() raises and the runner reports.
        left = context.guard.remaining(1e9)
        wait(
            pending,
            timeout=left if timeout is None else min(timeout, left),
            return_when=FIRST_COMPLETED,
        )


def _winner(
    outcomes: list[MethodOutcome | None], works: Callable[[list[Exchange]], bool]
) -> int | None:
    """The first method, in Outlook's order, that has answered as Autodiscover."""
    for index, outcome in enumerate(outcomes):
        if outcome is not None and works(outcome.exchanges):
            return index
    return None


def _finished(run: _Running) -> MethodOutcome:
    elapsed = round((time.monotonic() - run.started) * 1000)
    return MethodOutcome(run.future.result(), elapsed)  # a method's own errors are exchanges


def _stop_the_rest(
    running: list[_Running], outcomes: list[MethodOutcome | None], winner: int
) -> list[MethodOutcome]:
    result = []
    for index, (run, outcome) in enumerate(zip(running, outcomes, strict=True)):
        if outcome is None:
            run.guard.sockets.close_all()  # its thread ends; the runner waits for it
            elapsed = round((time.monotonic() - run.started) * 1000)
            outcome = MethodOutcome([], elapsed, hung=index < winner, skipped=index > winner)
        result.append(outcome)
    return result
