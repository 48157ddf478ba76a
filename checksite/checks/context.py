"""What a check gets: the target, guarded network access, settings, and facts it shares with
the other checks of the same run (computed once, e.g. the domain's MX classification)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import requests

from checksite.checks.channel_binding import binding_session
from checksite.checks.target import Target, TargetError, normalise_domain, parse_target
from common.netguard import NetGuard

if TYPE_CHECKING:
    from common.config import Settings

T = TypeVar("T")


class FactFailed(Exception):
    """A shared fact could not be computed; the check that computed it reports why."""

    def __init__(self, name: str, error: Exception) -> None:
        self.name = name
        self.error = error
        super().__init__(f"{name} could not be determined ({type(error).__name__}: {error})")


@dataclass(frozen=True)
class _Failure:
    error: Exception


__all__ = [
    "CheckContext",
    "FactFailed",
    "Target",
    "TargetError",
    "normalise_domain",
    "parse_target",
]


@dataclass
class CheckContext:
    target: Target
    guard: NetGuard
    settings: Settings | None = None
    # Tokens a person handed over for this run only (e.g. an administrator's sign-in).
    credentials: dict[str, str] = field(default_factory=dict, repr=False)
    _facts: dict[str, Any] = field(default_factory=dict, repr=False)
    _locks: dict[str, threading.Lock] = field(default_factory=dict, repr=False)
    _guard_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _threads: list[threading.Thread] = field(default_factory=list, repr=False)

    def session(self) -> requests.Session:
        """A fresh guarded requests session (cheap; one per check avoids shared state) that
        keeps server certificates for NTLM's channel binding."""
        return binding_session(self.guard)

    def fact(self, name: str, compute: Callable[[], T]) -> T:
        """A value shared by the checks of one run, computed by the first that asks.

        A computation that failed is not tried again by the next check that asks (it would
        only fail again, after the same wait): the first asker gets the error itself, the
        others FactFailed."""
        with self._guard_lock:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            if name not in self._facts:
                try:
                    self._facts[name] = compute()
                except Exception as exc:
                    self._facts[name] = _Failure(exc)
                    raise
            value = self._facts[name]
        if isinstance(value, _Failure):
            raise FactFailed(name, value.error) from value.error
        return value

    def background(self, name: str, work: Callable[..., T], *args: Any) -> Future[T]:
        """Run `work(*args)` in a thread of this run, for work a check may stop waiting for.
        The runner closes the run's sockets and waits for these threads before the report,
        so none outlives the run."""
        future: Future[T] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(work(*args))
            except BaseException as exc:  # handed to whoever reads the future
                future.set_exception(exc)

        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._guard_lock:
            self._threads.append(thread)
        thread.start()
        return future

    def threads(self) -> list[threading.Thread]:
        """The threads `background` started."""
        with self._guard_lock:
            return list(self._threads)

    def setting(self, name: str, default: Any = None) -> Any:
        return getattr(self.settings, name, default) if self.settings is not None else default
