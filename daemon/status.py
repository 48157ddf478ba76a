"""What `synchronizer status` shows: each user's state, last and next sync, last error; the
scheduler in charge; the queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from common.db import Database
from common.models import InvitationState, SyncUser, utcnow
from daemon import queue
from daemon.scheduler import current_leader


def state_of(user: SyncUser, now: datetime) -> str:
    if not user.profile.enabled:
        return "profile off"
    if user.invitation_state is not InvitationState.ACTIVE:
        return user.invitation_state.value
    if user.needs_attention:
        return "needs attention"
    if user.lease_owner and user.lease_expires_at and user.lease_expires_at > now:
        return "syncing"
    if user.failures:
        return "failing"
    if user.queued_at is not None:
        return "queued"
    if user.last_sync_at is None:
        return "never synced"
    return "ok"


def collect(db: Database) -> dict[str, Any]:
    now = utcnow()
    with db.session() as session:
        users = session.scalars(
            select(SyncUser).options(selectinload(SyncUser.profile)).order_by(SyncUser.id)
        ).all()
        rows = [
            {
                "id": user.id,
                "profile": user.profile.name,
                "mailbox": user.mailbox,
                "state": state_of(user, now),
                "last_sync": _iso(user.last_sync_at),
                "next_sync": _iso(user.next_sync_at)
                if user.last_sync_at or user.next_sync_at
                else None,
                "failures": user.failures,
                "needs_attention": user.needs_attention,
                "last_error": user.last_error,
            }
            for user in users
        ]
    leader = current_leader(db)
    try:
        waiting: int | None = int(queue.huey.pending_count()) + int(queue.huey.scheduled_count())
    except Exception:  # the queue may be down while the database answers
        waiting = None
    return {
        "users": rows,
        "scheduler": None
        if leader is None
        else {
            "owner": leader.owner,
            "since": _iso(leader.taken_at),
            "until": _iso(leader.expires_at),
        },
        "queue": {"backend": queue.backend(), "waiting": waiting},
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None
