"""The planner: from both sides' change sets and the link snapshots, decide what to do.

Pure: no I/O, no database, no clock (the caller passes `now`). The rules follow vdirsyncer's
decision table (see `../shared/reference/sync_engines.md` §1.2), with a link row instead of a
shared UID: a side's item is *changed* when its version moved and its normalised content hash
differs from the hash both sides agreed on last time, so a version bump alone is no change.

| CRM      | groupware | action                                                   |
|----------|-----------|----------------------------------------------------------|
| new      | –         | create on groupware                                      |
| changed  | same      | update groupware                                         |
| changed  | changed   | same content: relink; else conflict, settled by policy   |
| gone     | same      | delete on groupware                                      |
| gone     | changed   | a modification beats a deletion: re-create on CRM        |
| gone     | gone      | forget the link (tombstone)                              |

and the mirror image. Directions, filters, the window and the deletion guard apply on top.
Cost grows with the number of changes: only links touched by a change are looked at, except
for a full listing, which by nature compares every link of its side.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic

from common.connectors.base import ChangeSet, Stored, T
from common.items import content_hash
from common.models import ItemKind, LinkState, Side
from daemon.policies import ConflictPolicy, Direction, Policy, refusal

CRM, GROUPWARE = Side.CRM, Side.GROUPWARE
# Ids of single occurrences of a series expanded for a side that cannot hold its rule
# (`daemon.expansion`): `<series id>@@<original start>`. Such copies follow their series.
OCCURRENCE_SEPARATOR = "@@"


def is_occurrence_id(item_id: str | None) -> bool:
    return item_id is not None and OCCURRENCE_SEPARATOR in item_id


def other(side: Side) -> Side:
    return GROUPWARE if side is CRM else CRM


@dataclass(frozen=True, slots=True)
class LinkSnapshot:
    """An `ItemLink` row as the planner sees it."""

    correlation_id: str
    crm_id: str | None
    groupware_id: str | None
    crm_version: str | None = None
    groupware_version: str | None = None
    content_hash: str | None = None  # agreed content; for a pending create, the intended one
    state: LinkState = LinkState.LINKED
    pending_action: str | None = None
    id: int | None = None

    def item_id(self, side: Side) -> str | None:
        return self.crm_id if side is CRM else self.groupware_id

    def version(self, side: Side) -> str | None:
        return self.crm_version if side is CRM else self.groupware_version


class LinkIndex:
    """The link snapshots a plan may need, looked up by either side's id or correlation id."""

    def __init__(self, links: Iterable[LinkSnapshot], linked_counts: Mapping[Side, int]) -> None:
        self.by_cid: dict[str, LinkSnapshot] = {}
        self.by_id: dict[Side, dict[str, LinkSnapshot]] = {CRM: {}, GROUPWARE: {}}
        for link in links:
            self.by_cid[link.correlation_id] = link
            for side in (CRM, GROUPWARE):
                item_id = link.item_id(side)
                if item_id is not None and link.state is not LinkState.TOMBSTONE:
                    self.by_id[side][item_id] = link
        self.linked_counts = dict(linked_counts)

    def find(self, side: Side, item_id: str, correlation_id: str | None) -> LinkSnapshot | None:
        link = self.by_id[side].get(item_id)
        if link is not None or correlation_id is None:
            return link
        link = self.by_cid.get(correlation_id)
        # A stamped item only joins its link when that link is waiting for this side's id:
        # a user's copy of a synced item carries the same stamp and is a new item.
        if link is None or link.state is LinkState.TOMBSTONE or link.item_id(side) is not None:
            return None
        return link

    def pending(self) -> list[LinkSnapshot]:
        return [link for link in self.by_cid.values() if link.state is LinkState.PENDING]


class Op(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    LINK = "link"  # both sides agree: record ids, versions, hash
    FORGET = "forget"  # both sides gone: tombstone the link
    RESUME = "resume"  # an interrupted create whose source was not re-read: finish it


@dataclass(frozen=True, slots=True)
class Conflict(Generic[T]):
    winner: Side
    loser: Stored[T]
    reason: str


@dataclass(frozen=True, slots=True)
class Action(Generic[T]):
    """One write (or link bookkeeping) on `target`, with what the applier needs for it."""

    op: Op
    target: Side
    link: LinkSnapshot | None
    source: Stored[T] | None = None  # the item to write (None: the applier reads it)
    source_id: str | None = None
    target_id: str | None = None
    target_version: str | None = None  # the If-Match value
    seen: Stored[T] | None = None  # the target item when it was in the change set
    content_hash: str | None = None  # hash of what will be agreed after this action
    conflict: Conflict[T] | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Hold:
    reason: str
    deletes: Mapping[Side, int]


@dataclass(frozen=True, slots=True)
class Plan(Generic[T]):
    kind: ItemKind
    actions: tuple[Action[T], ...]
    skipped: tuple[str, ...] = ()  # one readable line per item deliberately not carried
    hold: Hold | None = None

    @property
    def conflicts(self) -> list[Action[T]]:
        return [a for a in self.actions if a.conflict is not None]

    def counts(self) -> dict[str, int]:
        counter = Counter(f"{a.op.value}_{a.target.value}" for a in self.actions)
        counter["conflicts"] = len(self.conflicts)
        counter["skipped"] = len(self.skipped)
        return dict(counter)

    def writes(self) -> list[Action[T]]:
        return [a for a in self.actions if a.op in (Op.CREATE, Op.UPDATE, Op.DELETE, Op.RESUME)]


@dataclass(frozen=True, slots=True)
class PlanInput(Generic[T]):
    kind: ItemKind
    crm: ChangeSet[T]
    groupware: ChangeSet[T]
    links: LinkIndex
    policy: Policy
    now: datetime
    fields: frozenset[str]  # the content both sides keep: only these count as changes
    approve_deletions: bool = False


class _State(enum.Enum):
    ABSENT = "absent"  # not in the change set: unchanged since the link was written
    NEW = "new"
    SAME = "same"  # in the change set with the agreed content
    CHANGED = "changed"
    GONE = "gone"


@dataclass(slots=True)
class _Pair(Generic[T]):
    link: LinkSnapshot | None
    seen: dict[Side, Stored[T]] = field(default_factory=dict)
    hashes: dict[Side, str] = field(default_factory=dict)
    gone: set[Side] = field(default_factory=set)


def plan(inp: PlanInput[T]) -> Plan[T]:
    """Decide every action for one user and one kind. See the module docstring."""
    direction = inp.policy.direction(inp.kind)
    if direction is Direction.OFF:
        return Plan(inp.kind, ())
    pairs = _pair_up(inp)
    planner = _Planner(inp, direction)
    for pair in pairs:
        planner.decide(pair)
    actions = tuple(planner.actions)
    return Plan(inp.kind, actions, tuple(planner.skipped), _guard(inp, actions))


def plan_pair(
    inp: PlanInput[T], link: LinkSnapshot | None, seen: Mapping[Side, Stored[T] | None]
) -> list[Action[T]]:
    """Re-plan one item from fresh reads (after a stale etag): `None` means the side lost it."""
    pair: _Pair[T] = _Pair(link)
    for side, stored in seen.items():
        if stored is None:
            pair.gone.add(side)
        else:
            pair.seen[side] = stored
    planner = _Planner(inp, inp.policy.direction(inp.kind))
    planner.decide(pair)
    return planner.actions


def _pair_up(inp: PlanInput[T]) -> list[_Pair[T]]:
    pairs: dict[str, _Pair[T]] = {}  # by correlation id, or by "side:id" for unlinked items
    unlinked_by_cid: dict[tuple[Side, str], _Pair[T]] = {}

    def pair_for(side: Side, item_id: str, cid: str | None) -> _Pair[T]:
        link = inp.links.find(side, item_id, cid)
        if link is not None:
            linked = pairs.setdefault(link.correlation_id, _Pair(link))
            if side not in linked.seen:
                return linked
            # A second item with the stamp of an unfinished create: a user's copy, a new item.
        # The same stamp on both sides but no link (the link table was lost): one pair.
        match = unlinked_by_cid.pop((other(side), cid), None) if cid is not None else None
        if match is not None:
            return match
        pair: _Pair[T] = _Pair(None)
        pairs[f"{side.value}:{item_id}"] = pair
        if cid is not None:
            unlinked_by_cid.setdefault((side, cid), pair)
        return pair

    for side, changes in ((CRM, inp.crm), (GROUPWARE, inp.groupware)):
        present: set[str] = set()
        for stored in changes.upserts:
            present.add(stored.id)
            pair = pair_for(side, stored.id, stored.correlation_id)
            pair.seen[side] = stored  # hashed only when its version does not settle it
        for removal in changes.removals:
            link = inp.links.by_id[side].get(removal.id)
            if removal.gone and link is not None and removal.id not in present:
                pairs.setdefault(link.correlation_id, _Pair(link)).gone.add(side)
        if changes.full:  # every linked item missing from a full listing is gone
            for item_id, link in inp.links.by_id[side].items():
                if item_id not in present:
                    pairs.setdefault(link.correlation_id, _Pair(link)).gone.add(side)
    for link in inp.links.pending():  # interrupted intents are finished even if nothing moved
        pairs.setdefault(link.correlation_id, _Pair(link))
    return list(pairs.values())


class _Planner(Generic[T]):
    def __init__(self, inp: PlanInput[T], direction: Direction) -> None:
        self.inp: PlanInput[T] = inp
        self.direction = direction
        self.actions: list[Action[T]] = []
        self.skipped: list[str] = []

    def hash(self, pair: _Pair[T], side: Side) -> str:
        known = pair.hashes.get(side)
        if known is None:
            known = pair.hashes[side] = content_hash(pair.seen[side].item, self.inp.fields)
        return known

    def state(self, pair: _Pair[T], side: Side) -> _State:
        if side in pair.gone:
            return _State.GONE
        if side not in pair.seen:
            return _State.ABSENT
        link = pair.link
        if link is None:
            return _State.NEW
        stored = pair.seen[side]
        if link.item_id(side) == stored.id and link.version(side) == stored.version:
            return _State.SAME  # version unchanged: no need to trust the hash
        if link.content_hash is not None and self.hash(pair, side) == link.content_hash:
            return _State.SAME
        return _State.CHANGED

    def decide(self, pair: _Pair[T]) -> None:
        crm, gw = self.state(pair, CRM), self.state(pair, GROUPWARE)
        link = pair.link
        if link is None:
            self.decide_unlinked(pair, crm, gw)
            return
        if self.interrupted_create(pair, link):
            return
        if crm is _State.GONE and gw is _State.GONE:
            self.add(Op.FORGET, CRM, pair, reason="deleted on both sides")
        elif _State.GONE in (crm, gw):
            gone_side = CRM if crm is _State.GONE else GROUPWARE
            self.deleted_on(pair, gone_side, gw if gone_side is CRM else crm)
        elif crm is _State.CHANGED and gw is _State.CHANGED:
            self.both_changed(pair)
        elif _State.CHANGED in (crm, gw):
            self.carry(pair, CRM if crm is _State.CHANGED else GROUPWARE)
        else:
            self.relink_if_needed(pair)

    # --- the cases ---------------------------------------------------------------------------

    def decide_unlinked(self, pair: _Pair[T], crm: _State, gw: _State) -> None:
        if crm is _State.NEW and gw is _State.NEW:  # both stamped alike: the link was lost
            if self.hash(pair, CRM) == self.hash(pair, GROUPWARE):
                self.add(Op.LINK, CRM, pair, reason="same item found on both sides")
            else:
                self.both_changed(pair)
            return
        side = CRM if crm is _State.NEW else GROUPWARE
        stored = pair.seen[side]
        if not self.direction.leads(side):
            self.skip(side, stored, f"new on {side.value}, which does not lead ({self.direction})")
            return
        why = refusal(stored.item, side, self.inp.policy, self.inp.now)
        if why is not None:
            self.skip(side, stored, why)
            return
        self.add(Op.CREATE, other(side), pair, source=stored, reason=f"new on {side.value}")

    def carry(self, pair: _Pair[T], changed: Side) -> None:
        target = other(changed)
        stored = pair.seen[changed]
        if self.is_copy_of_occurrence(pair, changed, stored):
            return
        if not self.direction.leads(changed):
            # One-way: the follower's edit is reverted from the leader, and recorded.
            self.add(
                Op.UPDATE,
                changed,
                pair,
                source=pair.seen.get(target),
                conflict=Conflict(
                    target, stored, f"edited on {changed.value}, direction is {self.direction}"
                ),
                reason=f"revert: {changed.value} follows",
            )
            return
        why = refusal(stored.item, changed, self.inp.policy, self.inp.now)
        if why is not None and why != "outside the sync window":
            self.skip(changed, stored, f"{why}; its copy is left as it was")
            return
        self.add(Op.UPDATE, target, pair, source=stored, reason=f"changed on {changed.value}")

    def both_changed(self, pair: _Pair[T]) -> None:
        if self.hash(pair, CRM) == self.hash(pair, GROUPWARE):
            self.add(Op.LINK, CRM, pair, reason="same change on both sides")
            return
        winner, why = self.winner(pair)
        loser = other(winner)
        self.add(
            Op.UPDATE,
            loser,
            pair,
            source=pair.seen[winner],
            conflict=Conflict(winner, pair.seen[loser], why),
            reason=f"conflict: {why}",
        )

    def winner(self, pair: _Pair[T]) -> tuple[Side, str]:
        for side in (CRM, GROUPWARE):
            if pair.link is not None and is_occurrence_id(pair.link.item_id(side)):
                return side, "an expanded series leads its occurrence copies"
        if self.direction.one_way:
            leader = CRM if self.direction.leads(CRM) else GROUPWARE
            return leader, f"direction is {self.direction}"
        policy = self.inp.policy.conflict
        if policy is ConflictPolicy.CRM_WINS:
            return CRM, "profile policy: CRM wins"
        if policy is ConflictPolicy.GROUPWARE_WINS:
            return GROUPWARE, "profile policy: groupware wins"
        crm_time = pair.seen[CRM].item.last_modified
        gw_time = pair.seen[GROUPWARE].item.last_modified
        if crm_time is not None and gw_time is not None and gw_time > crm_time:
            return GROUPWARE, "newest wins: groupware edited last"
        return CRM, "newest wins: CRM edited last (or at the same time)"

    def is_copy_of_occurrence(self, pair: _Pair[T], side: Side, stored: Stored[T] | None) -> bool:
        link = pair.link
        if link is None or not is_occurrence_id(link.item_id(other(side))):
            return False
        item_id = stored.id if stored else link.item_id(side)
        self.skipped.append(
            f"{side.value} {item_id}: copy of one occurrence of an expanded series; "
            "changes to it are not carried back"
        )
        return True

    def deleted_on(self, pair: _Pair[T], gone: Side, survivor_state: _State) -> None:
        survivor = other(gone)
        if self.is_copy_of_occurrence(pair, gone, None):
            return
        # A modification beats a deletion (unless the modified side only follows, or is the
        # copy of an occurrence of an expanded series: copies follow their series).
        follows_series = pair.link is not None and is_occurrence_id(pair.link.item_id(gone))
        if (
            survivor_state is _State.CHANGED
            and not follows_series
            and (self.direction.leads(survivor) or not self.direction.leads(gone))
        ):
            self.add(
                Op.CREATE,
                gone,
                pair,
                source=pair.seen[survivor],
                reason=f"deleted on {gone.value} but changed on {survivor.value}",
            )
            return
        if not self.direction.leads(gone):
            # The follower lost its copy: put it back from the leader (one-way mirror).
            self.add(
                Op.CREATE,
                gone,
                pair,
                source=pair.seen.get(survivor),
                reason=f"revert: deleted on {gone.value}, which follows",
            )
            return
        if not self.inp.policy.guard.deletes_enabled:
            self.skipped.append(
                f"{survivor.value} {link_id(pair.link, survivor)}: deletions are switched off"
            )
            return
        conflict = None
        if survivor_state is _State.CHANGED:  # the follower's edit loses to the leader's delete
            why = f"deleted on {gone.value}, direction is {self.direction}"
            conflict = Conflict(gone, pair.seen[survivor], why)
        self.add(Op.DELETE, survivor, pair, conflict=conflict, reason=f"deleted on {gone.value}")

    def interrupted_create(self, pair: _Pair[T], link: LinkSnapshot) -> bool:
        """A create whose intent was written but whose result was never linked (a crash, a
        timeout). The applier looks the item up by correlation id before creating again."""
        if link.state is not LinkState.PENDING or not link.pending_action:
            return False
        op, _, side_name = link.pending_action.partition("_")
        target = Side(side_name)
        if op != Op.CREATE.value or link.item_id(target) is not None or target in pair.seen:
            return False
        source_side = other(target)
        if source_side in pair.gone:
            self.add(Op.DELETE, target, pair, reason="source deleted before its copy was linked")
        else:
            self.add(
                Op.RESUME,
                target,
                pair,
                source=pair.seen.get(source_side),
                reason=f"finish interrupted {link.pending_action}",
            )
        return True

    def relink_if_needed(self, pair: _Pair[T]) -> None:
        link = pair.link
        assert link is not None
        stale = link.state is not LinkState.LINKED or any(
            link.item_id(s) != st.id or link.version(s) != st.version for s, st in pair.seen.items()
        )
        if stale:
            self.add(Op.LINK, CRM, pair, reason="content agrees; versions recorded")

    # --- building actions --------------------------------------------------------------------

    def add(
        self,
        op: Op,
        target: Side,
        pair: _Pair[T],
        *,
        source: Stored[T] | None = None,
        conflict: Conflict[T] | None = None,
        reason: str,
    ) -> None:
        link = pair.link
        source_side = other(target)
        seen = pair.seen.get(target)
        source_id = source.id if source else (link.item_id(source_side) if link else None)
        target_id = seen.id if seen else (link.item_id(target) if link else None)
        if op is Op.CREATE:
            target_id = None
        version = seen.version if seen else (link.version(target) if link else None)
        if op is Op.LINK:
            source = pair.seen.get(GROUPWARE)
            seen_side = CRM if CRM in pair.seen else GROUPWARE
            agreed = self.hash(pair, seen_side) if seen_side in pair.seen else None
        elif source is not None:
            agreed = content_hash(source.item, self.inp.fields)
        else:
            agreed = None
        self.actions.append(
            Action(
                op,
                target,
                link,
                source=source,
                source_id=source_id,
                target_id=target_id,
                target_version=version,
                seen=seen,
                content_hash=agreed,
                conflict=conflict,
                reason=reason,
            )
        )

    def skip(self, side: Side, stored: Stored[T], why: str) -> None:
        self.skipped.append(f"{side.value} {stored.id}: {why}")


def _guard(inp: PlanInput[T], actions: tuple[Action[T], ...]) -> Hold | None:
    if inp.approve_deletions:
        return None
    deletes = Counter(a.target for a in actions if a.op is Op.DELETE)
    for side, changes in ((CRM, inp.crm), (GROUPWARE, inp.groupware)):
        linked = inp.links.linked_counts.get(side, 0)
        if changes.full and not changes.upserts and linked > 0:
            return Hold(f"{side.value} listed no items at all while {linked} are linked", deletes)
    for side, count in deletes.items():
        size = inp.links.linked_counts.get(side, 0)
        if inp.policy.guard.exceeded(count, size):
            return Hold(
                f"{count} deletions on {side.value} (of {size} linked items) exceed the guard",
                deletes,
            )
    return None


def link_id(link: LinkSnapshot | None, side: Side) -> str:
    return (link.item_id(side) if link else None) or "(no id yet)"
