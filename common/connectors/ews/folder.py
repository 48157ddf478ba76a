"""What the calendar and the contacts connectors share: a folder read by SyncFolderItems
and GetItem, written by batched CreateItem, UpdateItem and DeleteItem, stamped with our
extended property.

Reading: a page of ids from the saved SyncState (`listing`), then the items it names in
one GetItem (SyncFolderItems, like FindItem, cannot return bodies or attendees). A full pass
leaves out what lies outside the engine's window; a delta says that an item moved out of it
"left the range". An invalid SyncState is `CursorExpired`: the engine lists afresh and pairs
by id, so nothing is made twice.

Writing: the creates of a batch go in one CreateItem, its updates in one UpdateItem, its
stamps in another, then everything written is read back in one GetItem. Updates carry the
change key with `NeverOverwrite` (a stale key fails that item with
ErrorIrresolvableConflict: `PreconditionFailed`, the engine re-reads and re-plans).
DeleteItem does not look at change keys, so a delete reads the current keys first (one
GetItem, ids only) and deletes only what has not changed since the engine read it.

Declared honestly: `idempotent_create` False (EWS has no idempotency key: after a crash the
engine finds an earlier create by its stamp, `find_by_correlation_id`); `stamps_in_listing`
True (every listed item is read with our extended property).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Generic

from exchangelib.properties import FieldPath

from common.connectors.base import (
    AuthExpired,
    BatchingConnector,
    ConnectorError,
    CursorExpired,
    NotFound,
    Permanent,
    PreconditionFailed,
    Throttled,
    Transient,
    Write,
    WriteResult,
)
from common.connectors.ews import mapping
from common.connectors.ews.client import EwsClient, item_error, translated
from common.connectors.ews.listing import sync_page
from common.items import Appointment, overlaps_window
from common.kinds import ChangeSet, Removal, RemovalKind, Stored, T, Unreadable, Window

SEND_NONE = "SendToNone"
_STOPS = (AuthExpired, Throttled)  # after these, the rest of a batch is not sent

Read = Stored[T] | Unreadable | None
Results = dict[int, WriteResult[Any]]


def fields_of(model: Any, names: Sequence[str]) -> set[FieldPath]:
    return {FieldPath(field=model.get_field_by_fieldname(name)) for name in names}


def raise_if_passing(error: ConnectorError | None) -> None:
    """Errors about the call, not the item: nothing after them can be read either."""
    if isinstance(error, AuthExpired | Throttled | Transient | CursorExpired):
        raise error


def check(answer: Any) -> Any:
    """A batch answer of one item, its error raised."""
    error = item_error(answer)
    if error is not None:
        raise error
    return answer


class FolderConnector(BatchingConnector[T], Generic[T]):
    """One folder of one mailbox as the engine's connector; subclasses say which model,
    which fields, and how an item maps."""

    exact_versions = True
    can_stamp = True
    stamps_in_listing = True
    idempotent_create = False
    batch_size = 50

    model: Any  # exchangelib's item class
    read_fields: Sequence[str]
    written_fields: Sequence[str]

    def __init__(self, client: EwsClient, *, page_size: int = 100) -> None:
        mapping.register_stamp()
        self.client = client
        self.account = client.account
        self.mailbox = str(client.account.primary_smtp_address).lower()
        self.page_size = page_size
        self._folder: Any = None

    # --- what each kind says ---------------------------------------------------------------

    @property
    def folder(self) -> Any:
        if self._folder is None:
            with translated():
                self._folder = self._find_folder()
        return self._folder

    def _find_folder(self) -> Any:
        raise NotImplementedError

    def _item_of(self, raw: Any) -> T:
        raise NotImplementedError

    def _fill(self, target: Any, item: T) -> None:
        raise NotImplementedError

    def _send(self, items: Sequence[Any]) -> str:
        """The SendMeetingInvitations(OrCancellations) of a create or update."""
        return SEND_NONE

    def _own_way(self, write: Write[T]) -> bool:
        """Whether a create or update is written on its own (`_write_alone`)."""
        return False

    def _write_alone(self, write: Write[T]) -> str:
        """Write one create or update on its own; the id to read back."""
        raise NotImplementedError

    # --- reading ---------------------------------------------------------------------------

    def changes(self, cursor: str | None, window: Window | None = None) -> ChangeSet[T]:
        page = sync_page(self.client, self.folder, cursor, self.page_size)
        removals = [Removal(c.item_id) for c in page.changes if c.kind == "delete"]
        wanted = list(dict.fromkeys(c.item_id for c in page.changes if c.kind != "delete"))
        read = self._read(wanted)
        upserts: list[Stored[T]] = []
        unreadable: list[Unreadable] = []
        for item_id in wanted:
            found = read[item_id]
            if found is None:
                removals.append(Removal(item_id))  # deleted since the page was answered
            elif isinstance(found, Unreadable):
                unreadable.append(found)
            elif window is None or _inside(found.item, window):
                upserts.append(found)
            elif not page.full:
                removals.append(Removal(item_id, RemovalKind.LEFT_RANGE))
        return ChangeSet(
            upserts,
            removals,
            page.after.encode(),
            full=page.full,
            more=page.more,
            unreadable=unreadable,
        )

    def get_many(self, item_ids: Sequence[str]) -> dict[str, Stored[T] | None]:
        read = self._read(list(dict.fromkeys(item_ids)))
        return {i: found for i, found in read.items() if not isinstance(found, Unreadable)}

    def find_by_correlation_id(self, correlation_id: str) -> Stored[T] | None:
        """The oldest item of the folder carrying the stamp (FindItem restricted on our
        extended property; for a calendar that lists masters and single items only)."""
        with translated():
            holders = list(
                self.folder.filter(**{mapping.STAMP_FIELD: correlation_id}).only("datetime_created")
            )
        if not holders:
            return None
        never = datetime.max.replace(tzinfo=UTC)
        oldest = min(holders, key=lambda h: (mapping.created_of(h) or never, str(h.id)))
        found = self._read([str(oldest.id)])[str(oldest.id)]
        if isinstance(found, Unreadable):
            raise Permanent(f"{oldest.id}: {found.reason}")
        return found

    def _read(self, ids: Sequence[str]) -> dict[str, Read[T]]:
        """Items by id in one GetItem: None where an item is gone, Unreadable where it
        cannot be read into a canonical item."""
        found: dict[str, Read[T]] = {}
        raws: dict[str, Any] = {}
        results = self.client.get_items([(i, None) for i in ids], self._read_paths())
        for item_id, result in zip(ids, results, strict=True):
            error = item_error(result)
            raise_if_passing(error)
            if isinstance(error, NotFound):
                found[item_id] = None
            elif error is not None:
                found[item_id] = Unreadable(item_id, str(error))
            elif not isinstance(result, self.model):
                found[item_id] = Unreadable(item_id, f"not a {self.model.__name__}")
            else:
                raws[item_id] = result
        found.update(self._convert(raws))
        return found

    def _read_paths(self) -> set[FieldPath]:
        return fields_of(self.model, self.read_fields)

    def _convert(self, raws: Mapping[str, Any]) -> dict[str, Stored[T] | Unreadable]:
        return {i: self._stored(i, raw, self._item_of) for i, raw in raws.items()}

    def _stored(self, item_id: str, raw: Any, read: Callable[[Any], T]) -> Stored[T] | Unreadable:
        try:
            item = read(raw)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return Unreadable(item_id, f"{type(exc).__name__}: {exc}")
        return Stored(
            item_id,
            str(raw.changekey or ""),
            item,
            mapping.stamp_of(raw),
            mapping.created_of(raw),
        )

    def keys(self, ids: Sequence[str]) -> dict[str, str | ConnectorError]:
        """The current change key of each item (one GetItem, ids only)."""
        if not ids:
            return {}
        found: dict[str, str | ConnectorError] = {}
        answers = self.client.get_items([(i, None) for i in ids], set())
        for item_id, answer in zip(ids, answers, strict=True):
            error = item_error(answer)
            raise_if_passing(error)
            found[item_id] = error if error is not None else str(answer.changekey)
        return found

    # --- writing ---------------------------------------------------------------------------

    def apply_many(self, writes: Sequence[Write[T]]) -> list[WriteResult[T]]:
        if len(writes) > self.batch_size:
            raise ValueError(f"{len(writes)} writes in one batch of at most {self.batch_size}")
        results: Results = {}
        written: dict[int, str] = {}  # write -> the id to read back
        alone = [
            n for n, w in enumerate(writes) if w.op in ("create", "update") and self._own_way(w)
        ]
        plain = [n for n in range(len(writes)) if n not in alone]

        def of(op: str) -> list[int]:
            return [n for n in plain if writes[n].op == op]

        steps: list[tuple[list[int], Callable[[list[int]], None]]] = [
            (of("delete"), lambda ns: self._delete(writes, ns, results)),
            (of("stamp"), lambda ns: self._update(writes, ns, results, written, stamp=True)),
            (of("create"), lambda ns: self._create(writes, ns, results, written)),
            (of("update"), lambda ns: self._update(writes, ns, results, written, stamp=False)),
        ]
        for n in alone:
            steps.append(
                ([n], lambda ns: written.update({ns[0]: self._write_alone(writes[ns[0]])}))
            )
        for indexes, step in steps:
            if not indexes:
                continue
            try:
                step(indexes)
            except ValueError as exc:  # mapping.Unmappable: what Exchange cannot hold
                for n in indexes:
                    results.setdefault(n, Permanent(f"cannot be written to Exchange: {exc}"))
            except ConnectorError as exc:
                for n in indexes:
                    results.setdefault(n, exc)
                if isinstance(exc, _STOPS):
                    for m in range(len(writes)):
                        results.setdefault(m, exc)
                    break
        self._read_back(written, results)
        return [results[n] for n in range(len(writes))]

    def _read_back(self, written: dict[int, str], results: Results) -> None:
        ids = [i for n, i in written.items() if n not in results]
        read = self._read(list(dict.fromkeys(ids))) if ids else {}
        for n, item_id in written.items():
            if n in results:
                continue
            found = read.get(item_id)
            if isinstance(found, Stored):
                results[n] = found
            elif found is None:
                results[n] = NotFound(f"{item_id} written, then gone")
            else:
                results[n] = Permanent(f"{item_id} written, not readable: {found.reason}")

    def new(self, item: T, correlation_id: str) -> Any:
        made = self.model(account=self.account, folder=self.folder)
        self._fill(made, item)
        setattr(made, mapping.STAMP_FIELD, correlation_id)
        return made

    def _create(
        self, writes: Sequence[Write[T]], indexes: list[int], results: Results,
        written: dict[int, str],
    ) -> None:  # fmt: skip
        items: list[Any] = []
        sent: list[int] = []
        for n in indexes:
            write = writes[n]
            assert write.item is not None and write.correlation_id is not None
            try:
                items.append(self.new(write.item, write.correlation_id))
            except ValueError as exc:
                results[n] = Permanent(f"cannot be written to Exchange: {exc}")
                continue
            sent.append(n)
        answers = self.client.create_items(self.folder, items, self._send(items))
        for n, answer in zip(sent, answers, strict=True):
            error = item_error(answer)
            if error is not None:
                results[n] = error
            else:
                written[n] = str(answer.id)

    def target(self, item_id: str, key: str | None) -> Any:
        return self.model(account=self.account, folder=self.folder, id=item_id, changekey=key)

    def _update(
        self, writes: Sequence[Write[T]], indexes: list[int], results: Results,
        written: dict[int, str], *, stamp: bool,
    ) -> None:  # fmt: skip
        """Updates (or, `stamp`, our correlation id put on existing items, nothing else
        written and nobody mailed) in one UpdateItem, each with its change key."""
        keys = self.keys([str(writes[n].item_id) for n in indexes if writes[n].if_match is None])
        changes: list[tuple[Any, list[str]]] = []
        sent: list[int] = []
        for n in indexes:
            write = writes[n]
            assert write.item_id is not None
            key = write.if_match or keys.get(write.item_id)
            if isinstance(key, ConnectorError):
                results[n] = key
                continue
            target = self.target(write.item_id, key)
            try:
                if stamp:
                    setattr(target, mapping.STAMP_FIELD, write.correlation_id)
                else:
                    assert write.item is not None
                    self._fill(target, write.item)
            except ValueError as exc:
                results[n] = Permanent(f"cannot be written to Exchange: {exc}")
                continue
            names = [mapping.STAMP_FIELD] if stamp else list(self.written_fields)
            changes.append((target, names))
            sent.append(n)
        send = SEND_NONE if stamp else self._send([c for c, _ in changes])
        for n, answer in zip(sent, self.client.update_items(changes, send), strict=True):
            error = item_error(answer)
            if error is not None:
                results[n] = error
            else:
                written[n] = str(writes[n].item_id)

    def _delete(self, writes: Sequence[Write[T]], indexes: list[int], results: Results) -> None:
        """Deletes in one DeleteItem, of the items unchanged since the engine read them."""
        ids = [str(writes[n].item_id) for n in indexes]
        current = self.keys(ids)
        doomed: list[tuple[str, str]] = []
        sent: list[int] = []
        for n, item_id in zip(indexes, ids, strict=True):
            key = current.get(item_id)
            wanted = writes[n].if_match
            if isinstance(key, ConnectorError):
                results[n] = key
            elif wanted is not None and key != wanted:
                results[n] = PreconditionFailed(f"{item_id} changed since it was read")
            else:
                doomed.append((item_id, str(key)))
                sent.append(n)
        for n, answer in zip(sent, self.client.delete_items(doomed, SEND_NONE), strict=True):
            results[n] = item_error(answer)


def _inside(item: Any, window: Window) -> bool:
    if not isinstance(item, Appointment):
        return True
    try:
        return overlaps_window(item, window.start, window.end)
    except (ValueError, TypeError, OverflowError):
        return True  # the engine sets an unreadable series aside itself
