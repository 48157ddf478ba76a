"""The interfaces every connector implements (DESIGN.md, "Connectors"), and its typed errors.

A connector is one side of a sync for one user and one kind of item: the CRM's appointments
of an associate, a mailbox's calendar, its contacts. It speaks canonical items
(`common.items`); everything service-specific (paging, batching, retries inside a request,
token refresh) stays behind it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from common.capabilities import Capabilities
from common.items import Appointment, Contact, Recurrence
from common.kinds import ChangeSet, Removal, RemovalKind, Side, Stored, T, Window

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
    """The credentials no longer work; the user or administrator must reconnect. `side`:
    whose credentials the service refused (the CRM's or the groupware's), so that whoever
    keeps them knows who else they concern (a profile's CRM connection serves every user
    of the profile)."""

    def __init__(self, message: str, side: Side | None = None) -> None:
        super().__init__(message)
        self.side = side


class Transient(ConnectorError):
    """A failure worth retrying later (timeouts, 5xx, dropped connections)."""


class Permanent(ConnectorError):
    """A failure that will not go away by retrying (the service refuses this item)."""


class WouldMail(Permanent):
    """The write was not made: the service would have mailed people it does not allow
    (`Write.may_mail`). A change to a meeting its user organises makes Outlook (and Exchange,
    and Google when asked to) send every attendee an update, a deletion a cancellation.
    `recipients`: those it would have mailed and may not; `where`: the service, as its users
    call it (for the reason a person reads)."""

    def __init__(self, item_id: str, op: str, recipients: Sequence[str], where: str) -> None:
        self.item_id, self.op, self.where = item_id, op, where
        self.recipients = tuple(sorted(set(recipients)))
        super().__init__(
            f"{where}: the {op} of meeting {item_id} would mail {', '.join(self.recipients)}"
        )


class CursorExpired(ConnectorError):
    """The delta token is no longer valid (Google 410, Graph resync): list everything again."""


# --- values (defined in `common.kinds`, where the planner reads them) --------------------------

__all__ = ["ChangeSet", "Removal", "RemovalKind", "Stored", "T", "Window", "Write"]

# --- the interface ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Write(Generic[T]):
    """One write of a batch (`apply_many`): create, update, stamp or delete."""

    op: str  # "create" | "update" | "stamp" | "delete"
    item_id: str | None = None  # None for a create
    # What to write (create, update). For a stamp: the item as the engine last read it,
    # which a side whose stamp leaves the item as it was may give back without reading it.
    item: T | None = None
    if_match: str | None = None
    correlation_id: str | None = None  # our stamp (create, stamp; update keeps it)
    # Whom the service may mail because of this write (invitations, updates, cancellations
    # of a meeting its user organises); None: nobody. A write that would mail anyone else
    # is refused with `WouldMail`, never made.
    may_mail: Callable[[str], bool] | None = None


WriteResult = Stored[T] | None | ConnectorError
"""Per write of a batch: what the service now holds (None after a delete), or its error."""


class ItemConnector(Protocol[T]):
    """One side's items for one user: appointments or contacts.

    Properties a side declares, which the engine relies on:
    - `capabilities`: the canonical fields it keeps and the values it can express
      (`common.capabilities`); what it cannot hold is never an edit and never lost.
    - `exact_versions`: whether an unchanged version proves unchanged content (etag,
      ChangeKey). Where it does not (SuperOffice `updatedDate`, day-grained), change is
      decided by content hash.
    - `can_stamp`: whether an item can carry our correlation id (an extended property, a
      foreign key); both items of a pair are stamped where they can be.
    - `stamps_in_listing`: whether `changes` shows the stamp; where not (Graph delta), the
      engine reads unlinked items with `get_many` to learn theirs.
    - `idempotent_create`: whether a repeated `create` with the same correlation id returns
      the first item (Graph `transactionId`); where not, recovery after a crash looks the
      item up with `find_by_correlation_id` before creating again.
    - `batch_size`: how many writes `apply_many` sends at once.

    And one promise: no write makes the service mail anyone its `Write.may_mail` does not
    allow (a service that mails a meeting's attendees on a change refuses it: `WouldMail`).
    """

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def fields(self) -> frozenset[str]:
        """The canonical fields this side keeps (see `common.items.APPOINTMENT_FIELDS`)."""
        ...

    @property
    def exact_versions(self) -> bool: ...

    @property
    def can_stamp(self) -> bool: ...

    @property
    def idempotent_create(self) -> bool: ...

    @property
    def stamps_in_listing(self) -> bool: ...

    @property
    def batch_size(self) -> int: ...

    def changes(self, cursor: str | None, window: Window | None = None) -> ChangeSet[T]:
        """One page of changes since `cursor` inside `window` (None: the side's whole range).
        `cursor=None` lists everything (`full=True`); a page with `more=True` is followed by
        the next one, read by passing its cursor back. A page's cursor is kept between runs
        (a run stopped by a throttle resumes from it), so it must stay valid for a while and
        never skip an item because others changed meanwhile: page by key, not by offset.
        The delta that follows a listing starts where the listing started. An expired
        cursor raises `CursorExpired`."""
        ...

    def get(self, item_id: str) -> Stored[T]:
        """The item; `NotFound` when it does not exist."""
        ...

    def get_many(self, item_ids: Sequence[str]) -> dict[str, Stored[T] | None]:
        """Each item (None where it does not exist; left out where it cannot be read), in as
        few calls as the service allows."""
        ...

    def stamps_of(self, item_ids: Sequence[str]) -> dict[str, str | None]:
        """Our stamp on each item (None: it carries none; left out where the item cannot be
        read or is gone), for a listing that does not show them (`stamps_in_listing`)."""
        ...

    def create(self, item: T, correlation_id: str) -> Stored[T]:
        """Create the item stamped with `correlation_id` (and, where the service has one,
        with it as the idempotency key)."""
        ...

    def update(self, item_id: str, item: T, if_match: str | None) -> Stored[T]:
        """Replace the item's content (its stamp is kept); `PreconditionFailed` when its
        version is no longer `if_match`."""
        ...

    def stamp(self, item_id: str, correlation_id: str, if_match: str | None) -> Stored[T]:
        """Put our correlation id on an existing item (the source of a pair), content kept."""
        ...

    def delete(self, item_id: str, if_match: str | None) -> None: ...

    def apply_many(self, writes: Sequence[Write[T]]) -> list[WriteResult[T]]:
        """The writes, batched where the service can; one result per write, in order."""
        ...

    def find_by_correlation_id(self, correlation_id: str) -> Stored[T] | None:
        """The item stamped with `correlation_id`, asked of the service (not of a listing);
        of several (users' copies carry the stamp too) the oldest, which is the one we
        stamped (Graph: `$filter` on the property, `$orderby=createdDateTime`)."""
        ...


class AppointmentConnector(ItemConnector[Appointment], Protocol):
    def can_express(self, recurrence: Recurrence) -> bool:
        """Whether this side can hold the rule as a series (else it gets single occurrences)."""
        ...


class ContactConnector(ItemConnector[Contact], Protocol):
    pass


class BaseConnector(Generic[T]):
    """Defaults for a service without batches: `get_many` and `apply_many` loop over the
    single calls, and an error of one item is that item's result, not the batch's."""

    exact_versions = True
    can_stamp = True
    stamps_in_listing = True
    idempotent_create = False
    batch_size = 1
    _capabilities: Capabilities  # what the side holds, set by each connector

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def fields(self) -> frozenset[str]:
        return self._capabilities.fields

    def get(self, item_id: str) -> Stored[T]:
        raise NotImplementedError

    def create(self, item: T, correlation_id: str) -> Stored[T]:
        raise NotImplementedError

    def update(self, item_id: str, item: T, if_match: str | None) -> Stored[T]:
        raise NotImplementedError

    def stamp(self, item_id: str, correlation_id: str, if_match: str | None) -> Stored[T]:
        raise NotImplementedError

    def delete(self, item_id: str, if_match: str | None) -> None:
        raise NotImplementedError

    def get_many(self, item_ids: Sequence[str]) -> dict[str, Stored[T] | None]:
        found: dict[str, Stored[T] | None] = {}
        for item_id in item_ids:
            try:
                found[item_id] = self.get(item_id)
            except NotFound:
                found[item_id] = None
            except Permanent:
                continue  # cannot be read now: left out, neither found nor gone
        return found

    def stamps_of(self, item_ids: Sequence[str]) -> dict[str, str | None]:
        return {i: s.correlation_id for i, s in self.get_many(item_ids).items() if s is not None}

    def apply_many(self, writes: Sequence[Write[T]]) -> list[WriteResult[T]]:
        results: list[WriteResult[T]] = []
        for n, write in enumerate(writes):
            try:
                results.append(self._apply_one(write))
            except (AuthExpired, Throttled) as exc:
                # The rest is not sent; what was written stays written (each item has its
                # own result, as in Graph's $batch, so nothing made is made twice).
                return results + [exc] * (len(writes) - n)
            except ConnectorError as exc:
                results.append(exc)
        return results

    def _apply_one(self, write: Write[T]) -> Stored[T] | None:
        if write.op == "create":
            assert write.item is not None and write.correlation_id is not None
            return self.create(write.item, write.correlation_id)
        assert write.item_id is not None
        if write.op == "update":
            assert write.item is not None
            return self.update(write.item_id, write.item, write.if_match)
        if write.op == "stamp":
            assert write.correlation_id is not None
            return self.stamp(write.item_id, write.correlation_id, write.if_match)
        if write.op == "delete":
            self.delete(write.item_id, write.if_match)
            return None
        raise ValueError(f"unknown write {write.op!r}")


A = TypeVar("A")
R = TypeVar("R")


def each_at_once(
    work: Callable[[A], R],
    items: Sequence[A],
    in_flight: int,
    stop_on: tuple[type[Exception], ...] = (AuthExpired, Throttled),
) -> list[R | Exception]:
    """`work` done on each item, up to `in_flight` at once; each result (or the exception it
    raised) in the items' order. After an exception of a `stop_on` type nothing more is
    started: the items not started get that exception as their result."""
    stopped: list[Exception] = []
    lock = threading.Lock()

    def one(item: A) -> R | Exception:
        with lock:
            if stopped:
                return stopped[0]
        try:
            return work(item)
        except stop_on as exc:
            with lock:
                stopped.append(exc)
            return exc
        except Exception as exc:  # noqa: BLE001 - the item's result; callers raise what they must
            return exc

    if in_flight <= 1 or len(items) <= 1:
        return [one(item) for item in items]
    with ThreadPoolExecutor(min(in_flight, len(items)), thread_name_prefix="connector") as pool:
        return list(pool.map(one, items))


class ParallelConnector(BaseConnector[T]):
    """For a service without batches that takes several requests at once (SuperOffice's
    REST API): `get_many` and `apply_many` make the single calls up to `in_flight` at a time,
    so the round trips overlap. As in `BaseConnector`, an error of one write is that write's
    result, and after a throttle or expired credentials nothing more is started (what was
    written stays written)."""

    in_flight = 4

    def get_many(self, item_ids: Sequence[str]) -> dict[str, Stored[T] | None]:
        ids = list(dict.fromkeys(item_ids))
        found: dict[str, Stored[T] | None] = {}
        stop = (AuthExpired, Throttled, Transient, CursorExpired, PreconditionFailed)
        read = each_at_once(self.get, ids, self.in_flight, stop)
        for item_id, result in zip(ids, read, strict=True):
            if isinstance(result, NotFound):
                found[item_id] = None
            elif isinstance(result, Permanent):
                continue  # cannot be read now: left out, neither found nor gone
            elif isinstance(result, Exception):
                raise result
            else:
                found[item_id] = result
        return found

    def apply_many(self, writes: Sequence[Write[T]]) -> list[WriteResult[T]]:
        results: list[WriteResult[T]] = []
        for result in each_at_once(self._apply_one, writes, self.in_flight):
            if isinstance(result, Exception) and not isinstance(result, ConnectorError):
                raise result
            results.append(result)
        return results


class BatchingConnector(BaseConnector[T]):
    """The other way round, for a service whose natural call is a batch (Graph's `$batch`):
    it gives `get_many` and `apply_many`, and the single calls are batches of one."""

    def get(self, item_id: str) -> Stored[T]:
        found = self.get_many([item_id])
        if item_id not in found:
            raise Permanent(f"{item_id} cannot be read")
        stored = found[item_id]
        if stored is None:
            raise NotFound(item_id)
        return stored

    def create(self, item: T, correlation_id: str) -> Stored[T]:
        return self._one(Write("create", item=item, correlation_id=correlation_id))

    def update(self, item_id: str, item: T, if_match: str | None) -> Stored[T]:
        return self._one(Write("update", item_id=item_id, item=item, if_match=if_match))

    def stamp(self, item_id: str, correlation_id: str, if_match: str | None) -> Stored[T]:
        return self._one(
            Write("stamp", item_id=item_id, if_match=if_match, correlation_id=correlation_id)
        )

    def delete(self, item_id: str, if_match: str | None) -> None:
        (result,) = self.apply_many([Write("delete", item_id=item_id, if_match=if_match)])
        if isinstance(result, ConnectorError):
            raise result

    def _one(self, write: Write[T]) -> Stored[T]:
        (result,) = self.apply_many([write])
        if isinstance(result, ConnectorError):
            raise result
        assert result is not None
        return result
