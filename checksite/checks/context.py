"""What a check gets: the target, guarded network access, settings, and facts it shares with
the other checks of the same run (computed once, e.g. the domain's MX classification)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import requests

from checksite.checks.channel_binding import binding_session
from common.netguard import NetGuard
from common.netguard_policy import InvalidHost, parse_ip_literal

if TYPE_CHECKING:
    from common.config import Settings

T = TypeVar("T")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_LOCAL_PART = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}$")


class FactFailed(Exception):
    """A shared fact could not be computed; the check that computed it reports why."""

    def __init__(self, name: str, error: Exception) -> None:
        self.name = name
        self.error = error
        super().__init__(f"{name} could not be determined ({type(error).__name__}: {error})")


@dataclass(frozen=True)
class _Failure:
    error: Exception


class TargetError(ValueError):
    """The target is not a domain or mailbox address; the message says what is wrong."""


@dataclass(frozen=True)
class Target:
    domain: str  # lower-case, IDNA (ASCII) form
    mailbox: str | None = None
    password: str | None = field(default=None, repr=False)
    superoffice_url: str | None = None
    ews_url: str | None = None
    oab_url: str | None = None
    superoffice_username: str | None = None
    superoffice_password: str | None = field(default=None, repr=False)

    @property
    def text(self) -> str:
        return self.mailbox or self.domain


def parse_target(
    text: str,
    *,
    password: str | None = None,
    superoffice_url: str | None = None,
    ews_url: str | None = None,
    oab_url: str | None = None,
    superoffice_username: str | None = None,
    superoffice_password: str | None = None,
) -> Target:
    """A Target from what a person typed: `contoso.com` or `someone@contoso.com`."""
    raw = (text or "").strip()
    if not raw:
        raise TargetError("enter a domain (contoso.com) or a mailbox address")
    mailbox = None
    domain_text = raw
    if "@" in raw:
        local, _, domain_text = raw.rpartition("@")
        if not _LOCAL_PART.match(local):
            raise TargetError("the part before @ is not a valid mailbox name")
    domain = normalise_domain(domain_text)
    if "@" in raw:
        mailbox = f"{raw.rpartition('@')[0]}@{domain}"
    for name, url in (
        ("SuperOffice URL", superoffice_url),
        ("EWS URL", ews_url),
        ("OAB URL", oab_url),
    ):
        if url:
            _check_url(name, url)
    if password and mailbox is None:
        raise TargetError("a password needs a mailbox address (someone@contoso.com)")
    if superoffice_username and not superoffice_url:
        raise TargetError("SuperOffice credentials need the SuperOffice URL")
    if oab_url and not ews_url:
        raise TargetError("an OAB URL needs the EWS URL too")
    return Target(
        domain=domain,
        mailbox=mailbox,
        password=password or None,
        superoffice_url=superoffice_url or None,
        ews_url=ews_url or None,
        oab_url=oab_url or None,
        superoffice_username=superoffice_username or None,
        superoffice_password=superoffice_password or None,
    )


def normalise_domain(text: str) -> str:
    name = text.strip().rstrip(".").lower()
    try:
        if parse_ip_literal(name) is not None:
            raise TargetError("enter a domain name, not an IP address")
    except InvalidHost:
        raise TargetError("enter a domain name, not an IP address") from None
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise TargetError("this is not a valid domain name") from None
    labels = ascii_name.split(".")
    if len(labels) < 2 or len(ascii_name) > 253 or not all(_LABEL.match(x) for x in labels):
        raise TargetError("this is not a valid domain name (like contoso.com)")
    return ascii_name


def _check_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise TargetError(f"the {name} must be an https:// address")


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
