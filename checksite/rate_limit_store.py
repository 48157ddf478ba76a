"""Rate-limit counters in the application's own database, so that every web process (and
every host on the same PostgreSQL) shares them without Redis.

A `limits` storage (Flask-Limiter's backend), registered for `db+<database URL>`, e.g.
`db+sqlite:////srv/instance/synchronizer.db`. It serves the fixed-window strategy: one row per
client and window, incremented in one atomic upsert, restarted once its window has passed.
"""

from __future__ import annotations

import random
import time
from typing import Any, cast

from limits.storage import Storage
from sqlalchemy import Table, case, delete, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from common.db import make_engine
from common.models import RateLimitCounter

PREFIX = "db+"
_TABLE = cast(Table, RateLimitCounter.__table__)  # declarative types it as a FromClause
_SWEEP_SHARE = 0.01  # about one increment in a hundred also deletes windows long gone


def storage_uri(database_url: str) -> str:
    return PREFIX + database_url


class DatabaseStorage(Storage):
    STORAGE_SCHEME = ["db+sqlite", "db+postgresql", "db+postgresql+psycopg", "db+postgres"]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._engine = make_engine(uri.removeprefix(PREFIX))
        dialect = self._engine.dialect.name
        self._insert = postgresql_insert if dialect == "postgresql" else sqlite_insert

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        statement = (
            self._insert(_TABLE)
            .values(key=key, count=amount, expires_at=now + expiry)
            .on_conflict_do_update(
                index_elements=[_TABLE.c.key],
                set_={
                    "count": case(
                        (_TABLE.c.expires_at <= now, amount), else_=_TABLE.c.count + amount
                    ),
                    "expires_at": case(
                        (_TABLE.c.expires_at <= now, now + expiry), else_=_TABLE.c.expires_at
                    ),
                },
            )
            .returning(_TABLE.c.count)
        )
        with self._engine.begin() as connection:
            count = int(connection.execute(statement).scalar_one())
            if random.random() < _SWEEP_SHARE:
                connection.execute(delete(_TABLE).where(_TABLE.c.expires_at < now - 3600))
        return count

    def get(self, key: str) -> int:
        row = self._row(key)
        return int(row.count) if row is not None and row.expires_at > time.time() else 0

    def get_expiry(self, key: str) -> float:
        row = self._row(key)
        return float(row.expires_at) if row is not None else time.time()

    def check(self) -> bool:
        try:
            with self._engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with self._engine.begin() as connection:
            return int(connection.execute(delete(_TABLE)).rowcount)

    def clear(self, key: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(delete(_TABLE).where(_TABLE.c.key == key))

    def _row(self, key: str) -> Any:
        with self._engine.connect() as connection:
            query = select(_TABLE.c.count, _TABLE.c.expires_at).where(_TABLE.c.key == key)
            return connection.execute(query).first()
