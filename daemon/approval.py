"""Approving a plan the deletion guard held (`synchronizer approve RUN`).

A held run (`RunStatus.HELD`) applied nothing of what its plan would delete or create and
recorded how many deletions it held per side (`held_plan["deletes"]`). An approval marks the
run; the next run of that user and kind may then delete as many on each side, and no more:
a plan that has grown since (more deletions than were approved) is held again and waits for
a new approval. An approval is used once: whatever the next run does, it is newer than the
approved run, so the one after it is guarded as usual.

Only the newest run of its user and kind can be approved: an older held plan may no longer
be what the next run would do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.db import Database
from common.kinds import ItemKind, RunStatus, Side
from common.models import SyncRun, SyncUser, utcnow


class ApprovalError(ValueError):
    """The run cannot be approved; the message says why."""


@dataclass(frozen=True)
class Approval:
    run_id: int
    user_id: int
    mailbox: str
    kind: ItemKind
    deletes: dict[str, int]
    reason: str
    approved_by: str
    approved_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "user_id": self.user_id,
            "mailbox": self.mailbox,
            "kind": self.kind.value,
            "deletes": self.deletes,
            "reason": self.reason,
            "approved_by": self.approved_by,
            "approved_at": self.approved_at.isoformat(timespec="seconds"),
        }


def _newest(session: Session, user_id: int, kind: ItemKind) -> SyncRun | None:
    """The newest run of the user and kind that ended (a dry run changes and holds nothing;
    a run still marked running either runs now or died, and decides nothing)."""
    return session.scalars(
        select(SyncRun)
        .where(
            SyncRun.sync_user_id == user_id,
            SyncRun.kind == kind,
            SyncRun.dry_run.is_(False),
            SyncRun.status != RunStatus.RUNNING,
        )
        .order_by(SyncRun.id.desc())
        .limit(1)
    ).first()


def approve(db: Database, run_id: int, by: str, now: datetime | None = None) -> Approval:
    """Approve the held plan of run `run_id`; the user is due at once, so the scheduler's
    next tick queues the run that applies it."""
    now = now or utcnow()
    with db.session() as session:
        run = session.get(SyncRun, run_id)
        if run is None:
            raise ApprovalError(f"there is no run {run_id}")
        if run.dry_run:
            raise ApprovalError(f"run {run_id} was a dry run: it holds nothing to approve")
        if run.status is not RunStatus.HELD:
            raise ApprovalError(f"run {run_id} is {run.status.value}, not held for approval")
        plan = run.held_plan or {}
        if run.kind is None or run.sync_user_id is None or "deletes" not in plan:
            raise ApprovalError(
                f"run {run_id} does not say what it held (it is older than approvals): "
                "the next run holds its plan again, approve that one"
            )
        if run.approved_at is not None:
            raise ApprovalError(
                f"run {run_id} was approved already (by {run.approved_by} at "
                f"{run.approved_at.isoformat(timespec='seconds')})"
            )
        newest = _newest(session, run.sync_user_id, run.kind)
        if newest is not None and newest.id != run.id:
            raise ApprovalError(
                f"run {newest.id} of the same user and kind came after run {run_id} "
                f"({newest.status.value}): only the newest plan can be approved"
            )
        user = session.get(SyncUser, run.sync_user_id)
        assert user is not None  # the run's foreign key
        run.approved_at, run.approved_by = now, by
        user.next_sync_at = now
        return Approval(
            run.id,
            user.id,
            user.mailbox,
            run.kind,
            {side: int(n) for side, n in plan["deletes"].items()},
            str(plan.get("reason") or ""),
            by,
            now,
        )


def approved_deletions(db: Database, user_id: int, kind: ItemKind) -> dict[Side, int] | None:
    """What an approval allows the user's next run of `kind` to delete, or None (the guard
    as the profile sets it)."""
    with db.session() as session:
        newest = _newest(session, user_id, kind)
        if (
            newest is None
            or newest.status is not RunStatus.HELD
            or newest.approved_at is None
            or not newest.held_plan
        ):
            return None
        deletes = newest.held_plan.get("deletes") or {}
        return {Side(side): int(n) for side, n in deletes.items()}
