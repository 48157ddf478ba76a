"""The daemon's tasks (huey's recipe): `sync_user`, the dispatcher that queues it for every
user whose next run is due, and `enqueue_sync` for whatever asks for a sync now (push).

The database, not the queue, is the source of truth (`SyncUser`): `next_sync_at` says when a
user's next run is due, `queued_at` that a task waits for it (set when one is queued, cleared
when one starts; `queued_kind` which kind it syncs, None for every kind), so the dispatcher
never queues a user twice; a task lost with a killed worker is presumed lost once it has
waited an interval (and at least a lease's time to live) and is queued again. A task queued
at Q is covered by any run of every kind that began after Q: a second task for the same
changes finds the user synced and does nothing. A push syncs the one kind it announced; such
a run leaves the schedule (last sync, next poll) to the runs of every kind.

`sync_user` holds the user's lease while it runs (one worker per mailbox), runs the engine
for each kind the profile syncs, records the outcome on the user (the `SyncRun` is the
engine's), and decides what comes next:
- done: the next run is due an interval after this one began;
- throttled: the task is rescheduled (`RetryTask(delay=…)`) for when the service asked,
  never slept out in a worker;
- a transient error (or a defect): rescheduled with exponential backoff and jitter;
- credentials refused, or a profile that lacks what the connectors need: the user "needs
  attention" with the reason and is not retried until a person has acted; credentials the
  profile keeps for all its users (SuperOffice's) mark every active user of the profile,
  and the first run that succeeds with them again clears those marks;
- another permanent error: recorded, and tried again at the next interval.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from huey import RetryTask, signals
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, selectinload

from common.config import Settings
from common.connectors.base import AuthExpired, Throttled, Transient
from common.db import Database
from common.kinds import ItemKind, RunStatus, Side
from common.models import InvitationState, Profile, SyncUser, utcnow
from common.secrets import configure_keys
from daemon import budget
from daemon.apply import RunAborted
from daemon.approval import approved_deletions
from daemon.connections import (
    Connections,
    ConnectorFactory,
    ProfileIncomplete,
    shared_connections,
)
from daemon.leases import DEFAULT_TTL, held, user_slot
from daemon.policies import Direction, Policy
from daemon.queue import huey
from daemon.runs import REASONS, mark_reason
from daemon.store import SqlStore
from daemon.sync import SyncOutcome, sync

log = logging.getLogger(__name__)

# How a user is marked when the profile's own connection (shared by all its users) was
# refused; a run that succeeds with it again clears every such mark of the profile.
SHARED_REFUSED = "needs re-authorisation: the profile's "
DEFAULT_INTERVAL = timedelta(minutes=15)
BUSY_DELAY = 10.0  # seconds: the longest wait for another worker's lease on the user
BUSY_FIRST = 1.0  # seconds: the first wait (the run holding it is often nearly done)
BACKOFF_BASE, BACKOFF_CAP = 30.0, 3600.0  # seconds


# --- what the tasks run with (set up once per process) -------------------------------------


class ConnectionsSource(Protocol):
    """Opens the connector factory of one run (an HTTP session each), closed after it."""

    def __call__(self) -> OpenConnections: ...


class OpenConnections(ConnectorFactory, Protocol):
    def close(self) -> None: ...


@dataclass
class Runtime:
    db: Database
    connections: ConnectionsSource
    lease_ttl: timedelta = DEFAULT_TTL
    random: Callable[[], float] = random.random
    settings: Settings | None = None  # housekeeping's token refresh builds clients from them


_runtime: Runtime | None = None


def configure(settings: Settings) -> Runtime:
    """The worker's and the scheduler's set-up: the keys of the stored secrets, the database
    and the real connectors."""
    configure_keys(list(settings.encryption_keys))
    db = Database(settings.database_url)
    return use(Runtime(db, lambda: Connections(settings, db), settings=settings))


def use(runtime: Runtime) -> Runtime:
    global _runtime
    _runtime = runtime
    return runtime


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("daemon.tasks is not configured: call daemon.tasks.configure(settings)")
    return _runtime


@huey.on_startup()
def _check_configured() -> None:
    runtime()  # a worker thread without set-up fails at start, not at its first task


@huey.signal(signals.SIGNAL_INTERRUPTED)
def _hand_back(signal: str, task: Any, *args: Any, **kwargs: Any) -> None:
    """A sync cut off by a forced stop goes back to the queue (its lease expires)."""
    if getattr(task, "name", None) == "sync_user":
        huey.enqueue(task)


# --- the schedule ------------------------------------------------------------------------


def interval_of(profile: Profile) -> timedelta:
    """`settings["sync_interval_minutes"]`, default 15; a bad value is logged, not obeyed."""
    value = (profile.settings or {}).get("sync_interval_minutes")
    if value is None:
        return DEFAULT_INTERVAL
    try:
        minutes = float(value)
    except (TypeError, ValueError):
        minutes = 0.0
    if not 0 < minutes <= 24 * 60:
        log.warning(
            "profile %s: sync_interval_minutes %r is not 0-1440; 15 used", profile.id, value
        )
        return DEFAULT_INTERVAL
    return timedelta(minutes=minutes)


def lost_after(profile: Profile, lease_ttl: timedelta) -> timedelta:
    return max(interval_of(profile), lease_ttl)


def busy_delay(queued_at: datetime | None, now: datetime) -> float:
    """Seconds before a task that found the user's lease held tries again: half the time it
    has waited so far, from a second up to BUSY_DELAY. A push that arrives while the user is
    being synced (the echo of the run's own writes, a second edit) then runs a second or two
    after that run, and a task behind a long first sync asks only every BUSY_DELAY."""
    waited = (now - queued_at).total_seconds() if queued_at is not None else BUSY_DELAY * 2
    return min(max(waited / 2, BUSY_FIRST), BUSY_DELAY)


def backoff(failures: int, rnd: Callable[[], float] = random.random) -> float:
    """Seconds before retry number `failures`: doubling from 30 s up to an hour, the upper
    half drawn at random so that users failing together do not retry together."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(failures - 1, 0))
    return ceiling / 2 + rnd() * ceiling / 2


def dispatch(now: datetime | None = None) -> list[int]:
    """Queue a sync for each active user whose next run is due, unless one waits already or
    another worker is syncing them; the users queued."""
    rt = runtime()
    now = now or utcnow()
    queued: list[int] = []
    with rt.db.session() as session:
        due = session.scalars(
            select(SyncUser)
            .join(Profile)
            .options(selectinload(SyncUser.profile))
            .where(
                Profile.enabled.is_(True),
                SyncUser.invitation_state == InvitationState.ACTIVE,
                SyncUser.needs_attention.is_(None),
                or_(SyncUser.next_sync_at.is_(None), SyncUser.next_sync_at <= now),
                or_(SyncUser.lease_expires_at.is_(None), SyncUser.lease_expires_at <= now),
            )
        ).all()
        candidates = [
            (user.id, user.queued_at)
            for user in due
            if user.queued_at is None
            or user.queued_at <= now - lost_after(user.profile, rt.lease_ttl)
        ]
    for user_id, seen in candidates:
        if _claim(rt.db, user_id, seen, now):
            _enqueue(rt.db, user_id, None, now, seen)
            queued.append(user_id)
    return queued


def enqueue_sync(user_id: int, kind: ItemKind | None = None, now: datetime | None = None) -> bool:
    """A sync of the user now (a push notification, an operator): queued unless a task that
    syncs this kind waits already, which will see the change as well (ten notifications, one
    sync). A task waiting for the other kind does not cover it: this one is queued beside
    it, and the mark then stands for every kind. True if queued."""
    rt = runtime()
    now = now or utcnow()
    with rt.db.session() as session:
        user = session.get(SyncUser, user_id)
        if user is None:
            return False
        profile = session.get(Profile, user.profile_id)
        assert profile is not None
        seen, waiting_kind = user.queued_at, user.queued_kind
        waiting = seen is not None and seen > now - lost_after(profile, rt.lease_ttl)
        if waiting and (waiting_kind is None or waiting_kind is kind):
            return False
    if not _claim(rt.db, user_id, seen, now, None if waiting else kind):
        return False
    _enqueue(rt.db, user_id, kind, now, seen, waiting_kind)
    return True


def _claim(
    db: Database,
    user_id: int,
    seen: datetime | None,
    now: datetime,
    kind: ItemKind | None = None,
) -> bool:
    """Mark the user queued (for `kind`, None: every kind), if nobody changed the mark since
    it was read (two dispatchers, a dispatcher and a push: one wins)."""
    same = SyncUser.queued_at.is_(None) if seen is None else SyncUser.queued_at == seen
    with db.session() as session:
        result = session.execute(
            update(SyncUser)
            .where(SyncUser.id == user_id, same)
            .values(queued_at=now, queued_kind=kind)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _enqueue(
    db: Database,
    user_id: int,
    kind: ItemKind | None,
    now: datetime,
    seen: datetime | None,
    seen_kind: ItemKind | None = None,
) -> None:
    try:
        huey.enqueue(
            sync_user.s(user_id, kind.value if kind else None, now, id=task_id(user_id, kind, now))
        )
    except Exception:
        with db.session() as session:  # not queued after all: the next tick tries again
            session.execute(
                update(SyncUser)
                .where(SyncUser.id == user_id, SyncUser.queued_at == now)
                .values(queued_at=seen, queued_kind=seen_kind)
                .execution_options(synchronize_session=False)
            )
        raise


def task_id(user_id: int, kind: ItemKind | None, queued_at: datetime) -> str:
    """The same user, kind and queue time give the same id (revoke, logs)."""
    return f"sync-{user_id}-{kind.value if kind else 'all'}-{queued_at.timestamp():.6f}"


# --- one user's run ------------------------------------------------------------------------


@dataclass
class KindRun:
    kind: ItemKind
    run_id: int
    status: RunStatus
    counts: dict[str, int]
    error: str | None
    retry_after: float | None


@dataclass
class UserRun:
    """What `run_user` did and decided: `state` is done, throttled, retry, attention, failed,
    busy (another worker holds the lease), covered (a later run did it) or skipped."""

    user_id: int
    state: str
    runs: list[KindRun] = field(default_factory=list)
    reason: str | None = None
    retry_in: float | None = None  # seconds, when the task should run again
    lease_holder: str | None = None
    shared: bool = False  # `reason` concerns every user of the profile (its own connection)
    throttled_by: list[Side] = field(default_factory=list)  # whose services must all wait

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "state": self.state,
            "reason": self.reason,
            "retry_in": self.retry_in,
            "runs": [
                {
                    "kind": r.kind.value,
                    "run_id": r.run_id,
                    "status": r.status.value,
                    "counts": r.counts,
                    "error": r.error,
                    "retry_after": r.retry_after,
                }
                for r in self.runs
            ],
        }


def kinds_of(policy: Policy) -> list[ItemKind]:
    return [k for k in ItemKind if policy.direction(k) is not Direction.OFF]


def run_user(
    user_id: int,
    kind: ItemKind | None = None,
    *,
    queued_at: datetime | None = None,
    dry_run: bool = False,
    operator: bool = False,
) -> UserRun:
    """Sync the user (one kind, or each the profile syncs) under their lease, and record it.
    A dry run plans without applying and leaves the schedule as it was. An operator's run
    (`synchronizer sync`) also runs for a user who needs attention: it is how a person checks
    the fix, and a run that succeeds clears the mark."""
    rt = runtime()
    with held(rt.db, user_slot(user_id), rt.lease_ttl) as lease:
        if lease is None:
            return UserRun(
                user_id,
                "busy",
                retry_in=busy_delay(queued_at, utcnow()),
                lease_holder=_holder(rt.db, user_id),
            )
        started = utcnow()
        with rt.db.session() as session:
            user = session.get(SyncUser, user_id, options=[selectinload(SyncUser.profile)])
            if user is None:
                return UserRun(user_id, "skipped", reason="no such user")
            profile = user.profile
            session.refresh(profile, ["crm_credentials", "groupware_credentials"])
            colleagues = frozenset(
                session.scalars(
                    select(SyncUser.mailbox).where(
                        SyncUser.profile_id == profile.id,
                        SyncUser.invitation_state == InvitationState.ACTIVE,
                    )
                )
            )
            session.expunge_all()
        if (
            queued_at is not None
            and user.last_sync_at is not None
            and user.last_sync_at >= queued_at
        ):
            _clear_queued(rt.db, user_id, queued_at)
            return UserRun(user_id, "covered")
        why_not = _not_synced(profile, user, operator or dry_run)
        if why_not is not None:
            if not dry_run:
                _clear_queued(rt.db, user_id, started)
            return UserRun(user_id, "skipped", reason=why_not)
        if not dry_run:
            _clear_queued(rt.db, user_id, started)
        result = _service_paused(rt, profile, user_id) or _run_kinds(
            rt, profile, user, kind, colleagues, started, dry_run
        )
        if not dry_run:
            _record(rt, user_id, profile, result, started, kind, task_waits=not operator)
            if result.throttled_by and result.retry_in is not None:
                until = utcnow() + timedelta(seconds=result.retry_in)
                services = [budget.services_of(profile)[side] for side in result.throttled_by]
                budget.pause(rt.db, services, until, result.reason or "throttled")
        return result


def _service_paused(rt: Runtime, profile: Profile, user_id: int) -> UserRun | None:
    """A user of a service that asked us to wait does not start before the pause ends."""
    now = utcnow()
    paused = budget.paused(rt.db, profile, now)
    if paused is None:
        return None
    reason = (
        f"{paused.service} asked us to wait until "
        f"{paused.paused_until.isoformat(timespec='seconds')} ({paused.reason}): its users wait"
    )
    return UserRun(
        user_id, "throttled", reason=reason, retry_in=budget.wait_seconds(paused, now, rt.random)
    )


def _not_synced(profile: Profile, user: SyncUser, operator: bool) -> str | None:
    if not profile.enabled:
        return "the profile is switched off"
    if user.invitation_state is not InvitationState.ACTIVE:
        return f"the user is {user.invitation_state.value}"
    if user.needs_attention and not operator:
        return f"needs attention: {user.needs_attention}"
    return None


def _run_kinds(
    rt: Runtime,
    profile: Profile,
    user: SyncUser,
    kind: ItemKind | None,
    colleagues: frozenset[str],
    started: datetime,
    dry_run: bool,
) -> UserRun:
    policy = Policy.from_settings(profile.settings or {})
    result = UserRun(user.id, "done")
    kinds = kinds_of(policy)
    if kind is not None and kind not in kinds:
        return UserRun(user.id, "skipped", reason=f"the profile does not sync {kind.value}s")
    connections = rt.connections()
    try:
        for each in [kind] if kind is not None else kinds:
            store = SqlStore(rt.db, profile.id, user.id, each)
            try:
                connectors = connections(profile, user, each, started)
                outcome: SyncOutcome[Any] = sync(
                    each,
                    connectors,
                    store,
                    policy,
                    started,
                    dry_run=dry_run,
                    me=user.mailbox,
                    colleagues=colleagues,
                    approved_deletions=approved_deletions(rt.db, user.id, each),
                )
            except ProfileIncomplete as exc:
                result.state, result.reason = "attention", str(exc)
                return result
            except Exception as exc:  # a defect: recorded by sync(), retried with backoff
                log.exception("sync of user %s (%s) failed", user.id, each.value)
                result.state, result.reason = "retry", f"unexpected error: {exc!r}"
                mark_reason(rt.db, store.run_id, "unexpected")
                return result
            result.runs.append(
                KindRun(
                    each,
                    outcome.run_id,
                    outcome.status,
                    outcome.counts,
                    outcome.error,
                    outcome.retry_after,
                )
            )
            decided = _decide(outcome)
            if decided is not None:
                result.state, result.reason = decided, outcome.error
                mark_reason(rt.db, outcome.run_id, REASONS[decided])
                if decided == "throttled":
                    result.retry_in = _retry_after(outcome)
                    result.throttled_by = budget.throttled_sides(outcome.cause)
                shared = _shared_refusal(outcome, profile)
                if decided == "attention" and shared is not None:
                    result.reason, result.shared = shared, True
                return result
            if outcome.status is RunStatus.PARTIAL:
                mark_reason(rt.db, outcome.run_id, "item_errors")
    finally:
        connections.close()
    return result


def _decide(outcome: SyncOutcome[Any]) -> str | None:
    """What a kind's outcome means for the user: None when the run may go on."""
    if outcome.retry_after is not None or isinstance(outcome.cause, Throttled):
        return "throttled"
    if isinstance(outcome.cause, AuthExpired | RunAborted):
        return "attention"
    if isinstance(outcome.cause, Transient):
        return "retry"
    if outcome.status is RunStatus.FAILED:
        return "failed"
    return None


def _shared_refusal(outcome: SyncOutcome[Any], profile: Profile) -> str | None:
    """What to tell every user of the profile when the run ended because the service
    refused credentials the profile keeps for all of them; None for a user's own."""
    refused: BaseException | None = outcome.cause
    if isinstance(refused, RunAborted):
        refused = refused.__cause__
    if not isinstance(refused, AuthExpired) or refused.side is None:
        return None
    name = shared_connections(profile).get(refused.side)
    if name is None:
        return None
    return (
        f"{SHARED_REFUSED}{name} connection, which all its users share, was refused "
        f"({refused}): connect {name} again in the profile"
    )


def _retry_after(outcome: SyncOutcome[Any]) -> float:
    if outcome.retry_after is not None:
        return outcome.retry_after
    assert isinstance(outcome.cause, Throttled)  # a read outside the listing was throttled
    return outcome.cause.retry_after


def _record(
    rt: Runtime,
    user_id: int,
    profile: Profile,
    result: UserRun,
    started: datetime,
    kind: ItemKind | None,
    task_waits: bool,
) -> None:
    """The outcome on the user row: last sync and error, the next run, the retry (which
    waits in the queue as this task, unless the run was an operator's). A run of one kind
    (a push) that went well leaves the schedule alone: the last sync and the next poll are
    those of every kind, and a poll must not wait for the kind that was not synced."""
    now = utcnow()
    with rt.db.session() as session:
        user = session.get(SyncUser, user_id)
        if user is None or result.state == "skipped":
            return
        if result.state == "done" and kind is not None:
            user.needs_attention = None  # an operator's run of one kind checked the fix
            user.last_error = _held_note(result) or user.last_error
        elif result.state == "done":
            user.last_sync_at, user.failures, user.needs_attention = started, 0, None
            user.last_error = _held_note(result)
            user.next_sync_at = started + interval_of(profile)
            _clear_shared_refusals(session, profile.id)  # they worked for this run
        elif result.state == "attention":
            user.needs_attention = user.last_error = result.reason
            user.failures += 1
            user.next_sync_at = None
            if result.shared:
                _mark_profile(session, profile.id, user_id, result.reason)
        elif result.state == "failed":
            user.last_error, user.failures = result.reason, user.failures + 1
            if kind is None:
                user.next_sync_at = now + interval_of(profile)
        else:  # throttled or retry: the same task runs again later
            if result.state == "retry":
                user.failures += 1
                result.retry_in = backoff(user.failures, rt.random)
            assert result.retry_in is not None
            user.last_error = result.reason
            user.next_sync_at = now + timedelta(seconds=result.retry_in)
            if task_waits:
                user.queued_at, user.queued_kind = user.next_sync_at, kind


def _mark_profile(session: Session, profile_id: int, user_id: int, reason: str | None) -> None:
    """Every other active user of the profile waits for a person too (each run would meet
    the same refusal, asking the service again with dead credentials); a mark of their own
    (their mailbox's sign-in) is kept."""
    session.execute(
        update(SyncUser)
        .where(
            SyncUser.profile_id == profile_id,
            SyncUser.id != user_id,
            SyncUser.invitation_state == InvitationState.ACTIVE,
            or_(
                SyncUser.needs_attention.is_(None),
                SyncUser.needs_attention.startswith(SHARED_REFUSED, autoescape=True),
            ),
        )
        .values(needs_attention=reason, last_error=reason, next_sync_at=None)
        .execution_options(synchronize_session=False)
    )


def _clear_shared_refusals(session: Session, profile_id: int) -> None:
    """The profile's own connection worked: the users it marked sync again (due now)."""
    session.execute(
        update(SyncUser)
        .where(
            SyncUser.profile_id == profile_id,
            SyncUser.needs_attention.startswith(SHARED_REFUSED, autoescape=True),
        )
        .values(needs_attention=None, last_error=None, next_sync_at=None)
        .execution_options(synchronize_session=False)
    )


def _held_note(result: UserRun) -> str | None:
    held_runs = [r for r in result.runs if r.status is RunStatus.HELD]
    if held_runs:
        return (
            f"a plan of {held_runs[0].kind.value}s waits for approval (run {held_runs[0].run_id})"
        )
    return None


def _clear_queued(db: Database, user_id: int, until: datetime) -> None:
    """The waiting task has started: tasks queued up to `until` are this one."""
    with db.session() as session:
        session.execute(
            update(SyncUser)
            .where(SyncUser.id == user_id, SyncUser.queued_at <= until)
            .values(queued_at=None, queued_kind=None)
            .execution_options(synchronize_session=False)
        )


def _holder(db: Database, user_id: int) -> str | None:
    with db.session() as session:
        user = session.get(SyncUser, user_id)
        return user.lease_owner if user is not None else None


# --- the task ------------------------------------------------------------------------------


@huey.task()
def sync_user(user_id: int, kind: str | None = None, queued_at: datetime | None = None) -> None:
    """Sync one user now; rescheduled, never slept out, when it must wait."""
    result = run_user(user_id, ItemKind(kind) if kind else None, queued_at=queued_at)
    log.info(
        "sync of user %s: %s%s",
        user_id,
        result.state,
        f" ({result.reason})" if result.reason else "",
    )
    if result.retry_in is not None:
        raise RetryTask(delay=result.retry_in)
