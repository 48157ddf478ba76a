"""The applier: carry out a plan through the connectors, journaled so a crash loses nothing.

For every write: the intent first (the `ItemLink` row, pending, with its correlation id, and
the change's audit entry marked unconfirmed, holding before and the intended after), then the
connector call (which stamps the correlation id into the item and uses it as the service's
idempotency key), then the link with the new versions and the audit entry confirmed with what
the service returned. A conflict's losing version is recorded with the intent, before it is
overwritten. An audit entry left unconfirmed (a crash, a timeout) is settled by looking at the
service: at the start of the next apply, and at the end of this one.

One failed item does not fail the run. A stale etag (`PreconditionFailed`) re-reads both sides
and re-plans that one item; `Throttled` waits as long as the service asked; `AuthExpired`
stops the run, since every further call would fail the same way.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic

from common.connectors.base import (
    AuthExpired,
    ConnectorError,
    ItemConnector,
    NotFound,
    Permanent,
    PreconditionFailed,
    Stored,
    T,
    Throttled,
    Transient,
)
from common.items import (
    Appointment,
    content_hash,
    from_json,
    overlaps_window,
    overlay,
    to_json,
)
from common.models import LinkState, Side, new_correlation_id
from daemon.engine import (
    Action,
    LinkSnapshot,
    Op,
    Plan,
    PlanInput,
    is_occurrence_id,
    other,
    plan_pair,
)
from daemon.store import AuditRecord, AuditState, SyncStore, undone_by


class RunAborted(Exception):
    """The run cannot go on (credentials expired); nothing after this point was attempted."""


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


@dataclass(slots=True)
class ApplyReport:
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[ItemFailure] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    waited: float = 0.0

    @property
    def retryable_failures(self) -> bool:
        return any(f.retryable for f in self.failures)


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
        max_wait: float = 300.0,
    ) -> None:
        self.connectors: Mapping[Side, ItemConnector[T]] = connectors
        self.store = store
        self.context: PlanInput[T] = context
        self.kind = context.kind
        self.sleep = sleep
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.report = ApplyReport()
        self._cid: str | None = None  # the correlation id of the action being applied
        self._unconfirmed: AuditRecord | None = None  # the audit entry of the call under way

    def apply(self, plan: Plan[T]) -> ApplyReport:
        self.settle_unconfirmed()  # what an interrupted run wrote, before anything is redone
        for action in plan.actions:
            if plan.hold is not None and action.op is Op.DELETE:
                self.report.held.append(f"delete on {action.target.value}: {action.reason}")
                continue
            self._run(action, may_replan=True)
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
        if current.version == before_version:
            return AuditState.NOT_APPLIED, None  # untouched since the intent
        intended = from_json(record.after["item"]) if record.after else None
        if (
            record.action == "update"
            and intended is not None
            and self._hash(current) == content_hash(intended, self.context.fields)
        ):
            return AuditState.APPLIED, snapshot_of(current)
        return AuditState.UNCERTAIN, None  # changed since, by us or by someone else

    # --- retries and failures ----------------------------------------------------------------

    def _run(self, action: Action[T], *, may_replan: bool) -> None:
        # A retry after a throttle must reuse the intent (and correlation id) already written.
        self._cid = action.link.correlation_id if action.link else None
        attempts = 0
        while True:
            self._unconfirmed = None
            try:
                self._dispatch(action)
                return
            except Throttled as exc:
                attempts += 1
                if attempts >= self.max_attempts:
                    self._close_refused()
                    self._fail(action, exc, retryable=True)
                    return
                wait = min(exc.retry_after, self.max_wait)
                self.report.waited += wait
                self.sleep(wait)
            except AuthExpired as exc:
                raise RunAborted(str(exc)) from exc
            except (_Replan, PreconditionFailed, NotFound) as exc:
                self._close_refused()
                if not may_replan:
                    self._fail(action, exc, retryable=True)
                    return
                self.report.counts["replanned"] += 1
                try:
                    fresh_actions = self._replan(action)
                except AuthExpired as auth:
                    raise RunAborted(str(auth)) from auth
                except ConnectorError as again:
                    self._fail(action, again, retryable=True)
                    return
                for fresh in fresh_actions:
                    self._run(fresh, may_replan=False)
                return
            except _SourceGone:
                self.report.notes.append(f"{action.op} on {action.target}: source vanished")
                return
            except Transient as exc:
                self._fail(action, exc, retryable=True)
                return
            except Permanent as exc:
                self._close_refused()
                self._undo_intent(action)
                self._fail(action, exc, retryable=False)
                return

    def _close_refused(self) -> None:
        """The service refused the call: its audit entry is closed as not applied. (After a
        `Transient` error nobody knows; `settle_unconfirmed` looks at the service later.)"""
        if self._unconfirmed is not None:
            self.store.record_audits([replace(self._unconfirmed, state=AuditState.NOT_APPLIED)])
            self._unconfirmed = None

    def _fail(self, action: Action[T], exc: Exception, *, retryable: bool) -> None:
        item = action.target_id or action.source_id or "?"
        self.report.failures.append(
            ItemFailure(f"{action.op.value}_{action.target.value}", item, repr(exc), retryable)
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
                seen[side] = None
        return plan_pair(self.context, link, seen)

    # --- the operations ----------------------------------------------------------------------

    def _dispatch(self, action: Action[T]) -> None:
        handler = {
            Op.CREATE: self._create,
            Op.UPDATE: self._update,
            Op.DELETE: self._delete,
            Op.LINK: self._link,
            Op.FORGET: self._forget,
            Op.RESUME: self._resume,
        }[action.op]
        handler(action)

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
        return content_hash(stored.item, self.context.fields)

    def _base_link(self, action: Action[T], stamped: Stored[T] | None) -> LinkSnapshot:
        """The action's link, or a new one: with the stamp both sides share when the planner
        paired them by it, else a fresh correlation id (a copied item carries a stale stamp)."""
        if action.link is not None:
            return action.link
        cid = self._cid or (stamped.correlation_id if stamped else None) or new_correlation_id()
        self._cid = cid
        return LinkSnapshot(cid, None, None, state=LinkState.PENDING)

    def _with_side(self, link: LinkSnapshot, side: Side, stored: Stored[T] | None) -> LinkSnapshot:
        item_id = stored.id if stored else None
        version = stored.version if stored else None
        if side is Side.CRM:
            return replace(link, crm_id=item_id, crm_version=version)
        return replace(link, groupware_id=item_id, groupware_version=version)

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

    def _create(self, action: Action[T]) -> None:
        source = self._source(action)
        base = self._base_link(action, None)
        replaces = None
        if action.link is not None and action.link.state is not LinkState.PENDING:
            # A re-creation (a modification beat a deletion, or a follower lost its copy) is a
            # new pair with a fresh correlation id: a user's copy of the deleted item carries
            # the old stamp. The old link goes in the same step as the new intent is written.
            replaces = action.link.correlation_id
            if self._cid == replaces:  # not yet replaced by an earlier (throttled) attempt
                self._cid = new_correlation_id()
            base = LinkSnapshot(self._cid or new_correlation_id(), None, None)
        self._create_from(action, source, base, replaces)

    def _create_from(
        self, action: Action[T], source: Stored[T], base: LinkSnapshot, replaces: str | None = None
    ) -> None:
        target = action.target
        intent = self._with_side(base, other(target), source)
        intent = replace(
            self._with_side(intent, target, None),
            state=LinkState.PENDING,
            pending_action=f"create_{target.value}",
            content_hash=action.content_hash or self._hash(source),
        )
        audits = self._conflict_audits(action, intent)
        audits.append(
            self._intent_audit(
                "create", target, intent, None, Stored("", "", source.item), action.reason
            )
        )
        intent = self.store.put_link(self.kind, intent, audits, replaces=replaces)
        created = self.connectors[target].create(source.item, intent.correlation_id)
        done = replace(
            self._with_side(intent, target, created), state=LinkState.LINKED, pending_action=None
        )
        audit = self._audit("create", target, done, None, created, action.reason)
        self.store.put_link(self.kind, done, [audit])
        self.report.counts[f"create_{target.value}"] += 1

    def _resume(self, action: Action[T]) -> None:
        link = action.link
        assert link is not None
        target = action.target
        found = self.connectors[target].find_by_correlation_id(link.correlation_id)
        try:
            source = self._source(action)
        except _SourceGone:
            tomb = replace(link, state=LinkState.TOMBSTONE, pending_action=None)
            if found is None:
                self.store.put_link(self.kind, tomb)
            else:  # the copy of an item deleted meanwhile goes too, audited like any delete
                why = "source deleted before its copy was linked"
                named = self._with_side(link, target, found)  # the audit names the copy
                audit = self._intent_audit("delete", target, named, found, None, why)
                self.store.put_link(self.kind, link, [audit])
                self.connectors[target].delete(found.id, found.version)
                audit = self._audit("delete", target, named, found, None, why)
                self.store.put_link(self.kind, tomb, [audit])
            self.report.counts["resumed"] += 1
            return
        if found is None:
            self._create_from(action, source, link)
        else:
            resumed = replace(action, op=Op.UPDATE, source=source, target_id=found.id, seen=found)
            self._update(resumed)
        self.report.counts["resumed"] += 1

    def _update(self, action: Action[T]) -> None:
        target = action.target
        source = self._source(action)
        if action.target_id is None:
            raise _Replan()
        current = action.seen or self.connectors[target].get(action.target_id)
        link = action.link
        agreed = action.content_hash or self._hash(source)
        if (
            action.seen is None
            and link is not None
            and current.version != action.target_version
            and self._hash(current) not in (link.content_hash, agreed)
        ):
            raise _Replan()  # edited since we planned: decide again with what is there now
        base = self._base_link(action, current)
        if link is None:  # paired by a shared stamp: ids known, no agreed content yet
            base = replace(self._with_ids(base, source, current, target), state=LinkState.LINKED)
        if self._hash(current) == agreed:  # nothing to write: never send a no-op update
            done = self._agreed(self._with_both(base, source, current, target), agreed)
            self.store.put_link(self.kind, done, self._conflict_audits(action, base))
            return
        # The intent keeps the old versions: if we die now, the next run still sees the change.
        intent = replace(base, pending_action=f"update_{target.value}")
        merged = overlay(current.item, source.item, self.context.fields)
        audits = self._conflict_audits(action, intent)
        audits.append(
            self._intent_audit(
                "update", target, intent, current, Stored(current.id, "", merged), action.reason
            )
        )
        intent = self.store.put_link(self.kind, intent, audits)
        updated = self.connectors[target].update(current.id, merged, current.version)
        done = self._agreed(self._with_both(intent, source, updated, target), agreed)
        audit = self._audit("update", target, done, current, updated, action.reason)
        self.store.put_link(self.kind, done, [audit])
        self.report.counts[f"update_{target.value}"] += 1

    def _with_ids(
        self, link: LinkSnapshot, source: Stored[T], target_item: Stored[T], target: Side
    ) -> LinkSnapshot:
        if target is Side.CRM:
            return replace(link, crm_id=target_item.id, groupware_id=source.id)
        return replace(link, crm_id=source.id, groupware_id=target_item.id)

    def _with_both(
        self, link: LinkSnapshot, source: Stored[T], target_item: Stored[T], target: Side
    ) -> LinkSnapshot:
        return self._with_side(self._with_side(link, other(target), source), target, target_item)

    def _agreed(self, link: LinkSnapshot, agreed: str) -> LinkSnapshot:
        return replace(link, content_hash=agreed, state=LinkState.LINKED, pending_action=None)

    def _delete(self, action: Action[T]) -> None:
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
            self._forget(action)
            return
        if self._outside_window(current):
            # Only items inside the window are ever deleted: the other side may simply list
            # no further than the window. The pair is let go; the item stays.
            self.report.notes.append(f"kept {target.value} {current.id}: outside the window")
            self._forget(action)
            return
        if (
            action.seen is None
            and link.item_id(target) is not None
            and not is_occurrence_id(link.item_id(other(target)))
            and current.version != link.version(target)
            and self._hash(current) != link.content_hash
        ):
            raise _Replan()  # edited since we planned: a modification beats the deletion
        intent = replace(link, pending_action=f"delete_{target.value}")
        audits = self._conflict_audits(action, intent)
        audits.append(self._intent_audit("delete", target, intent, current, None, action.reason))
        intent = self.store.put_link(self.kind, intent, audits)
        with contextlib.suppress(NotFound):  # already gone: the outcome we wanted
            connector.delete(current.id, current.version)
        done = replace(intent, state=LinkState.TOMBSTONE, pending_action=None)
        audit = self._audit("delete", target, done, current, None, action.reason)
        self.store.put_link(self.kind, done, [audit])
        self.report.counts[f"delete_{target.value}"] += 1

    def _outside_window(self, stored: Stored[T]) -> bool:
        item = stored.item
        if not isinstance(item, Appointment):
            return False
        start, end = self.context.policy.window.bounds(self.context.now)
        return not overlaps_window(item, start, end)

    def _link(self, action: Action[T]) -> None:
        link = action.link
        if link is None:
            stamped = action.source or action.seen
            cid = stamped.correlation_id if stamped else None
            link = LinkSnapshot(cid or new_correlation_id(), None, None)
        crm_side = action.seen if action.target is Side.CRM else action.source
        gw_side = action.source if action.target is Side.CRM else action.seen
        if crm_side is not None:
            link = self._with_side(link, Side.CRM, crm_side)
        if gw_side is not None:
            link = self._with_side(link, Side.GROUPWARE, gw_side)
        agreed = action.content_hash or link.content_hash
        self.store.put_link(
            self.kind,
            replace(link, content_hash=agreed, state=LinkState.LINKED, pending_action=None),
        )
        self.report.counts["linked"] += 1

    def _forget(self, action: Action[T]) -> None:
        if action.link is None:
            return
        tomb = replace(action.link, state=LinkState.TOMBSTONE, pending_action=None)
        self.store.put_link(self.kind, tomb)
        self.report.counts["forgotten"] += 1
