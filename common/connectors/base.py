"""The interfaces every connector implements (DESIGN.md, "Connectors"), and its typed errors.

A connector is one side of a sync for one user and one kind of item: the CRM's appointments
of an associate, a mailbox's calendar, its contacts. It speaks canonical items
(`common.items`); everything service-specific (paging, batching, retries inside a request,
token refresh) stays behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from common.items import Appointment, Contact, Recurrence

T = TypeVar("T", Appointment, Contact)
T_co = TypeVar("T_co", Appointment, Contact, covariant=True)


# --- errors -------------------------------------------------------------------------------------


class ConnectorError(Exception):
    """Base of every error a connector raises on purpose."""


class NotFound(ConnectorError):
    """The item does not exist (any more)."""


class PreconditionFailed(ConnectorError):
    """The item changed since we read it (etag / ChangeKey mismatch): re-read, re-plan."""


class Throttled(ConnectorError):
    """The service asked us to slow down (429, ErrorServerBusy, rateLimitExceeded)."""

    def __init__(self, retry_after: float, message: str = "throttled") -> None:
        super().__init__(f"{message} (retry after {retry_after:g} s)")
        self.retry_after = retry_after


class AuthExpired(ConnectorError):
    """The credentials no longer work; the user or administrator must reconnect."""


class Transient(ConnectorError):
    """A failure worth retrying later (timeouts, 5xx, dropped connections)."""


class Permanent(ConnectorError):
    """A failure that will not go away by retrying (the service refuses this item)."""


class CursorExpired(ConnectorError):
    """The delta token is no longer valid (Google 410, Graph resync): list everything again."""


# --- values -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stored(Generic[T]):
    """An item as a service holds it: its id, its version (etag/ChangeKey) and our stamp."""

    id: str
    version: str
    item: T
    correlation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Removal:
    """An item a delta no longer shows. `gone` is False when it only left the listed range."""

    id: str
    gone: bool = True


@dataclass(frozen=True, slots=True)
class ChangeSet(Generic[T]):
    """What changed since a cursor. `full` means `upserts` lists every item of the side."""

    upserts: Sequence[Stored[T]]
    removals: Sequence[Removal]
    cursor: str | None
    full: bool = False


# --- the interface ------------------------------------------------------------------------------


class ItemConnector(Protocol[T]):
    """One side's items for one user: appointments or contacts."""

    @property
    def fields(self) -> frozenset[str]:
        """The canonical fields this side keeps (see `common.items.APPOINTMENT_FIELDS`)."""
        ...

    def changes(self, cursor: str | None) -> ChangeSet[T]:
        """Changes since `cursor`; `None` lists everything (and returns `full=True`)."""
        ...

    def get(self, item_id: str) -> Stored[T]: ...

    def create(self, item: T, correlation_id: str) -> Stored[T]:
        """Create the item stamped with `correlation_id`, which is also the idempotency key:
        a repeated create with the same id returns the item made the first time."""
        ...

    def update(self, item_id: str, item: T, if_match: str | None) -> Stored[T]:
        """Replace the item; `PreconditionFailed` when its version is no longer `if_match`."""
        ...

    def delete(self, item_id: str, if_match: str | None) -> None: ...

    def find_by_correlation_id(self, correlation_id: str) -> Stored[T] | None: ...


class AppointmentConnector(ItemConnector[Appointment], Protocol):
    def can_express(self, recurrence: Recurrence) -> bool:
        """Whether this side can hold the rule as a series (else it gets single occurrences)."""
        ...


class ContactConnector(ItemConnector[Contact], Protocol):
    pass
