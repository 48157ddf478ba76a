"""The window moves with time (Sync engine II, point 9), on the in-memory and SQL stores."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from common.connectors.memory import Clock, MemoryConnector
from common.items import Appointment, Recurrence
from common.kinds import ItemKind, LinkState, RemovalKind, RunStatus, Side
from daemon.policies import Policy, Window
from daemon.sync import SyncOutcome, sync
from tests.fixtures.engine import NOW

APPT = ItemKind.APPOINTMENT
POLICY = Policy(window=Window(days_back=2, days_ahead=7))


def world(**gw_traits: Any) -> tuple[MemoryConnector[Appointment], MemoryConnector[Appointment]]:
    clock = Clock()
    return (
        MemoryConnector("crm", clock=clock, exact_versions=False),
        MemoryConnector("gw", clock=clock, **gw_traits),
    )


def at(days: float, hour: int = 10) -> datetime:
    return (NOW + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)


def meeting(subject: str, days: float, hours: int = 1) -> Appointment:
    start = at(days)
    return Appointment(subject, start, start + timedelta(hours=hours))


def run(crm: Any, gw: Any, store: Any, days: float = 0, **kw: Any) -> SyncOutcome[Appointment]:
    connectors = {Side.CRM: crm, Side.GROUPWARE: gw}
    outcome = sync(APPT, connectors, store, POLICY, NOW + timedelta(days=days), **kw)
    assert outcome.status is RunStatus.SUCCEEDED, outcome
    return outcome


def subjects(connector: MemoryConnector[Appointment]) -> list[str]:
    return sorted(item.subject for _, item, _ in connector.items.values())


def test_an_item_that_time_brings_into_the_window_is_synced(store: Any) -> None:
    """Mistake: the window fixed at the first sync, or a delta cursor that never sees an
    item that did not change but came into range."""
    crm, gw = world()
    crm.user_create(meeting("Next month", days=20))
    run(crm, gw, store)
    assert subjects(gw) == []  # beyond the window today
    run(crm, gw, store, days=10)
    assert subjects(gw) == []  # still beyond (20 > 10 + 7)
    run(crm, gw, store, days=14)
    assert subjects(gw) == ["Next month"]


def test_an_item_moved_out_of_the_window_moves_its_copy(store: Any) -> None:
    """Graph's calendarView delta reports an item moved out of the range as removed, without
    saying why: the engine reads it and carries the move. Mistake: deleting the copy."""
    crm, gw = world(removal_kind=RemovalKind.UNKNOWN)
    gw_id = gw.user_create(meeting("Review", days=2))
    run(crm, gw, store)
    assert subjects(crm) == ["Review"]
    later = meeting("Review", days=40)
    gw.user_edit(gw_id, start=later.start, end=later.end)
    reads = gw.calls["get"]
    run(crm, gw, store)
    ((_, moved, _),) = crm.items.values()
    assert moved.start == later.start  # carried, not deleted
    assert gw.calls["get"] > reads  # the removal was resolved by reading the item


def test_items_that_leave_the_window_by_time_keep_their_copies_without_reads(store: Any) -> None:
    """Mistake: a full listing in the new window treats every item it no longer shows as
    deleted (wiping last month's calendar), or reads each of them to find out."""
    crm, gw = world()
    for day in (0, 1, 2):
        crm.user_create(meeting(f"Day {day}", days=day))
    run(crm, gw, store)
    reads = gw.calls["get"] + crm.calls["get"]
    run(crm, gw, store, days=10)  # all three now end before the window starts
    assert subjects(gw) == ["Day 0", "Day 1", "Day 2"]
    assert gw.writes.count(("delete", "gw-1")) == 0
    assert not [w for w in gw.writes if w[0] == "delete"]
    assert gw.calls["get"] + crm.calls["get"] == reads  # known by their span, nothing read
    live = [x for x in store.all_links(APPT) if x.state is LinkState.LINKED]
    assert len(live) == 3  # and still linked, should they come back into the window


def test_an_expanded_series_rolls_forward_and_keeps_past_copies(store: Any) -> None:
    """A daily series the groupware side cannot hold is expanded in the window: as days
    pass, new occurrences are added and the copies of past ones stay. Mistake: deleting
    every occurrence copy the new expansion no longer lists."""
    clock = Clock()
    crm: MemoryConnector[Appointment] = MemoryConnector("crm", clock=clock)
    gw: MemoryConnector[Appointment] = MemoryConnector(
        "gw", clock=clock, can_express=lambda rule: False
    )
    start = at(0, hour=9)
    crm.user_create(
        Appointment(
            "Stand-up",
            start,
            start + timedelta(minutes=15),
            recurrence=Recurrence("FREQ=DAILY;COUNT=30"),
        )
    )
    run(crm, gw, store)
    first = {item.start for _, item, _ in gw.items.values()}
    assert len(first) == 7  # today and the six days after it, inside the window
    run(crm, gw, store, days=5)
    after = {item.start for _, item, _ in gw.items.values()}
    assert first <= after  # past occurrences keep their copies
    assert max(after) == at(11, hour=9)  # and the series rolled forward with the window
    assert not [w for w in gw.writes if w[0] == "delete"]
    # Past occurrences stay linked (not let go as if deleted from the series).
    live = [x for x in store.all_links(APPT) if x.state is LinkState.LINKED]
    assert len(live) == len(after)
