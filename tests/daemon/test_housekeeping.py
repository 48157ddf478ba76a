"""Housekeeping with the daemon's tasks in huey's immediate mode and the in-memory services
(`tests.daemon.test_tasks`): runs dead workers left running are settled, the nightly
reconciliation finds what no delta reported, a throttled service makes all its users wait
and only them, and the scheduler's tick runs each job at its own pace."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from common.connectors.base import AuthExpired, Permanent, Throttled, Transient
from common.kinds import ItemKind, RunStatus, Side
from common.models import ServiceBudget, SyncRun, SyncUser, utcnow
from daemon import housekeeping, tasks
from daemon.leases import take, user_slot
from daemon.queue import huey
from daemon.store import SqlStore
from tests.connectors.contract import appointment_sample
from tests.daemon.conftest import add_profile
from tests.daemon.test_tasks import World, world  # noqa: F401 (the fixture)

INTERVAL_S = 0.3
FAST = {"sync_interval_minutes": INTERVAL_S / 60, "crm_time_zone": "Europe/Amsterdam"}


def next_tick() -> None:
    time.sleep(INTERVAL_S + 0.05)
    tasks.dispatch()


# --- runs left running ---------------------------------------------------------------------


def test_runs_left_running_by_a_dead_worker_are_settled_once_its_lease_expired(
    world: World,  # noqa: F811
) -> None:
    """Mistakes caught: a run of a worker still alive (its lease unexpired) settled under
    it; a dead worker's run left "running" for ever; the settling holding on to the lease."""
    dead, alive, idle = add_profile(world.db, users=3)
    runs = {}
    for user_id in (dead, alive):
        store = SqlStore(world.db, 1, user_id, ItemKind.APPOINTMENT)
        runs[user_id] = store.start_run(dry_run=False)
    assert take(world.db, user_slot(dead), "killed-worker", timedelta(seconds=-1)) is not None
    assert take(world.db, user_slot(alive), "live-worker", timedelta(minutes=5)) is not None

    assert housekeeping.settle_abandoned(world.db) == [runs[dead]]
    with world.db.session() as session:
        settled = session.get(SyncRun, runs[dead])
        running = session.get(SyncRun, runs[alive])
        assert settled is not None and running is not None
        assert settled.status is RunStatus.FAILED and settled.reason == "interrupted"
        assert settled.finished_at is not None and "worker stopped" in settled.errors["run"]
        assert running.status is RunStatus.RUNNING and running.finished_at is None
    assert world.holder(dead) is None  # released after settling
    assert world.holder(alive) == "live-worker"
    assert housekeeping.settle_abandoned(world.db) == []  # nothing twice
    assert world.runs(idle) == []


# --- the nightly reconciliation --------------------------------------------------------------

# 02:30 in Amsterdam (CET, UTC+1 in January): night there, while 01:30 UTC is night too;
# 23:30 UTC is 00:30 in Amsterdam: night nowhere in the window.
NIGHT = datetime(2027, 1, 15, 1, 30, tzinfo=UTC)
EVENING = datetime(2027, 1, 14, 23, 30, tzinfo=UTC)
AFTERNOON_THERE = datetime(2027, 1, 15, 4, 30, tzinfo=UTC)  # 05:30 in Amsterdam: morning


def forget_silently(service: Any, item_id: str) -> None:
    """The service loses or gains an item without its delta saying so (a missed
    notification, a restore from backup): only a full listing shows it."""
    del service.items[item_id]
    service.changed_at.pop(item_id, None)


def test_the_nightly_reconciliation_finds_what_no_delta_reported(
    world: World,  # noqa: F811
) -> None:
    """Mistakes caught: the reconciliation never asked for (or asked on one side only): a
    copy whose original vanished unannounced stays, an item that appeared unannounced is
    never copied; the profile's time zone ignored; asked for twice in one night."""
    (ann,) = add_profile(world.db, settings=FAST)
    crm, gw = world.service(ann, Side.CRM), world.service(ann, Side.GROUPWARE)
    crm_ids = [crm.user_create(appointment_sample(n)) for n in range(3)]
    tasks.dispatch()
    assert len(gw.items) == 3
    gone = next(i for i, (_, item, _) in gw.items.items() if item.subject == "Meeting 0")
    forget_silently(gw, gone)
    appeared = crm.user_create(appointment_sample(7))
    crm.changed_at.pop(appeared)
    next_tick()
    assert len(crm.items) == 4 and len(gw.items) == 2  # no delta told anyone

    assert housekeeping.request_reconciliations(world.db, EVENING) == []
    assert housekeeping.request_reconciliations(world.db, AFTERNOON_THERE) == []
    assert housekeeping.request_reconciliations(world.db, NIGHT) == [ann]
    assert housekeeping.request_reconciliations(world.db, NIGHT + timedelta(hours=2)) == []
    next_tick()
    assert crm_ids[0] not in crm.items  # its copy was deleted unannounced: deleted here too
    assert {item.subject for _, item, _ in gw.items.values()} == {
        "Meeting 1",
        "Meeting 2",
        "Meeting 7",
    }
    assert world.runs(ann)[-1].status is RunStatus.SUCCEEDED
    next_night = NIGHT + timedelta(days=1)
    assert housekeeping.request_reconciliations(world.db, next_night) == [ann]


def test_a_reconciliation_waits_for_a_user_being_synced(world: World) -> None:  # noqa: F811
    """Mistake caught: the cursors marked under a running sync, whose own cursors then
    overwrite the mark (the reconciliation silently lost)."""
    (ann,) = add_profile(world.db, settings=FAST)
    tasks.dispatch()
    assert take(world.db, user_slot(ann), "a-worker") is not None
    assert housekeeping.request_reconciliations(world.db, NIGHT) == []
    assert world.user(ann).reconciled_at is None


# --- per-service throttle budgets --------------------------------------------------------------


def test_a_throttled_service_makes_all_its_users_wait_and_only_them(
    world: World,  # noqa: F811
) -> None:
    """Mistakes caught: only the user who was told waits (the service's other users keep
    calling it); every user waits (users of other services held up); the wrong side's
    service paused (both profiles share the CRM, not the groupware)."""
    ann, bob = add_profile(world.db, users=2)
    (cat,) = add_profile(world.db)  # another Microsoft 365 tenant, the same CRM
    world.service(ann, Side.GROUPWARE).faults.append(Throttled(600))
    tasks.dispatch()
    by_user = {u: world.runs(u) for u in (ann, bob, cat)}
    assert [r.status for r in by_user[ann]] == [RunStatus.PARTIAL]
    assert by_user[ann][0].reason == "throttled"
    assert by_user[bob] == []  # not started: its service asked to wait
    assert world.service(bob, Side.GROUPWARE).calls["changes"] == 0
    assert world.service(bob, Side.CRM).calls["changes"] == 0
    assert [r.status for r in by_user[cat]] == [RunStatus.SUCCEEDED]
    bob_row = world.user(bob)
    assert bob_row.last_error is not None and "asked us to wait" in bob_row.last_error
    assert bob_row.failures == 0
    waits = {t.args[0]: (t.eta - datetime.utcnow()).total_seconds() for t in huey.scheduled()}
    assert set(waits) == {ann, bob}
    assert 590 < waits[ann] <= 600 and 590 < waits[bob] <= 600 * 1.25
    with world.db.session() as session:
        (paused,) = session.scalars(select(ServiceBudget)).all()
        assert paused.service.startswith("m365:profile ")

    with world.db.session() as session:  # the pause is over
        session.execute(update(ServiceBudget).values(paused_until=utcnow()))
    for task in huey.scheduled():
        huey.storage.flush_schedule()
        huey.execute(task, timestamp=task.eta)
    assert [r.status for r in world.runs(bob)] == [RunStatus.SUCCEEDED]
    assert world.runs(ann)[-1].status is RunStatus.SUCCEEDED


def test_a_throttled_crm_makes_every_profile_on_it_wait(world: World) -> None:  # noqa: F811
    (ann,) = add_profile(world.db)
    (cat,) = add_profile(world.db)
    world.service(ann, Side.CRM).faults.append(Throttled(300))
    tasks.dispatch()
    assert world.runs(cat) == []
    with world.db.session() as session:
        (paused,) = session.scalars(select(ServiceBudget)).all()
        assert paused.service == "superoffice-onsite:https://crm.contoso.example/superoffice"


def test_each_run_that_did_not_simply_succeed_says_why(world: World) -> None:  # noqa: F811
    """Mistake caught: failures recorded without their reason (the metrics count by it)."""
    # each on a CRM of its own: a throttle would make a shared one's users wait
    users = [add_profile(world.db, crm_url=f"https://crm{n}.example")[0] for n in range(5)]
    faults = [Throttled(600), AuthExpired("AADSTS50173"), Transient("503"), Permanent("400")]
    for user_id, fault in zip(users, faults, strict=False):
        world.service(user_id, Side.CRM).faults.append(fault)
    world.service(users[4], Side.CRM).user_create(appointment_sample(1))
    world.service(users[4], Side.GROUPWARE).refuse = lambda item: "no room for it"
    tasks.dispatch()
    reasons = [world.runs(u)[0].reason for u in users[:4]]
    assert reasons == ["throttled", "credentials", "transient", "permanent"]
    last = world.runs(users[4])[0]
    assert last.status is RunStatus.PARTIAL and last.reason == "item_errors"


# --- the scheduler's tick -------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_tick_runs_each_job_at_its_pace_and_always_dispatches(
    world: World,  # noqa: F811
    monkeypatch: Any,
) -> None:
    """Mistakes caught: housekeeping on every tick (a token refresh queued each minute); a
    failing job that stops the dispatcher."""
    (ann,) = add_profile(world.db, settings=FAST)
    clock, done = Clock(), []
    keeper = housekeeping.Housekeeper(world.db, enqueue_refresh=lambda: done.append("tokens"))
    keeper.clock = clock
    keeper.jobs["settle"] = lambda now: done.append("settle")

    def broken(now: datetime) -> None:
        done.append("reconcile")
        raise RuntimeError("the database went away")

    keeper.jobs["reconcile"] = broken
    keeper.tick(utcnow())
    assert done == ["settle", "reconcile", "tokens"]
    assert len(world.runs(ann)) == 1  # dispatched despite the failure
    clock.now += 61
    done.clear()
    keeper.tick(utcnow())
    assert done == ["settle"]
    clock.now += 5 * 60
    done.clear()
    keeper.tick(utcnow())
    assert done == ["settle", "tokens"]
    clock.now += 5 * 60
    done.clear()
    keeper.tick(utcnow())
    assert done == ["settle", "reconcile", "tokens"]
    assert world.user(ann).needs_attention is None and isinstance(world.user(ann), SyncUser)


def test_a_throttled_read_outside_the_listing_is_a_throttle_on_both_services(
    world: World,  # noqa: F811
) -> None:
    """Mistakes caught: a throttle met while reading items by id (not the listing) taken
    for a permanent failure (the user then waits a whole interval and the service's other
    users go on calling it); nothing paused when the run cannot tell which side it was."""
    (ann,) = add_profile(world.db, settings=FAST)
    crm, gw = world.service(ann, Side.CRM), world.service(ann, Side.GROUPWARE)
    crm.user_create(appointment_sample(1))
    tasks.dispatch()
    forget_silently(gw, next(iter(gw.items)))
    assert housekeeping.request_reconciliations(world.db, NIGHT) == [ann]

    def throttled(item_id: str) -> Any:
        raise Throttled(120)

    gw.get = throttled  # type: ignore[method-assign]
    next_tick()
    run = world.runs(ann)[-1]
    assert run.reason == "throttled", (run.status, run.errors)
    ((task, wait),) = [(t, (t.eta - datetime.utcnow()).total_seconds()) for t in huey.scheduled()]
    assert task.args[0] == ann and 110 < wait <= 120
    with world.db.session() as session:
        paused = sorted(b.service.split(":")[0] for b in session.scalars(select(ServiceBudget)))
    assert paused == ["m365", "superoffice-onsite"]
