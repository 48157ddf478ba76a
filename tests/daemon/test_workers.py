"""The daemon as it runs in production, through its commands: `synchronizer scheduler` and
`synchronizer worker` processes with the real connectors against the simulators (SuperOffice
Onsite, Microsoft 365 with users signed in through msal). One worker on SqliteHuey and
SQLite; two workers and two schedulers on a real redis-server and PostgreSQL. Every due user
is synced exactly once per interval and never by two workers at once; one scheduler is
elected; a stopped worker lets its running syncs finish."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from common.kinds import RunStatus
from common.models import SingletonLease, SyncRun
from daemon import queue, tasks
from simulators.runner import SimulatorStack
from tests.daemon.deployment import INTERVAL_S, SYNCHRONIZER, Deployment
from tests.fixtures.postgres import PostgresServer

SLACK_S = 2 * INTERVAL_S  # a user left out of two rounds fails; a busy machine does not


@pytest.fixture
def sqlite_deployment(tmp_path: Path, fresh_sims: SimulatorStack) -> Iterator[Deployment]:
    made = Deployment(
        tmp_path,
        f"sqlite:///{tmp_path / 'app.db'}",
        f"sqlite:///{tmp_path / 'queue.db'}",
        fresh_sims,
    )
    yield made
    made.stop_all()
    made.db.dispose()


@pytest.fixture
def redis_deployment(
    tmp_path: Path,
    fresh_sims: SimulatorStack,
    postgres_server: PostgresServer,
    redis_url: str,
) -> Iterator[Deployment]:
    redis.Redis.from_url(redis_url).flushdb()
    made = Deployment(tmp_path, postgres_server.create_database(), redis_url, fresh_sims)
    yield made
    made.stop_all()
    made.db.dispose()


def three_syncs_each(deployment: Deployment) -> bool:
    return all(len([r for r in made if r.finished_at]) >= 3 for made in deployment.runs().values())


def assert_synced_once_per_interval(deployment: Deployment) -> None:
    runs = deployment.runs()
    for user, made in runs.items():
        assert all(r.status is RunStatus.SUCCEEDED for r in made), [
            (r.status, r.errors) for r in made
        ]
        starts = [r.started_at for r in made]
        gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
        assert all(gap >= INTERVAL_S - 0.01 for gap in gaps), (user, gaps)  # never twice
        assert len(made) >= 3, (user, gaps)
        for a, b in zip(made, made[1:], strict=False):
            assert a.finished_at is not None and a.finished_at <= b.started_at  # never two at once
            # and never left out: synced again once due (the dispatcher ticks every 0.3 s, the
            # others' runs and a busy machine take the rest of the slack)
            due = max(a.started_at + timedelta(seconds=INTERVAL_S), a.finished_at)
            assert b.started_at <= due + timedelta(seconds=SLACK_S), (user, gaps)
    # The first runs carried the demo calendars across; the later ones found nothing to do:
    # no run wrote an item a second time.
    firsts = [made[0] for made in runs.values()]
    assert sum(writes(r) for r in firsts) > 0, [r.counts for r in firsts]
    later = [r for made in runs.values() for r in made[1:]]
    assert [writes(r) for r in later] == [0] * len(later), [r.counts for r in later]


def writes(run: SyncRun) -> int:
    ops = ("applied_create_", "applied_update_", "applied_delete_")
    return sum(v for k, v in run.counts.items() if k.startswith(ops))


def test_one_worker_on_sqlite(sqlite_deployment: Deployment) -> None:
    deployment = sqlite_deployment
    deployment.link_users()
    deployment.start("scheduler", "--every", "0.3", "--lease-seconds", "2", name="scheduler")
    worker = deployment.start("worker", "--workers", "2", name="worker")
    deployment.wait_for(lambda: three_syncs_each(deployment), 60, "three syncs of every user")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    assert_synced_once_per_interval(deployment)
    assert all(u.lease_owner is None for u in deployment.users())


def test_two_workers_and_two_schedulers_on_redis_and_postgresql(
    redis_deployment: Deployment,
) -> None:
    deployment = redis_deployment
    deployment.link_users()
    for n in (1, 2):
        deployment.start(
            "scheduler", "--every", "0.3", "--lease-seconds", "2", name=f"scheduler{n}"
        )
    workers = [deployment.start("worker", "--workers", "1", name=f"worker{n}") for n in (1, 2)]
    deployment.wait_for(lambda: three_syncs_each(deployment), 60, "three syncs of every user")
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        assert worker.wait(timeout=30) == 0
    assert_synced_once_per_interval(deployment)
    for n in (1, 2):  # both workers took part
        assert "sync of user" in deployment.log(f"worker{n}"), deployment.log(f"worker{n}")
    elected = [n for n in (1, 2) if "elected" in deployment.log(f"scheduler{n}")]
    assert len(elected) == 1, elected
    with deployment.db.session() as session:
        row = session.get(SingletonLease, "scheduler")
        assert row is not None and row.owner is not None
    assert all(u.lease_owner is None for u in deployment.users())


def test_a_stopped_worker_lets_its_running_syncs_finish(sqlite_deployment: Deployment) -> None:
    deployment = sqlite_deployment
    deployment.link_users()
    http = deployment.http
    answer = http.put(
        deployment.sims.summary()["superoffice"] + "/_sim/latency", json={"latency_ms": 50}
    )
    assert answer.status_code == 200, answer.text
    worker = deployment.start("worker", "--workers", "3", name="worker")
    deployment.start("scheduler", "--every", "0.3", name="scheduler")
    deployment.wait_for(
        lambda: any(u.lease_owner for u in deployment.users()), 30, "a sync under way"
    )
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    runs = [r for made in deployment.runs().values() for r in made]
    assert runs and all(r.status is RunStatus.SUCCEEDED for r in runs), [r.status for r in runs]
    assert all(u.lease_owner is None for u in deployment.users())
    assert "Shutting down gracefully" in deployment.log("worker")


def command(deployment: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYNCHRONIZER, *args], env=deployment.env, capture_output=True, text=True, timeout=60
    )


def test_an_operator_syncs_one_user_and_reads_the_status(sqlite_deployment: Deployment) -> None:
    deployment = sqlite_deployment
    adele, megan, _ = deployment.link_users()

    planned = command(deployment, "sync", "--user", "Adele@contoso.example", "--dry-run", "--json")
    assert planned.returncode == 0, planned.stderr
    record = json.loads(planned.stdout)
    assert record["state"] == "done" and record["dry_run"] is True
    assert [r["kind"] for r in record["runs"]] == ["appointment"]
    assert record["runs"][0]["counts"]["create_crm"] > 0  # adele's calendar, to her diary
    assert any("create on crm:" in line for line in record["plan"]), record["plan"]
    assert deployment.users()[0].last_sync_at is None  # a plan changes nothing

    done = command(deployment, "sync", "--user", "adele@contoso.example")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("adele@contoso.example: done")
    assert "appointments: run" in done.stdout and "succeeded" in done.stdout

    unknown = command(deployment, "sync", "--user", "nobody@contoso.example")
    assert unknown.returncode == 1 and "no linked user" in unknown.stderr

    status = command(deployment, "status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    states = {u["mailbox"]: u["state"] for u in report["users"]}
    assert states == {
        "adele@contoso.example": "ok",
        "megan@contoso.example": "never synced",
        "admin@contoso.example": "never synced",
    }
    assert report["scheduler"] is None and report["queue"]["backend"] == "sqlite"
    text = command(deployment, "status")
    assert "adele@contoso.example [Adatum]: ok; last 20" in text.stdout, text.stdout


def test_a_sync_cut_off_at_the_shutdown_timeout_goes_back_to_the_queue(
    sqlite_deployment: Deployment,
) -> None:
    deployment = sqlite_deployment
    deployment.link_users()
    answer = deployment.http.put(
        deployment.sims.summary()["superoffice"] + "/_sim/latency", json={"latency_ms": 300}
    )
    assert answer.status_code == 200, answer.text
    worker = deployment.start("worker", "--workers", "1", "--shutdown-timeout", "0.5", name="w")
    deployment.start("scheduler", "--every", "0.3", name="scheduler")
    deployment.wait_for(
        lambda: any(u.lease_owner for u in deployment.users()), 30, "a sync under way"
    )
    (syncing,) = [u.id for u in deployment.users() if u.lease_owner]
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    queue.configure(deployment.queue_url)
    try:
        waiting = [
            task.args[0]
            for task in queue.huey.pending()
            if isinstance(task, tasks.sync_user.task_class)
        ]
    finally:
        queue.unconfigure()
    assert syncing in waiting  # handed back; its lease simply expires
