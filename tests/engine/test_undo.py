"""Undo of one audited change: the reverse write for each kind of change, refusals, and an undo
interrupted by a crash; through the in-memory connectors and both stores."""

from __future__ import annotations

import dataclasses

import pytest

from common.connectors.base import Stored
from common.items import Appointment, to_json
from common.models import ItemKind, Side
from daemon.engine import Op
from daemon.policies import Policy
from daemon.store import AuditRecord, AuditState, SqlStore, SyncStore
from daemon.sync import sync
from daemon.undo import UndoRefused, plan_undo, undo
from tests.fixtures.engine import NOW, Crash, Faults, MemoryConnector, MemoryStore, appointment

APPT = ItemKind.APPOINTMENT
Conns = dict[Side, MemoryConnector[Appointment]]


@pytest.fixture(params=["memory", "sql"])
def store(request: pytest.FixtureRequest) -> SyncStore:
    if request.param == "memory":
        return MemoryStore()
    return request.getfixturevalue("sql_store")  # type: ignore[no-any-return]


@pytest.fixture
def both(
    memory_crm: MemoryConnector[Appointment], memory_groupware: MemoryConnector[Appointment]
) -> Conns:
    return {Side.CRM: memory_crm, Side.GROUPWARE: memory_groupware}


def audits(store: SyncStore) -> list[AuditRecord]:
    return store.audit_records() if isinstance(store, SqlStore) else store.audits  # type: ignore[attr-defined]


def last(store: SyncStore, action: str) -> AuditRecord:
    return [a for a in audits(store) if a.action == action][-1]


def run(both: Conns, store: SyncStore) -> None:
    sync(APPT, both, store, Policy(), NOW, sleep=lambda s: None)


def test_a_create_is_undone_by_deleting_the_copy(both: Conns, store: SyncStore) -> None:
    crm, gw = both[Side.CRM], both[Side.GROUPWARE]
    crm.user_create(appointment("Kick-off"))
    run(both, store)
    created = last(store, "create")
    (gw_id,) = gw.items
    record = undo(created.id or 0, store, both)
    assert gw.items == {} and ("delete", gw_id) in gw.writes
    assert record.action == "delete" and record.side is Side.GROUPWARE
    assert (
        record.state is AuditState.APPLIED and record.reason == f"undo of audit entry {created.id}"
    )
    assert record.before is not None and record.before["id"] == gw_id
    assert store.audit_entry(created.id or 0).undone_at is not None  # type: ignore[union-attr]


def test_an_update_is_undone_by_writing_before_back_and_the_sync_carries_it(
    both: Conns, store: SyncStore
) -> None:
    crm, gw = both[Side.CRM], both[Side.GROUPWARE]
    crm_id = crm.user_create(appointment("Review"))
    run(both, store)
    crm.user_edit(crm_id, subject="Review (wrong)")
    run(both, store)
    updated = last(store, "update")
    (gw_id,) = gw.items
    assert gw.item(gw_id).subject == "Review (wrong)"
    version_before_undo = gw.get(gw_id).version
    record = undo(updated.id or 0, store, both)
    assert gw.item(gw_id).subject == "Review"
    assert record.action == "update" and record.before is not None
    assert record.before["version"] == version_before_undo  # written with If-Match on it
    run(both, store)  # an edit on the groupware side like any other: carried to the CRM
    assert crm.item(crm_id).subject == "Review"


def test_a_delete_is_undone_by_recreating_before_with_a_fresh_link(
    both: Conns, store: SyncStore
) -> None:
    crm, gw = both[Side.CRM], both[Side.GROUPWARE]
    gw_id = gw.user_create(appointment("Lunch", body="table for two"))
    run(both, store)
    (crm_id,) = crm.items
    old_cid = gw.stamp_of(gw_id) or crm.stamp_of(crm_id)
    gw.user_delete(gw_id)
    run(both, store)
    deleted = last(store, "delete")
    assert crm.items == {}
    record = undo(deleted.id or 0, store, both)
    (restored_id,) = crm.items
    assert crm.item(restored_id).subject == "Lunch"
    assert crm.stamp_of(restored_id) not in (None, old_cid)  # a fresh correlation id
    assert record.action == "create" and record.crm_id == restored_id
    run(both, store)  # the next sync pairs it by its stamp and copies it back
    (new_gw,) = gw.items
    assert gw.item(new_gw).subject == "Lunch"
    linked = [x for x in store.all_links(APPT) if x.crm_id == restored_id]
    assert len(linked) == 1 and linked[0].groupware_id == new_gw


@pytest.mark.parametrize("action", ["create", "update"])
def test_an_item_changed_since_is_not_undone(both: Conns, store: SyncStore, action: str) -> None:
    crm, gw = both[Side.CRM], both[Side.GROUPWARE]
    crm_id = crm.user_create(appointment("Review"))
    run(both, store)
    if action == "update":
        crm.user_edit(crm_id, subject="Review 2")
        run(both, store)
    entry = last(store, action)
    (gw_id,) = gw.items
    gw.user_edit(gw_id, subject="edited on the phone")
    writes = len(gw.writes)
    with pytest.raises(UndoRefused, match="changed since"):
        undo(entry.id or 0, store, both)
    assert len(gw.writes) == writes and gw.item(gw_id).subject == "edited on the phone"
    assert store.audit_entry(entry.id or 0).undone_at is None  # type: ignore[union-attr]


def test_an_undo_is_not_repeated(both: Conns, store: SyncStore) -> None:
    both[Side.CRM].user_create(appointment("Kick-off"))
    run(both, store)
    created = last(store, "create")
    undo(created.id or 0, store, both)
    with pytest.raises(UndoRefused, match="already undone"):
        undo(created.id or 0, store, both)


def test_an_undo_interrupted_after_its_call_is_confirmed_by_the_next_sync(
    both: Conns, memory_store: MemoryStore
) -> None:
    crm, gw = both[Side.CRM], both[Side.GROUPWARE]
    crm_id = crm.user_create(appointment("Review"))
    run(both, memory_store)
    crm.user_edit(crm_id, subject="Review (wrong)")
    run(both, memory_store)
    updated = last(memory_store, "update")
    # Steps: 0 the undo's intent (its audit entry), 1 before gw.update, 2 after it.
    faults = Faults(at=2).attach(gw, memory_store)
    with pytest.raises(Crash):
        undo(updated.id or 0, memory_store, both)
    faults.detach(gw, memory_store)
    pending = memory_store.audits[-1]
    assert pending.state is AuditState.PENDING and pending.reason.startswith("undo of")
    assert memory_store.audit_entry(updated.id or 0).undone_at is None  # type: ignore[union-attr]
    run(both, memory_store)
    assert memory_store.audits[pending.id - 1].state is AuditState.APPLIED  # type: ignore[operator]
    assert memory_store.audit_entry(updated.id or 0).undone_at is not None  # type: ignore[union-attr]


def entry(action: str, **more: object) -> AuditRecord:
    item = to_json(appointment("X"))
    base = AuditRecord(
        APPT,
        Side.GROUPWARE,
        action,
        "cid",
        "crm-1",
        "gw-1",
        before={"id": "gw-1", "version": "v1", "item": item},
        after={"id": "gw-1", "version": "v2", "item": item},
        id=5,
    )
    return dataclasses.replace(base, **more)  # type: ignore[arg-type]


def stored(version: str | None) -> Stored[Appointment] | None:
    return None if version is None else Stored("gw-1", version, appointment("X"))


@pytest.mark.parametrize(
    ("action", "current", "op", "if_match"),
    [
        ("create", "v2", Op.DELETE, "v2"),
        ("update", "v2", Op.UPDATE, "v2"),
        ("delete", None, Op.CREATE, None),
    ],
)
def test_plan_undo_reverses_each_kind_of_change(
    action: str, current: str | None, op: Op, if_match: str | None
) -> None:
    step = plan_undo(entry(action), stored(current))
    assert (step.op, step.side, step.if_match) == (op, Side.GROUPWARE, if_match)
    assert step.reason == "undo of audit entry 5"


@pytest.mark.parametrize(
    ("record", "current", "why"),
    [
        (entry("update"), "v3", "changed since"),
        (entry("update"), None, "deleted since"),
        (entry("create"), "v3", "changed since"),
        (entry("delete"), "v1", "exists again"),
        (entry("conflict"), "v2", "only a create, an update or a delete"),
        (entry("update", state=AuditState.UNCERTAIN), "v2", "not known to have been applied"),
        (entry("update", state=AuditState.PENDING), "v2", "not known to have been applied"),
        (entry("update", undone_at=NOW), "v2", "already undone"),
    ],
)
def test_plan_undo_refuses_clearly(record: AuditRecord, current: str | None, why: str) -> None:
    with pytest.raises(UndoRefused, match=why):
        plan_undo(record, stored(current))
