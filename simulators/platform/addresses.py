"""Loopback addresses for simulated hosts.

Each run takes a random /24 inside 127.0.0.0/8 (never 127.0.0.0/24, where 127.0.0.1 lives), so
hosts such as `autodiscover.contoso.example` can listen on their real ports 443 and 80 on an
address of their own, and parallel runs on one machine rarely meet.
"""

from __future__ import annotations

import ipaddress
import random
import threading


def _normalise(hostname: str) -> str:
    return hostname.rstrip(".").lower()


class AddressPool:
    """Hands out host addresses from one /24; the same hostname always gets the same address."""

    def __init__(self, network: str | None = None, *, rng: random.Random | None = None) -> None:
        if network is None:
            pick = rng or random.SystemRandom()
            network = f"127.{pick.randint(1, 254)}.{pick.randint(0, 255)}.0/24"
        self.network = ipaddress.IPv4Network(network)
        if not self.network.is_loopback:
            raise ValueError(f"{network} is not a loopback network")
        self._free = [str(a) for a in self.network.hosts()]
        self._by_name: dict[str, str] = {}
        self._lock = threading.Lock()

    def allocate(self, hostname: str | None = None) -> str:
        """An address for `hostname` (the one it already has, if any); anonymous without a name."""
        with self._lock:
            if hostname is not None and _normalise(hostname) in self._by_name:
                return self._by_name[_normalise(hostname)]
            address = self._take()
            if hostname is not None:
                self._by_name[_normalise(hostname)] = address
            return address

    def reassign(self, hostname: str) -> str:
        """A fresh address for `hostname` (its old one was taken by someone else)."""
        with self._lock:
            address = self._take()
            self._by_name[_normalise(hostname)] = address
            return address

    def assign(self, hostname: str, address: str) -> None:
        """Give `hostname` an address already handed out (an alias of another host)."""
        with self._lock:
            self._by_name[_normalise(hostname)] = address

    def address_of(self, hostname: str) -> str | None:
        with self._lock:
            return self._by_name.get(_normalise(hostname))

    def assigned(self) -> dict[str, str]:
        with self._lock:
            return dict(self._by_name)

    def _take(self) -> str:
        if not self._free:
            raise RuntimeError(f"no free address left in {self.network}")
        return self._free.pop(0)
