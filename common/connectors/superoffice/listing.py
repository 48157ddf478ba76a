"""SuperOffice's change listing: decided by content, reconciled by id.

SuperOffice keeps no change token and no etag, and `updatedDate` is a *date* column (its
operators compare whole days). So a listing of one side is built from the archive lists:

- **full**: every row in scope, page by page in key order; each item is read.
- **changes** (kinds whose root row records edits, appointments): the rows in scope
  changed *on or after* the day the previous listing started (never "after": an edit made
  later that same day has that same date), each with a fingerprint of its archive columns;
  only a row whose fingerprint differs from the one last seen is read again, so rows seen
  earlier the same day cost nothing.
- **ids**: the ids of every row in scope (a cheap list): an item no longer there is reported
  removed (`unknown`: deleted, or moved out of the scope; the engine asks), an item never
  seen is read. This is the reconciliation that finds deletions no event announced.
- **poll** (kinds whose edits do not all touch the root row, persons: an e-mail or phone
  change leaves `updatedDate` as it was and fires no event): every row in scope with its
  fingerprint, compared one by one; it also reconciles ids.

A pass is `changes` + `ids` (or `poll`), one page per archive request; the cursor carries
what it needs between pages and between runs (the day, the ids, the fingerprints), so it is
self-contained, resumes where it stopped, and pages by key. It expires after `max_age`
(the service never forgets anything for us): the full listing that follows re-reads every
item, which also catches an edit no archive column shows (a meeting's participants).
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Protocol

from common.connectors.base import CursorExpired
from common.connectors.superoffice.client import SuperOfficeClient, listing_day
from common.kinds import ChangeSet, Removal, RemovalKind, Stored, T, Unreadable, Window

Row = dict[str, Any]
VERSION = "so1"


class Scope(Protocol[T]):
    """One kind of item of one user, as the listing sees it."""

    resource: str  # the OData list, e.g. "/Appointment"
    key: str  # its primary key column
    fingerprinted: tuple[str, ...]  # columns whose values make a row's fingerprint
    identified: tuple[str, ...]  # columns `item_id` needs
    reads_changes: bool  # True: changes + ids; False: poll

    def where(self, window: Window | None) -> str:
        """The restriction of every list: this user's rows (inside the window)."""
        ...

    def changed_since(self, day: str) -> str:
        """Rows changed or made on or after `day`."""
        ...

    def item_id(self, row: Row) -> str | None:
        """The item a row belongs to (a series' rows share one); None: not an item here."""
        ...

    def updated_day(self, row: Row) -> str:
        """The UTC day (`YYYY-MM-DD`) the row was last changed, from its columns."""
        ...

    def read(
        self, item_ids: Sequence[str], window: Window | None
    ) -> tuple[list[Stored[T]], list[str], list[Unreadable]]:
        """The items (those inside `window` only), the ids that are gone, the unreadable."""
        ...


@dataclass
class Cursor:
    phase: str  # full | rest | changes | ids | poll
    scope: str  # whom and what it was made for
    born: str  # when the full listing this chain of passes grew from began
    day: str  # changes on or after this UTC day are listed by the next pass
    after: int = 0  # the last key read in this phase
    known: list[str] = field(default_factory=list)  # item ids at the end of the last pass
    prints: dict[str, str] = field(default_factory=dict)  # row key -> fingerprint
    # the pass under way
    next_day: str = ""
    seen: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    next_prints: dict[str, str] = field(default_factory=dict)

    def dump(self) -> str:
        raw = json.dumps(asdict(self), separators=(",", ":"), sort_keys=True).encode()
        return f"{VERSION}.{base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode()}"

    @classmethod
    def load(cls, text: str, scope: str, now: datetime, max_age: timedelta) -> Cursor:
        prefix, _, body = text.partition(".")
        if prefix != VERSION:
            raise CursorExpired("not a SuperOffice cursor of this version")
        try:
            data = json.loads(zlib.decompress(base64.urlsafe_b64decode(body.encode())))
            cursor = cls(**data)
            born = datetime.fromisoformat(cursor.born)
        except (ValueError, TypeError, zlib.error) as exc:
            raise CursorExpired(f"unreadable SuperOffice cursor: {exc}") from None
        if cursor.scope != scope:
            raise CursorExpired("the cursor was made for another user, kind or window")
        if now - born > max_age:
            raise CursorExpired(f"the cursor is older than {max_age}: listed afresh")
        return cursor


def fingerprint(row: Row, columns: Sequence[str]) -> str:
    values = [row.get(c) for c in columns]
    return hashlib.sha256(json.dumps(values, default=str).encode()).hexdigest()[:16]


@dataclass
class Lister(Generic[T]):
    client: SuperOfficeClient
    scope: Scope[T]
    scope_key: str
    page_size: int = 200
    id_page_size: int = 5000
    max_age: timedelta = timedelta(days=1)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def changes(self, token: str | None, window: Window | None) -> ChangeSet[T]:
        key = f"{self.scope_key}|{_window_key(window)}"
        if token is None:
            now = self.client.now()
            cursor = Cursor("full", key, born=now.isoformat(), day=listing_day(now))
        else:
            cursor = Cursor.load(token, key, self.clock(), self.max_age)
        page: _Page[T] = _Page()
        while True:
            if cursor.phase == "rest":
                cursor = self._begin(cursor)
            more = self._step(cursor, window, page)
            if more:
                return page.result(cursor.dump(), full=cursor.phase == "full", more=True)
            if cursor.phase in ("full", "ids", "poll"):
                full = cursor.phase == "full"
                rest = self._end(cursor, page, removals=not full)
                return page.result(rest.dump(), full=full, more=False)
            cursor.phase, cursor.after = "ids", 0  # the changes are read: reconcile the ids

    def _begin(self, cursor: Cursor) -> Cursor:
        cursor.phase = "changes" if self.scope.reads_changes else "poll"
        cursor.next_day = listing_day(self.client.now())
        cursor.after, cursor.seen, cursor.done, cursor.next_prints = 0, [], [], {}
        return cursor

    def _step(self, cursor: Cursor, window: Window | None, page: _Page[T]) -> bool:
        """One archive request of the cursor's phase; True when more rows may follow."""
        scope: Scope[T] = self.scope
        where = scope.where(window)
        ids_only = cursor.phase == "ids"
        if cursor.phase == "changes":
            where = f"{where} and {scope.changed_since(cursor.day)}"
        top = self.id_page_size if ids_only else self.page_size
        columns = scope.identified if ids_only else (*scope.fingerprinted, *scope.identified)
        # One row more than the page: a last page that is exactly full then says so itself,
        # instead of costing one more request that comes back empty.
        rows = self.client.rows(
            scope.resource, key=scope.key, select=columns, where=where, after=cursor.after,
            top=top + 1,
        )  # fmt: skip
        more = len(rows) > top
        rows = rows[:top]
        known, done, seen = set(cursor.known), set(cursor.done), set(cursor.seen)
        keep_from = cursor.day if cursor.phase == "full" else cursor.next_day
        wanted: list[str] = []
        for row in rows:
            item_id = scope.item_id(row)
            row_key = str(row[scope.key])
            if item_id is None:
                continue
            if cursor.phase != "changes":
                seen.add(item_id)
            changed = False
            if not ids_only:
                print_ = fingerprint(row, scope.fingerprinted)
                changed = cursor.prints.get(row_key) != print_
                if not scope.reads_changes or scope.updated_day(row) >= keep_from:
                    cursor.next_prints[row_key] = print_
            wants = (
                cursor.phase == "full"
                or (cursor.phase in ("changes", "poll") and (changed or item_id not in known))
                or (ids_only and item_id not in known)
            )
            if wants and item_id not in done and item_id not in wanted:
                wanted.append(item_id)
        if wanted:
            stored, gone, bad = scope.read(wanted, window)
            page.upserts += stored
            page.removals += [Removal(item_id, RemovalKind.DELETED) for item_id in gone]
            page.unreadable += bad
            done.update(wanted)
        cursor.done, cursor.seen = sorted(done), sorted(seen)
        if rows:
            cursor.after = int(rows[-1][scope.key])
        return more

    def _end(self, cursor: Cursor, page: _Page[T], removals: bool) -> Cursor:
        seen = set(cursor.seen)
        if removals:
            reported = {r.id for r in page.removals}
            page.removals += [
                Removal(item_id, RemovalKind.UNKNOWN)
                for item_id in cursor.known
                if item_id not in seen and item_id not in reported
            ]
        day = cursor.day if cursor.phase == "full" else cursor.next_day
        return Cursor(
            "rest",
            cursor.scope,
            born=cursor.born,
            day=day,
            known=sorted(seen),
            prints=cursor.next_prints,
        )


@dataclass
class _Page(Generic[T]):
    upserts: list[Stored[T]] = field(default_factory=list)
    removals: list[Removal] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)

    def result(self, cursor: str, full: bool, more: bool) -> ChangeSet[T]:
        return ChangeSet(
            self.upserts, self.removals, cursor, full=full, more=more, unreadable=self.unreadable
        )


def _window_key(window: Window | None) -> str:
    return f"{window.start.isoformat()}/{window.end.isoformat()}" if window else "-"
