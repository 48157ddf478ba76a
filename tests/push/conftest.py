"""The web app with its push receivers wired to the daemon's queue, as the composition root
wires them, served on loopback for the simulators to post to. The queue has no consumer
(`memory://`): the syncs a notification asked for wait in it, to be counted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import flask
import pytest

from checksite import create_app
from common.config import Settings
from common.db import Database
from common.kinds import ItemKind
from common.push import PushTriggers
from common.schema import upgrade
from daemon import push, queue, tasks
from daemon.queue import huey
from tests.fixtures.simulators import Serve


@dataclass
class Web:
    app: flask.Flask
    db: Database
    url: str  # where the app is served, plain http on loopback

    def queued(self) -> list[tuple[int, ItemKind | None]]:
        """The syncs waiting in the queue: (user, kind), kind None for every kind."""
        return sorted(
            (
                (task.args[0], ItemKind(task.args[1]) if task.args[1] else None)
                for task in huey.pending()
            ),
            key=str,
        )


def _no_connections() -> Any:
    raise AssertionError("the web process never runs a sync")


@pytest.fixture
def web(settings: Settings, serve: Serve) -> Iterator[Web]:
    db = Database(settings.database_url)
    upgrade(db)
    queue.configure("memory://")
    tasks.use(tasks.Runtime(db, _no_connections))
    app = create_app(settings, push=PushTriggers(enqueue_sync=push.request_sync))
    app.config["TESTING"] = True
    yield Web(app, db, serve(app, tls=False).url)
    queue.unconfigure()
    db.dispose()
