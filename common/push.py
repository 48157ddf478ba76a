"""What the web app's push receivers may ask of the daemon.

The web app never imports the daemon: the composition root (`synchronizer serve`, `demo`,
`wsgi.py`) builds these callables from the daemon and hands them to `create_app`. Without
them (a web app on its own, a test of the receivers alone) notifications are still checked
and recorded, and the poll syncs the change at the user's next interval.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from common.kinds import ItemKind


@dataclass(frozen=True)
class PushTriggers:
    # An immediate sync of one user's kind, coalesced with a task already waiting for it
    # (ten notifications in a second are one sync); True when a task was queued.
    enqueue_sync: Callable[[int, ItemKind], bool]
    # Graph dropped notifications (`missed`): list the user's groupware side of that kind
    # afresh at the next sync, and queue it.
    enqueue_reconcile: Callable[[int, ItemKind], bool]
    # A subscription must be renewed or made again now (a lifecycle notification said so).
    enqueue_upkeep: Callable[[], bool]


def hash_state(client_state: str) -> str:
    """What is kept of a subscription's clientState (the daemon makes it, the receiver checks
    notifications against it)."""
    return hashlib.sha256(client_state.encode()).hexdigest()
