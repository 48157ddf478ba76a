"""What the daemon adds to the engine's run records (`SyncRun`): why a run did not simply
succeed, and the settling of runs a dead worker left "running".

A run's `reason` is one word the metrics count failures by: `throttled` (the service asked
us to wait), `credentials` (a person must sign in again), `transient` (retried with backoff),
`permanent` (tried again at the next interval), `unexpected` (a defect), `item_errors` (the
run ended but some items failed and are retried), `interrupted` (its worker died).

A worker killed mid-run never finishes its `SyncRun`. Once nobody holds the user's lease (the
dead worker's has expired), no run of that user is going on, so every run of theirs still
marked running is settled as failed and `interrupted`. The settling takes the user's lease
itself, so a run that starts at that moment is never mistaken for a dead one.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import or_, select, update

from common.db import Database
from common.kinds import RunStatus
from common.models import SyncRun, SyncUser, utcnow
from daemon.leases import held, new_owner, user_slot

log = logging.getLogger(__name__)

REASONS = {
    "throttled": "throttled",
    "attention": "credentials",
    "retry": "transient",
    "failed": "permanent",
}
INTERRUPTED = "interrupted: its worker stopped before the run ended (the lease expired)"


def mark_reason(db: Database, run_id: int | None, reason: str) -> None:
    if run_id is None:
        return
    with db.session() as session:
        session.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id)
            .values(reason=reason)
            .execution_options(synchronize_session=False)
        )


def settle_abandoned(db: Database, now: datetime | None = None) -> list[int]:
    """Settle the runs dead workers left running; the ids settled."""
    now = now or utcnow()
    with db.session() as session:
        users = sorted(
            {
                user_id
                for user_id in session.scalars(
                    select(SyncRun.sync_user_id)
                    .join(SyncUser, SyncUser.id == SyncRun.sync_user_id)
                    .where(
                        SyncRun.status == RunStatus.RUNNING,
                        or_(SyncUser.lease_expires_at.is_(None), SyncUser.lease_expires_at <= now),
                    )
                )
                if user_id is not None
            }
        )
    settled: list[int] = []
    owner = new_owner()
    for user_id in users:
        with held(db, user_slot(user_id), owner=owner) as lease:
            if lease is None:  # a worker took it meanwhile: its run is alive
                continue
            with db.session() as session:
                runs = list(
                    session.scalars(
                        select(SyncRun).where(
                            SyncRun.sync_user_id == user_id,
                            SyncRun.status == RunStatus.RUNNING,
                        )
                    )
                )
                for run in runs:
                    run.status, run.reason = RunStatus.FAILED, "interrupted"
                    run.finished_at = utcnow()
                    run.errors = {**(run.errors or {}), "run": INTERRUPTED}
                    settled.append(run.id)
    if settled:
        log.info("settled %d run(s) left running by stopped workers: %s", len(settled), settled)
    return settled
