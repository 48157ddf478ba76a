"""The web app with its push receivers wired to the daemon as the composition root wires them
(`daemon.push.triggers`), served on loopback for the simulators to post to. The queue has no
consumer (`memory://`): what a notification asked for waits in it, to be counted and run."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import flask
import pytest
from huey.api import Task

from checksite import create_app
from common.config import Settings
from common.db import Database
from common.kinds import ItemKind
from common.push import PushTriggers
from common.schema import upgrade
from daemon import push, queue
from daemon.queue import huey
from tests.fixtures.simulators import Serve


@dataclass
class Web:
    app: flask.Flask
    db: Database
    url: str  # where the app is served, plain http on loopback
    settings: Settings  # the daemon's, with public_url pointing at the served app

    def queued(self) -> list[tuple[int, ItemKind | None]]:
        """The syncs waiting in the queue: (user, kind), kind None for every kind."""
        return sorted(
            (
                (task.args[0], ItemKind(task.args[1]) if task.args[1] else None)
                for task in huey.pending()
                if task.name == "sync_user"
            ),
            key=str,
        )

    def pending(self, name: str) -> list[Task]:
        return [task for task in huey.pending() if task.name == name]

    def run(self, name: str) -> int:
        """Run the waiting tasks called `name` as a worker would (the others keep waiting);
        how many ran."""
        others, ran = [], 0
        while (task := huey.dequeue()) is not None:
            if task.name == name:
                huey.execute(task)
                ran += 1
            else:
                others.append(task)
        for task in others:
            huey.enqueue(task)
        return ran


@pytest.fixture
def web(settings: Settings, serve: Serve) -> Iterator[Web]:
    db = Database(settings.database_url)
    upgrade(db)
    queue.configure("memory://")
    app = create_app(settings, push=_triggers())
    app.config["TESTING"] = True
    server = serve(app, tls=False)
    daemon_settings = dataclasses.replace(settings, public_url=server.url)
    push.configure(daemon_settings)
    yield Web(app, db, server.url, daemon_settings)
    queue.unconfigure()
    db.dispose()


def _triggers() -> PushTriggers:
    """What `daemon.push.triggers` hands the web app, without configuring the queue again."""
    return PushTriggers(
        enqueue_sync=push.request_sync,
        enqueue_reconcile=push.request_reconcile,
        enqueue_upkeep=push.request_upkeep,
    )
