"""`daemon.tasks` in huey's immediate mode (a real consumer is not the point here) with the
in-memory connectors and a real SQLite database: the dispatcher queues each due user once,
`sync_user` runs the engine under the user's lease and records it, a throttle is a
reschedule, an authorisation problem asks a person, transient errors back off."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from huey import RetryTask
from sqlalchemy import func, select

from common.connectors.base import AuthExpired, ChangeSet, Permanent, Throttled, Transient, Window
from common.connectors.memory import MemoryConnector
from common.db import Database
from common.kinds import ItemKind, RunStatus, Side
from common.models import InvitationState, Profile, SyncRun, SyncUser, utcnow
from daemon import queue, tasks
from daemon.leases import take, user_slot
from daemon.queue import huey
from tests.connectors.contract import appointment_sample
from tests.daemon.conftest import add_profile, migrated


class Faulty(MemoryConnector[Any]):
    """A memory service whose next listings fail as given; it notes who held the lease."""

    def __init__(self, name: str, world: World) -> None:
        super().__init__(name)
        self.world = world
        self.faults: list[Exception] = []

    def changes(self, cursor: str | None, window: Window | None = None) -> ChangeSet[Any]:
        self.world.lease_seen.append(self.world.holder(self.world.current))
        if self.faults:
            raise self.faults.pop(0)
        return super().changes(cursor, window)


@dataclass
class World:
    db: Database
    services: dict[tuple[int, Side], Faulty] = field(default_factory=dict)
    lease_seen: list[str | None] = field(default_factory=list)
    opened: int = 0
    closed: int = 0
    current: int = 0
    kinds_run: list[ItemKind] = field(default_factory=list)

    def service(self, user_id: int, side: Side) -> Faulty:
        return self.services.setdefault((user_id, side), Faulty(f"{side.value}-{user_id}", self))

    def __call__(self) -> World:
        self.opened += 1
        return self

    def connectors(self, profile: Profile, user: SyncUser, kind: ItemKind, now: datetime) -> Any:
        self.current = user.id
        self.kinds_run.append(kind)
        return {side: self.service(user.id, side) for side in Side}

    def close(self) -> None:
        self.closed += 1

    def user(self, user_id: int) -> SyncUser:
        with self.db.session() as session:
            found = session.get(SyncUser, user_id)
            assert found is not None
            return found

    def holder(self, user_id: int) -> str | None:
        return self.user(user_id).lease_owner

    def runs(self, user_id: int) -> list[SyncRun]:
        with self.db.session() as session:
            return list(
                session.scalars(
                    select(SyncRun).where(SyncRun.sync_user_id == user_id).order_by(SyncRun.id)
                )
            )

    def run_count(self) -> int:
        with self.db.session() as session:
            return int(session.scalar(select(func.count(SyncRun.id))) or 0)


class Factory:
    def __init__(self, world: World) -> None:
        self.world = world

    def __call__(self, profile: Profile, user: SyncUser, kind: ItemKind, now: datetime) -> Any:
        return self.world.connectors(profile, user, kind, now)

    def close(self) -> None:
        self.world.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    db = migrated(f"sqlite:///{tmp_path / 'app.db'}")
    made = World(db)

    def open_connections() -> Factory:
        made.opened += 1
        return Factory(made)

    queue.configure("memory://", immediate=True)
    tasks.use(tasks.Runtime(db, open_connections, random=lambda: 0.5))
    yield made
    queue.unconfigure()
    db.dispose()


def scheduled() -> list[Any]:
    return list(huey.scheduled())


def test_the_dispatcher_syncs_each_due_active_user_once_per_interval(world: World) -> None:
    ann, bob, invited = add_profile(world.db, users=3)
    (off,) = add_profile(world.db, enabled=False)
    with world.db.session() as session:
        row = session.get(SyncUser, invited)
        assert row is not None
        row.invitation_state = InvitationState.INVITED
    world.service(ann, Side.CRM).user_create(appointment_sample(1))

    assert sorted(tasks.dispatch()) == [ann, bob]
    assert [r.status for r in world.runs(ann)] == [RunStatus.SUCCEEDED]
    assert len(world.service(ann, Side.GROUPWARE).items) == 1  # the engine ran for real
    assert world.runs(invited) == [] and world.runs(off) == []
    user = world.user(ann)
    assert user.last_sync_at is not None and user.queued_at is None
    assert user.next_sync_at == user.last_sync_at + timedelta(minutes=15)

    assert tasks.dispatch(utcnow() + timedelta(minutes=1)) == []  # not due yet
    assert tasks.dispatch(utcnow() + timedelta(minutes=14)) == []
    assert sorted(tasks.dispatch(utcnow() + timedelta(minutes=16))) == [ann, bob]
    assert len(world.runs(ann)) == 2 and len(world.runs(bob)) == 2
    assert world.opened == world.closed == 4  # every run's connections closed


def test_the_run_holds_the_users_lease_and_releases_it(world: World) -> None:
    (ann,) = add_profile(world.db)
    tasks.dispatch()
    assert world.lease_seen and all(seen is not None for seen in world.lease_seen)
    assert world.holder(ann) is None


def test_a_user_whose_lease_another_holds_is_retried_later_not_run(world: World) -> None:
    (ann,) = add_profile(world.db)
    assert take(world.db, user_slot(ann), "another-worker") is not None
    assert tasks.dispatch() == []  # the dispatcher leaves a user being synced alone
    assert tasks.enqueue_sync(ann)  # a push: the task finds the lease held
    assert world.runs(ann) == []
    (retry,) = scheduled()
    # soon: the run holding the lease is often nearly done (the push's latency)
    assert retry.eta <= datetime.utcnow() + timedelta(seconds=tasks.BUSY_FIRST + 1)
    # a task that has waited long already (behind a long first sync) asks only every 10 s
    with pytest.raises(RetryTask) as again:
        tasks.sync_user.call_local(ann, None, utcnow() - timedelta(minutes=1))
    assert again.value.delay == tasks.BUSY_DELAY
    assert world.runs(ann) == []


def test_a_queued_user_is_never_queued_twice_and_a_lost_task_is_queued_again(
    world: World,
) -> None:
    queue.configure("memory://")  # a queue without a consumer: tasks wait
    (ann,) = add_profile(world.db)
    earlier = utcnow() - timedelta(minutes=16)
    assert tasks.dispatch(earlier) == [ann]
    assert tasks.dispatch(earlier + timedelta(minutes=1)) == []
    assert not tasks.enqueue_sync(ann, now=earlier + timedelta(minutes=2))  # coalesced
    assert huey.pending_count() == 1
    assert tasks.dispatch() == [ann]  # the task never started in 16 min: presumed lost
    assert huey.pending_count() == 2
    first, second = huey.pending()
    huey.execute(first)
    huey.execute(second)  # was only late: the run that began after it covers it
    assert len(world.runs(ann)) == 1


BOTH_KINDS = {"appointments": "two_way", "contacts": "two_way"}


def test_a_push_syncs_its_kind_and_leaves_the_poll_of_every_kind_alone(world: World) -> None:
    (ann,) = add_profile(world.db, settings=BOTH_KINDS)
    assert tasks.dispatch() == [ann]
    assert world.kinds_run == [ItemKind.APPOINTMENT, ItemKind.CONTACT]
    polled = world.user(ann)
    world.kinds_run.clear()
    assert tasks.enqueue_sync(ann, ItemKind.CONTACT)
    assert world.kinds_run == [ItemKind.CONTACT]
    pushed = world.user(ann)
    # the poll of both kinds stays due when it was: pushes of contacts every few minutes
    # must not postpone the appointments' poll for ever
    assert (pushed.last_sync_at, pushed.next_sync_at) == (
        polled.last_sync_at,
        polled.next_sync_at,
    )
    assert pushed.queued_at is None and pushed.queued_kind is None
    assert tasks.dispatch(utcnow() + timedelta(minutes=16)) == [ann]


def test_pushes_are_coalesced_per_kind(world: World) -> None:
    queue.configure("memory://")  # a queue without a consumer: tasks wait
    (ann,) = add_profile(world.db, settings=BOTH_KINDS)
    assert tasks.enqueue_sync(ann, ItemKind.APPOINTMENT)
    for _ in range(9):  # ten notifications in a second: one sync
        assert not tasks.enqueue_sync(ann, ItemKind.APPOINTMENT)
    assert huey.pending_count() == 1
    # the waiting task syncs appointments only: a contact's change is not folded into it
    assert tasks.enqueue_sync(ann, ItemKind.CONTACT)
    assert world.user(ann).queued_kind is None  # the tasks that wait cover every kind now
    assert not tasks.enqueue_sync(ann, ItemKind.CONTACT)
    assert not tasks.enqueue_sync(ann)
    assert tasks.dispatch() == []  # and the poll is not queued beside them
    assert huey.pending_count() == 2
    for task in huey.pending():
        huey.execute(task)
    assert sorted(world.kinds_run) == [ItemKind.APPOINTMENT, ItemKind.CONTACT]


def test_a_push_of_a_kind_the_profile_does_not_sync_runs_nothing(world: World) -> None:
    (ann,) = add_profile(world.db)  # contacts are off by default
    assert tasks.enqueue_sync(ann, ItemKind.CONTACT)
    assert world.kinds_run == [] and world.runs(ann) == []
    result = tasks.run_user(ann, ItemKind.CONTACT, operator=True)
    assert result.state == "skipped" and result.reason == "the profile does not sync contacts"


def test_a_throttle_is_a_reschedule_not_a_sleep(world: World) -> None:
    (ann,) = add_profile(world.db)
    world.service(ann, Side.GROUPWARE).faults.append(Throttled(600))
    began = time.monotonic()
    tasks.dispatch()
    assert time.monotonic() - began < 5
    (retry,) = scheduled()
    wait = (retry.eta - datetime.utcnow()).total_seconds()
    assert 590 < wait <= 600
    user = world.user(ann)
    assert user.next_sync_at is not None and user.failures == 0
    assert 590 < (user.next_sync_at - utcnow()).total_seconds() <= 600
    assert tasks.dispatch(utcnow() + timedelta(minutes=5)) == []  # the retry waits already
    assert world.runs(ann)[0].status is RunStatus.PARTIAL


def test_credentials_refused_ask_a_person_and_stop_retrying(world: World) -> None:
    (ann,) = add_profile(world.db)
    world.service(ann, Side.GROUPWARE).faults.append(AuthExpired("AADSTS700082: token expired"))
    tasks.dispatch()
    user = world.user(ann)
    assert user.needs_attention is not None and "AADSTS700082" in user.needs_attention
    assert scheduled() == []
    assert tasks.dispatch(utcnow() + timedelta(hours=2)) == []
    assert tasks.enqueue_sync(ann)  # a push does not run it either
    assert len(world.runs(ann)) == 1
    # The user signed in again; the operator's run checks it and clears the mark.
    result = tasks.run_user(ann, operator=True)
    assert result.state == "done"
    assert world.user(ann).needs_attention is None
    assert tasks.dispatch(utcnow() + timedelta(minutes=16)) == [ann]


def test_a_refused_profile_connection_marks_every_user_and_a_user_refusal_only_its_own(
    world: World,
) -> None:
    """SuperOffice's credentials are the profile's: refused for one user's run, every
    active user of the profile waits for a person with the reason (a mark of a user's own is
    kept), and the first run that succeeds clears those marks. A mailbox's own refusal
    marks that user only. Mistakes caught: the side ignored (everyone marked for one
    mailbox, or one user for the profile's connection), a user's own mark overwritten, the
    profile's marks left after the connection works again."""
    ann, ben, dan = add_profile(world.db, users=3)
    world.service(ann, Side.GROUPWARE).faults.append(
        AuthExpired("AADSTS50173: grant revoked", Side.GROUPWARE)
    )
    assert tasks.run_user(ann).state == "attention"
    own = world.user(ann).needs_attention
    assert own is not None and "AADSTS50173" in own
    assert world.user(ben).needs_attention is None and world.user(dan).needs_attention is None

    world.service(ben, Side.CRM).faults.append(
        AuthExpired("SuperOffice sign-in needs renewing: revoked", Side.CRM)
    )
    assert tasks.run_user(ben).state == "attention"
    for user_id in (ben, dan):
        mark = str(world.user(user_id).needs_attention)
        assert mark.startswith(tasks.SHARED_REFUSED) and "revoked" in mark, mark
    assert world.user(ann).needs_attention == own

    assert tasks.run_user(ben, operator=True).state == "done"
    assert world.user(dan).needs_attention is None
    assert world.user(dan).next_sync_at is None  # due again, at once
    assert world.user(ann).needs_attention == own


def test_transient_errors_back_off_exponentially_then_recover(world: World) -> None:
    (ann,) = add_profile(world.db)
    world.service(ann, Side.CRM).faults += [Transient("503"), Transient("503"), Transient("503")]
    tasks.dispatch()
    waits = []
    for expected_failures in (1, 2, 3):
        (retry,) = scheduled()
        assert world.user(ann).failures == expected_failures
        waits.append((retry.eta - datetime.utcnow()).total_seconds())
        huey.storage.flush_schedule()
        huey.execute(retry, timestamp=retry.eta)  # the retry comes due
    assert scheduled() == []
    assert [round(w) for w in waits] == [22, 45, 90]  # 30 s doubling, jitter drawn at 0.5
    user = world.user(ann)
    assert user.failures == 0 and user.last_error is None and user.last_sync_at is not None
    statuses = [r.status for r in world.runs(ann)]
    assert statuses == [RunStatus.FAILED] * 3 + [RunStatus.SUCCEEDED]


def test_backoff_has_jitter_and_a_ceiling() -> None:
    assert tasks.backoff(1, lambda: 0.0) == 15 and tasks.backoff(1, lambda: 1.0) == 30
    assert tasks.backoff(4, lambda: 0.0) == 120
    assert tasks.backoff(30, lambda: 1.0) == tasks.BACKOFF_CAP


def test_a_permanent_error_waits_for_the_next_interval(world: World) -> None:
    (ann,) = add_profile(world.db, settings={"sync_interval_minutes": 5})
    world.service(ann, Side.CRM).faults.append(Permanent("the service refuses it"))
    tasks.dispatch()
    assert scheduled() == []
    user = world.user(ann)
    assert user.last_error is not None and "refuses" in user.last_error
    assert user.needs_attention is None and user.next_sync_at is not None
    assert 290 < (user.next_sync_at - utcnow()).total_seconds() <= 300


def test_the_interval_is_the_profiles(world: World) -> None:
    (ann,) = add_profile(world.db, settings={"sync_interval_minutes": 5})
    (bob,) = add_profile(world.db, settings={"sync_interval_minutes": "soon"})
    tasks.dispatch()
    for user_id, minutes in ((ann, 5), (bob, 15)):
        user = world.user(user_id)
        assert user.next_sync_at is not None and user.last_sync_at is not None
        assert user.next_sync_at - user.last_sync_at == timedelta(minutes=minutes)


def test_a_dry_run_plans_and_leaves_the_schedule_alone(world: World) -> None:
    (ann,) = add_profile(world.db)
    world.service(ann, Side.CRM).user_create(appointment_sample(2))
    result = tasks.run_user(ann, ItemKind.APPOINTMENT, dry_run=True)
    assert result.state == "done" and result.runs[0].counts.get("create_groupware") == 1
    assert world.service(ann, Side.GROUPWARE).items == {}
    user = world.user(ann)
    assert user.last_sync_at is None and user.next_sync_at is None
