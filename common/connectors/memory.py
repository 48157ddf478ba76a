"""An in-memory service: one side's items held the way a real service holds them.

Product code, not a test double: the engine's tests, the contract suite and the benchmarks
run against it, and each behaviour a real service has that the engine must survive can be
switched on: versions that change on every write (or only per day, like SuperOffice's
`updatedDate`), `If-Match` checks, a change log behind delta cursors that can expire,
listings bounded by a window and read in pages, removals that do not say why (Graph's
calendarView delta), listings that do not show our stamp (Graph delta cannot expand extended
properties), creates that are not idempotent (EWS, SuperOffice), fields it does not keep,
values it cannot express, rewrites of what it is given, and ids that change (a mailbox
moved). `user_*` and `server_*` methods are what people and servers do behind our back.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Generic

from common.capabilities import Capabilities, project
from common.connectors.base import (
    BaseConnector,
    ChangeSet,
    CursorExpired,
    NotFound,
    Permanent,
    PreconditionFailed,
    Removal,
    RemovalKind,
    Stored,
    T,
    Window,
    WouldMail,
    Write,
    WriteResult,
)
from common.items import (
    APPOINTMENT_FIELDS,
    TIMING_FIELDS,
    Appointment,
    Recurrence,
    content_fields,
    overlaps_window,
)
from common.kinds import Unreadable

Hook = Callable[[str, str, str | None], None]
"""Called before and after each write: (phase, "<name>.<op>", item id)."""


class Clock:
    """A logical clock for server timestamps (newest wins needs an order, not real time)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 20, 12, 0, tzinfo=UTC)

    def tick(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class Directory:
    """One organisation as its services know it: each person's mailbox and CRM diary, and
    every message that left the organisation (meeting invitations to outside addresses).

    A groupware meeting its mailbox organises, written with attendees, is delivered to the
    attendees' mailboxes (as an invitation: organiser set, our stamp not copied) or, for
    outside addresses, put in `outbox`, and so is its cancellation when it is deleted (to
    outside addresses; a colleague's copy is left to them); a CRM appointment with
    participants books each colleague's diary too (as SuperOffice does with a mother
    appointment and its children)."""

    def __init__(self) -> None:
        self.mailboxes: dict[str, MemoryConnector[Any]] = {}
        self.diaries: dict[str, MemoryConnector[Any]] = {}
        self.outbox: list[tuple[str, str]] = []  # (recipient, subject) of mail sent outside


class MemoryConnector(BaseConnector[T], Generic[T]):
    """One side's items for one user, as a service would hold them."""

    def __init__(
        self,
        name: str,
        *,
        fields: frozenset[str] = APPOINTMENT_FIELDS,
        capabilities: Capabilities | None = None,
        rewrite: Callable[[T], T] | None = None,
        can_express: Callable[[Recurrence], bool] | None = None,
        clock: Clock | None = None,
        exact_versions: bool = True,
        idempotent_create: bool = True,
        can_stamp: bool = True,
        stamps_in_listing: bool = True,
        stamps_in_reads: bool = True,
        removal_kind: RemovalKind = RemovalKind.DELETED,
        page_size: int = 0,
        batch_size: int = 1,
        owner: str = "",
        directory: Directory | None = None,
    ) -> None:
        self.name = name
        self.owner = owner.lower()  # whose mailbox or diary this is
        self.directory = directory
        if directory is not None and owner:
            book = directory.diaries if name.startswith("crm") else directory.mailboxes
            book[self.owner] = self
        self._capabilities = capabilities or Capabilities(frozenset(fields))
        self.rewrite: Callable[[T], T] | None = rewrite
        self._can_express = can_express or (lambda rule: True)
        self.clock = clock or Clock()
        self.exact_versions = exact_versions
        self.idempotent_create = idempotent_create
        self.can_stamp = can_stamp
        self.stamps_in_listing = stamps_in_listing
        # Whether `get` shows the stamp too (SuperOffice's foreign keys and Graph's extended
        # properties are separate reads): where not, only `find_by_correlation_id` finds it.
        self.stamps_in_reads = stamps_in_reads
        self.removal_kind = removal_kind  # what a delta says of a deleted item
        self.page_size = page_size  # 0: one page
        self.batch_size = batch_size
        self.items: dict[str, tuple[str, T, str | None]] = {}  # id -> (version, item, stamp)
        # Like Graph's transactionId: remembered by the service, not copied with the item.
        self.idempotency: dict[str, str] = {}
        self.seq = 0
        self.changed_at: dict[str, int] = {}
        self.created: dict[str, datetime] = {}  # id -> when the item was made
        self.removed_at: dict[str, int] = {}
        self.expired_below = 0
        self.next_id = 0
        self.calls: Counter[str] = Counter()
        self.hooks: list[Hook] = []
        # Every write the sync made through the interface: (create|update|delete|stamp, id).
        self.writes: list[tuple[str, str]] = []
        self.refuse: Callable[[T], str | None] | None = None  # a Permanent error for some items
        self.garbled: dict[str, str] = {}  # ids the service lists but cannot be read, and why

    # --- what the side declares ------------------------------------------------------------

    def can_express(self, recurrence: Recurrence) -> bool:
        return self._can_express(recurrence)

    # --- reading ---------------------------------------------------------------------------

    def changes(self, cursor: str | None, window: Window | None = None) -> ChangeSet[T]:
        """Cursors: `d:<seq>` a delta since seq; `f:<seq>:<last id>` and `p:<since>:<seq>:
        <last id>` the next page of a full listing or of a delta read up to seq. Pages go by
        key (the ids after the last one listed), as a resumable token must: with offsets, an
        item deleted between two pages would make the listing skip another one."""
        self.calls["changes"] += 1
        self._hook("before", "changes", cursor)
        if cursor is None or cursor.startswith("f:"):
            upto, after = (self.seq, "") if cursor is None else _seq_and_key(cursor[2:])
            ids = [i for i in sorted(self.items) if self._in(i, window)]
            page, more = self._page(ids, after)
            next_cursor = f"f:{upto}:{page[-1]}" if more else f"d:{upto}"
            listed = [self._stored(i, listing=True) for i in page if i not in self.garbled]
            bad = [Unreadable(i, self.garbled[i]) for i in page if i in self.garbled]
            return ChangeSet(listed, [], next_cursor, full=True, more=more, unreadable=bad)
        if cursor.startswith("d:"):
            since, upto, after = int(cursor[2:]), self.seq, ""
        elif cursor.startswith("p:"):
            since_text, rest = cursor[2:].split(":", 1)
            since = int(since_text)
            upto, after = _seq_and_key(rest)
        else:
            raise CursorExpired(f"{self.name}: cursor {cursor!r} is not ours")
        if since < self.expired_below:
            raise CursorExpired(f"{self.name}: cursor {cursor} expired")
        touched = sorted(
            [i for i, s in self.changed_at.items() if s > since]
            + [i for i, s in self.removed_at.items() if s > since]
        )
        page, more = self._page(touched, after)
        upserts: list[Stored[T]] = []
        removals: list[Removal] = []
        unreadable: list[Unreadable] = []
        for item_id in page:
            if item_id not in self.items:
                removals.append(Removal(item_id, self.removal_kind))
            elif item_id in self.garbled:
                unreadable.append(Unreadable(item_id, self.garbled[item_id]))
            elif self._in(item_id, window):
                upserts.append(self._stored(item_id, listing=True))
            else:  # edited out of the window: Graph says "removed" without saying why
                kind = (
                    RemovalKind.UNKNOWN
                    if self.removal_kind is RemovalKind.UNKNOWN
                    else RemovalKind.LEFT_RANGE
                )
                removals.append(Removal(item_id, kind))
        next_cursor = f"p:{since}:{upto}:{page[-1]}" if more else f"d:{upto}"
        return ChangeSet(
            upserts, removals, next_cursor, full=False, more=more, unreadable=unreadable
        )

    def apply_many(self, writes: Sequence[Write[T]]) -> list[WriteResult[T]]:
        # As a service with batches would: one request for the lot, never more parts than
        # it takes (Graph refuses a $batch of more than 20).
        if len(writes) > max(1, self.batch_size):
            raise ValueError(
                f"{self.name}: {len(writes)} writes in one batch of at most {self.batch_size}"
            )
        if len(writes) > 1:
            self.calls["batches"] += 1
        # As Graph does: a write that would mail anyone its `may_mail` does not allow is
        # refused before anything is sent.
        refused: dict[int, WriteResult[T]] = {}
        for n, write in enumerate(writes):
            allowed = write.may_mail
            barred = [r for r in self._mailed_by(write) if allowed is None or not allowed(r)]
            if barred:
                refused[n] = WouldMail(str(write.item_id), write.op, barred, self.name)
        sent = [w for n, w in enumerate(writes) if n not in refused]
        done = iter(BaseConnector.apply_many(self, sent))
        return [refused[n] if n in refused else next(done) for n in range(len(writes))]

    def get(self, item_id: str) -> Stored[T]:
        self.calls["get"] += 1
        if item_id not in self.items:
            raise NotFound(item_id)
        if item_id in self.garbled:
            raise Permanent(f"{item_id}: {self.garbled[item_id]}")
        stored = self._stored(item_id)
        return stored if self.stamps_in_reads else dataclasses.replace(stored, correlation_id=None)

    def find_by_correlation_id(self, correlation_id: str) -> Stored[T] | None:
        self.calls["find"] += 1
        return self.stamped(correlation_id)

    def stamped(self, correlation_id: str) -> Stored[T] | None:
        """The oldest item carrying the stamp (users' copies are younger), without counting
        a call (for tests)."""
        carrying = [i for i, (_, _, stamp) in self.items.items() if stamp == correlation_id]
        if not carrying:
            return None
        return self._stored(min(carrying, key=lambda i: (self.created.get(i, self.clock.now), i)))

    # --- writing ---------------------------------------------------------------------------

    def create(self, item: T, correlation_id: str) -> Stored[T]:
        self._hook("before", "create", None)
        self.calls["create"] += 1
        self._refused(item)
        existing = self.idempotency.get(correlation_id) if self.idempotent_create else None
        if existing in self.items:  # the idempotency key: a retried create makes nothing new
            assert existing is not None
            self._hook("after", "create", existing)
            return self._stored(existing)
        item_id = self._new_id()
        self.idempotency[correlation_id] = item_id
        item = self._as_meeting(item, item_id)
        self._write(item_id, item, correlation_id if self.can_stamp else None)
        self.writes.append(("create", item_id))
        self._invite(item)
        self._hook("after", "create", item_id)
        return self._stored(item_id)

    def update(self, item_id: str, item: T, if_match: str | None) -> Stored[T]:
        self._hook("before", "update", item_id)
        self.calls["update"] += 1
        self._check(item_id, if_match)
        self._refused(item)
        item = self._as_meeting(item, item_id)
        self._write(item_id, item, self.items[item_id][2])
        self.writes.append(("update", item_id))
        self._invite(item)
        self._hook("after", "update", item_id)
        return self._stored(item_id)

    def stamp(self, item_id: str, correlation_id: str, if_match: str | None) -> Stored[T]:
        self._hook("before", "stamp", item_id)
        self.calls["stamp"] += 1
        self._check(item_id, if_match)
        if not self.can_stamp:
            return self._stored(item_id)
        version, item, _ = self.items[item_id]
        self.seq += 1  # a new version, same content: a stamp is not an edit
        self.items[item_id] = (self._version(), item, correlation_id)
        self.changed_at[item_id] = self.seq
        self.writes.append(("stamp", item_id))
        self._hook("after", "stamp", item_id)
        return self._stored(item_id)

    def delete(self, item_id: str, if_match: str | None) -> None:
        self._hook("before", "delete", item_id)
        self.calls["delete"] += 1
        self._check(item_id, if_match)
        self._cancel(self.items[item_id][1])
        self._remove(item_id)
        self.writes.append(("delete", item_id))
        self._hook("after", "delete", item_id)

    # --- what users and servers do -----------------------------------------------------------

    def user_create(self, item: T, stamp: str | None = None) -> str:
        item_id = self._new_id()
        self._write(item_id, item, stamp)
        return item_id

    def user_edit(self, item_id: str, **changes: Any) -> None:
        version, item, stamp = self.items[item_id]
        self._write(item_id, dataclasses.replace(item, **changes), stamp)

    def user_copy(self, item_id: str) -> str:
        """Copy an item the way a mail client does: extended properties (our stamp) included."""
        _, item, stamp = self.items[item_id]
        copy_id = self._new_id()
        self._write(copy_id, item, stamp)
        return copy_id

    def user_delete(self, item_id: str) -> None:
        self._remove(item_id)

    def server_move(self, item_id: str) -> str:
        """The item gets a new id, content and stamp kept (moved between folders, a mailbox
        migrated): the old id is removed, the new one appears."""
        version, item, stamp = self.items[item_id]
        new_id = self._new_id()
        self.created[new_id] = self.created[item_id]  # the same item, under a new id
        self._remove(item_id)
        self.seq += 1
        self.items[new_id] = (f"{self.name}v{self.seq}", item, stamp)
        self.changed_at[new_id] = self.seq
        return new_id

    def server_garble(self, item_id: str, reason: str) -> None:
        """The service holds something our mapping cannot read (a naive timestamp, an
        unknown zone): listings report it as unreadable until `server_repair`."""
        self.garbled[item_id] = reason
        self.seq += 1
        self.changed_at[item_id] = self.seq

    def server_repair(self, item_id: str) -> None:
        self.garbled.pop(item_id, None)
        self.seq += 1
        self.changed_at[item_id] = self.seq

    def server_touch(self, item_id: str) -> None:
        """The server rewrites the item (new version, same content), as Exchange does."""
        version, item, stamp = self.items[item_id]
        self.seq += 1
        new_version = version if not self.exact_versions else f"{self.name}v{self.seq}"
        self.items[item_id] = (new_version, item, stamp)
        self.changed_at[item_id] = self.seq

    def server_rewrite(self, item_id: str, rewrite: Callable[[T], T]) -> None:
        """The server changes what it holds without a user (a default reminder added, a zone
        renamed): a new version, and content that must still not count as an edit."""
        version, item, stamp = self.items[item_id]
        self.seq += 1
        self.items[item_id] = (self._version(), rewrite(item), stamp)
        self.changed_at[item_id] = self.seq

    def expire_cursors(self) -> None:
        self.expired_below = self.seq + 1

    def item(self, item_id: str) -> T:
        return self.items[item_id][1]

    def stamp_of(self, item_id: str) -> str | None:
        return self.items[item_id][2]

    # --- meetings ----------------------------------------------------------------------------

    def _as_meeting(self, item: T, item_id: str) -> T:
        """A meeting made here is organised by this mailbox's (or diary's) owner, whatever
        the item says (a service makes the account that writes it the organiser), and gets a
        UID; an update keeps the organiser the item has."""
        if not isinstance(item, Appointment) or not self.owner:
            return item
        held = self.items.get(item_id)
        organizer = held[1].organizer if held is not None else self.owner
        if not item.attendees and held is None:
            return dataclasses.replace(item, organizer=organizer)
        uid = item.uid or f"uid-{item_id}"
        return dataclasses.replace(item, organizer=organizer, uid=uid)

    def _sends_mail(self) -> bool:
        """Whether this side mails a meeting's attendees (a groupware server does; a CRM
        mails nobody)."""
        return self.directory is not None and bool(self.owner) and not self.name.startswith("crm")

    def _organises(self, item: T) -> bool:
        """Whether the owner organises `item`, a meeting this side mails attendees about."""
        return (
            self._sends_mail()
            and isinstance(item, Appointment)
            and item.organizer in ("", self.owner)
        )

    def _mailed_by(self, write: Write[T]) -> frozenset[str]:
        """Whom the service mails for `write` (see `_invite` and `_cancel`): nobody for an
        attendee's copy or a stamp (here a stamp sends nothing); what it makes, it
        organises."""
        if write.op == "stamp":
            return frozenset()
        held = self.items.get(write.item_id) if write.item_id is not None else None
        current = held[1] if held is not None else None
        if not self._sends_mail() or (current is not None and not self._organises(current)):
            return frozenset()
        if current is None and write.op != "create":
            return frozenset()
        people: set[str] = set()
        for item in (current, None if write.op == "delete" else write.item):
            if isinstance(item, Appointment):
                people |= {a.email.lower() for a in item.attendees}
        return frozenset(people - {self.owner})

    def _cancel(self, item: T) -> None:
        """A meeting the owner organises, deleted: its outside attendees get a cancellation."""
        if not self._organises(item):
            return
        assert isinstance(item, Appointment) and self.directory is not None
        for attendee in item.attendees:
            address = attendee.email.lower()
            if address != self.owner and address not in self.directory.mailboxes:
                self.directory.outbox.append((address, item.subject))

    def _invite(self, item: T) -> None:
        """What the service does with a meeting's attendees: a groupware server sends each
        an invitation or update when the meeting it organises is written (delivered inside
        the organisation, mailed outside it); a CRM books each colleague's diary and mails
        nobody."""
        if self.directory is None or not isinstance(item, Appointment) or not self.owner:
            return
        if self._sends_mail() and not self._organises(item):
            return  # an attendee's copy: changing it sends nothing
        crm = self.name.startswith("crm")
        book = self.directory.diaries if crm else self.directory.mailboxes
        for attendee in item.attendees:
            address = attendee.email.lower()
            if address == self.owner:
                continue
            other = book.get(address)
            if other is None:
                if not crm:
                    self.directory.outbox.append((address, item.subject))
                continue
            # A mailbox files a meeting request onto the meeting it already holds with that
            # UID (Exchange and Google correlate by it); a CRM books a new child each time.
            copy = None if crm else other._by_uid(item.uid)
            invitation = dataclasses.replace(item, last_modified=None)
            if copy is None:
                other.user_create(invitation)
            else:
                other.user_edit(
                    copy,
                    **{
                        f.name: getattr(invitation, f.name)
                        for f in dataclasses.fields(invitation)
                        if f.name != "last_modified"
                    },
                )

    def _by_uid(self, uid: str | None) -> str | None:
        for item_id, (_, item, _) in self.items.items():
            if uid is not None and isinstance(item, Appointment) and item.uid == uid:
                return item_id
        return None

    # --- internals ---------------------------------------------------------------------------

    def _new_id(self) -> str:
        self.next_id += 1
        item_id = f"{self.name}-{self.next_id}"
        self.created[item_id] = self.clock.tick()
        return item_id

    def _page(self, ids: list[str], after: str) -> tuple[list[str], bool]:
        rest = [i for i in ids if i > after] if after else ids
        if not self.page_size:
            return rest, False
        return rest[: self.page_size], len(rest) > self.page_size

    def _in(self, item_id: str, window: Window | None) -> bool:
        item = self.items[item_id][1]
        if window is None or not isinstance(item, Appointment):
            return True
        try:
            return overlaps_window(item, window.start, window.end)
        except ValueError:
            return True  # a rule we cannot expand: the service lists it all the same

    def _hook(self, phase: str, op: str, item_id: str | None) -> None:
        for hook in list(self.hooks):
            hook(phase, f"{self.name}.{op}", item_id)

    def _check(self, item_id: str, if_match: str | None) -> None:
        if item_id not in self.items:
            raise NotFound(item_id)
        if if_match is not None and self.items[item_id][0] != if_match:
            raise PreconditionFailed(f"{item_id}: {if_match} is stale")

    def _refused(self, item: T) -> None:
        why = self.refuse(item) if self.refuse is not None else None
        if why is not None:
            raise Permanent(why)

    def _project(self, item: T) -> T:
        dropped: dict[str, Any] = {
            f.name: (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            )
            for f in dataclasses.fields(item)
            if f.name not in self.fields
            and f.name in content_fields(type(item))
            and f.name not in TIMING_FIELDS
            and (
                f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            )
        }
        item = project(dataclasses.replace(item, **dropped), self._capabilities)
        if self.rewrite is not None:
            item = self.rewrite(item)
        return dataclasses.replace(item, last_modified=self.clock.tick())

    def _version(self) -> str:
        if self.exact_versions:
            return f"{self.name}v{self.seq}"
        return self.clock.now.date().isoformat()  # like SuperOffice's day-grained updatedDate

    def _write(self, item_id: str, item: T, stamp: str | None) -> None:
        self.seq += 1
        projected = self._project(item)
        self.items[item_id] = (self._version(), projected, stamp)
        self.changed_at[item_id] = self.seq
        self.removed_at.pop(item_id, None)

    def _remove(self, item_id: str) -> None:
        self.seq += 1
        del self.items[item_id]
        self.changed_at.pop(item_id, None)
        self.removed_at[item_id] = self.seq

    def _stored(self, item_id: str, listing: bool = False) -> Stored[T]:
        version, item, stamp = self.items[item_id]
        if listing and not self.stamps_in_listing:
            stamp = None
        return Stored(item_id, version, item, stamp, self.created.get(item_id))


def _seq_and_key(text: str) -> tuple[int, str]:
    seq, key = text.split(":", 1)
    return int(seq), key
