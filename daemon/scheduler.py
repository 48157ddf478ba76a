"""`synchronizer scheduler`: exactly one per deployment runs the periodic dispatcher.

Any number may be started (one per host, for failover); they elect one through the lease on
the `scheduler` row of `singleton_lease`. The one holding it ticks (by default every minute)
and renews it by taking it again; the others try every third of the lease's time to live and
take over when it has expired, that is when the one in charge died without a word. One that
is stopped (SIGINT, SIGTERM) releases the lease on its way out, so a waiting one takes over
at its next try instead of waiting out the expiry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from common.db import Database
from common.models import SingletonLease, utcnow
from daemon.leases import Lease, Slot, new_owner, release, take

log = logging.getLogger(__name__)

NAME = "scheduler"


def scheduler_slot() -> Slot:
    return Slot(
        SingletonLease.owner,
        SingletonLease.expires_at,
        SingletonLease.name == NAME,
        "the scheduler",
    )


def ensure_row(db: Database, name: str = NAME) -> None:
    """The singleton's row (the scheduler's is made by the migration; a database made
    otherwise may lack it, and other singletons make theirs when first used)."""
    try:
        with db.session() as session:
            if session.get(SingletonLease, name) is None:
                session.add(SingletonLease(name=name))
    except IntegrityError:
        pass  # another scheduler made it at the same moment


@dataclass(frozen=True)
class Leader:
    owner: str
    expires_at: datetime
    taken_at: datetime | None


def current_leader(db: Database) -> Leader | None:
    """Who runs the dispatcher now (None when nobody holds an unexpired lease)."""
    with db.session() as session:
        row = session.scalar(select(SingletonLease).where(SingletonLease.name == NAME))
    if row is None or row.owner is None or row.expires_at is None or row.expires_at <= utcnow():
        return None
    return Leader(row.owner, row.expires_at, row.taken_at)


class Scheduler:
    """Elects itself or waits; while elected calls `tick(now)` every `every`."""

    def __init__(
        self,
        db: Database,
        tick: Callable[[datetime], object],
        *,
        every: timedelta = timedelta(minutes=1),
        ttl: timedelta = timedelta(seconds=30),
        owner: str | None = None,
    ) -> None:
        self.db = db
        self.tick = tick
        self.every = every
        self.ttl = ttl
        self.owner = owner or new_owner()
        self.lease: Lease | None = None
        self.elected = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set; the lease is released on the way out."""
        ensure_row(self.db)
        next_tick = 0.0
        try:
            while not stop.is_set():
                if self._hold():
                    now = utcnow()
                    if now.timestamp() >= next_tick:
                        next_tick = now.timestamp() + self.every.total_seconds()
                        self._tick(now)
                stop.wait(min(self.ttl.total_seconds() / 3, self.every.total_seconds()))
        finally:
            if self.lease is not None:
                release(self.db, self.lease)
                log.info("scheduler %s stopped and handed over", self.owner)

    def _hold(self) -> bool:
        """Take or renew the lease (taking one's own renews it)."""
        try:
            lease = take(self.db, scheduler_slot(), self.owner, self.ttl)
        except Exception:
            log.exception("the scheduler could not reach the database")
            lease = None
        if lease is not None and self.lease is None:
            self._mark_taken()
            log.info("scheduler %s elected", self.owner)
            self.elected.set()
        elif lease is None and self.lease is not None:
            log.warning("scheduler %s lost the lease; waiting", self.owner)
            self.elected.clear()
        self.lease = lease
        return lease is not None

    def _mark_taken(self) -> None:
        with self.db.session() as session:
            row = session.get(SingletonLease, NAME)
            if row is not None and row.owner == self.owner:
                row.taken_at = utcnow()

    def _tick(self, now: datetime) -> None:
        try:
            self.tick(now)
        except Exception:  # the next tick tries again; the scheduler stays in charge
            log.exception("the dispatcher failed")
