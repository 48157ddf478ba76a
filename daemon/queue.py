"""The task queue: one huey instance, as huey's own recipe has it (the tasks are declared on
it in `daemon.tasks`).

The instance exists at import, so that tasks can be declared on it, but it has no storage
until `configure` points it at the configured backend: SqliteHuey's storage in its own file
(`QUEUE_URL` sqlite:///PATH, by default instance/queue.db, never the application's database),
RedisHuey's when `QUEUE_URL` is redis:// or rediss://, and huey's in-memory storage for
memory:// (one process only: tests). A task enqueued before `configure` fails loudly instead
of vanishing. Tests where a real consumer is not the point use `configure(..., immediate=True)`:
tasks then run in the caller, at once.

Results are not stored: the database, not the queue, records what a task did (`SyncRun`,
`SyncUser`), and a result store that nobody reads only grows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from huey import Huey
from huey.storage import BaseStorage, MemoryStorage, RedisStorage, SqliteStorage
from sqlalchemy.engine import make_url

NAME = "synchronizer"


class QueueNotConfigured(RuntimeError):
    pass


class _Unconfigured(BaseStorage):
    """The storage before `configure`: every use says what is missing."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise QueueNotConfigured(
            "the task queue is not configured: call daemon.queue.configure(settings) first"
        )

    enqueue = dequeue = add_to_schedule = read_schedule = queue_size = _refuse
    put_data = peek_data = pop_data = put_if_empty = peek_many = delete_data = _refuse


huey = Huey(NAME, results=False, utc=True, storage_class=_Unconfigured)


def storage_for(queue_url: str) -> tuple[type[BaseStorage], dict[str, Any]]:
    """The huey storage class and its arguments for a QUEUE_URL."""
    scheme = urlsplit(queue_url).scheme
    if scheme in ("redis", "rediss"):
        return RedisStorage, {"url": queue_url}
    if scheme == "sqlite":
        database = make_url(queue_url).database
        if not database or database == ":memory:":
            raise ValueError(f"QUEUE_URL {queue_url!r}: SqliteHuey needs a file, not memory")
        path = Path(database)
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteStorage, {"filename": str(path)}
    if scheme == "memory":
        return MemoryStorage, {}
    raise ValueError(f"QUEUE_URL {queue_url!r}: expected sqlite:///PATH, redis://… or memory://")


def configure(queue_url: str, *, immediate: bool = False) -> Huey:
    """Point the instance at `queue_url`'s backend (closing the one it had); with `immediate`
    tasks run at once in the caller, on in-memory storage."""
    storage_class, kwargs = storage_for(queue_url)
    old = huey.storage
    huey.storage_class, huey.storage_kwargs = storage_class, kwargs
    huey._immediate = immediate  # the property's setter only rebuilds storage on a change
    huey.storage = huey.create_storage()
    if old is not huey.storage:
        _close(old)
    return huey


def unconfigure() -> None:
    """Back to no storage (between tests that configure different backends)."""
    _close(huey.storage)
    huey._immediate = False
    huey.storage = _Unconfigured(NAME)


def _close(storage: BaseStorage) -> None:
    if isinstance(storage, RedisStorage):
        storage.pool.disconnect()
    elif isinstance(storage, SqliteStorage):
        storage.close()


def backend() -> str:
    """Which storage the instance uses now (for `synchronizer status`): sqlite, redis, memory."""
    storage = huey.storage
    if isinstance(storage, RedisStorage):
        return "redis"
    if isinstance(storage, SqliteStorage):
        return "sqlite"
    if isinstance(storage, MemoryStorage):
        return "memory"
    return "not configured"
