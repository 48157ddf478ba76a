"""`daemon.queue`: the huey instance on the configured backend (SqliteHuey in its own file by
default, RedisHuey on redis://), never silently nowhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from huey.storage import RedisStorage, SqliteStorage

from common.config import Settings
from daemon import queue
from daemon.queue import QueueNotConfigured, huey

ran: list[int] = []


@huey.task()
def remember(value: int) -> None:
    ran.append(value)


@pytest.fixture(autouse=True)
def unconfigured_after() -> Iterator[None]:
    yield
    queue.unconfigure()


def test_default_is_sqlite_in_its_own_file_in_the_instance_folder(tmp_path: Path) -> None:
    settings = Settings.load(environ={}, instance_path=tmp_path / "instance")
    queue.configure(settings.queue_url)
    assert isinstance(huey.storage, SqliteStorage)
    assert Path(huey.storage.filename) == tmp_path / "instance" / "queue.db"
    assert Path(huey.storage.filename) != Path(settings.database_url.split("///", 1)[1])
    remember(1)
    assert huey.pending_count() == 1
    assert ran == []  # queued, not run: no consumer
    # Another process opening the same file sees the task (what a worker does).
    again = SqliteStorage(queue.NAME, filename=str(tmp_path / "instance" / "queue.db"))
    assert again.queue_size() == 1


def test_redis_url_gives_redis_storage_on_that_server(redis_url: str) -> None:
    queue.configure(redis_url)
    assert isinstance(huey.storage, RedisStorage)
    huey.flush()
    remember(2)
    client = redis.Redis.from_url(redis_url)
    assert client.llen("huey.redis.synchronizer") == 1
    assert queue.backend() == "redis"
    huey.flush()


def test_immediate_mode_runs_in_the_caller() -> None:
    ran.clear()
    queue.configure("memory://", immediate=True)
    remember(3)
    assert ran == [3]


def test_a_task_before_configure_is_refused_not_lost() -> None:
    queue.unconfigure()
    with pytest.raises(QueueNotConfigured, match="configure"):
        remember(4)


def test_a_sqlite_queue_in_memory_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a file"):
        queue.configure("sqlite://")
