"""How many live-progress streams one process serves at once, per client and in total.

Each stream holds a server thread until its check ends (the deadline, plus a few seconds), so
without a cap a handful of clients could occupy every thread and starve the pages and the API.
A refused stream costs the page nothing but liveness: it reloads shortly and shows the report.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable


class StreamSlots:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._per_client: Counter[str] = Counter()
        self._total = 0

    def acquire(self, client: str, per_client: int, total: int) -> Callable[[], None] | None:
        """A release function for a slot, or None when the client or the process is full."""
        with self._lock:
            if self._total >= total or self._per_client[client] >= per_client:
                return None
            self._total += 1
            self._per_client[client] += 1
        released = threading.Event()

        def release() -> None:
            with self._lock:
                if released.is_set():
                    return  # the generator's end and the response's close both call it
                released.set()
                self._total -= 1
                self._per_client[client] -= 1
                if self._per_client[client] <= 0:
                    del self._per_client[client]

        return release

    def in_use(self) -> int:
        with self._lock:
            return self._total
