"""Exchange's throttling budgets that the simulator enforces."""

from __future__ import annotations

import collections
import threading


class ConcurrencyBudget:
    """EWSMaxConcurrency: how many EWS requests one account may have in progress at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self.in_flight: collections.Counter[str] = collections.Counter()

    def acquire(self, user: str) -> bool:
        with self._lock:
            if self.in_flight[user] >= self.limit:
                return False
            self.in_flight[user] += 1
            return True

    def release(self, user: str) -> None:
        with self._lock:
            self.in_flight[user] -= 1
