"""`GET /metrics`: the daemon's health in Prometheus's text format (prometheus-client).

The web app never imports the daemon, and the daemon's processes come and go on many hosts:
every number here is read from the database at scrape time, which every worker writes and
which outlives them. So the counts are the deployment's, not one process's.

- `synchronizer_sync_runs_total{kind,status}`: runs that ended (dry runs not counted);
  `synchronizer_sync_runs_running`: runs under way (or left by a dead worker, until settled);
- `synchronizer_sync_failures_total{reason}`: runs that did not simply succeed, by the
  daemon's reason (throttled, credentials, transient, permanent, unexpected, item_errors,
  interrupted);
- `synchronizer_sync_duration_seconds`: a histogram of how long runs took;
- `synchronizer_sync_overdue_seconds`: how late the most overdue active user is (0 when the
  workers keep up);
- `synchronizer_queue_depth{state}`: syncs queued and not started (`waiting`) and retries
  waiting for their time (`scheduled`), from the schedule the database keeps;
- `synchronizer_leases_held{lease}` and `synchronizer_leases_expired{lease}`: leases on
  users and the scheduler held now, and left by holders that died;
- `synchronizer_users{state}`, `synchronizer_services_paused`.

Without `METRICS_TOKEN` only clients on this host (loopback) are answered; with it, a
request must carry `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterator
from datetime import datetime

from flask import Blueprint, Response, current_app, request
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from checksite.database import get_database
from common.db import Database
from common.kinds import RunStatus
from common.models import (
    InvitationState,
    ServiceBudget,
    SingletonLease,
    SyncRun,
    SyncUser,
    utcnow,
)

bp = Blueprint("metrics", __name__)

BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)


class DatabaseMetrics(Collector):
    """Reads the numbers from the database at each scrape."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        now = utcnow()
        with self.db.session() as session:
            yield from _runs(session)
            yield _durations(session)
            yield from _schedule(session, now)
            yield from _leases(session, now)
            yield from _users(session)


def _runs(session: Session) -> Iterator[Metric]:
    ended = CounterMetricFamily(
        "synchronizer_sync_runs", "Sync runs that ended.", labels=["kind", "status"]
    )
    running = 0
    rows = session.execute(
        select(SyncRun.kind, SyncRun.status, func.count())
        .where(SyncRun.dry_run.is_(False))
        .group_by(SyncRun.kind, SyncRun.status)
    )
    for kind, status, count in rows:
        if status is RunStatus.RUNNING:
            running += count
        else:
            ended.add_metric([kind.value if kind else "unknown", status.value], count)
    yield ended
    yield GaugeMetricFamily("synchronizer_sync_runs_running", "Sync runs under way.", value=running)
    failures = CounterMetricFamily(
        "synchronizer_sync_failures", "Sync runs that did not simply succeed.", labels=["reason"]
    )
    for reason, count in session.execute(
        select(SyncRun.reason, func.count())
        .where(SyncRun.dry_run.is_(False), SyncRun.reason.is_not(None))
        .group_by(SyncRun.reason)
    ):
        failures.add_metric([str(reason)], count)
    yield failures


def _seconds(
    session: Session, start: ColumnElement[datetime], end: ColumnElement[datetime]
) -> ColumnElement[float]:
    """end - start in seconds, in each database's own words."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start)  # type: ignore[return-value]
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _durations(session: Session) -> Metric:
    took = _seconds(session, SyncRun.started_at, SyncRun.finished_at)  # type: ignore[arg-type]
    columns = [func.sum(case((took <= bound, 1), else_=0)) for bound in BUCKETS]
    row = session.execute(
        select(func.count(), func.coalesce(func.sum(took), 0.0), *columns).where(
            SyncRun.dry_run.is_(False), SyncRun.finished_at.is_not(None)
        )
    ).one()
    count, total, *within = row
    buckets = [(floatToGoString(b), int(n or 0)) for b, n in zip(BUCKETS, within, strict=True)]
    buckets.append(("+Inf", int(count)))
    return HistogramMetricFamily(
        "synchronizer_sync_duration_seconds",
        "How long sync runs took.",
        buckets=buckets,
        sum_value=float(total or 0.0),
    )


def _schedule(session: Session, now: datetime) -> Iterator[Metric]:
    active = (SyncUser.invitation_state == InvitationState.ACTIVE) & SyncUser.needs_attention.is_(
        None
    )
    oldest_due = session.scalar(
        select(func.min(SyncUser.next_sync_at)).where(active, SyncUser.next_sync_at <= now)
    )
    yield GaugeMetricFamily(
        "synchronizer_sync_overdue_seconds",
        "How late the most overdue active user's sync is.",
        value=max((now - oldest_due).total_seconds(), 0.0) if oldest_due else 0.0,
    )
    depth = GaugeMetricFamily(
        "synchronizer_queue_depth",
        "Syncs queued and not started (waiting), and retries waiting for their time.",
        labels=["state"],
    )
    waiting = session.scalar(select(func.count()).where(SyncUser.queued_at <= now))
    later = session.scalar(select(func.count()).where(SyncUser.queued_at > now))
    depth.add_metric(["waiting"], int(waiting or 0))
    depth.add_metric(["scheduled"], int(later or 0))
    yield depth
    paused = session.scalar(select(func.count()).where(ServiceBudget.paused_until > now))
    yield GaugeMetricFamily(
        "synchronizer_services_paused",
        "Services that asked us to wait (all their users wait).",
        value=int(paused or 0),
    )


def _leases(session: Session, now: datetime) -> Iterator[Metric]:
    held = GaugeMetricFamily("synchronizer_leases_held", "Leases held now.", labels=["lease"])
    expired = GaugeMetricFamily(
        "synchronizer_leases_expired",
        "Leases whose holder stopped renewing them (a killed worker's, until taken again).",
        labels=["lease"],
    )
    for label, owner, expires in (
        ("sync_user", SyncUser.lease_owner, SyncUser.lease_expires_at),
        ("scheduler", SingletonLease.owner, SingletonLease.expires_at),
    ):
        alive = session.scalar(select(func.count()).where(owner.is_not(None), expires > now))
        dead = session.scalar(select(func.count()).where(owner.is_not(None), expires <= now))
        held.add_metric([label], int(alive or 0))
        expired.add_metric([label], int(dead or 0))
    yield held
    yield expired


def _users(session: Session) -> Iterator[Metric]:
    users = GaugeMetricFamily("synchronizer_users", "Linked users by state.", labels=["state"])
    counts = {state.value: 0 for state in InvitationState}
    counts["needs_attention"] = 0
    for invitation, attention, count in session.execute(
        select(
            SyncUser.invitation_state, SyncUser.needs_attention.is_not(None), func.count()
        ).group_by(SyncUser.invitation_state, SyncUser.needs_attention.is_not(None))
    ):
        counts[invitation.value] += count
        if attention:
            counts["needs_attention"] += count
    for state, count in counts.items():
        users.add_metric([state], count)
    yield users


def _registry() -> CollectorRegistry:
    registry = current_app.extensions.get("synchronizer.metrics")
    if registry is None:
        registry = CollectorRegistry()
        registry.register(DatabaseMetrics(get_database()))
        current_app.extensions["synchronizer.metrics"] = registry
    return registry


def _refusal() -> Response | None:
    token = current_app.config["SYNCHRONIZER"].metrics_token
    if token:
        given = request.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return None
        return Response("a bearer token is needed\n", 401, {"WWW-Authenticate": "Bearer"})
    try:
        local = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        local = False
    return None if local else Response("not found\n", 404)  # a public site does not show it


@bp.get("/metrics")
def metrics() -> Response:
    refused = _refusal()
    if refused is not None:
        return refused
    # The format the scraper asks for (Prometheus's text, or OpenMetrics), as the library
    # negotiates it.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(_registry()), content_type=content_type)
