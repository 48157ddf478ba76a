"""One sync run for one user and one kind: read (in pages), resolve, plan, apply, record.

The database, not the queue, is the source of truth: cursors advance only when what was read
was applied, so anything interrupted is read again next time and re-planned against the
links the interrupted run left behind. An item that fails does not pin the cursor: it goes
on the retry list kept with the cursor, and is read again on the next run.

A run that ends, however it ends (an unexpected error included), finishes its `SyncRun`
record; only a process that dies leaves it running, for the daemon's housekeeping.

The stored cursor of a side wraps the connector's own token with the window it was made for
and the retry list (`SideCursor`). When the window has moved (a new day), the side is listed
afresh inside the new window, so items that entered it are synced; items that left it keep
their copies (`daemon.resolve`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Generic

from common.connectors.base import (
    AuthExpired,
    ChangeSet,
    ConnectorError,
    ItemConnector,
    T,
)
from common.kinds import (
    ItemKind,
    LinkSnapshot,
    LinkState,
    Removal,
    RunStatus,
    Side,
    Stored,
)
from daemon.apply import AT_ONCE, Applier, ApplyReport, ItemFailure, RunAborted, RunThrottled
from daemon.dryrun import render_plan
from daemon.engine import (
    OUTSIDE_WINDOW,
    Action,
    LinkIndex,
    Op,
    Plan,
    PlanInput,
    as_linked,
    guard,
    is_occurrence_id,
    plan,
)
from daemon.expansion import expand_series
from daemon.policies import InviteMode, Policy, refusal
from daemon.reading import (
    SideCursor,
    read_changes,
    screen,
    window_key,
    window_of,
)
from daemon.resolve import Resolution, missing_from_listing, moved_elsewhere, resolve
from daemon.store import LinkConflict, RunOutcome, SyncStore

SIDES = (Side.CRM, Side.GROUPWARE)


@dataclass(slots=True)
class SyncOutcome(Generic[T]):
    run_id: int
    status: RunStatus
    plan: Plan[T] | None = None  # the last page's plan (one page: the whole plan)
    report: ApplyReport | None = None
    dry_run_lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. series expanded for a side
    error: str | None = None
    retry_after: float | None = None  # when the run ended because the service asked to wait
    cause: Exception | None = None  # what ended the run early (the daemon retries or asks a person)
    plans: list[Plan[T]] = field(default_factory=list)  # one per page, and the paired rest

    @property
    def counts(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for each in self.plans:
            for key, value in each.counts().items():
                total[key] = total.get(key, 0) + value
        return total

    def writes(self) -> int:
        return sum(len(p.writes()) for p in self.plans)


class _Run(Generic[T]):
    """The state of one run across its pages."""

    def __init__(
        self,
        kind: ItemKind,
        connectors: Mapping[Side, ItemConnector[T]],
        store: SyncStore,
        policy: Policy,
        now: datetime,
        dry_run: bool,
        approve_deletions: bool,
        sleep: Callable[[float], None],
        approved_deletions: Mapping[Side, int] | None = None,
    ) -> None:
        self.kind = kind
        self.connectors: Mapping[Side, ItemConnector[T]] = connectors
        self.store = store
        self.policy = policy
        self.now = now
        self.dry_run = dry_run
        self.approve_deletions = approve_deletions
        self.approved_deletions = approved_deletions
        self.sleep = sleep
        self.window = window_of(kind, policy, now)
        self.caps = {side: connectors[side].capabilities for side in SIDES}
        if policy.invitations.mode is not InviteMode.ALL:
            # Attendees written to the groupware are only those the profile invites: there
            # they are not the CRM's participants, and are neither compared nor carried back.
            gw = self.caps[Side.GROUPWARE]
            self.caps[Side.GROUPWARE] = replace(gw, fields=gw.fields - {"attendees"})
        self.me = ""
        self.colleagues: frozenset[str] = frozenset()
        self.exact = {side: connectors[side].exact_versions for side in SIDES}
        self.fields = self.caps[Side.CRM].fields & self.caps[Side.GROUPWARE].fields
        self.found = {side: store.load_cursor(kind, side) for side in SIDES}  # as stored
        self.saved = {side: SideCursor.load(self.found[side]) for side in SIDES}
        for record in store.unconfirmed_audits(kind):
            # What an interrupted write named is read again with the first page: the listing
            # shows it again only if it changed under that id, not when the write went to
            # an item found by its stamp (moved where the listing does not look).
            for side in SIDES:
                item_id = record.item_id(side)
                if item_id and not is_occurrence_id(item_id):
                    self.saved[side].retry.append(item_id)
        self.cursor: dict[Side, str | None] = {}
        for side in SIDES:  # a window that moved: list the side afresh inside the new one
            fresh = self.saved[side].window != window_key(self.window) or self.saved[side].relist
            self.cursor[side] = None if fresh else self.saved[side].token
        self.full = {side: self.cursor[side] is None for side in SIDES}
        # A side's full listing is compared with the links once, on the page that ends it.
        self.accounted = {side: False for side in SIDES}
        self.emptied = {side for side in SIDES if self.cursor[side] and self.saved[side].emptied}
        # A run resumed from a checkpoint reads on after the stopped listing ends, so that
        # like any run it sees every change made before it began.
        self.catch_up = {
            side: bool(self.cursor[side] and self.saved[side].partial) for side in SIDES
        }
        self.finishes_listing = {
            side: bool(self.cursor[side] and self.saved[side].listing) for side in SIDES
        }
        self.seen: dict[Side, set[str]] = {side: set() for side in SIDES}
        self.done = {side: False for side in SIDES}
        # What a multi-page run keeps for its end: removals, and items no link knows by id
        # (new, twins, moved, re-linked), so pairs are made with every page in view.
        self.deferred: dict[Side, dict[str, Stored[T]]] = {side: {} for side in SIDES}
        self.deferred_removals: dict[Side, list[Removal]] = {side: [] for side in SIDES}
        self.touched: set[str] = set()  # pairs a page has already decided on
        self.unreadable: dict[Side, list[str]] = {side: [] for side in SIDES}
        self.resolution = Resolution()
        self.pages = 0
        self.later: list[Action[T]] = []  # creates and deletions of a multi-page run
        self.listed_nothing: frozenset[Side] = frozenset()

    def read_page(self) -> dict[Side, ChangeSet[T]]:
        changes: dict[Side, ChangeSet[T]] = {}
        for side in SIDES:
            if self.done[side]:
                changes[side] = ChangeSet([], [], self.cursor[side], full=self.full[side])
                continue
            try:
                raw = read_changes(
                    self.connectors[side], self.cursor[side], self.window, self.sleep
                )
            except RunThrottled as exc:
                exc.side = exc.side or side
                raise
            page = screen(raw, self.window)
            if page.restarted:  # the cursor had expired: a full listing began
                self.full[side] = True
                self.seen[side].clear()
            self.cursor[side] = page.cursor
            self.done[side] = not page.more
            if self.done[side] and self.catch_up[side]:
                self.catch_up[side], self.done[side] = False, False
            self.seen[side].update(s.id for s in page.upserts)
            self.seen[side].update(u.id for u in page.unreadable)
            self.unreadable[side] += [f"{u.id}: {u.reason}" for u in page.unreadable]
            changes[side] = page
        self.pages += 1
        return changes

    def checkpoint(self, failures: list[ItemFailure], plans: list[Plan[T]]) -> None:
        """After a page is applied: the cursors of the next page, with everything the run
        still owes on its retry lists (what a finished run would keep there, and the items
        kept for the end and the pairs of postponed creates and deletions), so a run that
        stops here (a throttle, a crash) resumes from this page instead of listing
        everything again. A resumed full listing cannot tell what it did not show: it
        infers no deletion from absence (the next fresh listing does)."""
        owed = _retry_lists(failures, self, plans)
        for side in SIDES:
            owed[side] += list(self.deferred[side])
            owed[side] += [r.id for r in self.deferred_removals[side]]
        for action in self.later:
            for side in SIDES:
                item_id = action.link.item_id(side) if action.link else None
                if item_id is not None and not is_occurrence_id(item_id):
                    owed[side].append(item_id)
            if action.source is not None and not is_occurrence_id(action.source.id):
                owed[action.target.other].append(action.source.id)
        for side in SIDES:
            cursor = SideCursor(
                self.cursor[side],
                window_key(self.window),
                list(dict.fromkeys(owed[side])),
                emptied=side in self.emptied,
                partial=True,
                listing=(self.full[side] and not self.accounted[side])
                or self.finishes_listing[side],
            )
            self.store.save_cursor(self.kind, side, cursor.dump())

    def keep_for_the_end(self, inp: PlanInput[T]) -> PlanInput[T]:
        """A page of a multi-page run is planned only for items their link knows by id, and
        only for pairs no earlier page has touched; the rest waits for the run's end
        (`_final_plan`), where both items of every such pair are read afresh."""
        crm, crm_later = _split(inp, Side.CRM, self.touched)
        gw, gw_later = _split(inp, Side.GROUPWARE, self.touched)
        for side, now in ((Side.CRM, crm), (Side.GROUPWARE, gw)):
            self.touched |= {inp.links.by_id[side][s.id].correlation_id for s in now.upserts}
        for side, later in ((Side.CRM, crm_later), (Side.GROUPWARE, gw_later)):
            for stored in later:  # the newest reading of an item replaces an older one
                self.deferred[side].pop(stored.id, None)
                self.deferred[side][stored.id] = stored
        self.deferred_removals[Side.CRM] += list(inp.crm.removals)
        self.deferred_removals[Side.GROUPWARE] += list(inp.groupware.removals)
        return replace(inp, crm=crm, groupware=gw)

    def plan_input(self, changes: Mapping[Side, ChangeSet[T]], last: bool) -> PlanInput[T]:
        ids: dict[Side, list[str]] = {side: [] for side in SIDES}
        cids: list[str] = []
        for side, change_set in changes.items():
            ids[side] += [s.id for s in change_set.upserts]
            ids[side] += [r.id for r in change_set.removals]
            cids += [s.correlation_id for s in change_set.upserts if s.correlation_id]
            if self.pages == 1:  # the retry list is read with the first page: its links too
                ids[side] += self.saved[side].retry
        complete = [
            side
            for side in SIDES
            if self.full[side] and self.done[side] and not self.accounted[side]
        ]
        links: list[LinkSnapshot] = (
            self.store.all_links(self.kind)
            if complete
            else self.store.links_for(self.kind, ids[Side.CRM], ids[Side.GROUPWARE], cids)
        )
        index = LinkIndex(links, {})
        resolved: dict[Side, ChangeSet[T]] = {}
        for side in SIDES:
            missing = missing_from_listing(side, links, self.seen[side]) if side in complete else []
            retry = self.saved[side].retry if self.pages == 1 else []
            resolved[side] = resolve(
                side,
                changes[side],
                self.connectors[side],
                index,
                self.window,
                missing=missing,
                retry=retry,
                report=self.resolution,
                recover=self.pages == 1,
            )
            # A listing that came back empty while reads confirm linked items gone: the
            # guard holds it (a broken listing, an emptied calendar) whatever the numbers.
            # An empty window alone is not that: its items were read and found.
            if side in complete and not self.seen[side] and resolved[side].removals:
                self.emptied.add(side)
        for side in complete:
            self.accounted[side] = True
        if self.pages == 1 and last:  # a multi-page run does this at its end
            resolved = twins_by_stamp(resolved, links, self.connectors)
        # Resolution may have found more items (moves, retries): their links are needed too.
        extra = {side: [s.id for s in resolved[side].upserts] for side in SIDES}
        more_cids = [
            s.correlation_id for c in resolved.values() for s in c.upserts if s.correlation_id
        ]
        if not complete and (any(extra.values()) or more_cids):
            found_links: list[LinkSnapshot] = self.store.links_for(
                self.kind, extra[Side.CRM], extra[Side.GROUPWARE], more_cids
            )
            merged = {each.correlation_id: each for each in [*links, *found_links]}
            links = list(merged.values())
        self.listed_nothing = frozenset(self.emptied)
        may_delete = any(c.removals for c in resolved.values()) or bool(self.emptied)
        return PlanInput(
            kind=self.kind,
            crm=resolved[Side.CRM],
            groupware=resolved[Side.GROUPWARE],
            # Counting a user's links costs a scan; only the deletion guard needs it.
            links=LinkIndex(links, self.store.linked_counts(self.kind) if may_delete else {}),
            policy=self.policy,
            now=self.now,
            caps=self.caps,
            exact_versions=self.exact,
            approve_deletions=self.approve_deletions,
            approved_deletions=self.approved_deletions,
            listed_nothing=self.listed_nothing,
            me=self.me,
            colleagues=self.colleagues,
        )


def _split(
    inp: PlanInput[T], side: Side, touched: set[str]
) -> tuple[ChangeSet[T], list[Stored[T]]]:
    """Items of `side` a page can decide on its own (linked by id, pair untouched) and the
    rest, for the end; minus the items of touched pairs that the side holds as their link
    records them and that pass the filters: an earlier page decided their pair knowing
    that (an item absent from a page is taken as unchanged), so the end need not read the
    pair again. The two sides list in different orders and pages, so after a run that
    wrote thousands of items the next one sees nearly every pair on two pages (the delta's
    echo of our own writes), and reading them all again costs a request per item."""
    changes = inp.crm if side is Side.CRM else inp.groupware
    known = inp.links.by_id[side]

    def linked(stored: Stored[T]) -> LinkSnapshot | None:
        link = known.get(stored.id)
        if (
            link is None
            or link.state is not LinkState.LINKED
            or link.crm_id is None
            or link.groupware_id is None
        ):
            return None
        return link

    def settled(stored: Stored[T], link: LinkSnapshot) -> bool:
        why = refusal(stored.item, side, inp.policy, inp.now, inp.caps[side])
        return why in (None, OUTSIDE_WINDOW) and as_linked(inp, side, stored, link)

    kept: list[Stored[T]] = []
    later: list[Stored[T]] = []
    for stored in changes.upserts:
        link = linked(stored)
        if link is not None and link.correlation_id not in touched:
            kept.append(stored)
        elif link is None or not settled(stored, link):
            later.append(stored)
    return replace(changes, upserts=kept, removals=[]), later


def sync(
    kind: ItemKind,
    connectors: Mapping[Side, ItemConnector[T]],
    store: SyncStore,
    policy: Policy,
    now: datetime,
    *,
    dry_run: bool = False,
    approve_deletions: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    me: str = "",
    colleagues: frozenset[str] = frozenset(),
    approved_deletions: Mapping[Side, int] | None = None,
) -> SyncOutcome[T]:
    """Sync one user's items of one kind. `me` is the user's address and `colleagues` every
    synced user's of the profile (meetings among them are one item per participant).
    `approved_deletions`: an administrator approved a held plan deleting this many per side."""
    run_id = store.start_run(dry_run)
    started = time.perf_counter()
    outcome: SyncOutcome[T] = SyncOutcome(run_id, RunStatus.RUNNING)
    counts: dict[str, int] = {}
    errors: dict[str, Any] = {}
    held: dict[str, Any] | None = None
    report = ApplyReport()
    try:
        run = _Run(
            kind,
            connectors,
            store,
            policy,
            now,
            dry_run,
            approve_deletions,
            sleep,
            approved_deletions,
        )
        run.me, run.colleagues = (
            me.lower(),
            frozenset(c.lower() for c in colleagues) | ({me.lower()} if me else set()),
        )
        while True:
            page = run.read_page()
            last = all(run.done.values())
            page, notes = expand_series(kind, page, connectors, store, policy, now)
            outcome.notes += notes
            inp = run.plan_input(page, last)
            single = run.pages == 1 and last
            if not single:
                inp = run.keep_for_the_end(inp)
            page_plan = _guarded(plan(inp), inp, store)
            final: Plan[T] | None = page_plan if single else None
            if final is None:
                # Several pages: updates and links are applied page by page; creates and
                # deletions wait for the end, where the guard sees all of them at once and
                # unlinked items meet their twins from any page.
                now_part = Plan(kind, tuple(a for a in page_plan.actions if a.op in AT_ONCE))
                now_part = replace(now_part, skipped=page_plan.skipped, waiting=page_plan.waiting)
                # A later page knows more of a pair than an earlier one (a move reported as a
                # removal on one page and the item under its new id on the next): what it
                # decides for the pair replaces what waits for it.
                touched = {a.link.correlation_id for a in page_plan.actions if a.link}
                run.later = [
                    a for a in run.later if not a.link or a.link.correlation_id not in touched
                ]
                run.later += [a for a in page_plan.actions if a.op not in AT_ONCE]
                outcome.plans.append(now_part)
                if not dry_run:
                    applier = Applier(connectors, store, inp, sleep=sleep, report=report)
                    applier.postpone = run.later
                    applier.apply(now_part)
                    if not last:
                        run.checkpoint(report.failures, outcome.plans)
                if not last:
                    continue
                final = _final_plan(kind, inp, run, store)
            outcome.plans.append(final)
            outcome.plan = final
            if not dry_run:
                Applier(connectors, store, inp, sleep=sleep, report=report).apply(final)
            break
        counts = outcome.counts
        outcome.notes += [
            f"{side.value}: unreadable {line}" for side in SIDES for line in run.unreadable[side]
        ]
        if run.resolution.lookups:
            counts["resolved_by_reading"] = run.resolution.lookups
        hold = next((p.hold for p in outcome.plans if p.hold is not None), None)
        if dry_run:
            for each in outcome.plans:
                outcome.dry_run_lines += render_plan(each)
            outcome.notes += outcome.dry_run_lines  # stored with the run: the portal shows it
            outcome.status = RunStatus.SUCCEEDED
        else:
            outcome.report = report
            outcome.notes += report.notes
            counts.update({f"applied_{k}": v for k, v in report.counts.items()})
            failures = list(report.failures)
            if failures or any(run.unreadable.values()):
                errors["items"] = [_failure(f) for f in failures] + [
                    {"action": "read", "item": line, "side": side.value, "retryable": True}
                    for side in SIDES
                    for line in run.unreadable[side]
                ]
            if hold is not None:
                deletions = [line for line in report.held if line.startswith("delete")]
                held = {
                    "reason": hold.reason,
                    "deletions": deletions,
                    "held": report.held,
                    # what an approval allows the next run (`synchronizer approve`)
                    "deletes": {side.value: n for side, n in hold.deletes.items()},
                }
                outcome.status = RunStatus.HELD
                for side in SIDES:
                    # A held run leaves the cursors as it found them (its pages' checkpoints
                    # undone), so the approved run reads all it read and decides with the
                    # whole listing in view, not resumed past what made the plan.
                    store.save_cursor(kind, side, run.found[side])
            else:
                retry = _retry_lists(failures, run, outcome.plans)
                for side in SIDES:  # only now: everything read was applied or is listed again
                    cursor = SideCursor(
                        run.cursor[side],
                        window_key(run.window),
                        retry[side],
                        relist=run.finishes_listing[side],
                    )
                    store.save_cursor(kind, side, cursor.dump())
                partial = failures or any(run.unreadable.values())
                outcome.status = RunStatus.PARTIAL if partial else RunStatus.SUCCEEDED
    except RunThrottled as exc:
        outcome.status, outcome.retry_after = RunStatus.PARTIAL, exc.retry_after
        outcome.error = str(exc)
        outcome.cause = exc
        outcome.report = report
    except (RunAborted, AuthExpired) as exc:
        outcome.status, outcome.error = RunStatus.FAILED, f"credentials expired: {exc}"
        outcome.cause = exc
    except (ConnectorError, LinkConflict) as exc:
        outcome.status, outcome.error = RunStatus.FAILED, repr(exc)
        outcome.cause = exc
    except Exception as exc:  # a defect: the run is recorded as failed, then it propagates
        errors["run"] = f"interrupted by an unexpected error: {exc!r}"
        _finish(store, run_id, RunStatus.FAILED, counts, errors, started, held, outcome.notes)
        raise
    if outcome.error:
        errors["run"] = outcome.error
    _finish(store, run_id, outcome.status, counts, errors, started, held, outcome.notes)
    return outcome


def _finish(
    store: SyncStore,
    run_id: int,
    status: RunStatus,
    counts: dict[str, int],
    errors: dict[str, Any],
    started: float,
    held: dict[str, Any] | None,
    notes: list[str],
) -> None:
    timings = {"total": time.perf_counter() - started}
    store.finish_run(run_id, RunOutcome(status, counts, errors, timings, held, notes))


def twins_by_stamp(
    changes: Mapping[Side, ChangeSet[T]],
    links: list[LinkSnapshot],
    connectors: Mapping[Side, ItemConnector[T]],
) -> dict[Side, ChangeSet[T]]:
    """An item carrying a stamp no live link holds (the link table was lost) whose twin is
    not in the other side's listing (outside the window, moved there meanwhile): its twin is
    looked up by the stamp, so it is paired instead of copied a second time."""
    live = {link.correlation_id for link in links if link.state is not LinkState.TOMBSTONE}
    result = dict(changes)
    for side in SIDES:
        other_side = side.other
        theirs = {s.correlation_id for s in result[other_side].upserts if s.correlation_id}
        present = {s.id for s in result[other_side].upserts}
        found: list[Stored[T]] = []
        for stored in changes[side].upserts:
            cid = stored.correlation_id
            if cid is None or cid in live or cid in theirs:
                continue
            holder = connectors[side].find_by_correlation_id(cid)
            if holder is not None and holder.id != stored.id:
                continue  # a user's copy: the item holding the stamp is older, elsewhere
            twin = connectors[other_side].find_by_correlation_id(cid)
            if twin is not None and twin.id not in present:
                found.append(replace(twin, correlation_id=cid))
                present.add(twin.id)
        if found:
            before: ChangeSet[T] = result[other_side]
            upserts: list[Stored[T]] = list(before.upserts) + found
            result[other_side] = replace(before, upserts=upserts)
    return result


def _guarded(the_plan: Plan[T], inp: PlanInput[T], store: SyncStore) -> Plan[T]:
    """The guard needs the user's linked counts, read only when a plan deletes (a filter, not
    only a removal, can make it delete)."""
    if inp.links.linked_counts or not any(a.op is Op.DELETE for a in the_plan.actions):
        return the_plan
    counted = replace(inp, links=LinkIndex([], store.linked_counts(inp.kind)))
    return replace(the_plan, hold=guard(counted, the_plan.actions))


def _final_plan(kind: ItemKind, inp: PlanInput[T], run: _Run[T], store: SyncStore) -> Plan[T]:
    """What every page kept for the end (removals, items no link knew by id), planned with
    all of it in view, after the creates and deletions the pages decided; one guard over
    all of them."""
    rest = plan(_rest(inp, run, store))
    touched = {a.link.correlation_id for a in rest.actions if a.link}
    actions = [a for a in run.later if not a.link or a.link.correlation_id not in touched]
    actions += rest.actions
    counts = store.linked_counts(kind)
    guarded = replace(inp, links=LinkIndex([], counts), listed_nothing=run.listed_nothing)
    return Plan(kind, tuple(actions), rest.skipped, guard(guarded, tuple(actions)))


def _rest(inp: PlanInput[T], run: _Run[T], store: SyncStore) -> PlanInput[T]:
    """The end of a multi-page run: what the pages kept, with every pair it touches read
    afresh on both sides (a page may have changed one item of it, or seen it change), so the
    decision made here knows all there is and may replace what a page decided for the pair."""
    ids = {
        side: list(run.deferred[side]) + [r.id for r in run.deferred_removals[side]]
        for side in SIDES
    }
    cids = [
        s.correlation_id for side in SIDES for s in run.deferred[side].values() if s.correlation_id
    ]
    cids += [a.link.correlation_id for a in run.later if a.link is not None]
    links: list[LinkSnapshot] = store.links_for(inp.kind, ids[Side.CRM], ids[Side.GROUPWARE], cids)
    upserts = {side: list(run.deferred[side].values()) for side in SIDES}
    removals = {side: list(run.deferred_removals[side]) for side in SIDES}
    index = LinkIndex(links, {})
    for side in SIDES:
        listed_removals = len(removals[side])
        # A kept item that a link holds now may have been written by this run since it was
        # read (a page followed its move and updated it): its old reading would look like
        # an edit and undo ours. It is read again.
        held = {
            item_id
            for link in links
            if link.state is not LinkState.TOMBSTONE and (item_id := link.item_id(side))
        }
        again = {s.id: s for s in upserts[side] if s.id in held and not is_occurrence_id(s.id)}
        if again:
            fresh = run.connectors[side].get_many(list(again))
            upserts[side] = [s for s in upserts[side] if s.id not in fresh] + [
                replace(found, correlation_id=found.correlation_id or again[i].correlation_id)
                for i, found in fresh.items()
                if found is not None
            ]
            removals[side] += [Removal(i) for i, found in fresh.items() if found is None]
        known = {s.id for s in upserts[side]} | {r.id for r in removals[side]}
        wanted = [
            item_id
            for link in links
            if link.state is not LinkState.TOMBSTONE
            and (item_id := link.item_id(side)) is not None
            and item_id not in known
            and not is_occurrence_id(item_id)
        ]
        if wanted:
            for item_id, found in (
                run.connectors[side].get_many(list(dict.fromkeys(wanted))).items()
            ):
                if found is None:
                    removals[side].append(Removal(item_id))
                else:
                    upserts[side].append(found)
        # Not found under the id a link holds: moved (the link follows), or deleted.
        upserts[side] += moved_elsewhere(
            side,
            upserts[side],
            removals[side][listed_removals:],
            run.connectors[side],
            index,
            run.resolution,
        )
    changes = twins_by_stamp(
        {side: ChangeSet(upserts[side], removals[side], None) for side in SIDES},
        links,
        run.connectors,
    )
    listed = {side: {s.id for s in upserts[side]} for side in SIDES}
    added = {
        side: [s.id for s in changes[side].upserts if s.id not in listed[side]] for side in SIDES
    }
    if any(added.values()):  # twins found by their stamp: their links too
        more: list[LinkSnapshot] = store.links_for(
            inp.kind, added[Side.CRM], added[Side.GROUPWARE], []
        )
        links = list({x.correlation_id: x for x in [*links, *more]}.values())
    return replace(
        inp,
        crm=changes[Side.CRM],
        groupware=changes[Side.GROUPWARE],
        links=LinkIndex(links, inp.links.linked_counts),
        listed_nothing=frozenset(),
    )


def _retry_lists(
    failures: list[ItemFailure], run: _Run[Any], plans: list[Plan[Any]]
) -> dict[Side, list[str]]:
    retry: dict[Side, list[str]] = {side: [] for side in SIDES}
    for each in plans:
        for side, item_id in each.waiting:
            retry[side].append(item_id)
    for failure in failures:
        if failure.source_side is not None and failure.source_id is not None:
            retry[failure.source_side].append(failure.source_id)
    for side in SIDES:
        retry[side] += [line.split(": ", 1)[0] for line in run.unreadable[side]]
        retry[side] = list(dict.fromkeys(retry[side]))
    return retry


def _failure(failure: ItemFailure) -> dict[str, Any]:
    return {
        "action": failure.action,
        "item": failure.item,
        "error": failure.error,
        "retryable": failure.retryable,
    }
