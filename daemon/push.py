"""Push: what a service's notification sets going in the daemon, and the upkeep that keeps
the services notifying us.

`triggers(settings)` is what the composition root hands the web app (`common.push`): the
queue and the daemon's runtime set up in the web process, and three requests its receivers
make:
- `request_sync`: a coalesced sync of one user's kind, unless the profile does not sync that
  kind (a SuperOffice webhook announces persons to every profile, syncing contacts or not);
- `request_reconcile`: Graph says it dropped notifications (`missed`): the next sync lists
  the user's Microsoft 365 side of that kind afresh instead of reading its delta, so what
  no notification announced and no delta reported (a deletion) is found;
- `request_upkeep`: make or renew subscriptions now (a lifecycle notification asked).

The upkeep (task `subscription_upkeep`, one at a time through the `push-upkeep` singleton
lease) keeps Graph's subscriptions (`daemon.graph_subscriptions`) and SuperOffice's webhooks
(`daemon.superoffice_webhooks`); the scheduler queues it at its start and every five
minutes (`scheduler_tick`). The poll stays the safety net for whatever push misses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from huey import RetryTask

from common.config import Settings
from common.db import Database
from common.kinds import ItemKind, Side
from common.models import Profile, SingletonLease, SyncUser, utcnow
from common.push import PushTriggers
from daemon import queue, tasks
from daemon.connections import Connections
from daemon.graph_subscriptions import GraphReport, Timing, upkeep_graph
from daemon.leases import Slot, held, user_slot
from daemon.policies import Policy
from daemon.queue import huey
from daemon.reading import SideCursor
from daemon.scheduler import ensure_row
from daemon.store import SqlStore
from daemon.superoffice_webhooks import WebhookReport, upkeep_webhooks

log = logging.getLogger(__name__)

UPKEEP_EVERY = timedelta(minutes=5)
UPKEEP_LEASE = "push-upkeep"
UPKEEP_BUSY_DELAY = 5.0  # seconds: another upkeep runs; this one follows it


def triggers(settings: Settings) -> PushTriggers:
    """The push triggers of a web process (the queue and the database of `settings`)."""
    queue.configure(settings.queue_url)
    configure(settings)
    return PushTriggers(
        enqueue_sync=request_sync,
        enqueue_reconcile=request_reconcile,
        enqueue_upkeep=request_upkeep,
    )


# --- what the receivers ask for --------------------------------------------------------------


def request_sync(user_id: int, kind: ItemKind) -> bool:
    """Queue a sync of the user's `kind` now, coalesced; False when one waits already or
    the profile does not sync that kind."""
    with tasks.runtime().db.session() as session:
        user = session.get(SyncUser, user_id)
        profile = session.get(Profile, user.profile_id) if user is not None else None
        if profile is None:
            return False
        synced = tasks.kinds_of(Policy.from_settings(profile.settings or {}))
    return kind in synced and tasks.enqueue_sync(user_id, kind)


def request_reconcile(user_id: int, kind: ItemKind) -> bool:
    huey.enqueue(reconcile.s(user_id, kind.value))
    return True


def request_upkeep() -> bool:
    huey.enqueue(subscription_upkeep.s())
    return True


@huey.task()
def reconcile(user_id: int, kind: str) -> None:
    """Mark the user's groupware side of `kind` to be listed afresh, then queue its sync. The
    mark is set under the user's lease: a run in progress would save its cursor over it."""
    rt = tasks.runtime()
    with held(rt.db, user_slot(user_id), rt.lease_ttl) as lease:
        if lease is None:
            raise RetryTask(delay=tasks.BUSY_FIRST * 2)
        mark_relist(rt.db, user_id, ItemKind(kind))
    tasks.enqueue_sync(user_id, ItemKind(kind))


def mark_relist(db: Database, user_id: int, kind: ItemKind) -> bool:
    """The next run lists the groupware side afresh (False: no cursor yet, so it will)."""
    with db.session() as session:
        user = session.get(SyncUser, user_id)
        if user is None:
            return False
        store = SqlStore(db, user.profile_id, user_id)
    saved = store.load_cursor(kind, Side.GROUPWARE)
    if saved is None:
        return False
    cursor = SideCursor.load(saved)
    cursor.relist = True
    store.save_cursor(kind, Side.GROUPWARE, cursor.dump())
    return True


# --- the upkeep ------------------------------------------------------------------------------


@dataclass
class PushRuntime:
    settings: Settings
    db: Database
    timing: Timing = field(default_factory=Timing)


_runtime: PushRuntime | None = None


def configure(settings: Settings, timing: Timing | None = None) -> PushRuntime:
    """Set up the daemon's runtime (`tasks.configure`) and the upkeep's."""
    rt = tasks.configure(settings)
    return use(PushRuntime(settings, rt.db, timing or Timing()))


def use(runtime: PushRuntime) -> PushRuntime:
    global _runtime
    _runtime = runtime
    return runtime


def runtime() -> PushRuntime:
    if _runtime is None:
        raise RuntimeError("daemon.push is not configured: call daemon.push.configure(settings)")
    return _runtime


def upkeep_slot() -> Slot:
    return Slot(
        SingletonLease.owner,
        SingletonLease.expires_at,
        SingletonLease.name == UPKEEP_LEASE,
        "the push subscriptions' upkeep",
    )


@dataclass
class UpkeepReport:
    graph: GraphReport
    webhooks: WebhookReport


@huey.task()
def subscription_upkeep() -> None:
    report = upkeep()
    if report is None:
        raise RetryTask(delay=UPKEEP_BUSY_DELAY)
    graph, hooks = report.graph, report.webhooks
    changed = [o for o in hooks.outcomes.values() if o != "ok"]
    if graph.made or graph.renewed or graph.deleted or graph.failed or changed or hooks.failed:
        log.info(
            "push upkeep: Graph subscriptions %d made, %d renewed, %d deleted, %d failed; "
            "SuperOffice webhooks %d made or set right, %d failed",
            len(graph.made),
            len(graph.renewed),
            len(graph.deleted),
            len(graph.failed),
            len(changed),
            len(hooks.failed),
        )


def upkeep(now: datetime | None = None) -> UpkeepReport | None:
    """Keep the subscriptions and webhooks; None when another upkeep runs."""
    rt = runtime()
    ensure_row(rt.db, UPKEEP_LEASE)
    with held(rt.db, upkeep_slot()) as lease:
        if lease is None:
            return None
        connections = Connections(rt.settings, rt.db)
        try:
            public = rt.settings.public_url
            return UpkeepReport(
                upkeep_graph(rt.db, connections, public, now or utcnow(), rt.timing),
                upkeep_webhooks(rt.db, connections, public),
            )
        finally:
            connections.close()


class UpkeepTicker:
    """For the scheduler's tick: queue the upkeep at start and every `every` after."""

    def __init__(self, every: timedelta = UPKEEP_EVERY) -> None:
        self.every = every
        self.last: datetime | None = None

    def __call__(self, now: datetime) -> bool:
        if self.last is not None and now - self.last < self.every:
            return False
        self.last = now
        request_upkeep()
        return True


def scheduler_tick(every: timedelta = UPKEEP_EVERY) -> Callable[[datetime], None]:
    """The scheduler's tick: the dispatcher, and the upkeep every `every`; a failure of one
    does not keep the other from running."""
    ticker = UpkeepTicker(every)

    def tick(now: datetime) -> None:
        try:
            ticker(now)
        except Exception:
            log.exception("could not queue the push upkeep")
        tasks.dispatch(now)

    return tick
