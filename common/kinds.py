"""The plain vocabulary of a sync: sides, kinds, link and run states, and what a side lists.

No I/O and no database here: the planner (`daemon.engine`) imports these, the SQLAlchemy
models store them, and the connectors return them.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Generic, TypeVar

from common.items import Appointment, Contact

T = TypeVar("T", Appointment, Contact)


class ItemKind(enum.StrEnum):
    APPOINTMENT = "appointment"
    CONTACT = "contact"


class Side(enum.StrEnum):
    CRM = "crm"
    GROUPWARE = "groupware"

    @property
    def other(self) -> Side:
        return Side.GROUPWARE if self is Side.CRM else Side.CRM


class LinkState(enum.StrEnum):
    PENDING = "pending"
    LINKED = "linked"
    TOMBSTONE = "tombstone"


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    HELD = "held_for_approval"


def new_correlation_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Window:
    """The range of time a listing covers: [start, end) in UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Stored(Generic[T]):
    """An item as a service holds it: its id, its version (etag/ChangeKey) and our stamp."""

    id: str
    version: str
    item: T
    correlation_id: str | None = None
    # When the service made the item (Graph createdDateTime, EWS DateTimeCreated, Google
    # created, SuperOffice registered): of several items carrying one stamp, the oldest is
    # the one we stamped; the others are users' copies.
    created: datetime | None = None


class RemovalKind(enum.StrEnum):
    """Why a listing no longer shows an item."""

    DELETED = "deleted"  # the service says so (a tombstone, a 404)
    LEFT_RANGE = "left_range"  # the service says it left the listed range (still exists)
    UNKNOWN = "unknown"  # cannot tell (Graph calendarView delta): the engine asks the side


@dataclass(frozen=True, slots=True)
class Removal:
    """An item a listing no longer shows, and what is known of why."""

    id: str
    kind: RemovalKind = RemovalKind.DELETED


@dataclass(frozen=True, slots=True)
class Unreadable:
    """An item the side listed but that could not be read into a canonical item (a naive
    timestamp, an unknown zone, a rule dateutil cannot expand): recorded and retried, and
    neither a deletion nor a reason to stop the run."""

    id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ChangeSet(Generic[T]):
    """One page of changes since a cursor.

    `full` means the listing (all its pages together) shows every item of the side inside
    the window; `more` that further pages follow, read by passing `cursor` back.
    `restarted` (set by the engine's reader, not by connectors): the cursor given had
    expired, so this page begins a full listing.
    """

    upserts: Sequence[Stored[T]]
    removals: Sequence[Removal]
    cursor: str | None
    full: bool = False
    more: bool = False
    unreadable: Sequence[Unreadable] = ()
    restarted: bool = False


@dataclass(frozen=True, slots=True)
class LinkSnapshot:
    """An `ItemLink` row as the planner sees it: the pair, and for each side what it held.

    Agreement is kept per side (DESIGN.md, "Agreement per side"): `crm_hash` is the content
    hash of the CRM item as the CRM held it after our last read or write, `groupware_hash` the
    same for the groupware item. A side's item has changed only when its own hash moved, so
    what one server rewrites or cannot express is never an edit of the other side.
    """

    correlation_id: str
    crm_id: str | None
    groupware_id: str | None
    crm_version: str | None = None
    groupware_version: str | None = None
    crm_hash: str | None = None
    groupware_hash: str | None = None
    state: LinkState = LinkState.LINKED
    pending_action: str | None = None
    # When the item's last occurrence ends (UTC); None for contacts and open-ended series.
    # A linked item that a windowed listing misses and that ended before the window is
    # known to have left by time: no lookup, no deletion.
    span_end: datetime | None = None
    id: int | None = None

    def item_id(self, side: Side) -> str | None:
        return self.crm_id if side is Side.CRM else self.groupware_id

    def version(self, side: Side) -> str | None:
        return self.crm_version if side is Side.CRM else self.groupware_version

    def hash(self, side: Side) -> str | None:
        return self.crm_hash if side is Side.CRM else self.groupware_hash

    def with_side(
        self, side: Side, item_id: str | None, version: str | None, content: str | None
    ) -> LinkSnapshot:
        """This link with `side`'s id, version and content hash replaced."""
        if side is Side.CRM:
            return replace(self, crm_id=item_id, crm_version=version, crm_hash=content)
        return replace(
            self, groupware_id=item_id, groupware_version=version, groupware_hash=content
        )
