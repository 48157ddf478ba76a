"""Undo one audited change: plan the reverse write (pure), then apply it, journaled.

The reverse of a change is written on the side the change was written to, with `If-Match` on
the version the audit entry says the change left there, so an item edited since is never
overwritten: the undo is refused and says why.

| audited change | undo                                                        |
|----------------|-------------------------------------------------------------|
| create         | delete the created item                                     |
| update         | write `before` back                                         |
| delete         | re-create `before`, stamped with a fresh correlation id     |

An undo is an edit on that side like any other: the next sync carries it to the other side
per the profile's direction (an undone update brings `before` back on both sides, an undone
create deletes the pair, under the deletion guard), and pairs a re-created item by its fresh
stamp (its fresh link). Like the applier, the undo writes its own audit entry, unconfirmed,
before the call and confirms it after (marking the original undone in the same step); an undo
interrupted by a crash is settled by the next sync run (`Applier.settle_unconfirmed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from common.connectors.base import ItemConnector, NotFound, PreconditionFailed, Stored, T
from common.items import Appointment, Contact, from_json, to_json
from common.kinds import Side, new_correlation_id
from daemon.engine import Op
from daemon.store import UNDO_REASON, AuditRecord, AuditState, SyncStore


class UndoRefused(Exception):
    """The change cannot be undone (safely); the message says why, for the administrator."""


@dataclass(frozen=True, slots=True)
class UndoStep:
    """The reverse write of one audited change."""

    op: Op  # CREATE, UPDATE or DELETE
    side: Side
    item_id: str | None  # the item to update or delete; None for a create
    if_match: str | None
    item: Appointment | Contact | None  # what to write (create, update)
    reason: str


def target_id(entry: AuditRecord) -> str | None:
    """The id of the item the audited change left (or removed) on its side."""
    snapshot = entry.before if entry.action == "delete" else entry.after
    return (snapshot.get("id") or None) if snapshot else entry.item_id(entry.side)


def plan_undo(entry: AuditRecord, current: Stored[Any] | None) -> UndoStep:
    """The reverse of `entry`, given the item as its side holds it now (None: no such item).
    Raises `UndoRefused` when it cannot or must not be undone."""
    where = f"audit entry {entry.id} ({entry.action} on {entry.side.value})"
    if entry.undone_at is not None:
        raise UndoRefused(f"{where} was already undone at {entry.undone_at:%Y-%m-%d %H:%M} UTC")
    if entry.state is not AuditState.APPLIED:
        raise UndoRefused(f"{where} is not known to have been applied ({entry.state.value})")
    reason = UNDO_REASON.format(id=entry.id)
    if entry.action == "delete":
        if entry.before is None:
            raise UndoRefused(f"{where} has no 'before' to re-create")
        if current is not None:
            raise UndoRefused(f"{where}: the item exists again ({current.id}); nothing to undo")
        return UndoStep(Op.CREATE, entry.side, None, None, from_json(entry.before["item"]), reason)
    if entry.action not in ("create", "update"):
        raise UndoRefused(f"{where}: only a create, an update or a delete can be undone")
    if entry.after is None:
        raise UndoRefused(f"{where} has no 'after' to compare with")
    if current is None:
        raise UndoRefused(f"{where}: the item was deleted since")
    if current.version != entry.after["version"]:
        raise UndoRefused(
            f"{where}: the item changed since (version {current.version}, "
            f"audited {entry.after['version']}); undo refused so that change is not lost"
        )
    if entry.action == "create":
        return UndoStep(Op.DELETE, entry.side, current.id, current.version, None, reason)
    if entry.before is None:
        raise UndoRefused(f"{where} has no 'before' to write back")
    item = from_json(entry.before["item"])
    return UndoStep(Op.UPDATE, entry.side, current.id, current.version, item, reason)


def undo(
    audit_id: int, store: SyncStore, connectors: Mapping[Side, ItemConnector[T]]
) -> AuditRecord:
    """Undo the audited change `audit_id`; returns the undo's own (confirmed) audit entry."""
    entry = store.audit_entry(audit_id)
    if entry is None:
        raise UndoRefused(f"no audit entry {audit_id} for this user")
    connector = connectors[entry.side]
    item_id = target_id(entry)
    try:
        current = connector.get(item_id) if item_id else None
    except NotFound:
        current = None
    step = plan_undo(entry, current)
    return _apply(step, entry, store, connector, current)


def _apply(
    step: UndoStep,
    entry: AuditRecord,
    store: SyncStore,
    connector: ItemConnector[T],
    current: Stored[T] | None,
) -> AuditRecord:
    cid = new_correlation_id() if step.op is Op.CREATE else entry.correlation_id
    intended = None if step.item is None else _snapshot(step.item_id or "", "", step.item)
    record = AuditRecord(
        kind=entry.kind,
        side=step.side,
        action=step.op.value,
        correlation_id=cid,
        crm_id=step.item_id if step.side is Side.CRM else None,
        groupware_id=step.item_id if step.side is Side.GROUPWARE else None,
        before=_snapshot(current.id, current.version, current.item) if current else None,
        after=intended,
        reason=step.reason,
        state=AuditState.PENDING,
    )
    assert entry.id is not None
    store.record_audits([record])  # the intent: if we die now, the next run settles it
    try:
        after = _write(step, connector, cid)
    except (PreconditionFailed, NotFound) as exc:
        store.record_audits([replace(record, state=AuditState.NOT_APPLIED)])
        raise UndoRefused(f"the item changed while undoing audit entry {entry.id}") from exc
    done = replace(record, state=AuditState.APPLIED, after=after)
    if after is not None and step.op is Op.CREATE:
        done = _named(done, step.side, after["id"])
    (confirmed,) = store.record_audits([done], undoes=entry.id)
    return confirmed


def _write(step: UndoStep, connector: ItemConnector[T], cid: str | None) -> dict[str, Any] | None:
    item: Any = step.item
    if step.op is Op.DELETE:
        assert step.item_id is not None
        connector.delete(step.item_id, step.if_match)
        return None
    if step.op is Op.UPDATE:
        assert step.item_id is not None
        stored = connector.update(step.item_id, item, step.if_match)
    else:
        assert cid is not None
        stored = connector.create(item, cid)
    return _snapshot(stored.id, stored.version, stored.item)


def _snapshot(item_id: str, version: str, item: Appointment | Contact) -> dict[str, Any]:
    return {"id": item_id, "version": version, "item": to_json(item)}


def _named(record: AuditRecord, side: Side, item_id: str) -> AuditRecord:
    if side is Side.CRM:
        return replace(record, crm_id=item_id)
    return replace(record, groupware_id=item_id)
