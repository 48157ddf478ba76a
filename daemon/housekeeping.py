"""Housekeeping: what keeps the daemon healthy besides syncing, run by the elected scheduler.

Each tick of `synchronizer scheduler` (`Housekeeper.tick`) queues the due syncs and, at each
job's own pace:
- settles the runs that dead workers left "running" (`daemon.runs.settle_abandoned`);
- asks for the nightly reconciliation: between 01:00 and 05:00 in the profile's CRM time
  zone, once a night, each active user's cursors are marked to list both sides afresh
  (`SideCursor.relist`). The next run that ends then compares every id both sides hold with
  the links: an item deleted or made without any delta or push saying so is found (a deleted
  one is asked for by id before anything is deleted, under the deletion guard). The mark is
  made under the user's lease, so no run in flight overwrites it with its own cursor;
- queues `refresh_tokens` on a worker (it calls the identity services): an access token
  within `REFRESH_LEAD` of its expiry is renewed, so no run starts on one about to lapse,
  and a grant that no longer works is found while nobody syncs (the user needs attention)
  instead of at the next run. Microsoft 365 users are renewed under their lease (msal's
  cache is saved whole: two renewals at once could keep the older refresh token);
  SuperOffice Online profiles' SuperID tokens are renewed per profile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msal
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from common.config import Settings
from common.connectors.base import AuthExpired, ConnectorError
from common.connectors.graph.auth import SyncUserTokens
from common.db import Database
from common.models import (
    CrmKind,
    Cursor,
    InvitationState,
    Profile,
    SyncUser,
    utcnow,
)
from daemon import tasks
from daemon.connections import Connections, ProfileIncomplete
from daemon.graph_subscriptions import wanted
from daemon.leases import held, new_owner, user_slot
from daemon.queue import huey
from daemon.reading import SideCursor
from daemon.runs import settle_abandoned

log = logging.getLogger(__name__)

NIGHT = (clock_time(1), clock_time(5))  # local time of the profile's CRM
RECONCILE_GAP = timedelta(hours=12)  # one reconciliation a night, never two
REFRESH_LEAD = timedelta(minutes=10)
TOKEN_TIMEOUT = 30.0
EVERY: Mapping[str, timedelta] = {
    "settle": timedelta(minutes=1),
    "reconcile": timedelta(minutes=10),
    "tokens": timedelta(minutes=5),
}


# --- the nightly reconciliation -------------------------------------------------------------


def _zone(profile: Profile) -> ZoneInfo:
    try:
        return ZoneInfo(str((profile.settings or {}).get("crm_time_zone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def is_night(profile: Profile, now: datetime) -> bool:
    local = now.astimezone(_zone(profile)).time()
    return NIGHT[0] <= local < NIGHT[1]


def request_reconciliations(db: Database, now: datetime | None = None) -> list[int]:
    """Mark tonight's users for a full listing of both sides; the users marked."""
    now = now or utcnow()
    with db.session() as session:
        candidates = [
            user.id
            for user in session.scalars(
                select(SyncUser)
                .join(Profile)
                .options(selectinload(SyncUser.profile))
                .where(
                    Profile.enabled.is_(True),
                    SyncUser.invitation_state == InvitationState.ACTIVE,
                    (SyncUser.reconciled_at.is_(None))
                    | (SyncUser.reconciled_at <= now - RECONCILE_GAP),
                )
            )
            if is_night(user.profile, now)
        ]
    marked: list[int] = []
    owner = new_owner()
    for user_id in candidates:
        with held(db, user_slot(user_id), owner=owner) as lease:
            if lease is None:
                continue  # syncing now: tried again at the next round, still at night
            with db.session() as session:
                for cursor in session.scalars(select(Cursor).where(Cursor.sync_user_id == user_id)):
                    saved = SideCursor.load(cursor.token)
                    saved.relist = True
                    cursor.token = saved.dump()
                user = session.get(SyncUser, user_id)
                if user is not None:
                    user.reconciled_at = now
            marked.append(user_id)
    if marked:
        log.info("nightly reconciliation asked for %d user(s)", len(marked))
    return marked


# --- tokens ---------------------------------------------------------------------------------


@dataclass
class TokenReport:
    renewed: list[str] = field(default_factory=list)  # mailboxes, and profiles as "profile N"
    refused: dict[str, str] = field(default_factory=dict)  # who needs attention now, and why
    failed: dict[str, str] = field(default_factory=dict)  # tried again at the next round


def access_token_expiry(state: Mapping[str, Any] | None) -> datetime | None:
    """When the latest access token in a user's msal cache expires (None: it holds none)."""
    if not state or not state.get("cache"):
        return None
    cache = msal.SerializableTokenCache()
    cache.deserialize(state["cache"])
    expiries = [
        int(entry["expires_on"])
        for entry in cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)
        if str(entry.get("expires_on", "")).isdigit()
    ]
    return datetime.fromtimestamp(max(expiries), UTC) if expiries else None


def refresh_due_tokens(
    db: Database, settings: Settings, now: datetime | None = None, lead: timedelta = REFRESH_LEAD
) -> TokenReport:
    now = now or utcnow()
    report = TokenReport()
    connections = Connections(settings, db)
    try:
        _superid_profiles(db, connections, now + lead, report)
        _graph_users(db, connections, now + lead, report)
    finally:
        connections.close()
    return report


def _superid_profiles(
    db: Database, connections: Connections, before: datetime, report: TokenReport
) -> None:
    with db.session() as session:
        profiles = list(
            session.scalars(
                select(Profile)
                .options(selectinload(Profile.users))
                .where(
                    Profile.enabled.is_(True),
                    Profile.crm_kind == CrmKind.SUPEROFFICE_ONLINE,
                )
            )
        )
        for profile in profiles:
            session.refresh(profile, ["crm_credentials"])
        session.expunge_all()
    for profile in profiles:
        if not any(u.invitation_state is InvitationState.ACTIVE for u in profile.users):
            continue
        expires = (profile.crm_credentials or {}).get("expires_at")
        if expires and datetime.fromisoformat(expires) > before:
            continue
        name = f"profile {profile.id}"
        try:
            connections.superid_tokens(profile).refresh(connections.http, TOKEN_TIMEOUT)
        except AuthExpired as exc:
            report.refused[name] = str(exc)
            for user in profile.users:
                if user.invitation_state is InvitationState.ACTIVE:
                    _needs_attention(db, user.id, str(exc))
        except (ConnectorError, ProfileIncomplete) as exc:
            report.failed[name] = str(exc)
        else:
            report.renewed.append(name)


def _graph_users(
    db: Database, connections: Connections, before: datetime, report: TokenReport
) -> None:
    due = []
    users = {user.id: user for user in wanted(db).values()}  # active Microsoft 365 users
    for user in users.values():
        state = SyncUserTokens(db, user.id).load()
        if not state or state.get("needs_reauthorisation"):
            continue  # never signed in, or known dead: only the user can help
        expiry = access_token_expiry(state)
        if expiry is None or expiry <= before:
            due.append(user)
    owner = new_owner()
    for user in due:
        with held(db, user_slot(user.id), owner=owner) as lease:
            if lease is None:
                continue  # its sync renews what it needs
            try:
                connections.graph_tokens(user.profile, user).access_token(force_refresh=True)
            except AuthExpired as exc:
                report.refused[user.mailbox] = str(exc)
                _needs_attention(db, user.id, str(exc))
            except (ConnectorError, ProfileIncomplete) as exc:
                report.failed[user.mailbox] = str(exc)
            else:
                report.renewed.append(user.mailbox)


def _needs_attention(db: Database, user_id: int, reason: str) -> None:
    with db.session() as session:
        user = session.get(SyncUser, user_id)
        if user is not None:
            user.needs_attention = user.last_error = reason
            user.next_sync_at = None


@huey.task(name="refresh_tokens")
def refresh_tokens() -> None:
    """Renew the tokens that expire soon (queued by the scheduler every few minutes)."""
    rt = tasks.runtime()
    if rt.settings is None:
        return  # tests without real connectors
    report = refresh_due_tokens(rt.db, rt.settings)
    if report.renewed or report.refused or report.failed:
        log.info(
            "tokens: %d renewed, %d refused (%s), %d failed (%s)",
            len(report.renewed),
            len(report.refused),
            ", ".join(report.refused),
            len(report.failed),
            ", ".join(report.failed),
        )


# --- the scheduler's tick -------------------------------------------------------------------


class Housekeeper:
    """The scheduler's tick: the due syncs, and each housekeeping job at its own pace."""

    def __init__(
        self,
        db: Database,
        *,
        every: Mapping[str, timedelta] = EVERY,
        enqueue_refresh: Callable[[], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
        extra: Mapping[str, Callable[[datetime], object]] | None = None,
    ) -> None:
        self.db = db
        self.every = every
        self.clock = clock
        self.enqueue_refresh = enqueue_refresh or refresh_tokens
        self.last: dict[str, float] = {}
        self.jobs: dict[str, Callable[[datetime], object]] = {
            "settle": lambda now: settle_abandoned(self.db, now),
            "reconcile": lambda now: request_reconciliations(self.db, now),
            "tokens": lambda now: self.enqueue_refresh(),
            **(extra or {}),  # jobs that keep their own pace (the push upkeep's ticker)
        }

    def tick(self, now: datetime) -> None:
        for name, job in self.jobs.items():
            if name not in self.every or self._due(name):
                try:
                    job(now)
                except Exception:  # one job failing leaves the others and the dispatcher be
                    log.exception("housekeeping job %s failed", name)
        tasks.dispatch(now)

    def _due(self, name: str) -> bool:
        now = self.clock()
        last = self.last.get(name)
        if last is not None and now - last < self.every[name].total_seconds():
            return False
        self.last[name] = now
        return True
