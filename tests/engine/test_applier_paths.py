"""Paths of the applier that whole runs rarely reach, driven by planning and applying
directly: each test is the one that catches a mutant of `tools/mutation_check.py` (named in
its docstring) that the run-level tests let through."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from common.connectors.base import ChangeSet, Removal
from common.connectors.memory import Clock, MemoryConnector
from common.items import Appointment
from common.kinds import ItemKind, LinkState, Side, Stored
from daemon.apply import Applier
from daemon.engine import LinkIndex, Op, PlanInput, plan
from daemon.policies import ConflictPolicy, Policy
from daemon.sync import sync
from tests.fixtures.engine import NOW, Crash, Faults, MemoryStore, appointment

APPT = ItemKind.APPOINTMENT
CRM, GW = Side.CRM, Side.GROUPWARE


def world(**crm_traits: Any) -> dict[Side, MemoryConnector[Appointment]]:
    clock = Clock()
    crm: MemoryConnector[Appointment] = MemoryConnector("crm", clock=clock, **crm_traits)
    gw: MemoryConnector[Appointment] = MemoryConnector("gw", clock=clock)
    return {CRM: crm, GW: gw}


def context(
    both: dict[Side, MemoryConnector[Appointment]],
    store: MemoryStore,
    crm: Any = (),
    gw: Any = (),
    policy: Policy | None = None,
    exact: dict[Side, bool] | None = None,
) -> PlanInput[Appointment]:
    return PlanInput(
        APPT,
        ChangeSet(list(crm), [], None),
        ChangeSet(list(gw), [], None),
        LinkIndex(store.all_links(APPT), {}),
        policy or Policy(),
        NOW,
        {side: c.capabilities for side, c in both.items()},
        exact_versions=exact or {CRM: True, GW: True},
    )


def test_the_applier_looks_a_resumed_create_up_before_creating_again() -> None:
    """resume-skips-correlation-lookup: a RESUME reaching the applier without resolve's
    lookup (a copy that appeared after it looked) must find the copy, not make a second."""
    both, store = world(), MemoryStore()
    crm, gw = both[CRM], both[GW]
    gw.idempotent_create = False
    crm.user_create(appointment("Demo"))
    faults = Faults(on="after gw.create").attach(crm, gw, store)
    with pytest.raises(Crash):
        sync(APPT, both, store, Policy(), NOW, sleep=lambda s: None)
    faults.detach(crm, gw, store)
    (made,) = gw.items
    inp = context(both, store)
    result = plan(inp)
    assert [(a.op, a.target) for a in result.actions] == [(Op.RESUME, GW)]
    Applier(both, store, inp).apply(result)
    assert list(gw.items) == [made]
    (link,) = store.all_links(APPT)
    assert link.state is LinkState.LINKED and link.groupware_id == made


def test_an_update_the_target_already_holds_is_not_sent() -> None:
    """no-op-update-sent: the same edit made on the target between reading and applying."""
    both, store = world(), MemoryStore()
    crm, gw = both[CRM], both[GW]
    crm_id = crm.user_create(appointment("Same"))
    sync(APPT, both, store, Policy(), NOW, sleep=lambda s: None)
    (gw_id,) = gw.items
    crm.user_edit(crm_id, subject="Same, edited")
    inp = context(both, store, crm=[crm.get(crm_id)])
    result = plan(inp)
    assert [(a.op, a.target) for a in result.actions] == [(Op.UPDATE, GW)]
    gw.user_edit(gw_id, subject="Same, edited")  # the user makes the same edit meanwhile
    updates = gw.calls["update"]
    Applier(both, store, inp).apply(result)
    assert gw.calls["update"] == updates
    (link,) = store.all_links(APPT)
    assert link.state is LinkState.LINKED and link.groupware_version == gw.items[gw_id][0]


def test_a_same_day_edit_after_the_listing_is_not_overwritten_on_a_day_grained_side() -> None:
    """coarse-update-not-reread: SuperOffice's updatedDate cannot refuse a stale write, so
    the applier reads the item again before writing; an edit made since the listing is
    not lost silently (kept, or recorded as a conflict's loser)."""
    both, store = world(exact_versions=False), MemoryStore()
    crm, gw = both[CRM], both[GW]
    crm_id = crm.user_create(appointment("Review"))
    sync(APPT, both, store, Policy(), NOW, sleep=lambda s: None)
    (gw_id,) = gw.items
    gw.user_edit(gw_id, subject="Review (Outlook)")
    crm.server_touch(crm_id)  # listed, same content, same day-version
    policy = Policy(conflict=ConflictPolicy.GROUPWARE_WINS)
    inp = context(
        both,
        store,
        crm=[crm.get(crm_id)],
        gw=[gw.get(gw_id)],
        policy=policy,
        exact={CRM: False, GW: True},
    )
    result = plan(inp)
    assert [(a.op, a.target) for a in result.actions] == [(Op.UPDATE, CRM)]
    crm.user_edit(crm_id, subject="Review (CRM)")  # same day: the version does not move
    Applier(both, store, inp).apply(result)
    kept = crm.item(crm_id).subject == "Review (CRM)"
    recorded = any(
        a.action == "conflict" and a.before and a.before["item"]["subject"] == "Review (CRM)"
        for a in store.audits
    )
    assert kept or recorded


def test_of_a_moved_item_and_a_users_copy_with_its_stamp_the_older_keeps_the_link() -> None:
    """stamp-holder-not-oldest: the copy is listed first (ids sort before the moved one)."""
    both, store = world(), MemoryStore()
    crm, gw = both[CRM], both[GW]
    crm_id = crm.user_create(appointment("Original"))
    sync(APPT, both, store, Policy(), NOW, sleep=lambda s: None)
    (link,) = store.all_links(APPT)
    original = gw.get(link.groupware_id)
    early, late = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC)
    moved = dataclasses.replace(original, id="gw-z-moved", created=early)
    copy = Stored(
        "gw-a-copy",
        "v1",
        dataclasses.replace(original.item, subject="Copy"),
        link.correlation_id,
        late,
    )
    inp = PlanInput(
        APPT,
        ChangeSet([], [], None),
        ChangeSet([copy, moved], [Removal(link.groupware_id)], None),
        LinkIndex([link], {CRM: 1, GW: 1}),
        Policy(),
        NOW,
        {side: c.capabilities for side, c in both.items()},
    )
    result = plan(inp)
    ops = sorted((a.op.value, a.target.value, a.source_id or "") for a in result.actions)
    creates = [source for op, _, source in ops if op == "create"]
    assert creates == ["gw-a-copy"], ops  # the copy is new; the moved item keeps the link
    assert crm_id
