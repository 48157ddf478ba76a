"""Push: what a service's notification sets going in the daemon, and the subscriptions that
make the services notify us.

`triggers(settings)` is what the composition root hands the web app (`common.push`): the
queue and the daemon's runtime set up in the web process, and three requests its receivers
make:
- `request_sync`: a coalesced sync of one user's kind, unless the profile does not sync that
  kind (a SuperOffice webhook announces persons to every profile, syncing contacts or not);
- `request_reconcile`: Graph says it dropped notifications (`missed`): the next sync lists
  the user's Microsoft 365 side of that kind afresh instead of reading its delta, so what
  no notification announced and no delta reported (a deletion) is found;
- `request_upkeep`: make or renew subscriptions now (a lifecycle notification asked).

The upkeep (`subscription_upkeep`, one at a time through the `push-upkeep` singleton lease)
keeps one Graph subscription per synced Microsoft 365 user and kind: made when missing or
removed by Graph, renewed a day before it expires (it lives three days; Outlook allows
under seven) or when Graph asks for reauthorization, deleted when the user or kind is no
longer synced. The scheduler queues it every five minutes (`UpkeepTicker`). A user whose
credentials were refused (needs attention) keeps none: Graph would refuse them too, and
they are made again once a person has fixed it. SuperOffice's webhooks are registered per
profile, not here.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from huey import RetryTask
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from common.config import Settings
from common.connectors.base import NotFound
from common.connectors.graph import subscriptions
from common.connectors.graph.client import GraphClient
from common.connectors.graph.contacts import GraphContacts
from common.db import Database
from common.kinds import ItemKind, Side
from common.models import (
    GroupwareKind,
    InvitationState,
    Profile,
    PushState,
    PushSubscription,
    SingletonLease,
    SyncUser,
    utcnow,
)
from common.push import PushTriggers, hash_state
from daemon import queue, tasks
from daemon.connections import Connections
from daemon.leases import Slot, held, user_slot
from daemon.policies import Policy
from daemon.queue import huey
from daemon.reading import SideCursor
from daemon.scheduler import ensure_row
from daemon.store import SqlStore

log = logging.getLogger(__name__)

SERVICE = "graph"
NOTIFICATIONS_PATH = "/hooks/microsoft"  # the web app's receivers (checksite/graph_hooks.py)
LIFECYCLE_PATH = "/hooks/microsoft/lifecycle"
LIFETIME = timedelta(days=3)
RENEW_BEFORE = timedelta(days=1)
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
    lifetime: timedelta = LIFETIME
    renew_before: timedelta = RENEW_BEFORE


_runtime: PushRuntime | None = None


def configure(settings: Settings, **options: Any) -> PushRuntime:
    """Set up the daemon's runtime (`tasks.configure`) and the upkeep's."""
    rt = tasks.configure(settings)
    return use(PushRuntime(settings, rt.db, **options))


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
    made: list[tuple[int, ItemKind]] = field(default_factory=list)
    renewed: list[tuple[int, ItemKind]] = field(default_factory=list)
    deleted: list[tuple[int, ItemKind]] = field(default_factory=list)
    failed: list[tuple[int, ItemKind, str]] = field(default_factory=list)


@huey.task()
def subscription_upkeep() -> None:
    report = upkeep()
    if report is None:
        raise RetryTask(delay=UPKEEP_BUSY_DELAY)
    if report.made or report.renewed or report.deleted or report.failed:
        log.info(
            "push subscriptions: %d made, %d renewed, %d deleted, %d failed",
            len(report.made),
            len(report.renewed),
            len(report.deleted),
            len(report.failed),
        )


def upkeep(now: datetime | None = None) -> UpkeepReport | None:
    """Make, renew and delete subscriptions as needed; None when another upkeep runs."""
    rt = runtime()
    ensure_row(rt.db, UPKEEP_LEASE)
    with held(rt.db, upkeep_slot()) as lease:
        if lease is None:
            return None
        return _upkeep(rt, now or utcnow())


def _wanted(db: Database) -> dict[tuple[int, ItemKind], SyncUser]:
    """The Microsoft 365 users and kinds that should have a subscription (their profile
    loaded with the row)."""
    with db.session() as session:
        users = session.scalars(
            select(SyncUser)
            .join(Profile)
            .options(selectinload(SyncUser.profile))
            .where(
                Profile.enabled.is_(True),
                Profile.groupware_kind == GroupwareKind.MICROSOFT_365,
                SyncUser.invitation_state == InvitationState.ACTIVE,
                SyncUser.needs_attention.is_(None),
            )
        ).all()
        session.expunge_all()
    return {
        (user.id, kind): user
        for user in users
        for kind in tasks.kinds_of(Policy.from_settings(user.profile.settings or {}))
    }


def _upkeep(rt: PushRuntime, now: datetime) -> UpkeepReport:
    report = UpkeepReport()
    wanted = _wanted(rt.db)
    with rt.db.session() as session:
        rows = {
            (row.sync_user_id, row.kind): row
            for row in session.scalars(
                select(PushSubscription).where(PushSubscription.service == SERVICE)
            )
        }
        session.expunge_all()
    connections = Connections(rt.settings, rt.db)
    clients: dict[int, GraphClient] = {}

    def client_of(user: SyncUser) -> GraphClient:
        if user.id not in clients:
            clients[user.id] = connections.graph_client(user.profile, user)
        return clients[user.id]

    try:
        for key, user in wanted.items():
            row = rows.get(key)
            try:
                if row is None or row.external_id is None or row.state in _REMAKE:
                    _make(rt, client_of(user), user, key[1], row, now)
                    report.made.append(key)
                elif row.state is PushState.REAUTHORIZE or _expiring(rt, row, now):
                    if _renew(rt, client_of(user), row, now):
                        report.renewed.append(key)
                    else:  # Graph no longer has it
                        _make(rt, client_of(user), user, key[1], row, now)
                        report.made.append(key)
            except Exception as exc:  # this user's subscription only; the others go on
                log.warning("push subscription of user %s (%s): %s", key[0], key[1].value, exc)
                _failed(rt.db, key, row, str(exc))
                report.failed.append((*key, str(exc)))
        for key, row in rows.items():
            if key not in wanted:
                _end(rt, connections, row)
                report.deleted.append(key)
    finally:
        connections.close()
    return report


_REMAKE = (PushState.REMOVED, PushState.FAILED)


def _expiring(rt: PushRuntime, row: PushSubscription, now: datetime) -> bool:
    return row.expires_at is None or row.expires_at - now <= rt.renew_before


def _expiry(rt: PushRuntime, now: datetime) -> datetime:
    return now + min(rt.lifetime, subscriptions.MAX_LIFETIME - timedelta(minutes=5))


def _resource(client: GraphClient, kind: ItemKind) -> str:
    if kind is ItemKind.CONTACT:
        return subscriptions.contacts_resource(GraphContacts(client).folder_id)
    return subscriptions.events_resource()


def _make(
    rt: PushRuntime,
    client: GraphClient,
    user: SyncUser,
    kind: ItemKind,
    row: PushSubscription | None,
    now: datetime,
) -> None:
    public = rt.settings.public_url.rstrip("/")
    state = secrets.token_urlsafe(32)
    resource = _resource(client, kind)
    made = subscriptions.create(
        client,
        resource,
        notification_url=public + NOTIFICATIONS_PATH,
        lifecycle_url=public + LIFECYCLE_PATH,
        client_state=state,
        expires_at=_expiry(rt, now),
    )
    if row is not None and row.external_id and row.state is not PushState.REMOVED:
        try:  # a failed or stale one Graph may still hold: never two for one user and kind
            subscriptions.delete(client, row.external_id)
        except Exception as exc:
            log.warning("could not delete push subscription %s: %s", row.external_id, exc)
    with rt.db.session() as session:
        current = session.scalar(
            select(PushSubscription).where(
                PushSubscription.sync_user_id == user.id,
                PushSubscription.kind == kind,
                PushSubscription.service == SERVICE,
            )
        )
        if current is None:
            current = PushSubscription(sync_user_id=user.id, kind=kind, service=SERVICE)
            session.add(current)
        current.external_id = made.subscription_id
        current.client_state_hash = hash_state(state)
        current.resource = resource
        current.expires_at = made.expires_at
        current.state = PushState.ACTIVE
        current.last_error = None


def _renew(rt: PushRuntime, client: GraphClient, row: PushSubscription, now: datetime) -> bool:
    """Renew (and so reauthorize) it; False when Graph no longer has it."""
    assert row.external_id is not None
    try:
        expires = subscriptions.renew(client, row.external_id, _expiry(rt, now))
    except NotFound:
        return False
    with rt.db.session() as session:
        current = session.get(PushSubscription, row.id)
        if current is not None and current.external_id == row.external_id:
            current.expires_at, current.state, current.last_error = expires, PushState.ACTIVE, None
    return True


def _failed(
    db: Database, key: tuple[int, ItemKind], row: PushSubscription | None, error: str
) -> None:
    with db.session() as session:
        current = session.get(PushSubscription, row.id) if row is not None else None
        if current is None:
            current = PushSubscription(sync_user_id=key[0], kind=key[1], service=SERVICE)
            session.add(current)
        current.state, current.last_error = PushState.FAILED, error[:2000]


def _end(rt: PushRuntime, connections: Connections, row: PushSubscription) -> None:
    """Delete a subscription nobody needs any more (best effort: it expires anyway)."""
    if row.external_id and row.state is not PushState.REMOVED:
        with rt.db.session() as session:
            user = session.get(SyncUser, row.sync_user_id, options=[selectinload(SyncUser.profile)])
            session.expunge_all()
        try:
            if user is not None:
                subscriptions.delete(connections.graph_client(user.profile, user), row.external_id)
        except Exception as exc:
            log.warning("could not delete push subscription %s: %s", row.external_id, exc)
    with rt.db.session() as session:
        current = session.get(PushSubscription, row.id)
        if current is not None:
            session.delete(current)


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
            log.exception("could not queue the push subscriptions' upkeep")
        tasks.dispatch(now)

    return tick
