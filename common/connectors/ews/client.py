"""EWS for one mailbox through exchangelib, written once: the connection from the profile,
the server's version, and Exchange's answers as the connector's typed errors.

- Where: the EWS URL of the profile (`ews_url`), entered by hand or found once by
  Autodiscover when the profile is set up (`discover`); inside the daemon exchangelib runs
  with `autodiscover=False`, so a run never walks the Autodiscover chain.
- Who: a service account with the ApplicationImpersonation role acting as each user
  (`access: impersonation`), or each user's own credentials (`access: user`); NTLM or
  Basic (`auth`).
- Which server: 2016 (15.1), 2019 (15.2) and Subscription Edition (15.2 from build 2562),
  read from the `ServerVersionInfo` Exchange puts on every answer; anything else is
  refused before the first item is touched.
- Retries: none here. exchangelib runs with `FailFast`, so `ErrorServerBusy` is never slept
  out: it becomes `Throttled` with Exchange's `BackOffMilliseconds` (the engine reschedules
  or waits a short while); a lost connection is `Transient`; a refused sign-in or
  impersonation `AuthExpired`.
- Batches: CreateItem, UpdateItem, DeleteItem and GetItem take many items per call and
  answer each in its own response message. exchangelib raises the first error it meets in
  a response (the items after it, written all the same, would lose their answers), so the
  services here return every item's error as that item's result.

Sources: EWS throttling and ErrorServerBusy
(https://learn.microsoft.com/exchange/client-developer/exchange-web-services/ews-throttling-in-exchange),
impersonation
(https://learn.microsoft.com/exchange/client-developer/exchange-web-services/impersonation-and-ews-in-exchange),
ResponseCode
(https://learn.microsoft.com/exchange/client-developer/web-service-reference/responsecode),
build numbers (https://learn.microsoft.com/exchange/new-features/build-numbers-and-release-dates).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    NTLM,
    Account,
    Configuration,
    Credentials,
    FailFast,
)
from exchangelib.autodiscover import Autodiscovery
from exchangelib.errors import (
    CASError,
    ErrorAccessDenied,
    ErrorCalendarOccurrenceIsDeletedFromRecurrence,
    ErrorChangeKeyRequiredForWriteOperations,
    ErrorImpersonateUserDenied,
    ErrorImpersonationDenied,
    ErrorInternalServerTransientError,
    ErrorInvalidChangeKey,
    ErrorInvalidSyncStateData,
    ErrorIrresolvableConflict,
    ErrorItemNotFound,
    ErrorNonExistentMailbox,
    ErrorServerBusy,
    ErrorTimeoutExpired,
    EWSError,
    RedirectError,
    ResponseMessageError,
    TransportError,
    UnauthorizedError,
)
from exchangelib.ewsdatetime import UTC
from exchangelib.protocol import BaseProtocol
from exchangelib.services import CreateItem, DeleteItem, GetItem, UpdateItem

from common.connectors.base import (
    AuthExpired,
    ConnectorError,
    CursorExpired,
    NotFound,
    Permanent,
    PreconditionFailed,
    Throttled,
    Transient,
)

DEFAULT_BACK_OFF = 30.0  # seconds, when Exchange says it is busy without saying how long
SE_FIRST_BUILD = 2562  # Subscription Edition RTM is 15.2.2562.17; 2019 CU15 is 15.2.1748
ACCESS = {"impersonation": IMPERSONATION, "user": DELEGATE}
AUTH = {"ntlm": NTLM, "basic": BASIC}


# --- the profile ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EwsProfile:
    """How a profile reaches its Exchange server (`Profile.groupware_settings`):
    `{"ews_url": "https://mail.example.com/EWS/Exchange.asmx", "auth": "ntlm" | "basic",
    "access": "impersonation" | "user"}`. With impersonation the service account's
    `{"username", "password"}` are the profile's `groupware_credentials`; with `user` each
    user's own are in their `SyncUser.tokens`."""

    ews_url: str
    auth: str = "ntlm"
    access: str = "impersonation"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> EwsProfile:
        url = str(settings.get("ews_url") or "").strip()
        if not url.lower().startswith(("https://", "http://")):
            raise Permanent("the profile has no EWS URL: enter it, or find it with Autodiscover")
        auth = str(settings.get("auth") or "ntlm").lower()
        access = str(settings.get("access") or "impersonation").lower()
        if auth not in AUTH:
            raise Permanent(f"EWS authentication {auth!r} is not one of {sorted(AUTH)}")
        if access not in ACCESS:
            raise Permanent(f"EWS access {access!r} is not one of {sorted(ACCESS)}")
        return cls(url, auth, access)


@dataclass(frozen=True, slots=True)
class Login:
    """A username (`DOMAIN\\user`, `user@domain` or the bare account) and its password."""

    username: str
    password: str

    @classmethod
    def from_secrets(cls, secrets: Mapping[str, Any] | None) -> Login:
        username = str((secrets or {}).get("username") or "")
        password = str((secrets or {}).get("password") or "")
        if not username or not password:
            raise AuthExpired("no EWS username and password are stored: enter them again")
        return cls(username, password)


@dataclass(frozen=True, slots=True)
class Discovered:
    ews_url: str
    mailbox: str  # the address Autodiscover settled on (after redirects)


def discover(address: str, login: Login) -> Discovered:
    """The EWS URL of a mailbox by Autodiscover (DNS, POX, SRV, the HTTP redirect), as
    exchangelib walks it. For setting a profile up, never inside the daemon."""
    with translated():
        response, protocol = Autodiscovery(
            email=address, credentials=Credentials(login.username, login.password)
        ).discover()
    return Discovered(str(protocol.service_endpoint), str(response.autodiscover_smtp_address))


def trust(ca_file: str) -> None:
    """Verify every EWS server's certificate with `ca_file` (the operator's CA bundle), per
    request, so `REQUESTS_CA_BUNDLE` cannot override it. exchangelib takes its HTTP adapter
    from a class attribute: this is for the whole process, as the daemon's CA setting is."""

    class TrustingAdapter(requests.adapters.HTTPAdapter):
        def send(
            self,
            request: requests.PreparedRequest,
            stream: bool = False,
            timeout: Any = None,
            verify: bool | str = True,
            cert: Any = None,
            proxies: Any = None,
        ) -> requests.Response:
            return super().send(request, stream, timeout, ca_file, cert, proxies)

    BaseProtocol.HTTP_ADAPTER_CLS = TrustingAdapter


# --- errors ---------------------------------------------------------------------------------

_PRECONDITION = (
    ErrorIrresolvableConflict,
    ErrorInvalidChangeKey,
    ErrorChangeKeyRequiredForWriteOperations,
)
_AUTH = (
    UnauthorizedError,
    ErrorImpersonateUserDenied,
    ErrorImpersonationDenied,
    ErrorAccessDenied,
    CASError,
    RedirectError,  # a reverse proxy's login page instead of EWS (NetScaler and the like)
)


def error_of(exc: BaseException) -> ConnectorError:
    """An exchangelib error (or one of requests) as the connector's typed error."""
    if isinstance(exc, ConnectorError):
        return exc
    what = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ErrorServerBusy):
        message = str(exc)
        # exchangelib says "busy" itself for a dropped connection or a closed socket.
        if message.startswith(("Caused by", "Reraised from")):
            return Transient(what)
        return Throttled(float(exc.back_off or DEFAULT_BACK_OFF), what)
    if isinstance(exc, ErrorInvalidSyncStateData):
        return CursorExpired(what)
    if isinstance(exc, ErrorItemNotFound | ErrorCalendarOccurrenceIsDeletedFromRecurrence):
        return NotFound(what)
    if isinstance(exc, _PRECONDITION):
        return PreconditionFailed(what)
    if isinstance(exc, _AUTH):
        return AuthExpired(what)
    if isinstance(exc, ErrorNonExistentMailbox):
        return Permanent(what)
    if isinstance(
        exc, ErrorInternalServerTransientError | ErrorTimeoutExpired | requests.RequestException
    ):
        return Transient(what)
    if isinstance(exc, TransportError) and not isinstance(exc, ResponseMessageError):
        return Transient(what)  # TLS, a dropped or garbled answer: not Exchange's verdict
    return Permanent(what)


@contextmanager
def translated() -> Iterator[None]:
    """Run exchangelib calls, raising what fails as the connector's typed errors."""
    try:
        yield
    except ConnectorError:
        raise
    except (EWSError, requests.RequestException) as exc:
        raise error_of(exc) from exc


def item_error(result: Any) -> ConnectorError | None:
    """The error of one item of a batch (None when the item succeeded)."""
    return error_of(result) if isinstance(result, BaseException) else None


# --- batch services: every item's own error is its result ----------------------------------


class _EachItemAnswered:
    ERRORS_TO_CATCH_IN_RESPONSE: Any = (EWSError,)


class _CreateItem(_EachItemAnswered, CreateItem):
    pass


class _UpdateItem(_EachItemAnswered, UpdateItem):
    pass


class _DeleteItem(_EachItemAnswered, DeleteItem):
    pass


class _GetItem(_EachItemAnswered, GetItem):
    pass


# --- the client -----------------------------------------------------------------------------


def release_of(build: Any) -> str | None:
    """The supported release a build is (None: not supported)."""
    major, minor = build.major_version, build.minor_version
    if (major, minor) == (15, 1):
        return "Exchange Server 2016"
    if (major, minor) == (15, 2):
        if (build.major_build or 0) >= SE_FIRST_BUILD:
            return "Exchange Server Subscription Edition"
        return "Exchange Server 2019"
    return None


class EwsClient:
    """One mailbox's EWS: exchangelib's Account, checked once for a supported server."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self._release: str | None = None

    @classmethod
    def connect(
        cls, profile: EwsProfile, login: Login, mailbox: str, *, max_connections: int = 4
    ) -> EwsClient:
        config = Configuration(
            service_endpoint=profile.ews_url,
            credentials=Credentials(login.username, login.password),
            auth_type=AUTH[profile.auth],
            retry_policy=FailFast(),
            max_connections=max_connections,
        )
        account = Account(
            mailbox,
            config=config,
            autodiscover=False,
            access_type=ACCESS[profile.access],
            default_timezone=UTC,
            locale="en_US",
        )
        return cls(account)

    @property
    def release(self) -> str:
        """The server's release; `Permanent` for one Synchronizer does not support (2013,
        2010, Exchange Online through EWS). exchangelib asks the server's version once per
        endpoint and credentials in a process and keeps it up to date from every answer."""
        if self._release is None:
            with translated():
                version = self.account.version
            found = release_of(version.build)
            if found is None:
                raise Permanent(
                    f"{version.fullname or version.build}: Synchronizer works with Exchange "
                    "Server 2016, 2019 and Subscription Edition"
                )
            self._release = found
        return self._release

    def close(self) -> None:
        self.account.protocol.close()

    # --- batches -------------------------------------------------------------------------

    def get_items(self, ids: Sequence[tuple[str, str | None]], fields: set[Any]) -> list[Any]:
        """GetItem: each id's item, or its error, in order."""
        return self._each(_GetItem, ids, additional_fields=fields, shape="IdOnly")

    def create_items(self, folder: Any, items: Sequence[Any], send: str) -> list[Any]:
        """CreateItem: each item's (id, change key) result, or its error."""
        return self._each(
            _CreateItem,
            items,
            folder=folder,
            message_disposition="SaveOnly",
            send_meeting_invitations=send,
        )

    def update_items(self, changes: Sequence[tuple[Any, list[str]]], send: str) -> list[Any]:
        """UpdateItem with `NeverOverwrite`: an item's change key that is no longer current
        fails that item with ErrorIrresolvableConflict (never AutoResolve, whose outcome
        Microsoft's pages disagree on)."""
        return self._each(
            _UpdateItem,
            changes,
            conflict_resolution="NeverOverwrite",
            message_disposition="SaveOnly",
            send_meeting_invitations_or_cancellations=send,
            suppress_read_receipts=True,
        )

    def delete_items(self, ids: Sequence[Any], send: str) -> list[Any]:
        return self._each(
            _DeleteItem,
            ids,
            delete_type="MoveToDeletedItems",
            send_meeting_cancellations=send,
            affected_task_occurrences="AllOccurrences",
            suppress_read_receipts=True,
        )

    def _each(self, service: Any, items: Sequence[Any], **kwargs: Any) -> list[Any]:
        if not items:
            return []
        self.release  # noqa: B018 (a server we do not support is refused before any write)
        with translated():
            return list(service(account=self.account).call(items=list(items), **kwargs))
