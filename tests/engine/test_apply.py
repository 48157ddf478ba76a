"""The applier and a run: journal order, errors per item, throttling, stale etags, audit, guard,
dry run; through the in-memory connectors."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from common.connectors.base import AuthExpired, Permanent, Throttled, Transient
from common.items import Appointment, from_json
from common.models import ItemKind, LinkState, RunStatus, Side
from daemon.policies import ConflictPolicy, DeletionGuard, Policy
from daemon.reading import SideCursor
from daemon.store import AuditState
from daemon.sync import SyncOutcome, sync
from tests.fixtures.engine import (
    NOW,
    Crash,
    Faults,
    MemoryConnector,
    MemoryStore,
    appointment,
)

Conns = dict[Side, MemoryConnector[Appointment]]


@pytest.fixture
def both(
    memory_crm: MemoryConnector[Appointment], memory_groupware: MemoryConnector[Appointment]
) -> Conns:
    return {Side.CRM: memory_crm, Side.GROUPWARE: memory_groupware}


def run(
    both: Conns, store: MemoryStore, policy: Policy | None = None, **kw: Any
) -> SyncOutcome[Appointment]:
    slept: list[float] = kw.pop("slept", [])
    return sync(
        ItemKind.APPOINTMENT, both, store, policy or Policy(), NOW, sleep=slept.append, **kw
    )


def only_id(connector: MemoryConnector[Appointment]) -> str:
    (item_id,) = connector.items
    return item_id


def fail_once(connector: MemoryConnector[Appointment], op: str, error: Exception) -> None:
    def hook(phase: str, name: str, item_id: str | None) -> None:
        if phase == "before" and name.endswith(op) and hook in connector.hooks:
            connector.hooks.remove(hook)
            raise error

    connector.hooks.append(hook)


def test_first_sync_creates_stamped_copies_and_audits_them(
    both: Conns, memory_store: MemoryStore
) -> None:
    crm, gw = both[Side.CRM], both[Side.GROUPWARE]
    crm.user_create(appointment("Kick-off", body="Agenda"))
    outcome = run(both, memory_store)
    assert outcome.status is RunStatus.SUCCEEDED
    gw_id = only_id(gw)
    (link,) = memory_store.all_links(ItemKind.APPOINTMENT)
    assert link.state is LinkState.LINKED and link.groupware_id == gw_id
    assert gw.stamp_of(gw_id) == link.correlation_id  # the correlation id travels in the item
    (audit,) = memory_store.audits
    assert audit.action == "create" and audit.side is Side.GROUPWARE and audit.before is None
    assert audit.after is not None and from_json(audit.after["item"]).subject == "Kick-off"
    assert memory_store.cursors  # advanced after the plan was applied


def test_a_round_trip_through_a_rewriting_server_is_no_change(
    both: Conns, memory_store: MemoryStore
) -> None:
    both[Side.CRM].user_create(appointment("Kick-off", body="Agenda"))
    run(both, memory_store)
    gw_id = only_id(both[Side.GROUPWARE])
    assert both[Side.GROUPWARE].item(gw_id).body.startswith("<html>")  # the server wrapped it
    both[Side.GROUPWARE].server_touch(gw_id)
    outcome = run(both, memory_store)
    assert outcome.plan is not None and outcome.plan.writes() == []


def test_an_update_keeps_fields_the_source_side_does_not_carry(
    both: Conns, memory_store: MemoryStore
) -> None:
    gw_id = both[Side.GROUPWARE].user_create(appointment("Lunch", categories=frozenset({"Green"})))
    run(both, memory_store)
    crm_id = only_id(both[Side.CRM])
    both[Side.CRM].user_edit(crm_id, subject="Lunch with Ann")
    run(both, memory_store)
    updated = both[Side.GROUPWARE].item(gw_id)
    assert updated.subject == "Lunch with Ann" and updated.categories == frozenset({"Green"})
    update = [a for a in memory_store.audits if a.action == "update"][-1]
    assert update.before is not None and update.before["item"]["subject"] == "Lunch"


def test_a_stale_etag_replans_the_item_and_records_the_conflict(
    both: Conns, memory_store: MemoryStore
) -> None:
    crm, gw = both[Side.CRM], both[Side.GROUPWARE]
    crm_id = crm.user_create(appointment("Review"))
    run(both, memory_store)
    gw_id = only_id(gw)
    crm.user_edit(crm_id, subject="Review (CRM)")

    def concurrent_edit(phase: str, op: str, item_id: str | None) -> None:
        gw.user_edit(gw_id, subject="Review (phone)")

    faults = Faults(at=1, kind="stale", edit=concurrent_edit).attach(gw, memory_store)
    outcome = run(both, memory_store, Policy(conflict=ConflictPolicy.CRM_WINS))
    faults.detach(gw, memory_store)
    assert outcome.report is not None and outcome.report.counts["replanned"] == 1
    assert gw.item(gw_id).subject == "Review (CRM)"
    (conflict,) = [a for a in memory_store.audits if a.action == "conflict"]
    assert conflict.before is not None and conflict.before["item"]["subject"] == "Review (phone)"


def test_a_short_throttle_is_waited_out(both: Conns, memory_store: MemoryStore) -> None:
    both[Side.CRM].user_create(appointment("Call"))
    fail_once(both[Side.GROUPWARE], "create", Throttled(2.5))
    slept: list[float] = []
    outcome = run(both, memory_store, slept=slept)
    assert slept == [2.5] and outcome.status is RunStatus.SUCCEEDED
    assert (
        len(both[Side.GROUPWARE].items) == 1
        and len(memory_store.all_links(ItemKind.APPOINTMENT)) == 1
    )


def test_a_long_throttle_ends_the_run_for_a_reschedule_never_a_long_sleep(
    both: Conns, memory_store: MemoryStore
) -> None:
    """A worker never sleeps out a long Retry-After (mistake: sleeping 120 s in a worker
    that other users wait for): the run ends partial, says when to come back, and the next
    run finishes without a duplicate."""
    both[Side.CRM].user_create(appointment("Call"))
    both[Side.CRM].user_create(appointment("Other", hour=11))
    fail_once(both[Side.GROUPWARE], "create", Throttled(120.0))
    slept: list[float] = []
    outcome = run(both, memory_store, slept=slept)
    assert slept == [] and outcome.status is RunStatus.PARTIAL
    assert outcome.retry_after == 120.0 and memory_store.cursors == {}
    again = run(both, memory_store, slept=slept)
    assert again.status is RunStatus.SUCCEEDED and len(both[Side.GROUPWARE].items) == 2


def test_one_failed_item_does_not_fail_the_run(both: Conns, memory_store: MemoryStore) -> None:
    crm = both[Side.CRM]
    crm.user_create(appointment("Refused"))
    crm.user_create(appointment("Fine", hour=11))
    fail_once(both[Side.GROUPWARE], "create", Permanent("invalid item"))
    outcome = run(both, memory_store)
    assert outcome.status is RunStatus.PARTIAL
    assert [i.subject for _, i, _ in both[Side.GROUPWARE].items.values()] == ["Fine"]
    assert outcome.report is not None and not outcome.report.failures[0].retryable
    # The refused item's intent is gone: nothing was created, nothing is pending.
    assert all(x.state is LinkState.LINKED for x in memory_store.all_links(ItemKind.APPOINTMENT))
    # Its audit entry, written with the intent, is closed as not applied (the service said no).
    refused = [a for a in memory_store.audits if a.state is not AuditState.APPLIED]
    assert [(a.action, a.state) for a in refused] == [("create", AuditState.NOT_APPLIED)]


def test_a_failed_item_goes_on_the_retry_list_and_never_pins_the_cursor(
    both: Conns, memory_store: MemoryStore
) -> None:
    """Point 13 (mistake: keeping the cursor back until the one failing item succeeds, which
    re-reads everything and, once the delta token expires, lists the whole side again)."""
    crm = both[Side.CRM]
    later = crm.user_create(appointment("Later"))
    crm.user_create(appointment("Fine", hour=11))
    fail_once(both[Side.GROUPWARE], "create", Transient("503"))
    first = run(both, memory_store)
    assert first.status is RunStatus.PARTIAL
    saved = SideCursor.load(memory_store.cursors[(ItemKind.APPOINTMENT, Side.CRM)])
    assert saved.token is not None and saved.retry == [later]  # advanced, the item kept
    second = run(both, memory_store)
    assert second.status is RunStatus.SUCCEEDED and len(both[Side.GROUPWARE].items) == 2
    assert SideCursor.load(memory_store.cursors[(ItemKind.APPOINTMENT, Side.CRM)]).retry == []


def test_expired_credentials_stop_the_run(both: Conns, memory_store: MemoryStore) -> None:
    both[Side.CRM].user_create(appointment("A"))
    both[Side.CRM].user_create(appointment("B", hour=11))
    fail_once(both[Side.GROUPWARE], "create", AuthExpired("refresh token revoked"))
    outcome = run(both, memory_store)
    assert outcome.status is RunStatus.FAILED and "credentials" in (outcome.error or "")
    assert both[Side.GROUPWARE].calls["create"] == 0 and memory_store.cursors == {}


@pytest.mark.parametrize("step", range(10))  # 2 × (intent, call, after call, link) + 2 cursors
def test_a_crash_at_any_step_neither_duplicates_nor_loses(
    both: Conns, memory_store: MemoryStore, step: int
) -> None:
    crm, gw = both[Side.CRM], both[Side.GROUPWARE]
    crm.user_create(appointment("One"))
    gw.user_create(appointment("Two", hour=11))
    faults = Faults(at=step).attach(crm, gw, memory_store)
    with pytest.raises(Crash):
        run(both, memory_store)
    faults.detach(crm, gw, memory_store)
    run(both, memory_store)
    assert sorted(i.subject for _, i, _ in crm.items.values()) == ["One", "Two"]
    assert sorted(i.subject for _, i, _ in gw.items.values()) == ["One", "Two"]
    links = memory_store.all_links(ItemKind.APPOINTMENT)
    assert len(links) == 2 and all(x.state is LinkState.LINKED for x in links)


def test_a_plan_over_the_guard_is_held_and_applied_after_approval(
    both: Conns, memory_store: MemoryStore
) -> None:
    crm = both[Side.CRM]
    for hour in range(8, 14):
        crm.user_create(appointment(f"Meeting {hour}", hour=hour))
    policy = Policy(guard=DeletionGuard(max_deletes=3))
    run(both, memory_store, policy)
    cursors = dict(memory_store.cursors)
    for item_id in list(crm.items)[:4]:
        crm.user_delete(item_id)
    crm.user_create(appointment("New one", hour=15))
    held = run(both, memory_store, policy)
    assert held.status is RunStatus.HELD
    # Point 12: a held plan holds its deletions and the creates with them.
    assert len(both[Side.GROUPWARE].items) == 6
    assert memory_store.cursors == cursors  # the deletions will be read again
    outcome = memory_store.runs[held.run_id]
    assert outcome is not None and outcome.held_plan is not None
    assert len(outcome.held_plan["deletions"]) == 4
    approved = run(both, memory_store, policy, approve_deletions=True)
    assert approved.status is RunStatus.SUCCEEDED and len(both[Side.GROUPWARE].items) == 3


def test_an_item_outside_the_window_is_never_deleted(
    both: Conns, memory_store: MemoryStore
) -> None:
    crm, gw = both[Side.CRM], both[Side.GROUPWARE]
    crm_id = crm.user_create(appointment("Soon"))
    run(both, memory_store)
    gw_id = only_id(gw)
    later = gw.item(gw_id)
    moved = dataclasses.replace(
        later, start=later.start + timedelta(days=400), end=later.end + timedelta(days=400)
    )  # type: ignore[operator]
    gw.items[gw_id] = (gw.items[gw_id][0], moved, gw.items[gw_id][2])  # moved without a change
    crm.user_delete(crm_id)
    outcome = run(both, memory_store)
    assert gw_id in gw.items
    assert outcome.report is not None and "outside the window" in outcome.report.notes[0]


def test_a_no_op_update_is_not_sent(both: Conns, memory_store: MemoryStore) -> None:
    crm, gw = both[Side.CRM], both[Side.GROUPWARE]
    crm_id = crm.user_create(appointment("Same"))
    run(both, memory_store)
    gw_id = only_id(gw)
    crm.user_edit(crm_id, subject="Same, edited on both")
    gw.user_edit(gw_id, subject="Same, edited on both")
    outcome = run(both, memory_store)
    assert gw.calls["update"] == 0 and crm.calls["update"] == 0
    assert outcome.plan is not None and outcome.plan.counts().get("conflicts") == 0


def test_dry_run_shows_the_plan_and_writes_nothing(both: Conns, memory_store: MemoryStore) -> None:
    both[Side.CRM].user_create(appointment("Board meeting", private=False))
    outcome = run(both, memory_store, dry_run=True)
    assert (
        both[Side.GROUPWARE].items == {} and memory_store.links == {} and memory_store.cursors == {}
    )
    assert outcome.dry_run_lines[0] == "appointments: create groupware 1"
    assert (
        "create on groupware: 'Board meeting' 2026-03-21 09:00 UTC (new on crm)"
        in outcome.dry_run_lines[1]
    )


def test_dry_run_shows_holds_conflicts_and_skips(both: Conns, memory_store: MemoryStore) -> None:
    crm, gw = both[Side.CRM], both[Side.GROUPWARE]
    crm_id = crm.user_create(appointment("Plan"))
    run(both, memory_store)
    crm.user_create(appointment("Secret", hour=12, private=True))
    gw_id = only_id(gw)
    crm.user_edit(crm_id, subject="Plan A")
    gw.user_edit(gw_id, subject="Plan B")
    lines = run(
        both, memory_store, Policy(conflict=ConflictPolicy.GROUPWARE_WINS), dry_run=True
    ).dry_run_lines
    text = "\n".join(lines)
    assert "[conflict, groupware wins; losing version recorded]" in text
    assert "skip crm" in text and "private item" in text


def test_a_refused_re_creation_restores_the_old_link(
    both: Conns, memory_store: MemoryStore
) -> None:
    crm, gw = both[Side.CRM], both[Side.GROUPWARE]
    crm_id = crm.user_create(appointment("Keep"))
    run(both, memory_store)
    (before,) = memory_store.all_links(ItemKind.APPOINTMENT)
    gw.user_delete(only_id(gw))
    crm.user_edit(crm_id, subject="Keep, edited")  # a modification beats the deletion
    fail_once(gw, "create", Permanent("calendar is read-only"))
    outcome = run(both, memory_store)
    assert outcome.status is RunStatus.PARTIAL
    assert memory_store.all_links(ItemKind.APPOINTMENT) == [before]
