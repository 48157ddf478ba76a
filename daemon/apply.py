"""The applier: carry out a plan through the connectors, journaled so a crash loses nothing.

For every write: the intent first (the `ItemLink` row, pending, with its correlation id, and
the change's audit entry marked unconfirmed, holding before and the intended after), then the
connector call (which stamps the correlation id into the item and uses it as the service's
idempotency key), then the link with the new versions and the audit entry confirmed with what
the service returned. A conflict's losing version is recorded with the intent, before it is
overwritten. An audit entry left unconfirmed (a crash, a timeout) is settled by looking at the
service: at the start of the next apply, and at the end of this one.

Every write goes through one helper, `_journaled` (intent → call → confirm). Its handlers
are generators that yield the call they need, so the same code runs one call at a time or in
batches (`apply_many`: Graph `$batch` of 20, Google batch, EWS multi-item calls): the intents
of a batch are written, one batched call is made, and each item is confirmed or handled on
its own. The journal's writes between two calls share one transaction (`SyncStore.batch`),
committed before each call that writes an item: one commit per batch, and still every
intent durable before its call. (A stamp is no such call: a stamp no link holds is stamped
afresh by the next run.)

One failed item does not fail the run. A stale etag (`PreconditionFailed`) re-reads both sides
and re-plans that one item; a short `Throttled` is waited out, a long one ends the run to be
rescheduled; `AuthExpired` stops the run, since every further call would fail the same way.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic

from common.capabilities import merge, project
from common.connectors.base import (
    AuthExpired,
    ConnectorError,
    ItemConnector,
    NotFound,
    Permanent,
    PreconditionFailed,
    Throttled,
    Transient,
    WouldMail,
    Write,
)
from common.items import Appointment, from_json, overlaps_window, to_json
from common.kinds import LinkSnapshot, LinkState, Side, Stored, T, new_correlation_id
from daemon.engine import (
    OUTSIDE_WINDOW,
    Action,
    LinkIndex,
    Op,
    Plan,
    PlanInput,
    guard,
    held_marker,
    is_occurrence_id,
    other,
    plan_pair,
)
from daemon.policies import mail_hold_reason, refusal
from daemon.spans import last_end
from daemon.store import AuditRecord, AuditState, LinkConflict, SyncStore, undone_by


class RunAborted(Exception):
    """The run cannot go on (credentials expired); nothing after this point was attempted."""


class RunThrottled(Exception):
    """The service asked for a longer pause than a worker may sleep: the run ends here as
    partial and is rescheduled after `retry_after` seconds (nothing after it was attempted)."""

    def __init__(self, retry_after: float, side: Side | None = None) -> None:
        super().__init__(f"throttled: retry after {retry_after:g} s")
        self.retry_after = retry_after
        self.side = side  # the service that asked (the daemon makes all its users wait)


class _Replan(Exception):
    """The target moved under us: re-read both sides and plan this item again."""


class _SourceGone(Exception):
    """The item to copy no longer exists; its removal will arrive with the next changes."""


@dataclass(frozen=True, slots=True)
class ItemFailure:
    action: str
    item: str
    error: str
    retryable: bool
    source_side: Side | None = None  # where to read the item again (the retry list)
    source_id: str | None = None


@dataclass(slots=True)
class ApplyReport:
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[ItemFailure] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    waited: float = 0.0


@dataclass(slots=True)
class _Job:
    """One action under way: the correlation id it writes under and its unconfirmed audit."""

    cid: str | None = None
    unconfirmed: AuditRecord | None = None


Steps = Generator[Write[Any], Any, None]
"""A handler: yields each service call it needs and receives its result."""

_BATCHABLE = frozenset({Op.CREATE, Op.UPDATE, Op.DELETE})
AT_ONCE = frozenset({Op.UPDATE, Op.LINK, Op.FORGET})  # what a page applies before the end


def snapshot_of(stored: Stored[Any]) -> dict[str, Any]:
    return {"id": stored.id, "version": stored.version, "item": to_json(stored.item)}


class Applier(Generic[T]):
    def __init__(
        self,
        connectors: Mapping[Side, ItemConnector[T]],
        store: SyncStore,
        context: PlanInput[T],
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 4,
        max_sleep: float = 5.0,
        report: ApplyReport | None = None,
    ) -> None:
        self.connectors: Mapping[Side, ItemConnector[T]] = connectors
        self.store = store
        self.context: PlanInput[T] = context
        self.kind = context.kind
        self.sleep = sleep
        self.max_attempts = max_attempts
        self.max_sleep = max_sleep  # longer pauses end the run: the daemon reschedules it
        self.report = report if report is not None else ApplyReport()
        self._job = _Job()  # the action whose steps run now
        self._write_side = Side.CRM  # where the journaled write under way goes
        self._plan: Plan[T] | None = None
        self._waited_for: Exception | None = None
        # Set for a page of a multi-page run: creates and deletions that a re-plan decides
        # are not made now but kept here, for the run's end and its guard.
        self.postpone: list[Action[T]] | None = None
        self._found_deletes: list[Action[T]] = []  # deletions re-plans decided, for the guard
        self._linked_counts: dict[Side, int] | None = None

    @property
    def _cid(self) -> str | None:
        return self._job.cid

    @_cid.setter
    def _cid(self, value: str | None) -> None:
        self._job.cid = value

    @property
    def _unconfirmed(self) -> AuditRecord | None:
        return self._job.unconfirmed

    @_unconfirmed.setter
    def _unconfirmed(self, value: AuditRecord | None) -> None:
        self._job.unconfirmed = value

    def apply(self, plan: Plan[T]) -> ApplyReport:
        # The journal's writes between two service writes share one transaction (one
        # commit per batch, not two per item); each intent is committed before its call.
        with self.store.batch():
            return self._apply(plan)

    def _durable(self) -> None:
        """Before a call that writes an item: every intent written so far is committed."""
        self.store.commit_batch()

    def _apply(self, plan: Plan[T]) -> ApplyReport:
        self._plan = plan
        self.settle_unconfirmed()  # what an interrupted run wrote, before anything is redone
        batch: list[Action[T]] = []
        for action in plan.actions:
            if plan.held(action):
                self.report.held.append(f"{action.op} on {action.target.value}: {action.reason}")
                continue
            size = self.connectors[action.target].batch_size
            if batch and (
                action.op not in _BATCHABLE
                or action.target is not batch[0].target
                or len(batch) >= size
            ):
                self._run_batch(batch)
                batch = []
            if action.op in _BATCHABLE and size > 1:
                batch.append(action)
            else:
                self._run(action, may_replan=True)
        if batch:
            self._run_batch(batch)
        self.settle_unconfirmed()  # refused or timed-out calls of this run
        return self.report

    # --- audit entries whose call was interrupted --------------------------------------------

    def settle_unconfirmed(self) -> None:
        """Settle every unconfirmed audit entry by what the service holds now."""
        for record in self.store.unconfirmed_audits(self.kind):
            assert record.id is not None
            try:
                state, after = self._outcome_of(record)
            except AuthExpired as exc:
                raise RunAborted(str(exc)) from exc
            except ConnectorError:
                continue  # cannot tell yet: the next run looks again
            self.store.settle_audit(record.id, state, after)
            self.report.counts[f"audits_{state.value}"] += 1
            undone = undone_by(record.reason)
            if state is AuditState.APPLIED and undone is not None:
                self.store.mark_undone(undone, self.context.now)

    def _outcome_of(self, record: AuditRecord) -> tuple[AuditState, dict[str, Any] | None]:
        connector = self.connectors[record.side]
        if record.action == "create":
            found = (
                connector.find_by_correlation_id(record.correlation_id)
                if record.correlation_id
                else None
            )
            if found is None:  # never made, or made and deleted since: no one can tell
                return AuditState.UNCERTAIN, None
            return AuditState.APPLIED, snapshot_of(found)
        item_id = record.item_id(record.side)
        before_version = record.before["version"] if record.before else None
        try:
            current = connector.get(item_id) if item_id else None
        except NotFound:
            current = None
        if current is None:
            return AuditState.UNCERTAIN, None  # gone: deleted by us or by someone else
        intended = from_json(record.after["item"]) if record.after else None
        before = from_json(record.before["item"]) if record.before else None
        if (
            record.action == "update"
            and intended is not None
            and self._hash(current) == self.context.agreed(intended)  # type: ignore[arg-type]
            and (before is None or self.context.agreed(before) != self._hash(current))  # type: ignore[arg-type]
        ):
            return AuditState.APPLIED, snapshot_of(current)
        # Untouched since the intent: an exact version proves it; a coarse one (a day) only
        # with the content unchanged too.
        exact = connector.exact_versions
        if current.version == before_version and (
            exact or (before is not None and self.context.agreed(before) == self._hash(current))  # type: ignore[arg-type]
        ):
            return AuditState.NOT_APPLIED, None
        return AuditState.UNCERTAIN, None  # changed since, by us or by someone else

    # --- retries and failures ----------------------------------------------------------------

    def _run(self, action: Action[T], *, may_replan: bool, job: _Job | None = None) -> None:
        # A retry after a throttle must reuse the intent (and correlation id) already written.
        self._job = job or _Job(action.link.correlation_id if action.link else None)
        attempts = 0
        while True:
            self._unconfirmed = None
            try:
                self._drive(self._steps(action))
                return
            except Exception as exc:  # noqa: BLE001 - sorted out by _handle, re-raised there
                attempts += 1
                if not self._handle(action, exc, attempts=attempts, may_replan=may_replan):
                    return

    def _drive(self, steps: Steps, first: Any = None, started: bool = False) -> None:
        """Run a handler to its end, making each call it asks for one at a time."""
        value = first
        write = steps.send(value) if started else next(steps, None)
        while write is not None:
            value = self._call(write)
            try:
                write = steps.send(value)
            except StopIteration:
                return
        return

    def _run_batch(self, actions: list[Action[T]]) -> None:
        """Several writes to one side: each handler runs up to its call (intents written),
        one batched call is made, and each item is then finished or handled on its own."""
        jobs: list[tuple[Action[T], _Job, Steps, Write[T]]] = []
        for action, job in self._stamp_sources(actions):
            self._job = job
            steps = self._steps(action)
            try:
                write = next(steps, None)
            except Exception as exc:  # noqa: BLE001 - handled per item as a single write would be
                if self._handle(action, exc, attempts=1, may_replan=True):
                    self._run(action, may_replan=True, job=job)
                continue
            if write is None:
                continue  # finished without a call (nothing to write, a link recorded)
            jobs.append((action, job, steps, write))
        if not jobs:
            return
        connector = self.connectors[actions[0].target]
        self._durable()
        try:
            results = connector.apply_many([write for _, _, _, write in jobs])
        except AuthExpired as exc:
            raise RunAborted(str(exc)) from exc
        except ConnectorError as exc:  # the batch as a whole was refused or timed out
            results = [exc] * len(jobs)
        self.report.counts["batches"] += 1
        for (action, job, steps, write), result in zip(jobs, results, strict=True):
            self._job = job
            if isinstance(result, NotFound) and write.op == "delete":
                result = None  # already gone: the outcome we wanted
            try:
                if isinstance(result, ConnectorError):
                    raise result
                self._drive(steps, result, started=True)
            except StopIteration:
                continue
            except Exception as exc:  # noqa: BLE001 - as for a single write
                if self._handle(action, exc, attempts=1, may_replan=True):
                    self._run(action, may_replan=True, job=job)

    def _stamp_sources(self, actions: list[Action[T]]) -> list[tuple[Action[T], _Job]]:
        """Each action with its job. The sources of a batch's new pairs are stamped first in
        one batched call to their side (not one request per item); a source whose stamp
        failed here is stamped by its own create, which retries or gives up as a single
        write would."""
        jobs = [(a, _Job(a.link.correlation_id if a.link else None)) for a in actions]
        stamps: list[tuple[int, Write[T]]] = []
        for n, (action, job) in enumerate(jobs):
            source = action.source
            if action.op is not Op.CREATE or action.link is not None or source is None:
                continue
            if not self.connectors[action.target.other].can_stamp:
                continue
            job.cid = action.shared_stamp or new_correlation_id()
            if source.correlation_id != job.cid:
                write: Write[T] = Write(
                    "stamp",
                    item_id=source.id,
                    item=source.item,
                    if_match=source.version,
                    correlation_id=job.cid,
                )
                stamps.append((n, write))
        connector = self.connectors[actions[0].target.other]
        size = connector.batch_size
        if len(stamps) < 2 or size < 2:
            return jobs  # nothing to save: each create stamps its own source
        for start in range(0, len(stamps), size):
            chunk = stamps[start : start + size]
            try:
                results = connector.apply_many([w for _, w in chunk])
            except AuthExpired as exc:
                raise RunAborted(str(exc)) from exc
            except ConnectorError:
                continue  # each create of the chunk stamps its own source
            self.report.counts["stamp_batches"] += 1
            for (n, _), result in zip(chunk, results, strict=True):
                if isinstance(result, Stored):
                    action, job = jobs[n]
                    jobs[n] = (replace(action, source=result), job)
        return jobs

    def _guard_admits(self, fresh: Action[T], replaced: Action[T]) -> bool:
        """A deletion a re-plan found (items deleted while the run applied its updates)
        counts against the guard together with the plan's own deletions, except `replaced`,
        the planned action the re-plan stands in for (a refused deletion planned again is
        one deletion, not two)."""
        if self._linked_counts is None:
            counts = self.context.links.linked_counts or self.store.linked_counts(self.kind)
            self._linked_counts = dict(counts)
        actions: list[Action[T]] = list(self._found_deletes)
        actions.append(fresh)
        if self._plan is not None:
            actions.extend(a for a in self._plan.actions if a is not replaced)
        counted = replace(
            self.context, links=LinkIndex([], self._linked_counts), listed_nothing=frozenset()
        )
        if guard(counted, tuple(actions)) is not None:
            return False
        self._found_deletes.append(fresh)
        return True

    def _handle(
        self, action: Action[T], exc: Exception, *, attempts: int, may_replan: bool
    ) -> bool:
        """What a failed attempt means: True to try the action again, False when it is done
        with (recorded). Raises what must stop the run."""
        if isinstance(exc, Throttled):
            if attempts >= self.max_attempts:
                self._close_refused()
                self._fail(action, exc, retryable=True)
                return False
            if exc.retry_after > self.max_sleep:
                self._close_refused()
                self._fail(action, exc, retryable=True)
                raise RunThrottled(exc.retry_after, action.target) from exc
            self._close_refused()
            if exc is not self._waited_for:  # the rest of a throttled batch shares one wait
                self._waited_for = exc
                self.report.waited += exc.retry_after
                self._durable()  # no transaction is held open while waiting
                self.sleep(exc.retry_after)
            return True
        if isinstance(exc, AuthExpired):
            raise RunAborted(str(exc)) from exc
        if isinstance(exc, _Replan | PreconditionFailed | NotFound):
            self._close_refused()
            if not may_replan:
                self._fail(action, exc, retryable=True)
                return False
            self.report.counts["replanned"] += 1
            try:
                fresh_actions = self._replan(action)
            except AuthExpired as auth:
                raise RunAborted(str(auth)) from auth
            except ConnectorError as again:
                self._fail(action, again, retryable=True)
                return False
            for fresh in fresh_actions:
                if self._plan is not None and self._plan.held(fresh):
                    self.report.held.append(f"{fresh.op} on {fresh.target.value}: {fresh.reason}")
                elif self.postpone is not None and fresh.op not in AT_ONCE:
                    self.postpone.append(fresh)  # a multi-page run's guard sees it at the end
                elif fresh.op is Op.DELETE and not self._guard_admits(fresh, action):
                    self.report.held.append(
                        f"{fresh.op} on {fresh.target.value}: {fresh.reason} (found while "
                        "applying, with the plan's deletions over the guard)"
                    )
                else:
                    self._run(fresh, may_replan=False)
            return False
        if isinstance(exc, _SourceGone):
            self.report.notes.append(f"{action.op} on {action.target}: source vanished")
            return False
        if isinstance(exc, LinkConflict):
            # Two links would claim one item (a recovery found an item another link holds):
            # recorded, and an interrupted intent let go, so the next run starts that item
            # afresh instead of meeting the same conflict forever.
            self._close_refused()
            self._undo_intent(action)
            if action.link is not None and action.link.state is LinkState.PENDING:
                let_go = replace(action.link, state=LinkState.TOMBSTONE, pending_action=None)
                self.store.put_link(self.kind, let_go)
            self._fail(action, exc, retryable=False)
            return False
        if isinstance(exc, Transient):  # the outcome is unknown: settled by looking later
            self._fail(action, exc, retryable=True)
            return False
        if isinstance(exc, WouldMail) and action.op in (Op.UPDATE, Op.DELETE):
            self._hold(action, exc)
            return False
        if isinstance(exc, Permanent):
            self._close_refused()
            self._undo_intent(action)
            self._fail(action, exc, retryable=False)
            return False
        raise exc

    def _may_mail(self, address: str) -> bool:
        """Whom a write may make the service mail: whom the profile invites."""
        return self.context.policy.invitations.invites(address, self.context.colleagues)

    def _hold(self, action: Action[T], exc: WouldMail) -> None:
        """A write that would have mailed people the profile does not let us mail (a change
        to a meeting organised on the groupware) was not made. Nothing is lost: the edit
        stays where it was made and the pair keeps what each side held, so the difference
        remains. The link remembers the held write, so later runs do not plan it again
        while the target is unchanged and the profile does not allow that mail; the hold is
        recorded with its reason, once, and not retried."""
        invitations, colleagues = self.context.policy.invitations, self.context.colleagues
        needed = invitations.needed(exc.recipients, colleagues)
        outside = [r for r in exc.recipients if not invitations.internal(r, colleagues)]
        why = mail_hold_reason(exc.op, exc.where, outside or exc.recipients, needed)
        refused = self._unconfirmed
        self._close_refused()
        # The intent as written (it names the target; for twins, both items), kept with the
        # hold in place of the write it announced.
        written = self.store.links_for(self.kind, [], [], [self._cid]) if self._cid else []
        link = next((x for x in written if x.correlation_id == self._cid), action.link)
        if link is not None:
            marker = held_marker(action.op.value, action.target, needed)
            held = replace(link, state=LinkState.LINKED, pending_action=marker)
            record = (
                replace(refused, action="held", reason=why, state=AuditState.APPLIED)
                if refused is not None
                else self._audit("held", action.target, held, action.seen, action.source, why)
            )
            self.store.put_link(self.kind, held, [record])
        item = action.target_id or action.source_id or "?"
        failure = f"{action.op.value}_{action.target.value}"
        source = link.item_id(other(action.target)) if link is not None else action.source_id
        # Read again next run (the planner then holds it without a write while nothing changed).
        self.report.failures.append(
            ItemFailure(failure, item, why, False, other(action.target), source)
        )
        self.report.counts["held"] += 1

    def _close_refused(self) -> None:
        """The service refused the call: its audit entry is closed as not applied. (After a
        `Transient` error nobody knows; `settle_unconfirmed` looks at the service later.)"""
        if self._unconfirmed is not None:
            self.store.record_audits([replace(self._unconfirmed, state=AuditState.NOT_APPLIED)])
            self._unconfirmed = None

    def _fail(self, action: Action[T], exc: Exception, *, retryable: bool) -> None:
        item = action.target_id or action.source_id or "?"
        self.report.failures.append(
            ItemFailure(
                f"{action.op.value}_{action.target.value}",
                item,
                repr(exc),
                retryable,
                other(action.target),
                action.source_id,
            )
        )

    def _undo_intent(self, action: Action[T]) -> None:
        # A definite refusal: nothing was written, so the intent must not linger.
        if self._cid is not None and (
            action.link is None or self._cid != action.link.correlation_id
        ):
            self.store.drop_link(self.kind, self._cid)  # a new pair's intent
        if action.link is not None:
            self.store.put_link(self.kind, action.link)

    def _replan(self, action: Action[T]) -> list[Action[T]]:
        link = action.link
        if link is None and self._cid is not None:  # a new pair whose intent was written
            written = self.store.links_for(self.kind, [], [], [self._cid])
            link = next((x for x in written if x.correlation_id == self._cid), None)
        seen: dict[Side, Stored[T] | None] = {}
        for side in (Side.CRM, Side.GROUPWARE):
            item_id = action.target_id if side is action.target else action.source_id
            if item_id is None and link is not None:
                item_id = link.item_id(side)
            if item_id is None:
                continue
            try:
                seen[side] = self.connectors[side].get(item_id)
            except NotFound:
                # Not there under its id: moved (found by its stamp), or gone.
                found = None
                if link is not None and link.state is not LinkState.TOMBSTONE:
                    cid = link.correlation_id
                    found = self.connectors[side].find_by_correlation_id(cid)
                    found = replace(found, correlation_id=cid) if found is not None else None
                seen[side] = found
        return plan_pair(self.context, link, seen)

    # --- the journaled write ------------------------------------------------------------------

    def _call(self, write: Write[T]) -> Stored[T] | None:
        """One write, made singly: a batch of one through the connector's own `apply_many`."""
        self._durable()
        (result,) = self.connectors[self._write_side].apply_many([write])
        if isinstance(result, NotFound) and write.op == "delete":
            return None  # already gone: the outcome we wanted
        if isinstance(result, ConnectorError):
            raise result
        return result

    def _journaled(
        self,
        op: str,
        target: Side,
        intent: LinkSnapshot,
        before: Stored[T] | None,
        intended: Stored[T] | None,
        write: Write[T],
        confirm: Callable[[LinkSnapshot, Stored[T] | None], LinkSnapshot],
        action: Action[T],
        replaces: str | None = None,
    ) -> Generator[Write[T], Any, tuple[LinkSnapshot, Stored[T] | None]]:
        """Every write's journal: the intent (link and unconfirmed audit, with a conflict's
        losing version) in one step; the call; then the link `confirm` makes from the result
        with the confirmed audit in one step."""
        audits = self._conflict_audits(action, intent)
        audits.append(self._intent_audit(op, target, intent, before, intended, action.reason))
        intent = self.store.put_link(self.kind, intent, audits, replaces=replaces)
        self._write_side = target
        result = yield write
        done = confirm(intent, result)
        audit = self._audit(op, target, done, before, result, action.reason)
        done = self.store.put_link(self.kind, done, [audit])
        self.report.counts[f"{op}_{target.value}"] += 1
        return done, result

    # --- the operations ----------------------------------------------------------------------

    def _steps(self, action: Action[T]) -> Steps:
        handler = {
            Op.CREATE: self._create,
            Op.UPDATE: self._update,
            Op.DELETE: self._delete,
            Op.LINK: self._link,
            Op.FORGET: self._forget,
            Op.RESUME: self._resume,
        }[action.op]
        return handler(action)

    def _source(self, action: Action[T]) -> Stored[T]:
        if action.source is not None:
            return action.source
        if action.source_id is None:
            raise _SourceGone()
        try:
            return self.connectors[other(action.target)].get(action.source_id)
        except NotFound as exc:
            raise _SourceGone() from exc

    def _hash(self, stored: Stored[T]) -> str:
        return self.context.agreed(stored.item)

    def _side(self, link: LinkSnapshot, side: Side, stored: Stored[T] | None) -> LinkSnapshot:
        """`link` with what `side` now holds: id, version and content hash."""
        if stored is None:
            return link.with_side(side, None, None, None)
        link = link.with_side(side, stored.id, stored.version, self._hash(stored))
        if isinstance(stored.item, Appointment):
            link = replace(link, span_end=last_end(stored.item))
        return link

    def _stamp(self, side: Side, stored: Stored[T], cid: str, strict: bool = False) -> Stored[T]:
        """Put our stamp on `stored` (the source of a pair) where its side can hold one, so
        the pair is found again after a re-link or a lost link table. A stamp that cannot be
        written now (the item changed meanwhile) is left for the next pairing."""
        connector = self.connectors[side]
        if not connector.can_stamp or stored.correlation_id == cid:
            return stored
        try:
            try:
                return connector.stamp(stored.id, cid, stored.version)
            except PreconditionFailed:  # edited meanwhile: stamp what is there now
                fresh = connector.get(stored.id)
                stamped = connector.stamp(stored.id, cid, fresh.version)
                # What the side holds now (the edit included): the edit itself is carried
                # by the next run, which sees this version as unknown content.
                return stored if self._hash(stamped) != self._hash(stored) else stamped
        except AuthExpired:
            raise
        except (Throttled, Transient):
            if strict:  # before a copy exists: the whole action is tried again (or later)
                raise
            self.report.notes.append(f"{side.value} {stored.id}: not stamped now")
            return stored
        except ConnectorError as exc:
            # Never retried as part of the write before it (a create that is not idempotent
            # would be made twice): the pair is linked; only re-finding it by stamp is lost.
            self.report.notes.append(f"{side.value} {stored.id}: not stamped ({exc!r})")
            return stored

    def _new_link(self, action: Action[T]) -> LinkSnapshot:
        """A new pair's link: the correlation id of an earlier (throttled) attempt of this
        action, the stamp both twins already share, or a fresh one. Never a stamp only one
        item carries: a user's copy, or another user's meeting, carries somebody else's."""
        cid = self._cid or action.shared_stamp or new_correlation_id()
        self._cid = cid
        return LinkSnapshot(cid, None, None, state=LinkState.PENDING)

    def _audit(
        self,
        action: str,
        side: Side,
        link: LinkSnapshot,
        before: Stored[T] | None,
        after: Stored[T] | None,
        reason: str,
        state: AuditState = AuditState.APPLIED,
    ) -> AuditRecord:
        if state is AuditState.APPLIED and action != "conflict":
            self._unconfirmed = None  # this record confirms the call's entry
        return AuditRecord(
            kind=self.kind,
            side=side,
            action=action,
            correlation_id=link.correlation_id,
            crm_id=link.crm_id,
            groupware_id=link.groupware_id,
            before=snapshot_of(before) if before else None,
            after=snapshot_of(after) if after else None,
            reason=reason,
            state=state,
        )

    def _intent_audit(
        self,
        action: str,
        side: Side,
        link: LinkSnapshot,
        before: Stored[T] | None,
        intended: Stored[T] | None,
        reason: str,
    ) -> AuditRecord:
        """The audit entry written with an intent: confirmed once the call returned."""
        record = self._audit(action, side, link, before, intended, reason, AuditState.PENDING)
        self._unconfirmed = record
        return record

    def _conflict_audits(self, action: Action[T], link: LinkSnapshot) -> list[AuditRecord]:
        if action.conflict is None:
            return []
        loser = action.conflict.loser
        winner = action.source
        return [
            self._audit(
                "conflict",
                other(action.conflict.winner),
                link,
                loser,
                winner,
                action.conflict.reason,
            )
        ]

    def _create(self, action: Action[T]) -> Steps:
        source = self._source(action)
        base = self._new_link(action) if action.link is None else action.link
        replaces = None
        if action.link is not None and action.link.state is not LinkState.PENDING:
            # A re-creation (a modification beat a deletion, or a follower lost its copy) is a
            # new pair with a fresh correlation id: a user's copy of the deleted item carries
            # the old stamp. The old link goes in the same step as the new intent is written.
            replaces = action.link.correlation_id
            if self._cid in (None, replaces):  # not yet replaced by an earlier attempt
                self._cid = new_correlation_id()
            assert self._cid is not None
            base = LinkSnapshot(self._cid, None, None)
        yield from self._create_from(action, source, base, replaces)

    def _create_from(
        self, action: Action[T], source: Stored[T], base: LinkSnapshot, replaces: str | None = None
    ) -> Steps:
        target = action.target
        # The source is stamped first, before the intent and before its copy exists, so no
        # crash can leave a copy whose source a re-link could not recognise. (A crash right
        # after the stamp leaves a stamp no link holds: the next run stamps it afresh.)
        source = self._stamp(other(target), source, base.correlation_id, strict=True)
        intended = self._hash(source)
        # The intent names the source and the content the copy will agree on, so a copy
        # found later by its stamp (after a crash) is recognised as this very create.
        intent = self._side(base, other(target), source).with_side(target, None, None, intended)
        intent = replace(intent, state=LinkState.PENDING, pending_action=f"create_{target.value}")
        # As the target can hold it (its own capabilities, not the profile's narrowing).
        item = project(source.item, self.connectors[target].capabilities)
        item = self._for_target(item, target, None)
        write: Write[T] = Write(
            "create", item=item, correlation_id=intent.correlation_id, may_mail=self._may_mail
        )

        def confirm(intent: LinkSnapshot, created: Stored[T] | None) -> LinkSnapshot:
            return self._linked(self._side(intent, target, created))

        yield from self._journaled(
            "create", target, intent, None, Stored("", "", item), write, confirm, action, replaces
        )

    def _delete_found(
        self, action: Action[T], link: LinkSnapshot, found: Stored[T], why: str
    ) -> Steps:
        """Delete a copy a resumed create found, audited like any delete; the link ends."""
        target = action.target
        named = self._side(link, target, found)  # the audit names the copy
        write: Write[T] = Write(
            "delete", item_id=found.id, if_match=found.version, may_mail=self._may_mail
        )

        def confirm(intent: LinkSnapshot, _: Stored[T] | None) -> LinkSnapshot:
            return replace(intent, state=LinkState.TOMBSTONE, pending_action=None)

        yield from self._journaled(
            "delete", target, named, found, None, write, confirm, replace(action, reason=why)
        )

    def _resume(self, action: Action[T]) -> Steps:
        link = action.link
        assert link is not None
        target = action.target
        found = self.connectors[target].find_by_correlation_id(link.correlation_id)
        try:
            source = self._source(action)
        except _SourceGone:
            if found is None:
                self.store.put_link(self.kind, self._ended(link))
            else:  # the copy of an item deleted meanwhile goes too
                yield from self._delete_found(
                    action, link, found, "source deleted before its copy was linked"
                )
            self.report.counts["resumed"] += 1
            return
        why = refusal(
            source.item,
            other(target),
            self.context.policy,
            self.context.now,
            self.context.caps[other(target)],
        )
        if why is not None and (found is None or why != OUTSIDE_WINDOW):
            # The source no longer passes the filters (made private, out of the window, out
            # of the selection) since the intent was written: no copy is made; one already
            # made goes, unless it merely left the window (copies outside it stay).
            if found is not None:
                yield from self._delete_found(action, link, found, why)
            self.store.put_link(self.kind, self._ended(link))
            self.report.notes.append(f"interrupted create not finished: {why}")
            self.report.counts["resumed"] += 1
            return
        self.report.counts["resumed"] += 1
        if found is None:
            yield from self._create_from(action, source, link)
        else:
            resumed = replace(action, op=Op.UPDATE, source=source, target_id=found.id, seen=found)
            yield from self._update(resumed)

    def _ended(self, link: LinkSnapshot) -> LinkSnapshot:
        return replace(link, state=LinkState.TOMBSTONE, pending_action=None)

    def _update(self, action: Action[T]) -> Steps:
        target = action.target
        source = self._source(action)
        if action.target_id is None:
            raise _Replan()
        connector = self.connectors[target]
        current = action.seen or connector.get(action.target_id)
        if action.seen is not None and not connector.exact_versions:
            # A coarse version (a day) cannot refuse a stale write: read again just before
            # writing, and plan again if the content moved since the listing.
            fresh = connector.get(action.target_id)
            if self._hash(fresh) != self._hash(current):
                raise _Replan()
            current = fresh
        link = action.link
        agreed = self._hash(source)
        moved = current.version != action.target_version or not connector.exact_versions
        if (
            action.seen is None
            and link is not None
            and moved
            and self._hash(current) not in (link.hash(target), agreed)
        ):
            raise _Replan()  # edited since we planned: decide again with what is there now
        base = self._new_link(action) if link is None else link
        if self._hash(current) == agreed:  # nothing to write: never send a no-op update
            done = self._side(self._side(base, other(target), source), target, current)
            done = self._linked(done)
            self.store.put_link(self.kind, done, self._conflict_audits(action, done))
            if link is None:
                self._stamp_twins(done, source, current, target)
            return
        # The intent keeps the old versions: if we die now, the next run still sees the change.
        if link is None:
            # Twins that differ: both are named from the intent on; the source's side is
            # left unknown, so if we die now the next run still carries it across.
            base = self._side(base, target, current)
            base = base.with_side(other(target), source.id, None, None)
            base = replace(base, state=LinkState.LINKED)
        if link is not None and base.item_id(other(target)) is None:
            # A pending pair whose source side was not named yet: named now, its content
            # left unknown so an interruption still carries it.
            base = base.with_side(other(target), source.id, None, None)
        if link is not None and base.item_id(target) != current.id:
            # A copy found by its stamp (a create resumed, an item moved): the link names it
            # from the intent on, so a refused update cannot leave a link without its item.
            known = base.version(target) if base.item_id(target) is None else None
            base = base.with_side(target, current.id, known, base.hash(target))
            base = replace(base, state=LinkState.LINKED)
        intent = replace(base, pending_action=f"update_{target.value}")
        caps = self.context.caps
        merged = self._for_target(
            merge(current.item, source.item, caps[other(target)], caps[target]),
            target,
            current.item,
        )
        write: Write[T] = Write(
            "update",
            item_id=current.id,
            item=merged,
            if_match=current.version,
            may_mail=self._may_mail,
        )

        def confirm(intent: LinkSnapshot, updated: Stored[T] | None) -> LinkSnapshot:
            return self._linked(
                self._side(self._side(intent, other(target), source), target, updated)
            )

        done, updated = yield from self._journaled(
            "update",
            target,
            intent,
            current,
            Stored(current.id, "", merged),
            write,
            confirm,
            action,
        )
        if link is None and updated is not None:
            self._stamp_twins(done, source, updated, target)

    def _for_target(self, item: T, target: Side, current: T | None) -> T:
        """What is written to `target`: the item as the profile lets it be sent there.

        A meeting written to the groupware invites only whom the profile allows (by default
        nobody; colleagues, or everyone, only when it says so), and never loses an attendee
        the groupware meeting already has (removing one would send a cancellation). The
        participants not invited go along as `participants`, which the connector shows its
        user without mailing anyone (Graph: a note in the body)."""
        if target is not Side.GROUPWARE or not isinstance(item, Appointment):
            return item
        invitations = self.context.policy.invitations
        me = self.context.me
        others = tuple(a for a in item.attendees if a.email.lower() != me)
        allowed = tuple(a for a in others if invitations.invites(a.email, self.context.colleagues))
        kept = current.attendees if isinstance(current, Appointment) else ()
        known = {a.email.lower() for a in kept}
        attendees = kept + tuple(a for a in allowed if a.email.lower() not in known)
        invited = {a.email.lower() for a in attendees}
        listed = tuple(a for a in others if a.email.lower() not in invited)
        return replace(item, attendees=attendees, participants=listed)

    def _stamp_twins(
        self, link: LinkSnapshot, source: Stored[T], target_item: Stored[T], target: Side
    ) -> None:
        """Both items of a pair found without a link carry its stamp from now on."""
        after = link
        for side, stored in ((other(target), source), (target, target_item)):
            stamped = self._stamp(side, stored, link.correlation_id)
            if stamped is not stored:
                after = self._side(after, side, stamped)
        if after is not link:
            self.store.put_link(self.kind, after)

    def _linked(self, link: LinkSnapshot) -> LinkSnapshot:
        return replace(link, state=LinkState.LINKED, pending_action=None)

    def _delete(self, action: Action[T]) -> Steps:
        target = action.target
        link = action.link
        assert link is not None
        connector = self.connectors[target]
        try:
            if action.target_id is None:
                current = connector.find_by_correlation_id(link.correlation_id)
            else:
                current = action.seen or connector.get(action.target_id)
        except NotFound:
            current = None
        if current is None:
            yield from self._forget(action)
            return
        if self._outside_window(current):
            # Only items inside the window are ever deleted: the other side may simply list
            # no further than the window. The pair is let go; the item stays.
            self.report.notes.append(f"kept {target.value} {current.id}: outside the window")
            yield from self._forget(action)
            return
        if (
            action.seen is None
            and link.item_id(target) is not None
            and not is_occurrence_id(link.item_id(other(target)))
            and (current.version != link.version(target) or not connector.exact_versions)
            and self._hash(current) != link.hash(target)
        ):
            raise _Replan()  # edited since we planned: a modification beats the deletion
        intent = replace(link, pending_action=f"delete_{target.value}")
        write: Write[T] = Write(
            "delete", item_id=current.id, if_match=current.version, may_mail=self._may_mail
        )
        yield from self._journaled(
            "delete", target, intent, current, None, write, lambda i, _: self._ended(i), action
        )

    def _outside_window(self, stored: Stored[T]) -> bool:
        item = stored.item
        if not isinstance(item, Appointment):
            return False
        start, end = self.context.policy.window.bounds(self.context.now)
        return not overlaps_window(item, start, end)

    def _link(self, action: Action[T]) -> Steps:
        """Record both sides as seen (a move, a version-only change, twins found); twins
        found without a link are stamped on both sides before the link is written, so a
        crash in between leaves two items with one stamp, which pair again next time."""
        link = action.link
        crm = action.seen if action.target is Side.CRM else action.source
        gw = action.source if action.target is Side.CRM else action.seen
        if link is None:
            link = self._new_link(action)
            if crm is not None:
                crm = self._stamp(Side.CRM, crm, link.correlation_id)
            if gw is not None:
                gw = self._stamp(Side.GROUPWARE, gw, link.correlation_id)
        for side, stored in ((Side.CRM, crm), (Side.GROUPWARE, gw)):
            if stored is not None:
                link = self._side(link, side, stored)
        self.store.put_link(self.kind, self._linked(link))
        self.report.counts["linked"] += 1
        yield from ()

    def _forget(self, action: Action[T]) -> Steps:
        if action.link is not None:
            self.store.put_link(self.kind, self._ended(action.link))
            self.report.counts["forgotten"] += 1
        yield from ()
