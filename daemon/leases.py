"""Leases in the database: who may work on something now, until when.

A lease is a row's owner and expiry columns (`Slot`): a sync user's mailbox (one worker at a
time, DESIGN.md "Scaling out"), the scheduler's singleton row. It is taken with one UPDATE
whose WHERE says "free or expired", so of two workers that try at once exactly one changes
the row: on PostgreSQL the second UPDATE waits for the first's row lock and then re-checks
the WHERE against the row the first wrote; on SQLite writes are serialised. It is renewed
while the work runs (`held`: a thread renews every third of its time to live) and released
at the end; a killed worker's lease is never released and simply expires.

Time is the database's on PostgreSQL (hosts whose clocks differ agree on expiry); SQLite
lives on one host, whose clock it is.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from common.db import Database
from common.models import SyncUser, utcnow

log = logging.getLogger(__name__)

DEFAULT_TTL = timedelta(seconds=90)


@dataclass(frozen=True)
class Slot:
    """Where a lease lives: the owner and expiry columns of the row `where` selects."""

    owner: InstrumentedAttribute[str | None]
    expires: InstrumentedAttribute[datetime | None]
    where: ColumnElement[bool]
    label: str  # for logs: "sync user 7"


def user_slot(user_id: int) -> Slot:
    return Slot(
        SyncUser.lease_owner,
        SyncUser.lease_expires_at,
        SyncUser.id == user_id,
        f"sync user {user_id}",
    )


def new_owner() -> str:
    """A name no other holder has: host, process and a random part (threads of one process
    hold leases of their own)."""
    return f"{socket.gethostname()[:50]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def database_now(session: Session) -> datetime:
    if session.get_bind().dialect.name == "postgresql":
        now: datetime = session.execute(select(func.now())).scalar_one()
        return now
    return utcnow()


class Lease:
    """A lease held: its slot, owner and current expiry; `lost` is set when a renewal found
    the lease gone (the holder stalled past its expiry and someone else took it)."""

    def __init__(self, slot: Slot, owner: str, expires_at: datetime) -> None:
        self.slot = slot
        self.owner = owner
        self.expires_at = expires_at
        self.lost = threading.Event()

    def __repr__(self) -> str:
        return f"Lease({self.slot.label}, {self.owner}, until {self.expires_at.isoformat()})"


def take(
    db: Database, slot: Slot, owner: str | None = None, ttl: timedelta = DEFAULT_TTL
) -> Lease | None:
    """The lease, if it is free or expired (or already `owner`'s); None while another holds it."""
    owner = owner or new_owner()
    with db.session() as session:
        now = database_now(session)
        free = or_(slot.owner.is_(None), slot.expires.is_(None), slot.expires <= now)
        table = slot.owner.class_
        result = session.execute(
            update(table)
            .where(slot.where, or_(free, slot.owner == owner))
            .values({slot.owner: owner, slot.expires: now + ttl})
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
    return Lease(slot, owner, now + ttl)


def renew(db: Database, lease: Lease, ttl: timedelta = DEFAULT_TTL) -> bool:
    """Push the expiry on; False (and `lease.lost` set) when the lease is no longer ours."""
    with db.session() as session:
        now = database_now(session)
        table = lease.slot.owner.class_
        result = session.execute(
            update(table)
            .where(lease.slot.where, lease.slot.owner == lease.owner)
            .values({lease.slot.expires: now + ttl})
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            lease.lost.set()
            return False
    lease.expires_at = now + ttl
    return True


def release(db: Database, lease: Lease) -> bool:
    """Free the lease if it is still ours (never someone else's who took it after expiry)."""
    with db.session() as session:
        table = lease.slot.owner.class_
        result = session.execute(
            update(table)
            .where(lease.slot.where, lease.slot.owner == lease.owner)
            .values({lease.slot.owner: None, lease.slot.expires: None})
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


class _Renewer(threading.Thread):
    def __init__(self, db: Database, lease: Lease, ttl: timedelta) -> None:
        super().__init__(name=f"lease {lease.slot.label}", daemon=True)
        self.db, self.lease, self.ttl = db, lease, ttl
        self.stopping = threading.Event()

    def run(self) -> None:
        every = self.ttl.total_seconds() / 3
        while not self.stopping.wait(every):
            try:
                if not renew(self.db, self.lease, self.ttl):
                    log.error("%s was taken by another holder while %s held it", *self._who())
                    return
            except Exception:  # the database may be back before the lease expires
                log.exception("renewing the lease on %s failed", self.lease.slot.label)

    def _who(self) -> tuple[str, str]:
        return self.lease.slot.label, self.lease.owner


@contextmanager
def held(
    db: Database, slot: Slot, ttl: timedelta = DEFAULT_TTL, owner: str | None = None
) -> Iterator[Lease | None]:
    """The lease for the block (None if another holds it), renewed while the block runs and
    released after it, however it ends."""
    lease = take(db, slot, owner, ttl)
    if lease is None:
        yield None
        return
    renewer = _Renewer(db, lease, ttl)
    renewer.start()
    try:
        yield lease
    finally:
        renewer.stopping.set()
        renewer.join()
        release(db, lease)
