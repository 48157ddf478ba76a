"""The Graph side of the push upkeep: one subscription per synced Microsoft 365 user and kind.

Made when missing, removed by Graph or failed before (events: the user's calendar; contacts:
our own contact folder), renewed a day before it expires (it lives three days; Outlook
allows under seven) or when Graph asked for reauthorization, deleted when its user or kind
is no longer synced. A user whose credentials were refused (needs attention) keeps none:
Graph would refuse them too; they are made again once a person has fixed it. Each
subscription gets a fresh random clientState, of which only the SHA-256 is kept. A
subscription that cannot be made or renewed is recorded as failed with the reason and tried
again at the next upkeep; the others go on.

The caller (`daemon.push.upkeep`) runs one upkeep at a time, so two never make a
subscription for the same user and kind. A crash between Graph's answer and our row leaves a
subscription nobody knows: its notifications are acknowledged and dropped, and it expires.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from common.connectors.base import NotFound
from common.connectors.graph import subscriptions
from common.connectors.graph.client import GraphClient
from common.connectors.graph.contacts import GraphContacts
from common.db import Database
from common.kinds import ItemKind
from common.models import (
    GroupwareKind,
    InvitationState,
    Profile,
    PushState,
    PushSubscription,
    SyncUser,
)
from common.push import hash_state
from daemon.connections import Connections
from daemon.policies import Policy
from daemon.tasks import kinds_of

log = logging.getLogger(__name__)

SERVICE = "graph"
NOTIFICATIONS_PATH = "/hooks/microsoft"  # the web app's receivers (checksite/graph_hooks.py)
LIFECYCLE_PATH = "/hooks/microsoft/lifecycle"
LIFETIME = timedelta(days=3)
RENEW_BEFORE = timedelta(days=1)
_REMAKE = (PushState.REMOVED, PushState.FAILED)

Key = tuple[int, ItemKind]


@dataclass(frozen=True)
class Timing:
    lifetime: timedelta = LIFETIME
    renew_before: timedelta = RENEW_BEFORE

    def expiry(self, now: datetime) -> datetime:
        return now + min(self.lifetime, subscriptions.MAX_LIFETIME - timedelta(minutes=5))

    def due(self, row: PushSubscription, now: datetime) -> bool:
        return row.expires_at is None or row.expires_at - now <= self.renew_before


@dataclass
class GraphReport:
    made: list[Key] = field(default_factory=list)
    renewed: list[Key] = field(default_factory=list)
    deleted: list[Key] = field(default_factory=list)
    failed: list[tuple[int, ItemKind, str]] = field(default_factory=list)


def wanted(db: Database) -> dict[Key, SyncUser]:
    """The Microsoft 365 users and kinds that should have a subscription (each user with
    their profile loaded)."""
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
        for kind in kinds_of(Policy.from_settings(user.profile.settings or {}))
    }


def upkeep_graph(
    db: Database,
    connections: Connections,
    public_url: str,
    now: datetime,
    timing: Timing = Timing(),
) -> GraphReport:
    report = GraphReport()
    with db.session() as session:
        rows = {
            (row.sync_user_id, row.kind): row
            for row in session.scalars(
                select(PushSubscription).where(PushSubscription.service == SERVICE)
            )
        }
        session.expunge_all()
    keeper = _Keeper(db, connections, public_url.rstrip("/"), timing)
    want = wanted(db)
    for key, user in want.items():
        row = rows.get(key)
        try:
            if row is None or row.external_id is None or row.state in _REMAKE:
                keeper.make(user, key[1], row, now)
                report.made.append(key)
            elif row.state is PushState.REAUTHORIZE or timing.due(row, now):
                if keeper.renew(user, row, now):
                    report.renewed.append(key)
                else:  # Graph no longer has it
                    keeper.make(user, key[1], row, now)
                    report.made.append(key)
        except Exception as exc:  # this user's subscription only; the others go on
            log.warning("push subscription of user %s (%s): %s", key[0], key[1].value, exc)
            _failed(db, key, row, str(exc))
            report.failed.append((*key, str(exc)))
    for key, row in rows.items():
        if key not in want:
            keeper.end(row)
            report.deleted.append(key)
    return report


class _Keeper:
    def __init__(
        self, db: Database, connections: Connections, public_url: str, timing: Timing
    ) -> None:
        self.db, self.connections, self.public_url, self.timing = (
            db,
            connections,
            public_url,
            timing,
        )
        self.clients: dict[int, GraphClient] = {}

    def client(self, user: SyncUser) -> GraphClient:
        if user.id not in self.clients:
            self.clients[user.id] = self.connections.graph_client(user.profile, user)
        return self.clients[user.id]

    def make(
        self, user: SyncUser, kind: ItemKind, row: PushSubscription | None, now: datetime
    ) -> None:
        client = self.client(user)
        state = secrets.token_urlsafe(32)
        resource = (
            subscriptions.contacts_resource(GraphContacts(client).folder_id)
            if kind is ItemKind.CONTACT
            else subscriptions.events_resource()
        )
        made = subscriptions.create(
            client,
            resource,
            notification_url=self.public_url + NOTIFICATIONS_PATH,
            lifecycle_url=self.public_url + LIFECYCLE_PATH,
            client_state=state,
            expires_at=self.timing.expiry(now),
        )
        if row is not None and row.external_id and row.state is not PushState.REMOVED:
            try:  # an old one Graph may still hold: never two for one user and kind
                subscriptions.delete(client, row.external_id)
            except Exception as exc:
                log.warning("could not delete push subscription %s: %s", row.external_id, exc)
        with self.db.session() as session:
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

    def renew(self, user: SyncUser, row: PushSubscription, now: datetime) -> bool:
        """Renew (and so reauthorize) it; False when Graph no longer has it."""
        assert row.external_id is not None
        try:
            expires = subscriptions.renew(
                self.client(user), row.external_id, self.timing.expiry(now)
            )
        except NotFound:
            return False
        with self.db.session() as session:
            current = session.get(PushSubscription, row.id)
            if current is not None and current.external_id == row.external_id:
                current.expires_at, current.state = expires, PushState.ACTIVE
                current.last_error = None
        return True

    def end(self, row: PushSubscription) -> None:
        """Delete a subscription nobody needs any more (best effort: it expires anyway)."""
        if row.external_id and row.state is not PushState.REMOVED:
            with self.db.session() as session:
                user = session.get(
                    SyncUser, row.sync_user_id, options=[selectinload(SyncUser.profile)]
                )
                session.expunge_all()
            try:
                if user is not None:
                    subscriptions.delete(self.client(user), row.external_id)
            except Exception as exc:
                log.warning("could not delete push subscription %s: %s", row.external_id, exc)
        with self.db.session() as session:
            current = session.get(PushSubscription, row.id)
            if current is not None:
                session.delete(current)


def _failed(db: Database, key: Key, row: PushSubscription | None, error: str) -> None:
    with db.session() as session:
        current = session.get(PushSubscription, row.id) if row is not None else None
        if current is None:
            current = PushSubscription(sync_user_id=key[0], kind=key[1], service=SERVICE)
            session.add(current)
        current.state, current.last_error = PushState.FAILED, error[:2000]
