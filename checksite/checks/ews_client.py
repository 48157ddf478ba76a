"""exchangelib, the EWS library Synchronizer itself uses, run unchanged but on this run's
network guard: every request of its sessions goes through `common.http.guarded_session`.

NTLM keeps its channel binding (`channel_binding`): servers with Extended Protection refuse
NTLM without one.

exchangelib keeps one Protocol per (endpoint, credentials) in a process-wide cache, and an
Account puts one there as it is made. A Check site run must not share its sessions (bound to
its guard and deadline) with later runs, nor leave a visitor's password in a cache: the
Protocol here is made outside that cache and the one the Account left there is dropped.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

import requests
from exchangelib import DELEGATE, Account, Configuration, Credentials
from exchangelib.errors import TransportError
from exchangelib.ewsdatetime import UTC
from exchangelib.protocol import FailFast, Protocol
from exchangelib.transport import DEFAULT_HEADERS
from requests_ntlm import HttpNtlmAuth

from checksite.checks.channel_binding import ChannelBoundNtlmAuth, binding_session
from common.http import USER_AGENT
from common.netguard import NetGuard


class GuardedProtocol(Protocol):
    """exchangelib's Protocol with sessions that connect only where the guard allows."""

    guard: NetGuard

    def raw_session(  # an instance method: the session is per run, not per class
        self,
        prefix: str,
        oauth2_client: Any = None,
        oauth2_session_params: Any = None,
        oauth2_token_endpoint: Any = None,
    ) -> requests.Session:
        if oauth2_client is not None:
            raise TransportError("OAuth is not used by the Check site's EWS steps")
        session = binding_session(self.guard)
        session.headers.update(DEFAULT_HEADERS)
        session.headers["User-Agent"] = USER_AGENT
        return session

    def create_session(self) -> requests.Session:
        session = super().create_session()
        if type(session.auth) is HttpNtlmAuth:
            session.auth = ChannelBoundNtlmAuth(session.auth.username, session.auth.password)
        return session


def protocol_for(guard: NetGuard, url: str, username: str, password: str) -> GuardedProtocol:
    """A protocol of this run only: FailFast (a check reports, it does not wait out a
    server), authentication and version found out by exchangelib as Synchronizer's would."""
    config = Configuration(
        service_endpoint=url,
        credentials=Credentials(username, password),
        retry_policy=FailFast(),
        max_connections=1,
    )
    protocol: GuardedProtocol = GuardedProtocol.__new__(GuardedProtocol)  # not via the cache
    protocol.guard = guard
    protocol.__init__(config=config)  # type: ignore[misc]
    return protocol


def account_on(protocol: GuardedProtocol, mailbox: str, access_type: str = DELEGATE) -> Account:
    """An exchangelib Account for `mailbox` that talks through `protocol`."""
    account = Account(
        mailbox,
        config=protocol.config,
        autodiscover=False,
        access_type=access_type,
        default_timezone=UTC,
        locale="en_US",
    )
    with suppress(KeyError):  # another run of the same mailbox may have dropped it already
        del Protocol[protocol.config]
    account.protocol = protocol
    return account
