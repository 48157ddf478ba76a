"""Persistence for the applier: links, cursors, runs and audit entries of one sync user.

`SyncStore` is what the applier needs; `SqlStore` keeps it in the database (`ItemLink`,
`Cursor`, `SyncRun`, `AuditEntry`). Every method is its own transaction, so what the applier
wrote before a crash is exactly what the next run finds; inside `batch()` the writes share one
transaction instead, made durable by `commit_batch()` (the applier calls it before every call
that writes an item, so each intent is durable before its call) and when the block ends. A
crash inside a batch loses what was written since its last commit: intents whose call was
never made, and confirmations, whose intents the next run finishes as after any crash.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.db import Database
from common.kinds import ItemKind, LinkSnapshot, LinkState, RunStatus, Side
from common.models import AuditEntry, Cursor, ItemLink, SyncRun, utcnow

# SQL parameter lists stay well below SQLite's limit of 32766 variables.
_CHUNK = 500


class AuditState(enum.StrEnum):
    """Whether an audited change is known to have happened.

    A change's audit row is written with its intent (`PENDING`, `after` = what we meant to
    write) and confirmed (`APPLIED`, `after` = what the service returned) in the same step as
    the link. A crash in between leaves it pending; the next run looks at the service and
    settles it: `APPLIED`, `NOT_APPLIED`, or `UNCERTAIN` when the service cannot tell any more
    (the item vanished, or was edited again, before anyone looked), so no change goes unaudited.
    """

    PENDING = "pending"
    APPLIED = "applied"
    NOT_APPLIED = "not_applied"
    UNCERTAIN = "uncertain"


class LinkConflict(Exception):
    """`put_link` refused: another link of this user and kind already holds one of the item ids
    (`others`, found after the refusal). Nothing of the call was written."""

    def __init__(self, kind: ItemKind, link: LinkSnapshot, others: Sequence[LinkSnapshot]) -> None:
        self.kind = kind
        self.link = link
        self.others = tuple(others)
        held = []
        for other in self.others:
            ids = [
                f"{side} id {other.item_id(side)!r}"
                for side in (Side.CRM, Side.GROUPWARE)
                if link.item_id(side) is not None and other.item_id(side) == link.item_id(side)
            ]
            held.append(f"link {other.correlation_id!r} ({other.state}) holds {' and '.join(ids)}")
        super().__init__(
            f"{kind} link {link.correlation_id!r} (crm id {link.crm_id!r}, groupware id "
            f"{link.groupware_id!r}) not written: {'; '.join(held)}"
        )


UNDO_REASON = "undo of audit entry {id}"


def undone_by(reason: str) -> int | None:
    """The audit entry that the change with this reason undoes, if it is an undo."""
    head, _, rest = reason.partition(UNDO_REASON.format(id=""))
    if head or not rest:
        return None
    digits = rest.split(" ", 1)[0].rstrip(":")
    return int(digits) if digits.isdigit() else None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One change applied (or conflict settled), with enough to undo it."""

    kind: ItemKind
    side: Side  # the side written (for a conflict: the losing side)
    action: str  # create | update | delete | conflict
    correlation_id: str | None
    crm_id: str | None
    groupware_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str = ""
    state: AuditState = AuditState.APPLIED
    id: int | None = field(default=None, compare=False)  # given by the store
    undone_at: datetime | None = None

    def item_id(self, side: Side) -> str | None:
        return self.crm_id if side is Side.CRM else self.groupware_id

    def same_change(self, other: AuditRecord) -> bool:
        """Whether `other` is the same intended change (its confirmation or a retry)."""
        return (other.kind, other.correlation_id, other.side, other.action) == (
            self.kind,
            self.correlation_id,
            self.side,
            self.action,
        )


@dataclass(frozen=True, slots=True)
class RunOutcome:
    status: RunStatus
    counts: Mapping[str, int]
    errors: Mapping[str, Any]
    timings: Mapping[str, float]
    held_plan: dict[str, Any] | None = None
    notes: Sequence[str] = ()


class SyncStore(Protocol):
    """The applier's memory for one sync user."""

    def links_for(
        self,
        kind: ItemKind,
        crm_ids: Iterable[str],
        groupware_ids: Iterable[str],
        correlation_ids: Iterable[str],
    ) -> list[LinkSnapshot]:
        """Links matching any of the ids, plus every pending link of the kind."""
        ...

    def all_links(self, kind: ItemKind) -> list[LinkSnapshot]: ...

    def links_with_prefix(self, kind: ItemKind, side: Side, prefix: str) -> list[LinkSnapshot]:
        """Live links whose id on `side` starts with `prefix` (occurrences of a series)."""
        ...

    def linked_counts(self, kind: ItemKind) -> dict[Side, int]: ...

    def put_link(
        self,
        kind: ItemKind,
        link: LinkSnapshot,
        audits: Sequence[AuditRecord] = (),
        replaces: str | None = None,
    ) -> LinkSnapshot:
        """Insert or update the link (by correlation id, within this user and `kind`) and add
        `audits`, atomically; the link with correlation id `replaces` (a pair being re-created)
        is removed in the same step. Unless the link is a tombstone, tombstones of the kind
        holding one of its ids are removed too (a new pair may reuse a deleted pair's id).

        Raises `LinkConflict` when another link of this user and kind (a live one, or for a
        tombstone any) already holds its crm id or groupware id; then nothing of the call is
        written: no link, no removal, no audit.

        A `PENDING` audit closes an unconfirmed one of the same change (a retried attempt) as
        `NOT_APPLIED`; an `APPLIED` one confirms (overwrites) the unconfirmed row of its change
        if there is one, else it is added."""
        ...

    def batch(self) -> AbstractContextManager[None]:
        """Until the block ends, writes share one transaction, committed when it ends (by an
        error too: each write in it is whole); reads inside it see them. Only a block cut
        short by a `BaseException` that is no `Exception` (the process stopping) loses what
        was written since the last commit."""
        ...

    def commit_batch(self) -> None:
        """Make what the open batch wrote durable now (nothing outside a batch)."""
        ...

    def record_audits(
        self, audits: Sequence[AuditRecord], undoes: int | None = None
    ) -> list[AuditRecord]:
        """Write audit rows that go with no link change (an undo), as `put_link` does; with
        `undoes`, that entry is marked undone in the same step. Returns the rows with ids."""
        ...

    def unconfirmed_audits(self, kind: ItemKind) -> list[AuditRecord]:
        """Audit rows still `PENDING` (their intent was interrupted), with their ids."""
        ...

    def settle_audit(self, audit_id: int, state: AuditState, after: dict[str, Any] | None) -> None:
        """Settle a pending audit row; `after` (what the service holds) replaces the intended
        after only when the change is confirmed `APPLIED`."""
        ...

    def audit_entry(self, audit_id: int) -> AuditRecord | None: ...

    def mark_undone(self, audit_id: int, when: datetime) -> None: ...

    def drop_link(self, kind: ItemKind, correlation_id: str) -> None:
        """Remove the link of `kind` with this correlation id (if there is one)."""
        ...

    def load_cursor(self, kind: ItemKind, side: Side) -> str | None: ...

    def save_cursor(self, kind: ItemKind, side: Side, token: str | None) -> None: ...

    def start_run(self, dry_run: bool) -> int: ...

    def finish_run(self, run_id: int, outcome: RunOutcome) -> None: ...


def _snapshot(row: ItemLink) -> LinkSnapshot:
    return LinkSnapshot(
        correlation_id=row.correlation_id,
        crm_id=row.crm_id,
        groupware_id=row.remote_id,
        crm_version=row.crm_version,
        groupware_version=row.remote_version,
        crm_hash=row.crm_hash,
        groupware_hash=row.remote_hash,
        state=row.state,
        pending_action=row.pending_action,
        span_end=row.span_end,
        id=row.id,
    )


def _record(entry: AuditEntry) -> AuditRecord:
    state, reason = AuditState(entry.state), entry.reason or ""
    return AuditRecord(
        kind=entry.kind,
        side=entry.side,
        action=entry.action,
        correlation_id=entry.correlation_id,
        crm_id=entry.crm_id,
        groupware_id=entry.remote_id,
        before=entry.before,
        after=entry.after,
        reason=reason,
        state=state,
        id=entry.id,
        undone_at=entry.undone_at,
    )


def _chunks(values: Iterable[str]) -> Iterable[list[str]]:
    batch: list[str] = []
    for value in values:
        batch.append(value)
        if len(batch) == _CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


# Built once (a link write runs them for every item of an initial sync): a link's own row
# and the rows holding one of its ids; an audit entry still waiting for its change.
_ROWS_OF_LINK = select(ItemLink).where(
    # Each disjunct whole, so that SQLite looks each up in its own unique index instead
    # of scanning all of the user's links.
    or_(
        *(
            and_(
                ItemLink.sync_user_id == bindparam("user"),
                ItemLink.kind == bindparam("kind"),
                column == bindparam(name),
            )
            for column, name in (
                (ItemLink.correlation_id, "cid"),
                (ItemLink.crm_id, "crm"),
                (ItemLink.remote_id, "gw"),
            )
        )
    )
)
_UNCONFIRMED_OF_CHANGE = select(AuditEntry).where(
    AuditEntry.sync_user_id == bindparam("user"),
    AuditEntry.kind == bindparam("kind"),
    AuditEntry.correlation_id == bindparam("cid"),
    AuditEntry.side == bindparam("side"),
    AuditEntry.action == bindparam("action"),
    AuditEntry.state == AuditState.PENDING.value,
)


class SqlStore:
    """`SyncStore` on the application database, scoped to one profile and sync user: every
    query names this user (and the kind where there is one), so users never see, rewrite or
    settle each other's links and audit entries, even when they share a correlation id."""

    def __init__(
        self, db: Database, profile_id: int, sync_user_id: int, kind: ItemKind | None = None
    ) -> None:
        self.db = db
        self.profile_id = profile_id
        self.sync_user_id = sync_user_id
        self.kind = kind  # recorded on the runs it starts
        self.run_id: int | None = None
        self._open: Session | None = None  # the transaction of the batch under way

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """The open batch's session, or a transaction of its own."""
        if self._open is not None:
            yield self._open
            return
        with self.db.session() as session:
            yield session

    @contextmanager
    def batch(self) -> Iterator[None]:
        if self._open is not None:  # inside another batch: that one commits
            yield
            return
        session = self.db.sessions()
        self._open = session
        whole = False
        try:
            yield
            whole = True
        except Exception:
            whole = True  # an error the caller sees: what was written stands, each write whole
            raise
        finally:
            # Anything else (a process being killed, a simulated crash) keeps nothing since
            # the last commit, as a process that dies does.
            try:
                if whole:
                    session.commit()
                else:
                    session.rollback()
            finally:
                self._open = None
                session.close()

    def commit_batch(self) -> None:
        if self._open is not None:
            self._open.commit()

    def _links(self, kind: ItemKind) -> Any:
        return select(ItemLink).where(
            ItemLink.sync_user_id == self.sync_user_id, ItemLink.kind == kind
        )

    def links_for(
        self,
        kind: ItemKind,
        crm_ids: Iterable[str],
        groupware_ids: Iterable[str],
        correlation_ids: Iterable[str],
    ) -> list[LinkSnapshot]:
        found: dict[str, LinkSnapshot] = {}
        with self._session() as session:
            queries = [self._links(kind).where(ItemLink.state == LinkState.PENDING)]
            for column, ids in (
                (ItemLink.crm_id, crm_ids),
                (ItemLink.remote_id, groupware_ids),
                (ItemLink.correlation_id, correlation_ids),
            ):
                queries += [self._links(kind).where(column.in_(chunk)) for chunk in _chunks(ids)]
            for query in queries:
                for row in session.scalars(query):
                    found[row.correlation_id] = _snapshot(row)
        return list(found.values())

    def all_links(self, kind: ItemKind) -> list[LinkSnapshot]:
        with self._session() as session:
            return [_snapshot(row) for row in session.scalars(self._links(kind))]

    def links_with_prefix(self, kind: ItemKind, side: Side, prefix: str) -> list[LinkSnapshot]:
        column = ItemLink.crm_id if side is Side.CRM else ItemLink.remote_id
        query = self._links(kind).where(
            column.startswith(prefix, autoescape=True), ItemLink.state != LinkState.TOMBSTONE
        )
        with self._session() as session:
            return [_snapshot(row) for row in session.scalars(query)]

    def linked_counts(self, kind: ItemKind) -> dict[Side, int]:
        with self._session() as session:
            counts = {}
            for side, column in ((Side.CRM, ItemLink.crm_id), (Side.GROUPWARE, ItemLink.remote_id)):
                counts[side] = (
                    session.scalar(
                        select(func.count()).where(
                            ItemLink.sync_user_id == self.sync_user_id,
                            ItemLink.kind == kind,
                            ItemLink.state != LinkState.TOMBSTONE,
                            column.is_not(None),
                        )
                    )
                    or 0
                )
            return counts

    def put_link(
        self,
        kind: ItemKind,
        link: LinkSnapshot,
        audits: Sequence[AuditRecord] = (),
        replaces: str | None = None,
    ) -> LinkSnapshot:
        if self._open is not None:
            # In a batch a write the database refused would roll back the whole
            # transaction, the other items' intents with it: `_put_link` looks first.
            return self._put_link(self._open, kind, link, audits, replaces)
        try:
            with self.db.session() as session:
                return self._put_link(session, kind, link, audits, replaces)
        except IntegrityError as exc:  # rolled back: nothing of the call is written
            others = self._holders(kind, link, replaces)
            if not others:
                raise
            raise LinkConflict(kind, link, others) from exc

    def _put_link(
        self,
        session: Session,
        kind: ItemKind,
        link: LinkSnapshot,
        audits: Sequence[AuditRecord],
        replaces: str | None,
    ) -> LinkSnapshot:
        # One look at the rows the write touches: the link's own, and those holding one of
        # its ids (a tombstone gives way to a live link; anything else refuses it, before
        # anything of the call is written).
        found = session.scalars(
            _ROWS_OF_LINK,
            {
                "user": self.sync_user_id,
                "kind": kind,
                "cid": link.correlation_id,
                "crm": link.crm_id,
                "gw": link.groupware_id,
            },
        ).all()
        row = next((r for r in found if r.correlation_id == link.correlation_id), None)
        holders = [r for r in found if r.correlation_id not in (link.correlation_id, replaces)]
        live = link.state is not LinkState.TOMBSTONE
        stale = [r for r in holders if live and r.state is LinkState.TOMBSTONE]
        refusing = [r for r in holders if r not in stale]
        if refusing:
            raise LinkConflict(kind, link, [_snapshot(r) for r in refusing])
        if replaces is not None and replaces != link.correlation_id:
            session.execute(delete(ItemLink).where(*self._link_of(kind, replaces)))
        if stale:  # a new pair may reuse a deleted pair's id (deleted now, before the insert)
            session.execute(delete(ItemLink).where(ItemLink.id.in_([r.id for r in stale])))
        if row is None:
            row = ItemLink(
                profile_id=self.profile_id,
                sync_user_id=self.sync_user_id,
                kind=kind,
                correlation_id=link.correlation_id,
            )
            session.add(row)
        row.crm_id = link.crm_id
        row.remote_id = link.groupware_id
        row.crm_version = link.crm_version
        row.remote_version = link.groupware_version
        row.crm_hash = link.crm_hash
        row.remote_hash = link.groupware_hash
        row.span_end = link.span_end
        row.state = link.state
        row.pending_action = link.pending_action
        row.updated_at = utcnow()
        session.flush()
        for record in audits:
            self._write_audit(session, record, row.id)
        session.flush()
        return _snapshot(row)

    def _link_of(self, kind: ItemKind, correlation_id: str) -> tuple[Any, ...]:
        return (
            ItemLink.sync_user_id == self.sync_user_id,
            ItemLink.kind == kind,
            ItemLink.correlation_id == correlation_id,
        )

    def _holders(
        self, kind: ItemKind, link: LinkSnapshot, replaces: str | None
    ) -> list[LinkSnapshot]:
        """The links that keep `link` from being written: others of this user and kind that
        hold one of its ids and that the refused call would not have removed."""
        clauses = []
        if link.crm_id is not None:
            clauses.append(ItemLink.crm_id == link.crm_id)
        if link.groupware_id is not None:
            clauses.append(ItemLink.remote_id == link.groupware_id)
        if not clauses:
            return []
        query = self._links(kind).where(
            ItemLink.correlation_id.not_in([link.correlation_id, replaces or link.correlation_id]),
            or_(*clauses),
        )
        if link.state is not LinkState.TOMBSTONE:
            query = query.where(ItemLink.state != LinkState.TOMBSTONE)
        with self._session() as session:
            return [_snapshot(row) for row in session.scalars(query.order_by(ItemLink.id))]

    def _unconfirmed(self, session: Session, record: AuditRecord) -> list[AuditEntry]:
        if record.correlation_id is None:
            return []
        return list(
            session.scalars(
                _UNCONFIRMED_OF_CHANGE,
                {
                    "user": self.sync_user_id,
                    "kind": record.kind,
                    "cid": record.correlation_id,
                    "side": record.side,
                    "action": record.action,
                },
            )
        )

    def _write_audit(
        self, session: Session, record: AuditRecord, link_id: int | None
    ) -> AuditEntry:
        waiting = self._unconfirmed(session, record)
        if record.state is AuditState.PENDING:
            for stale in waiting:  # a retried intent: the earlier attempt was refused
                stale.state = AuditState.NOT_APPLIED.value
        elif waiting:
            entry = waiting[-1]
            entry.item_link_id = link_id if link_id is not None else entry.item_link_id
            entry.crm_id, entry.remote_id = record.crm_id, record.groupware_id
            entry.before, entry.after = record.before, record.after
            entry.state, entry.reason = record.state.value, record.reason
            entry.sync_run_id = self.run_id
            return entry
        entry = self._audit_row(record, link_id)
        session.add(entry)
        return entry

    def record_audits(
        self, audits: Sequence[AuditRecord], undoes: int | None = None
    ) -> list[AuditRecord]:
        with self._session() as session:
            entries = [self._write_audit(session, record, None) for record in audits]
            if undoes is not None:
                self._own_audit(session, undoes).undone_at = utcnow()
            session.flush()
            return [_record(entry) for entry in entries]

    def unconfirmed_audits(self, kind: ItemKind) -> list[AuditRecord]:
        query = select(AuditEntry).where(
            AuditEntry.sync_user_id == self.sync_user_id,
            AuditEntry.state == AuditState.PENDING.value,
            AuditEntry.kind == kind,
        )
        with self._session() as session:
            return [_record(e) for e in session.scalars(query.order_by(AuditEntry.id))]

    def settle_audit(self, audit_id: int, state: AuditState, after: dict[str, Any] | None) -> None:
        with self._session() as session:
            entry = self._own_audit(session, audit_id)
            if entry.state != AuditState.PENDING.value:
                return
            if state is AuditState.APPLIED:
                entry.after = after
            entry.state = state.value

    def audit_entry(self, audit_id: int) -> AuditRecord | None:
        with self._session() as session:
            entry = session.get(AuditEntry, audit_id)
            if entry is None or entry.sync_user_id != self.sync_user_id:
                return None
            return _record(entry)

    def mark_undone(self, audit_id: int, when: datetime) -> None:
        with self._session() as session:
            self._own_audit(session, audit_id).undone_at = when

    def _own_audit(self, session: Session, audit_id: int) -> AuditEntry:
        """This user's audit entry `audit_id`; `NoResultFound` for another user's."""
        return session.scalars(
            select(AuditEntry).where(
                AuditEntry.id == audit_id, AuditEntry.sync_user_id == self.sync_user_id
            )
        ).one()

    def _audit_row(self, record: AuditRecord, link_id: int | None) -> AuditEntry:
        return AuditEntry(
            profile_id=self.profile_id,
            sync_user_id=self.sync_user_id,
            sync_run_id=self.run_id,
            item_link_id=link_id,
            kind=record.kind,
            side=record.side,
            action=record.action,
            correlation_id=record.correlation_id,
            crm_id=record.crm_id,
            remote_id=record.groupware_id,
            before=record.before,
            after=record.after,
            reason=record.reason,
            state=record.state.value,
        )

    def drop_link(self, kind: ItemKind, correlation_id: str) -> None:
        with self._session() as session:
            session.execute(delete(ItemLink).where(*self._link_of(kind, correlation_id)))

    def load_cursor(self, kind: ItemKind, side: Side) -> str | None:
        with self._session() as session:
            return session.scalar(
                select(Cursor.token).where(
                    Cursor.sync_user_id == self.sync_user_id,
                    Cursor.kind == kind,
                    Cursor.side == side,
                )
            )

    def save_cursor(self, kind: ItemKind, side: Side, token: str | None) -> None:
        with self._session() as session:
            row = session.scalar(
                select(Cursor).where(
                    Cursor.sync_user_id == self.sync_user_id,
                    Cursor.kind == kind,
                    Cursor.side == side,
                )
            )
            if row is None:
                row = Cursor(sync_user_id=self.sync_user_id, kind=kind, side=side)
                session.add(row)
            row.token = token
            row.updated_at = utcnow()

    def start_run(self, dry_run: bool) -> int:
        with self._session() as session:
            run = SyncRun(
                profile_id=self.profile_id,
                sync_user_id=self.sync_user_id,
                dry_run=dry_run,
                kind=self.kind,
            )
            session.add(run)
            session.flush()
            self.run_id = run.id
            return run.id

    def finish_run(self, run_id: int, outcome: RunOutcome) -> None:
        with self._session() as session:
            run = session.scalars(
                select(SyncRun).where(
                    SyncRun.id == run_id, SyncRun.sync_user_id == self.sync_user_id
                )
            ).one()
            run.status = outcome.status
            run.finished_at = utcnow()
            run.counts = dict(outcome.counts)
            run.errors = dict(outcome.errors)
            run.timings = dict(outcome.timings)
            run.held_plan = outcome.held_plan
            run.notes = list(outcome.notes)

    def audit_entries(self, since: datetime | None = None) -> list[AuditEntry]:
        """The audit trail of this user (newest last), for the portal and for undo."""
        with self._session() as session:
            query = select(AuditEntry).where(AuditEntry.sync_user_id == self.sync_user_id)
            if since is not None:
                query = query.where(AuditEntry.created_at >= since)
            return list(session.scalars(query.order_by(AuditEntry.id)))

    def audit_records(self) -> list[AuditRecord]:
        """The audit trail as records (with state and ids), oldest first."""
        return [_record(entry) for entry in self.audit_entries()]
