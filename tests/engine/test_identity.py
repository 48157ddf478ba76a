"""Identity: never a duplicate (Sync engine II, points 1-4), on the in-memory and SQL stores.

Each test names the mistake it catches."""

from __future__ import annotations

from typing import Any

import pytest

from common.connectors.memory import Clock, MemoryConnector
from common.items import Appointment
from common.kinds import ItemKind, LinkState, RemovalKind, RunStatus, Side
from daemon.policies import DeletionGuard, Direction, Policy
from daemon.sync import SyncOutcome, sync
from tests.fixtures.engine import (
    NOW,
    Crash,
    Faults,
    MemoryStore,
    another_user,
    appointment,
    html_wrapping,
    make_sql_store,
)

APPT = ItemKind.APPOINTMENT


def world(**gw_traits: Any) -> tuple[MemoryConnector[Appointment], MemoryConnector[Appointment]]:
    clock = Clock()
    crm: MemoryConnector[Appointment] = MemoryConnector(
        "crm", clock=clock, exact_versions=False, idempotent_create=False
    )
    gw: MemoryConnector[Appointment] = MemoryConnector(
        "gw", rewrite=html_wrapping, clock=clock, **gw_traits
    )
    return crm, gw


def run(crm: Any, gw: Any, store: Any, **kw: Any) -> SyncOutcome[Appointment]:
    return sync(APPT, {Side.CRM: crm, Side.GROUPWARE: gw}, store, Policy(), NOW, **kw)


def forget_links(store: Any) -> None:
    """Unlink and link the user again, or restore the link table from an old backup."""
    if isinstance(store, MemoryStore):
        store.links.clear()
        store.cursors.clear()
        return
    from sqlalchemy import delete

    from common.models import Cursor, ItemLink

    with store.db.session() as session:
        session.execute(delete(ItemLink))
        session.execute(delete(Cursor))


def test_both_items_of_a_pair_carry_the_stamp(store: Any) -> None:
    """Mistake: stamping only the copy, so a lost link table cannot pair the source."""
    crm, gw = world()
    crm_id = crm.user_create(appointment("Kick-off"))
    run(crm, gw, store)
    (gw_id,) = gw.items
    (link,) = store.all_links(APPT)
    assert crm.stamp_of(crm_id) == gw.stamp_of(gw_id) == link.correlation_id


@pytest.mark.parametrize("hidden", [False, True], ids=["stamps-listed", "stamps-hidden"])
def test_a_relink_pairs_every_item_and_copies_none(store: Any, hidden: bool) -> None:
    """Point 1 (mistake: only the copy is recognised, so a re-link doubles every item; the
    commercial product tells users to clean the calendar first). Also when the listing
    hides the stamps, as Graph delta does: the engine reads the items to learn them."""
    crm, gw = world(stamps_in_listing=not hidden)
    for hour in (9, 11, 14):
        crm.user_create(appointment(f"Meeting {hour}", hour=hour))
    gw.user_create(appointment("Dentist", hour=16))
    run(crm, gw, store)
    assert len(crm.items) == len(gw.items) == 4
    forget_links(store)
    preview = run(crm, gw, store, dry_run=True)
    paired = [line for line in preview.dry_run_lines if "pair, no copy made" in line]
    assert len(paired) == 4, preview.dry_run_lines
    outcome = run(crm, gw, store)
    assert outcome.status is RunStatus.SUCCEEDED
    assert len(crm.items) == len(gw.items) == 4
    assert crm.writes.count(("create", "crm-5")) == 0 and not [
        w for w in gw.writes[4:] if w[0] == "create"
    ]
    assert len([x for x in store.all_links(APPT) if x.state is LinkState.LINKED]) == 4


def test_items_made_before_synchronizer_are_paired_by_content(store: Any) -> None:
    """Point 1: unstamped twins (made by hand on both sides, or by another tool) are paired
    on the first sync, tolerant of the server's rewrites (HTML body), and shown in the
    preview; afterwards both carry the stamp. Mistake: copying them, which doubles them."""
    crm, gw = world()
    crm.user_create(appointment("Board meeting", body="Agenda"))
    gw.user_create(appointment("Board  meeting", body="<p>Agenda</p>"))  # HTML, spacing
    preview = run(crm, gw, store, dry_run=True)
    assert any("pair, no copy made" in line and "content" in line for line in preview.dry_run_lines)
    run(crm, gw, store)
    assert len(crm.items) == len(gw.items) == 1
    ((crm_id, (_, _, crm_stamp)),) = crm.items.items()
    ((gw_id, (_, _, gw_stamp)),) = gw.items.items()
    assert crm_stamp is not None and crm_stamp == gw_stamp


def test_an_item_whose_id_changed_keeps_its_link_and_its_copy(store: Any) -> None:
    """Point 2 (mistake: delete and re-create, which loses what the CRM side holds)."""
    crm, gw = world(removal_kind=RemovalKind.UNKNOWN)
    crm_id = crm.user_create(appointment("Sale review"))
    run(crm, gw, store)
    (old_gw,) = gw.items
    new_gw = gw.server_move(old_gw)
    crm_version = crm.items[crm_id][0]
    outcome = run(crm, gw, store)
    assert outcome.status is RunStatus.SUCCEEDED
    assert list(crm.items) == [crm_id] and crm.items[crm_id][0] == crm_version
    assert list(gw.items) == [new_gw]
    (link,) = [x for x in store.all_links(APPT) if x.state is LinkState.LINKED]
    assert link.groupware_id == new_gw and link.crm_id == crm_id
    assert not [w for w in crm.writes if w[0] != "stamp"][1:]  # nothing written to the CRM


def test_the_end_of_a_paged_run_follows_a_move_its_link_missed(store: Any) -> None:
    """A copy made private and moved (deletions switched off: kept, its link still names the
    old id); then its source is edited and copied with our stamp, over several pages. The
    run's end reads the pair afresh, does not find the copy under its old id and asks by
    the stamp, as the listing's own removals are asked (mistake: taken as deleted, and the
    edit re-creates the copy beside the moved one: two on the groupware)."""
    clock = Clock()
    crm: MemoryConnector[Appointment] = MemoryConnector("crm", clock=clock, page_size=1)
    gw: MemoryConnector[Appointment] = MemoryConnector("gw", clock=clock, page_size=1)
    policy = Policy(guard=DeletionGuard(deletes_enabled=False))
    both = {Side.CRM: crm, Side.GROUPWARE: gw}
    crm_id = crm.user_create(appointment("Sale review", location="Room 1"))
    crm.user_create(appointment("Stand-up", hour=11))
    sync(APPT, both, store, policy, NOW)
    (copy_id,) = [i for i, (_, item, _) in gw.items.items() if item.subject == "Sale review"]
    gw.user_edit(copy_id, private=True)
    moved = gw.server_move(copy_id)
    assert sync(APPT, both, store, policy, NOW).status is RunStatus.SUCCEEDED
    crm.user_edit(crm_id, subject="Sale review (moved)")
    crm.user_edit(crm.user_copy(crm_id), subject="Sale review, 2nd", location="Room 2")
    outcome = sync(APPT, both, store, policy, NOW)
    assert outcome.status is RunStatus.SUCCEEDED and len(outcome.plans) > 1
    rooms = sorted(item.location for _, item, _ in gw.items.values())
    assert rooms == ["", "Room 1", "Room 2"] and moved in gw.items


def test_a_write_interrupted_on_an_item_found_by_its_stamp_is_finished(store: Any) -> None:
    """The CRM follows. A user copies our CRM copy (stamp included) and then deletes the
    original; the listing reports the deletion, the stamp finds the user's copy (no
    service tells a copy from the moved original) and the run dies while putting the
    groupware's content back on it. The listing never shows that item again (it did not
    change), so the next run reads what the interrupted write named and finishes it
    (mistake: the interruption left to the listing; the link names the copy, believed
    agreed, and the groupware's item has no copy in the CRM from then on)."""
    crm, gw = world()
    policy = Policy(appointments=Direction.GROUPWARE_TO_CRM)
    both = {Side.CRM: crm, Side.GROUPWARE: gw}
    gw.user_create(appointment("Sale review"))
    sync(APPT, both, store, policy, NOW)
    (crm_id,) = crm.items
    crm.user_edit(crm.user_copy(crm_id), subject="My notes")
    sync(APPT, both, store, policy, NOW)
    crm.user_delete(crm_id)
    faults = Faults(on="before crm.update").attach(crm, gw, store)
    with pytest.raises(Crash):
        sync(APPT, both, store, policy, NOW)
    faults.detach(crm, gw, store)
    assert sync(APPT, both, store, policy, NOW).status is RunStatus.SUCCEEDED
    subjects = [item.subject for _, item, _ in crm.items.values()]
    assert subjects.count("Sale review") == 1
    assert not sync(APPT, both, store, policy, NOW).writes()


@pytest.mark.parametrize("step", range(8))
def test_recovery_finds_the_copy_by_correlation_id(store: Any, step: int) -> None:
    """Point 3: a crash between a create and its link, on a service whose create is not
    idempotent and whose listing shows no stamps: `find_by_correlation_id` is the recovery
    path. Mistake: skipping it (a second copy), or trusting the listing (which hides it)."""
    # The copy's stamp shows neither in the listing nor in a read: only a lookup finds it.
    crm, gw = world(stamps_in_listing=False, stamps_in_reads=False, idempotent_create=False)
    crm.user_create(appointment("Demo"))
    faults = Faults(at=step).attach(crm, gw, store)
    with pytest.raises(Crash):
        run(crm, gw, store)
    faults.detach(crm, gw, store)
    pending = [x for x in store.all_links(APPT) if x.state is LinkState.PENDING]
    made_unlinked = bool(gw.items) and bool(pending)
    outcome = run(crm, gw, store)
    assert outcome.status is RunStatus.SUCCEEDED
    run(crm, gw, store)
    assert len(gw.items) == 1 and len(crm.items) == 1
    if made_unlinked:  # the copy was made, its link not yet written: found, not made again
        assert gw.calls["find"] >= 1


def test_a_recovery_that_meets_a_conflict_never_wedges_the_user(store: Any) -> None:
    """Point 3: the item a recovery finds is already another link's. The run is recorded
    and finished, the intent let go, and the next runs succeed. Mistake: the unique
    constraint fails on every run and the run record is never finished."""
    crm, gw = world()
    crm.user_create(appointment("One"))
    crm.user_create(appointment("Two", hour=11))
    run(crm, gw, store)
    links = sorted(store.all_links(APPT), key=lambda x: x.crm_id)
    # A create of "Three" dies after its call; its copy then carries the stamp of… an item
    # another link holds (a server that reused an id, a copy made by a migration tool).
    three = crm.user_create(appointment("Three", hour=14))
    faults = Faults(on="after gw.create").attach(crm, gw, store)
    with pytest.raises(Crash):
        run(crm, gw, store)
    faults.detach(crm, gw, store)
    pending = next(x for x in store.all_links(APPT) if x.state is LinkState.PENDING)
    made = gw.stamped(pending.correlation_id)
    assert made is not None
    gw.user_delete(made.id)
    taken = links[0].groupware_id
    assert taken is not None
    version, item, _ = gw.items[taken]
    gw.items[taken] = (version, item, pending.correlation_id)
    first = run(crm, gw, store)
    assert first.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL)
    second = run(crm, gw, store)
    assert second.status is RunStatus.SUCCEEDED
    copies = [i for _, i, _ in gw.items.values() if i.subject == "Three"]
    assert len(copies) == 1 and three in crm.items


def test_one_users_stamp_never_rewrites_another_users_link() -> None:
    """Point 4: user B's mailbox holds a meeting that carries user A's stamp (delivered to
    both). Mistake: looking links up by correlation id without the user, so B's sync
    rewrites A's link (and A's next sync deletes or doubles the meeting)."""
    store_a = make_sql_store()
    store_b = another_user(store_a)
    crm_a, gw_a = world()
    crm_b, gw_b = world()
    crm_a.user_create(appointment("Shared", hour=10))
    run(crm_a, gw_a, store_a)
    (link_a,) = store_a.all_links(APPT)
    delivered = gw_a.item(link_a.groupware_id or "")
    gw_b.user_create(delivered, stamp=link_a.correlation_id)
    run(crm_b, gw_b, store_b)
    assert store_a.all_links(APPT) == [link_a]
    (link_b,) = store_b.all_links(APPT)
    assert link_b.correlation_id != link_a.correlation_id
    assert run(crm_a, gw_a, store_a).writes() == 0
    store_a.db.dispose()
