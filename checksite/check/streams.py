"""How many live-progress streams the web server serves at once, per client and in total,
counted across every web process (and every host on the same PostgreSQL).

Each stream holds a server thread until its check ends (the deadline, plus a few seconds), so
without a cap a handful of clients could occupy every thread and starve the pages and the API;
a cap kept in one process's memory holds only per process, so a client spreading its streams
over the workers would get a share of each. The slots therefore live in the database, beside
the rate-limit counters (`rate_limit_counter`, the same shared store): one row per stream, its
`expires_at` a lease, so a slot held by a process that died frees itself when the lease ends.
A refused stream costs the page nothing but liveness: it reloads shortly and shows the report.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import cast

from sqlalchemy import Connection, Table, delete, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from common.db import Database
from common.models import RateLimitCounter

_TABLE = cast(Table, RateLimitCounter.__table__)
PREFIX = "stream "  # a stream's row: "stream <client> <token>"
_LOCK_KEY = "stream-slots"  # the row every acquirer updates first, so acquirers take turns
LEASE_MARGIN_S = 5.0  # a stream may outlive its own timeout by a little (the last event)


class StreamSlots:
    def __init__(self, database: Database) -> None:
        self._database = database
        engine = database.engine
        self._insert = postgresql_insert if engine.dialect.name == "postgresql" else sqlite_insert

    def acquire(
        self, client: str, per_client: int, total: int, lease_s: float
    ) -> Callable[[], None] | None:
        """A release function for a slot held at most `lease_s` seconds, or None when the
        client or the whole installation is at its limit."""
        key = f"{PREFIX}{client} {secrets.token_urlsafe(12)}"
        now = time.time()
        with self._database.engine.begin() as connection:
            self._take_turn(connection, now)
            connection.execute(
                delete(_TABLE).where(
                    _TABLE.c.key.startswith(PREFIX, autoescape=True), _TABLE.c.expires_at <= now
                )
            )
            held = self._count(connection, PREFIX)
            mine = self._count(connection, f"{PREFIX}{client} ")
            if held >= total or mine >= per_client:
                return None
            connection.execute(
                self._insert(_TABLE).values(key=key, count=1, expires_at=now + lease_s)
            )
        released = threading.Event()

        def release() -> None:
            if released.is_set():
                return  # the generator's end and the response's close both call it
            released.set()
            with self._database.engine.begin() as connection:
                connection.execute(delete(_TABLE).where(_TABLE.c.key == key))

        return release

    def in_use(self) -> int:
        with self._database.engine.connect() as connection:
            return self._count(connection, PREFIX, time.time())

    def _take_turn(self, connection: Connection, now: float) -> None:
        """Write the lock row first: SQLite then holds its write lock, PostgreSQL the row's,
        until this transaction ends, so no two acquirers count at the same time."""
        statement = self._insert(_TABLE).values(key=_LOCK_KEY, count=0, expires_at=now)
        connection.execute(
            statement.on_conflict_do_update(index_elements=[_TABLE.c.key], set_={"expires_at": now})
        )

    @staticmethod
    def _count(connection: Connection, prefix: str, now: float | None = None) -> int:
        query = select(func.count()).where(_TABLE.c.key.startswith(prefix, autoescape=True))
        if now is not None:
            query = query.where(_TABLE.c.expires_at > now)
        return int(connection.execute(query).scalar_one())
