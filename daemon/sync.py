"""One sync run for one user and one kind: read, plan, apply (or only show), record.

The database, not the queue, is the source of truth: cursors advance only when the whole plan
was applied, so anything interrupted is simply read again next time and re-planned against the
links the interrupted run left behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic

from common.connectors.base import (
    AuthExpired,
    ChangeSet,
    ConnectorError,
    CursorExpired,
    ItemConnector,
    T,
    Throttled,
)
from common.models import ItemKind, RunStatus, Side
from daemon.apply import Applier, ApplyReport, ItemFailure, RunAborted
from daemon.dryrun import render_plan
from daemon.engine import LinkIndex, Plan, PlanInput, plan
from daemon.expansion import expand_series
from daemon.policies import Policy
from daemon.store import RunOutcome, SyncStore

SIDES = (Side.CRM, Side.GROUPWARE)


@dataclass(slots=True)
class SyncOutcome(Generic[T]):
    run_id: int
    status: RunStatus
    plan: Plan[T] | None = None
    report: ApplyReport | None = None
    dry_run_lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. series expanded for a side
    error: str | None = None


def read_changes(
    connector: ItemConnector[T],
    cursor: str | None,
    sleep: Callable[[float], None],
    max_attempts: int = 4,
) -> ChangeSet[T]:
    """The side's changes since `cursor`; an expired cursor falls back to a full listing."""
    for attempt in range(1, max_attempts + 1):
        try:
            try:
                return connector.changes(cursor)
            except CursorExpired:
                return connector.changes(None)
        except Throttled as exc:
            if attempt == max_attempts:
                raise
            sleep(exc.retry_after)
    raise AssertionError("unreachable")


def build_input(
    kind: ItemKind,
    changes: Mapping[Side, ChangeSet[T]],
    store: SyncStore,
    policy: Policy,
    now: datetime,
    fields: frozenset[str],
    approve_deletions: bool = False,
) -> PlanInput[T]:
    """The planner's input: only the links the changes touch, unless a side listed everything."""
    if any(c.full for c in changes.values()):
        links = store.all_links(kind)
    else:
        ids: dict[Side, list[str]] = {side: [] for side in SIDES}
        cids: list[str] = []
        for side, change_set in changes.items():
            ids[side] += [s.id for s in change_set.upserts]
            ids[side] += [r.id for r in change_set.removals]
            cids += [s.correlation_id for s in change_set.upserts if s.correlation_id]
        links = store.links_for(kind, ids[Side.CRM], ids[Side.GROUPWARE], cids)
    return PlanInput(
        kind=kind,
        crm=changes[Side.CRM],
        groupware=changes[Side.GROUPWARE],
        # Counting a user's links costs a scan; only the deletion guard needs it.
        links=LinkIndex(links, store.linked_counts(kind) if _may_delete(changes) else {}),
        policy=policy,
        now=now,
        fields=fields,
        approve_deletions=approve_deletions,
    )


def _may_delete(changes: Mapping[Side, ChangeSet[T]]) -> bool:
    return any(c.full or c.removals for c in changes.values())


def sync(
    kind: ItemKind,
    connectors: Mapping[Side, ItemConnector[T]],
    store: SyncStore,
    policy: Policy,
    now: datetime,
    *,
    dry_run: bool = False,
    approve_deletions: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> SyncOutcome[T]:
    run_id = store.start_run(dry_run)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    outcome: SyncOutcome[T] = SyncOutcome(run_id, RunStatus.RUNNING)
    counts: dict[str, int] = {}
    errors: dict[str, Any] = {}
    held: dict[str, Any] | None = None
    try:
        cursors = {side: store.load_cursor(kind, side) for side in SIDES}
        changes = {side: read_changes(connectors[side], cursors[side], sleep) for side in SIDES}
        timings["read"] = time.perf_counter() - started
        changes, notes = expand_series(kind, changes, connectors, store, policy, now)
        fields = connectors[Side.CRM].fields & connectors[Side.GROUPWARE].fields
        inp = build_input(kind, changes, store, policy, now, fields, approve_deletions)
        the_plan = plan(inp)
        timings["plan"] = time.perf_counter() - started - timings["read"]
        outcome.plan = the_plan
        counts = the_plan.counts()
        outcome.notes = notes
        if dry_run:
            outcome.dry_run_lines = render_plan(the_plan)
            outcome.notes += outcome.dry_run_lines  # stored with the run: the portal shows it
            outcome.status = RunStatus.SUCCEEDED
        else:
            report = Applier(connectors, store, inp, sleep=sleep).apply(the_plan)
            outcome.report = report
            outcome.notes += report.notes
            counts = {**counts, **{f"applied_{k}": v for k, v in report.counts.items()}}
            if report.failures:
                errors["items"] = [_failure(f) for f in report.failures]
            if the_plan.hold is not None:
                held = {"reason": the_plan.hold.reason, "deletions": report.held}
                outcome.status = RunStatus.HELD
            elif report.retryable_failures:
                outcome.status = RunStatus.PARTIAL
            else:
                for side in SIDES:  # only now: everything read was applied
                    store.save_cursor(kind, side, changes[side].cursor)
                outcome.status = RunStatus.PARTIAL if report.failures else RunStatus.SUCCEEDED
    except (RunAborted, AuthExpired) as exc:
        outcome.status, outcome.error = RunStatus.FAILED, f"credentials expired: {exc}"
    except ConnectorError as exc:
        outcome.status, outcome.error = RunStatus.FAILED, repr(exc)
    if outcome.error:
        errors["run"] = outcome.error
    timings["total"] = time.perf_counter() - started
    store.finish_run(
        run_id, RunOutcome(outcome.status, counts, errors, timings, held, outcome.notes)
    )
    return outcome


def _failure(failure: ItemFailure) -> dict[str, Any]:
    return {
        "action": failure.action,
        "item": failure.item,
        "error": failure.error,
        "retryable": failure.retryable,
    }
