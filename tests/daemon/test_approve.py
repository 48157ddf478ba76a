"""`synchronizer approve RUN`: a plan the deletion guard held is applied by the user's next
run once approved, up to the deletions approved and only once. The daemon's tasks run in
huey's immediate mode with the in-memory services (`tests.daemon.test_tasks`); the approval
goes through the command."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner, Result

from checksite.cli import main
from common.kinds import ItemKind, RunStatus, Side
from common.models import SyncRun, SyncUser, utcnow
from common.secrets import generate_key
from daemon import tasks
from tests.connectors.contract import appointment_sample
from tests.daemon.conftest import add_profile
from tests.daemon.test_tasks import World, world  # noqa: F401 (the fixture)

INTERVAL_S = 0.3
GUARD = {
    "guard": {"max_deletes": 2, "min_for_percent": 1000},
    "sync_interval_minutes": INTERVAL_S / 60,
}


def approve(tmp_path: Path, *args: str) -> Result:
    env = {
        "SYNCHRONIZER_INSTANCE_PATH": str(tmp_path / "instance"),
        "SYNCHRONIZER_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "SYNCHRONIZER_ENCRYPTION_KEYS": generate_key(),
        "SYNCHRONIZER_SECRET_KEY": "a test secret key of some length",
    }
    return CliRunner().invoke(main, ["approve", *args], env=env)


def next_tick() -> None:
    """The scheduler's next tick, once the user's interval (0.3 s) has passed."""
    time.sleep(INTERVAL_S + 0.05)
    tasks.dispatch()


def test_an_approved_plan_is_applied_by_the_next_run_and_no_more(
    world: World,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Mistakes caught: the approval ignored (held for ever); an approval that lifts the
    guard altogether (a plan grown since deletes more than was approved); an approval used
    twice (the run after it deletes unguarded again)."""
    (ann,) = add_profile(world.db, settings=GUARD)
    crm, gw = world.service(ann, Side.CRM), world.service(ann, Side.GROUPWARE)
    ids = [crm.user_create(appointment_sample(n)) for n in range(8)]
    tasks.dispatch()
    assert len(gw.items) == 8
    copies = list(gw.items)
    for copy in copies[:4]:
        gw.user_delete(copy)

    next_tick()
    held = world.runs(ann)[-1]
    assert held.status is RunStatus.HELD and held.kind is ItemKind.APPOINTMENT
    assert held.held_plan is not None and held.held_plan["deletes"] == {"crm": 4}
    assert len(crm.items) == 8
    assert "waits for approval (run" in (world.user(ann).last_error or "")

    answer = approve(tmp_path, str(held.id), "--by", "ops@adatum", "--json")
    assert answer.exit_code == 0, answer.output
    record = json.loads(answer.output)
    assert record["deletes"] == {"crm": 4} and record["approved_by"] == "ops@adatum"
    assert record["mailbox"] == "user0@contoso.example" and record["kind"] == "appointment"

    gw.user_delete(copies[4])  # one more since the approval: 5 > 4 approved
    tasks.dispatch()  # due at once
    again = world.runs(ann)[-1]
    assert again.id != held.id and again.status is RunStatus.HELD
    assert len(crm.items) == 8

    answer = approve(tmp_path, str(again.id))
    assert answer.exit_code == 0, answer.output
    assert "the next appointment run of user0@contoso.example applies it" in answer.output
    next_tick()
    applied = world.runs(ann)[-1]
    assert applied.status is RunStatus.SUCCEEDED
    assert sorted(crm.items) == sorted(ids[5:])
    assert world.user(ann).last_error is None

    for copy in copies[5:]:  # three more: over the guard of 2, and the approval is spent
        gw.user_delete(copy)
    next_tick()
    assert world.runs(ann)[-1].status is RunStatus.HELD
    assert sorted(crm.items) == sorted(ids[5:])


def test_only_the_newest_held_plan_can_be_approved_once(
    world: World,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Mistakes caught: an old plan approved after a newer run (it may no longer be what
    the next run would do); a run approved that held nothing; the same run approved twice."""
    (ann,) = add_profile(world.db, settings=GUARD)
    crm, gw = world.service(ann, Side.CRM), world.service(ann, Side.GROUPWARE)
    for n in range(5):
        crm.user_create(appointment_sample(n))
    tasks.dispatch()
    first = world.runs(ann)[-1]
    for copy in list(gw.items)[:3]:
        gw.user_delete(copy)
    next_tick()
    older = world.runs(ann)[-1]
    next_tick()
    newer = world.runs(ann)[-1]
    assert older.status is newer.status is RunStatus.HELD and older.id < newer.id

    refusals = {
        str(first.id): f"run {first.id} is succeeded, not held for approval",
        str(older.id): f"run {newer.id} of the same user and kind came after run {older.id}",
        "999": "there is no run 999",
    }
    for run_id, message in refusals.items():
        answer = approve(tmp_path, run_id)
        assert answer.exit_code == 1 and message in answer.output, answer.output
    with world.db.session() as session:  # as if the interval were hours
        user = session.get(SyncUser, ann)
        assert user is not None
        user.next_sync_at = utcnow() + timedelta(hours=3)
    assert approve(tmp_path, str(newer.id)).exit_code == 0
    due = world.user(ann).next_sync_at
    assert due is not None and due <= utcnow()  # the approved plan need not wait for it
    twice = approve(tmp_path, str(newer.id))
    assert twice.exit_code == 1 and "was approved already" in twice.output
    with world.db.session() as session:
        row = session.get(SyncRun, older.id)
        assert row is not None and row.approved_at is None
