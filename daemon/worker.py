"""`synchronizer worker`: a huey consumer running the sync tasks on threads.

SIGINT and SIGTERM both stop it gracefully: no new task is taken, running syncs finish. A
second signal, or `shutdown_timeout` seconds, cuts them short; huey then reports them
interrupted and `daemon.tasks` hands them back to the queue (their leases expire, and the
engine's journal makes an interrupted run safe to run again). Huey's own periodic scheduler
is off: the dispatcher runs in `synchronizer scheduler`, one per deployment.
"""

from __future__ import annotations

import logging
import signal
from datetime import timedelta
from typing import Any

from huey.consumer import Consumer

from common.config import Settings
from daemon import housekeeping, push, queue, tasks

log = logging.getLogger(__name__)


class GracefulConsumer(Consumer):
    """Huey's consumer with SIGTERM as graceful as SIGINT (huey makes one of them abrupt)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._signal_actions[signum] = (False, True)  # (restart, graceful)


def run_worker(
    settings: Settings,
    *,
    workers: int,
    shutdown_timeout: float | None,
    lease_seconds: float | None = None,
) -> None:
    huey = queue.configure(settings.queue_url)
    push.configure(settings)  # the sync tasks' runtime and the push subscriptions' upkeep
    if lease_seconds is not None:
        tasks.runtime().lease_ttl = timedelta(seconds=lease_seconds)
    log.debug("housekeeping tasks: %s", housekeeping.refresh_tokens.name)  # registered on huey
    consumer = GracefulConsumer(
        huey,
        workers=workers,
        worker_type="thread",
        periodic=False,
        shutdown_timeout=shutdown_timeout,
        max_delay=1.0,  # an idle SqliteHuey worker polls; a task waits at most a second
    )
    log.info("worker: %d threads on %s", workers, queue.backend())
    consumer.run()
