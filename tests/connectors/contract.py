"""The connector contract: what the sync engine relies on from every side, as tests.

One suite, run against the in-memory connector (`test_memory_contract.py`) and against each
connector talking to its simulator (Connectors I and II add theirs). A connector passes when
it behaves as `common.connectors.base.ItemConnector` says, *including what it declares about
itself* (`exact_versions`, `stamps_in_listing`, `idempotent_create`, `batch_size`): the
engine trusts those declarations, so a connector that claims more than it does loses edits.

A test module uses the suite by subclassing `AppointmentContract` (or `ContactContract`)
and giving a `service` fixture: a `Service`, the connector plus the means to act on the
service behind it as its users do (through the simulator's own API, never through the
connector under test).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Protocol

import pytest

from common.capabilities import project
from common.connectors.base import (
    CursorExpired,
    ItemConnector,
    NotFound,
    PreconditionFailed,
    Write,
)
from common.items import Appointment, Contact, content_hash
from common.kinds import ChangeSet, Removal, Stored, T, Window, new_correlation_id


class Service(Protocol[T]):
    """A connector and the service behind it, driven as a user and an operator would."""

    connector: ItemConnector[T]
    page_size: int  # the connector's page size for listings, so tests can span pages
    window: Window | None  # the window listings are asked for (None for contacts)

    def sample(self, n: int) -> T:
        """The n-th of many distinct items inside the window."""
        ...

    def outside_window(self) -> T:
        """An item the window does not cover (appointments only)."""
        ...

    def user_create(self, item: T, stamp: str | None = None) -> str:
        """A user makes an item (carrying `stamp` as a copied item would)."""
        ...

    def user_edit(self, item_id: str, **changes: Any) -> None: ...

    def user_delete(self, item_id: str) -> None: ...

    def expire_cursors(self) -> None:
        """The service forgets every change token (Graph's 410, EWS's invalid SyncState)."""
        ...


def read_all(
    connector: ItemConnector[Any], cursor: str | None, window: Window | None
) -> tuple[list[ChangeSet[Any]], str | None]:
    """Every page from `cursor` on, and the cursor after the last one."""
    pages: list[ChangeSet[Any]] = []
    for _ in range(1000):
        page = connector.changes(cursor, window)
        pages.append(page)
        cursor = page.cursor
        if not page.more:
            return pages, cursor
    raise AssertionError("a listing that never ends")


def listed(pages: list[ChangeSet[Any]]) -> dict[str, Stored[Any]]:
    return {s.id: s for page in pages for s in page.upserts}


def removed(pages: list[ChangeSet[Any]]) -> list[Removal]:
    return [r for page in pages for r in page.removals]


class Contract(Generic[T]):
    """Tests every connector must pass, whatever its kind of item."""

    @pytest.fixture
    def service(self) -> Iterator[Service[T]]:
        raise NotImplementedError("a contract test module gives its service")

    def same(self, service: Service[T], a: T, b: T) -> bool:
        caps = service.connector.capabilities
        return content_hash(project(a, caps)) == content_hash(project(b, caps))

    # --- writes ------------------------------------------------------------------------------

    def test_a_created_item_reads_back_as_written_with_its_stamp(self, service: Service[T]) -> None:
        """Mistake: a mapping that drops or rewrites a field it declares it keeps."""
        connector = service.connector
        item, cid = service.sample(1), new_correlation_id()
        made = connector.create(item, cid)
        read = connector.get(made.id)
        assert self.same(service, read.item, item), (read.item, item)
        assert read.correlation_id == cid and read.version
        found = connector.find_by_correlation_id(cid)
        assert found is not None and found.id == made.id

    def test_an_update_replaces_the_content_and_keeps_the_stamp(self, service: Service[T]) -> None:
        connector = service.connector
        cid = new_correlation_id()
        made = connector.create(service.sample(1), cid)
        changed = service.sample(2)
        updated = connector.update(made.id, changed, made.version)
        read = connector.get(made.id)
        assert self.same(service, read.item, changed) and read.correlation_id == cid
        assert read.version == updated.version

    def test_a_deleted_item_is_not_found_and_get_many_says_which(self, service: Service[T]) -> None:
        connector = service.connector
        kept = connector.create(service.sample(1), new_correlation_id())
        gone = connector.create(service.sample(2), new_correlation_id())
        connector.delete(gone.id, gone.version)
        with pytest.raises(NotFound):
            connector.get(gone.id)
        many = connector.get_many([kept.id, gone.id])
        assert many[gone.id] is None
        kept_now = many[kept.id]
        assert kept_now is not None and kept_now.id == kept.id

    def test_a_batch_answers_each_write_in_order(self, service: Service[T]) -> None:
        """Mistake: one failed part taken for the whole batch (the parts before it made
        twice on retry), or results out of order."""
        connector = service.connector
        first = connector.create(service.sample(1), new_correlation_id())
        gone = connector.create(service.sample(2), new_correlation_id())
        connector.delete(gone.id, gone.version)
        cid = new_correlation_id()
        writes: list[Write[T]] = [
            Write("create", item=service.sample(3), correlation_id=cid),
            Write("update", item_id=gone.id, item=service.sample(4), if_match=gone.version),
            Write("delete", item_id=first.id, if_match=first.version),
        ]
        size = max(1, connector.batch_size)  # a side without batches takes one at a time
        results = [r for n in range(0, 3, size) for r in connector.apply_many(writes[n : n + size])]
        created, missing, deleted = results
        assert isinstance(created, Stored) and created.correlation_id == cid
        assert isinstance(missing, NotFound)
        assert deleted is None
        assert connector.get_many([first.id])[first.id] is None

    def test_stamping_an_item_makes_it_findable_and_the_oldest_holder_wins(
        self, service: Service[T]
    ) -> None:
        """A user's copy carries our stamp too; the item we stamped is the older one
        (mistake: the newest or an arbitrary holder, so a copy takes the original's place)."""
        connector = service.connector
        original = service.user_create(service.sample(1))
        cid = new_correlation_id()
        before = connector.get(original)
        stamped = connector.stamp(original, cid, before.version)
        assert stamped.correlation_id == cid
        service.user_create(service.sample(1), stamp=cid)  # the user's copy, made later
        found = connector.find_by_correlation_id(cid)
        assert found is not None and found.id == original
        assert connector.find_by_correlation_id(new_correlation_id()) is None

    def test_a_create_declared_idempotent_makes_one_item(self, service: Service[T]) -> None:
        """Where `idempotent_create` is declared, the engine retries a create freely: a
        second create with the same stamp must not make a second item."""
        connector = service.connector
        cid = new_correlation_id()
        first = connector.create(service.sample(1), cid)
        if not connector.idempotent_create:
            # Not idempotent: recovery goes through find_by_correlation_id, which must work.
            found = connector.find_by_correlation_id(cid)
            assert found is not None and found.id == first.id
            return
        before, _ = read_all(connector, None, service.window)
        again = connector.create(service.sample(1), cid)
        after, _ = read_all(connector, None, service.window)
        assert again.id == first.id and set(listed(after)) == set(listed(before))

    # --- listings ----------------------------------------------------------------------------

    def test_a_full_listing_shows_every_item_once_across_pages(self, service: Service[T]) -> None:
        connector = service.connector
        ids = {service.user_create(service.sample(n)) for n in range(2 * service.page_size + 1)}
        pages, cursor = read_all(connector, None, service.window)
        assert len(pages) >= 3, "the listing must come in pages for this test to mean much"
        assert all(page.full for page in pages) and cursor is not None
        seen = [s.id for page in pages for s in page.upserts]
        assert len(seen) == len(set(seen)) and ids <= set(seen)

    def test_a_listing_resumed_after_items_vanished_skips_nothing(
        self, service: Service[T]
    ) -> None:
        """A page's cursor is kept between runs: items deleted meanwhile on pages already
        read must not make it skip others (mistake: offset paging)."""
        connector = service.connector
        ids = {service.user_create(service.sample(n)) for n in range(3 * service.page_size)}
        first = connector.changes(None, service.window)
        assert first.more
        for stored in list(first.upserts)[:2]:
            service.user_delete(stored.id)
            ids.discard(stored.id)
        rest, _ = read_all(connector, first.cursor, service.window)
        seen = {s.id for s in first.upserts} | set(listed(rest))
        assert ids <= seen, f"skipped: {sorted(ids - seen)}"

    def test_the_delta_after_a_listing_shows_creates_edits_and_deletions(
        self, service: Service[T]
    ) -> None:
        connector = service.connector
        edited = service.user_create(service.sample(1))
        deleted = service.user_create(service.sample(2))
        _, cursor = read_all(connector, None, service.window)
        made = service.user_create(service.sample(3))
        service.user_edit(edited, **self.an_edit())
        service.user_delete(deleted)
        pages, _ = read_all(connector, cursor, service.window)
        shown = listed(pages)
        assert made in shown and edited in shown and deleted not in shown
        assert deleted in {r.id for r in removed(pages)}, "a deletion the delta never reports"
        assert not any(page.full for page in pages)

    def test_a_change_made_while_a_listing_is_read_comes_in_the_next_delta(
        self, service: Service[T]
    ) -> None:
        """Mistake: the delta after a listing starting where the listing ended, so an edit
        of an item on an already-read page is never seen. The edit may come in the next
        delta (Graph: the delta starts where the listing started) or later in the same
        listing (EWS SyncFolderItems: the sync state remembers which change of each item was
        given, so an item changed meanwhile is given again before the pass ends)."""
        connector = service.connector
        for n in range(2 * service.page_size + 1):
            service.user_create(service.sample(n))
        first = connector.changes(None, service.window)
        target = list(first.upserts)[0]
        service.user_edit(target.id, **self.an_edit())
        rest, cursor = read_all(connector, first.cursor, service.window)
        pages, _ = read_all(connector, cursor, service.window)
        later = [s for page in rest + pages for s in page.upserts if s.id == target.id]
        assert any(not self.same(service, s.item, target.item) for s in later), later

    def test_an_expired_cursor_is_said_so(self, service: Service[T]) -> None:
        connector = service.connector
        service.user_create(service.sample(1))
        _, cursor = read_all(connector, None, service.window)
        service.expire_cursors()
        with pytest.raises(CursorExpired):
            read_all(connector, cursor, service.window)

    def test_stamps_are_shown_where_the_listing_is_declared_to_show_them(
        self, service: Service[T]
    ) -> None:
        """Mistake: `stamps_in_listing` claimed by a listing that hides the stamp, so a
        re-link pairs nothing by stamp and copies everything again."""
        connector = service.connector
        cid = new_correlation_id()
        made = connector.create(service.sample(1), cid)
        pages, _ = read_all(connector, None, service.window)
        shown = listed(pages)[made.id]
        if connector.stamps_in_listing:
            assert shown.correlation_id == cid
        assert connector.get(made.id).correlation_id == cid  # a read always shows it

    def an_edit(self) -> dict[str, Any]:
        raise NotImplementedError


class ExactVersions(Generic[T]):
    """For sides that declare `exact_versions` (etag, ChangeKey): the engine then trusts an
    unchanged version as unchanged content, and sends the version with every write."""

    def test_a_stale_version_is_refused(self, service: Service[T]) -> None:
        """Mistake: an update sent without its version (or a service that ignores it), so a
        user's edit made since our read is overwritten."""
        connector = service.connector
        assert connector.exact_versions
        made = connector.create(service.sample(1), new_correlation_id())
        service.user_edit(made.id, **self.an_edit())  # type: ignore[attr-defined]
        with pytest.raises(PreconditionFailed):
            connector.update(made.id, service.sample(3), made.version)
        with pytest.raises(PreconditionFailed):
            connector.delete(made.id, made.version)
        assert connector.get(made.id).version != made.version

    def test_a_version_moves_with_every_edit(self, service: Service[T]) -> None:
        """Mistake: declaring exact versions for a side whose version does not move on an
        edit (the engine would then skip the edit as unchanged)."""
        connector = service.connector
        made = connector.create(service.sample(1), new_correlation_id())
        service.user_edit(made.id, **self.an_edit())  # type: ignore[attr-defined]
        assert connector.get(made.id).version != made.version


class AppointmentContract(Contract[Appointment]):
    def an_edit(self) -> dict[str, Any]:
        return {"subject": "Edited by a user", "location": "Room 2"}

    def test_a_listing_keeps_to_its_window(self, service: Service[Appointment]) -> None:
        """Mistake: the window not passed to the service, so years of history are read
        (or, worse, items outside it are taken as new)."""
        connector = service.connector
        inside = service.user_create(service.sample(1))
        outside = service.user_create(service.outside_window())
        pages, _ = read_all(connector, None, service.window)
        assert inside in listed(pages) and outside not in listed(pages)


class ContactContract(Contract[Contact]):
    def an_edit(self) -> dict[str, Any]:
        return {"job_title": "Edited by a user"}


def appointment_sample(n: int, now: datetime | None = None) -> Appointment:
    """The n-th of many distinct timed appointments a few days ahead."""
    base = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    start = base + timedelta(days=1 + n % 10, hours=n % 7)
    return Appointment(f"Meeting {n}", start, start + timedelta(minutes=30), location=f"R{n}")


def contact_sample(n: int) -> Contact:
    return Contact(f"Given{n}", f"Family{n}", emails=(f"person{n}@example.com",))
