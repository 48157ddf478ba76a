"""`GET /metrics` of the web app, on SQLite and PostgreSQL, after the daemon's tasks ran
(huey's immediate mode, the in-memory services): the numbers come from the database, the
format is read back with prometheus-client's own parser, and only this host or a bearer of
the token is answered."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from checksite import create_app
from common.config import Settings
from common.connectors.base import AuthExpired, Transient
from common.db import Database
from common.kinds import ItemKind, RunStatus, Side
from common.models import SingletonLease, SyncRun, SyncUser, utcnow
from daemon import queue, tasks
from daemon.leases import take, user_slot
from daemon.runs import settle_abandoned
from daemon.scheduler import ensure_row, scheduler_slot
from daemon.store import SqlStore
from tests.connectors.contract import appointment_sample
from tests.daemon.conftest import add_profile, migrated
from tests.daemon.test_tasks import Factory, World

pytestmark = pytest.mark.postgres


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    db = migrated(database_url)
    made = World(db)
    queue.configure("memory://", immediate=True)
    tasks.use(tasks.Runtime(db, lambda: Factory(made), random=lambda: 0.5))
    yield made
    queue.unconfigure()
    db.dispose()


def client_for(db: Database, tmp_path: Path, **settings: Any) -> FlaskClient:
    base = Settings.load(environ={}, instance_path=tmp_path / "instance")
    app = create_app(dataclasses.replace(base, database_url=db.url, **settings))
    app.config["TESTING"] = True
    return app.test_client()


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.content_type.startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.get_data(as_text=True))
        for sample in family.samples
    }


def test_metrics_count_what_the_daemon_recorded(world: World, tmp_path: Path) -> None:
    """Mistakes caught: dry runs counted as runs; a run under way counted as ended;
    failures not told apart by reason; durations in days, not seconds (a dialect's date
    arithmetic); an expired lease counted as held; queued work not seen."""
    ok, refused, flaky, dead = add_profile(world.db, users=4)
    world.service(ok, Side.CRM).user_create(appointment_sample(1))
    world.service(refused, Side.GROUPWARE).faults.append(AuthExpired("AADSTS50173"))
    world.service(flaky, Side.CRM).faults.append(Transient("503"))
    with world.db.session() as session:  # the dead worker's user is not due: it "runs"
        session.execute(
            update(SyncUser)
            .where(SyncUser.id == dead)
            .values(next_sync_at=utcnow() + timedelta(hours=1))
        )
    tasks.dispatch()
    tasks.run_user(ok, ItemKind.APPOINTMENT, dry_run=True)
    interrupted = SqlStore(world.db, 1, dead, ItemKind.APPOINTMENT).start_run(dry_run=False)
    assert take(world.db, user_slot(dead), "killed", timedelta(seconds=-1)) is not None
    ensure_row(world.db)
    assert take(world.db, scheduler_slot(), "the-scheduler", timedelta(minutes=1)) is not None
    with world.db.session() as session:  # one run of a known length
        first = session.scalars(select(SyncRun).where(SyncRun.sync_user_id == ok)).first()
        assert first is not None and first.finished_at is not None
        first.started_at = first.finished_at - timedelta(seconds=42)
        late = session.get(SyncUser, ok)
        assert late is not None
        late.next_sync_at = utcnow() - timedelta(minutes=2)

    client = client_for(world.db, tmp_path)
    seen = scrape(client)
    appointment = (("kind", "appointment"),)
    assert seen[("synchronizer_sync_runs_total", (*appointment, ("status", "succeeded")))] == 1
    assert seen[("synchronizer_sync_runs_total", (*appointment, ("status", "failed")))] == 2
    assert seen[("synchronizer_sync_runs_running", ())] == 1
    assert seen[("synchronizer_sync_failures_total", (("reason", "credentials"),))] == 1
    assert seen[("synchronizer_sync_failures_total", (("reason", "transient"),))] == 1
    assert ("synchronizer_sync_failures_total", (("reason", "interrupted"),)) not in seen
    assert seen[("synchronizer_sync_duration_seconds_count", ())] == 3
    assert seen[("synchronizer_sync_duration_seconds_bucket", (("le", "30.0"),))] == 2
    assert seen[("synchronizer_sync_duration_seconds_bucket", (("le", "60.0"),))] == 3
    assert 42 <= seen[("synchronizer_sync_duration_seconds_sum", ())] < 50
    assert 115 < seen[("synchronizer_sync_overdue_seconds", ())] < 180
    assert seen[("synchronizer_queue_depth", (("state", "scheduled"),))] == 1  # flaky's retry
    assert seen[("synchronizer_queue_depth", (("state", "waiting"),))] == 0
    assert seen[("synchronizer_leases_held", (("lease", "scheduler"),))] == 1
    assert seen[("synchronizer_leases_held", (("lease", "sync_user"),))] == 0
    assert seen[("synchronizer_leases_expired", (("lease", "sync_user"),))] == 1
    assert seen[("synchronizer_users", (("state", "active"),))] == 4
    assert seen[("synchronizer_users", (("state", "needs_attention"),))] == 1

    settle_abandoned(world.db)
    queue.configure("memory://")  # a queue without a consumer: the task waits
    with world.db.session() as session:
        session.execute(update(SyncUser).where(SyncUser.id == ok).values(queued_at=None))
        session.execute(update(SingletonLease).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert tasks.enqueue_sync(ok)
    seen = scrape(client)
    assert seen[("synchronizer_sync_runs_running", ())] == 0
    assert seen[("synchronizer_sync_failures_total", (("reason", "interrupted"),))] == 1
    assert seen[("synchronizer_sync_runs_total", (*appointment, ("status", "failed")))] == 3
    assert seen[("synchronizer_leases_expired", (("lease", "sync_user"),))] == 0
    assert seen[("synchronizer_leases_expired", (("lease", "scheduler"),))] == 1
    assert seen[("synchronizer_leases_held", (("lease", "scheduler"),))] == 0
    assert seen[("synchronizer_queue_depth", (("state", "waiting"),))] == 1
    with world.db.session() as session:
        assert session.get(SyncRun, interrupted).status is RunStatus.FAILED  # type: ignore[union-attr]


def test_metrics_answer_only_this_host_or_the_token(
    migrated_database: Database, tmp_path: Path
) -> None:
    """Mistake caught: a public Check site handing anyone its internals."""
    client = client_for(migrated_database, tmp_path)
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    outside = {"REMOTE_ADDR": "203.0.113.5"}
    assert client.get("/metrics", environ_base=outside).status_code == 404
    guarded = client_for(migrated_database, tmp_path, metrics_token="s3cret-scrape-token")
    assert guarded.get("/metrics", environ_base=outside).status_code == 401
    assert guarded.get("/metrics").status_code == 401  # the token counts from anywhere
    wrong = {"Authorization": "Bearer nope"}
    assert guarded.get("/metrics", headers=wrong).status_code == 401
    right = {"Authorization": "Bearer s3cret-scrape-token"}
    answer = guarded.get("/metrics", headers=right, environ_base=outside)
    assert answer.status_code == 200 and b"synchronizer_sync_runs_total" in answer.data
