"""The planner: from both sides' change sets and the link snapshots, decide what to do.

Pure: no I/O, no database, no clock (the caller passes `now`). The rules follow vdirsyncer's
decision table (see `../shared/reference/sync_engines.md` §1.2), with a link row instead of a
shared UID. Agreement is kept per side: a side's item is *changed* when its content hash (in
the common view of both sides' capabilities) differs from the hash that side held after our
last read or write. An unchanged version settles it without hashing only where the side's
versions are exact (etag, ChangeKey); a coarse one (SuperOffice's day-grained
`updatedDate`) is never trusted.

| CRM      | groupware | action                                                   |
|----------|-----------|----------------------------------------------------------|
| new      | –         | create on groupware (unless a twin is found, below)      |
| new      | new       | twins (same stamp, same meeting, same content): pair     |
| changed  | same      | update groupware                                         |
| changed  | changed   | same content: relink; else conflict, settled by policy   |
| gone     | same      | delete on groupware                                      |
| gone     | changed   | a modification beats a deletion: re-create on CRM        |
| gone     | gone      | forget the link (tombstone)                              |
| moved    | any       | a stamped item under a new id whose old id is gone:      |
|          |           | the link follows it (never delete and re-create)         |

and the mirror image. Directions, filters (re-checked on every item seen, so an item made
private or a person who left the selection has its copy removed), the window and the deletion
guard apply on top; a held plan holds its deletions and every create. Removals reach the
planner already resolved (`daemon.resolve`): only items known to be deleted are "gone".
Cost grows with the number of changes: only links touched by a change are looked at.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic

from common.capabilities import Capabilities, agreed_hash
from common.items import Appointment, Contact, one_line
from common.kinds import (
    ChangeSet,
    ItemKind,
    LinkSnapshot,
    LinkState,
    RemovalKind,
    Side,
    Stored,
    T,
)
from daemon.policies import ConflictPolicy, Direction, InviteMode, Policy, refusal

CRM, GROUPWARE = Side.CRM, Side.GROUPWARE
# Ids of single occurrences of a series expanded for a side that cannot hold its rule
# (`daemon.expansion`): `<series id>@@<original start>`. Such copies follow their series.
OCCURRENCE_SEPARATOR = "@@"
OUTSIDE_WINDOW = "outside the sync window"


def is_occurrence_id(item_id: str | None) -> bool:
    return item_id is not None and OCCURRENCE_SEPARATOR in item_id


# A write held because it would have mailed people the profile does not let us mail (a
# change to a meeting organised on the groupware): kept in the link's `pending_action` as
# `held_<op>_<side>:<invite mode it needs>` until the pair agrees again.
_HELD = "held_"


def held_marker(op: str, target: Side, needed: InviteMode) -> str:
    return f"{_HELD}{op}_{target.value}:{needed.value}"


def held_write(link: LinkSnapshot, op: str, target: Side) -> InviteMode | None:
    """The invite mode the write `op` on `target` waits for, if the link holds it."""
    marker = link.pending_action or ""
    what, _, needed = marker.partition(":")
    if link.state is not LinkState.LINKED or what != f"{_HELD}{op}_{target.value}":
        return None
    return InviteMode(needed)


def other(side: Side) -> Side:
    return side.other


class LinkIndex:
    """The link snapshots a plan may need, looked up by either side's id or correlation id."""

    def __init__(self, links: Iterable[LinkSnapshot], linked_counts: Mapping[Side, int]) -> None:
        self.by_cid: dict[str, LinkSnapshot] = {}
        self.by_id: dict[Side, dict[str, LinkSnapshot]] = {CRM: {}, GROUPWARE: {}}
        for link in links:
            if link.state is LinkState.TOMBSTONE and link.correlation_id in self.by_cid:
                continue
            self.by_cid[link.correlation_id] = link
            for side in (CRM, GROUPWARE):
                item_id = link.item_id(side)
                if item_id is not None and link.state is not LinkState.TOMBSTONE:
                    self.by_id[side][item_id] = link
        self.linked_counts = dict(linked_counts)

    def find(
        self, side: Side, item_id: str, correlation_id: str | None, gone: set[str]
    ) -> LinkSnapshot | None:
        link = self.by_id[side].get(item_id)
        if link is not None or correlation_id is None:
            return link
        link = self.by_cid.get(correlation_id)
        if link is None or link.state is LinkState.TOMBSTONE:
            return None
        known = link.item_id(side)
        # A stamped item joins its link when the link waits for this side's id, or when the
        # id it had is gone (the item moved). Otherwise it is a user's copy: a new item.
        if known is None or known in gone:
            return link
        return None

    def pending(self) -> list[LinkSnapshot]:
        return [link for link in self.by_cid.values() if link.state is LinkState.PENDING]


class Op(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    LINK = "link"  # both sides agree: record ids, versions, hashes (and stamp new twins)
    FORGET = "forget"  # both sides gone, or the pair let go: tombstone the link
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
    conflict: Conflict[T] | None = None
    reason: str = ""
    # For twins that already share our stamp (the link table was lost): their correlation
    # id. Any other new pair gets a fresh one.
    shared_stamp: str | None = None


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
    # Items held back until their twin arrives (a colleague's meeting): read again next run.
    waiting: tuple[tuple[Side, str], ...] = ()

    @property
    def conflicts(self) -> list[Action[T]]:
        return [a for a in self.actions if a.conflict is not None]

    def counts(self) -> dict[str, int]:
        counter = Counter(f"{a.op.value}_{a.target.value}" for a in self.actions)
        counter["conflicts"] = len(self.conflicts)
        counter["skipped"] = len(self.skipped)
        counter["paired"] = sum(1 for a in self.actions if a.op is Op.LINK and a.link is None)
        return dict(counter)

    def writes(self) -> list[Action[T]]:
        return [a for a in self.actions if a.op in (Op.CREATE, Op.UPDATE, Op.DELETE, Op.RESUME)]

    def held(self, action: Action[T]) -> bool:
        """Whether `action` waits for approval: a held plan holds its deletions and the
        creates that would replace them (every create, to be safe)."""
        return self.hold is not None and action.op in (Op.DELETE, Op.CREATE, Op.RESUME)


def both_exact() -> dict[Side, bool]:
    return {CRM: True, GROUPWARE: True}


@dataclass(frozen=True, slots=True)
class PlanInput(Generic[T]):
    kind: ItemKind
    crm: ChangeSet[T]
    groupware: ChangeSet[T]
    links: LinkIndex
    policy: Policy
    now: datetime
    caps: Mapping[Side, Capabilities]  # what each side keeps and can express
    exact_versions: Mapping[Side, bool] = field(default_factory=both_exact)
    approve_deletions: bool = False
    # An administrator approved a held plan deleting this many per side: a plan deleting no
    # more passes the guard (one deleting more is held again).
    approved_deletions: Mapping[Side, int] | None = None
    # Sides whose whole listing (all pages) came back empty: the guard holds the plan.
    listed_nothing: frozenset[Side] = frozenset()
    me: str = ""  # this user's address (lower case)
    colleagues: frozenset[str] = frozenset()  # every synced user's address in the profile

    @property
    def fields(self) -> frozenset[str]:
        """The canonical fields both sides keep."""
        return self.caps[CRM].fields & self.caps[GROUPWARE].fields

    def agreed(self, item: T) -> str:
        """The content hash in the common view of both sides (what both keep and express)."""
        return agreed_hash(item, self.caps[CRM], self.caps[GROUPWARE])


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
    how: str = ""  # for twins paired without a link: by what


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
    return Plan(
        inp.kind, actions, tuple(planner.skipped), guard(inp, actions), tuple(planner.waiting)
    )


def as_linked(
    inp: PlanInput[T],
    side: Side,
    stored: Stored[T],
    link: LinkSnapshot,
    hashed: Callable[[], str] | None = None,
) -> bool:
    """Whether `side` holds `stored` as `link` recorded it after our last read or write:
    the same id at the same version where versions are exact (no need to hash), else the
    same content hash (`hashed` gives it, cached, where the caller keeps one)."""
    if (
        inp.exact_versions.get(side, True)
        and link.item_id(side) == stored.id
        and link.version(side) == stored.version
    ):
        return True
    known = link.hash(side)
    return known is not None and (hashed() if hashed else inp.agreed(stored.item)) == known


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


# --- pairing ------------------------------------------------------------------------------------


def signature(item: Appointment | Contact) -> tuple[Any, ...]:
    """What identifies an item made without our stamp (by hand, before us, by another tool),
    tolerant of what servers rewrite: for appointments the subject, start, end and organiser;
    for contacts the name and e-mail addresses."""
    if isinstance(item, Contact):
        name = one_line(f"{item.given_name} {item.family_name}").casefold()
        return ("contact", name, tuple(sorted({e.strip().lower() for e in item.emails})))
    return (
        "appointment",
        one_line(item.subject).casefold(),
        _minute(item.start),
        _minute(item.end),
        (getattr(item, "organizer", "") or "").strip().lower(),
    )


def _minute(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
    return str(value)


def _pair_up(inp: PlanInput[T]) -> list[_Pair[T]]:
    pairs: dict[str, _Pair[T]] = {}  # by correlation id, or by "side:id" for unlinked items
    unlinked: dict[Side, list[Stored[T]]] = {CRM: [], GROUPWARE: []}
    listings = ((CRM, inp.crm), (GROUPWARE, inp.groupware))
    gone: dict[Side, set[str]] = {
        side: {r.id for r in changes.removals if r.kind is RemovalKind.DELETED}
        for side, changes in listings
    }
    present: dict[Side, set[str]] = {side: set() for side, _ in listings}
    for side, changes in listings:
        # Oldest first: of several items carrying one stamp, the oldest claims its link (the
        # one we stamped, perhaps moved); the later ones are users' copies, new items.
        for stored in sorted(changes.upserts, key=_age):
            present[side].add(stored.id)
            link = inp.links.find(side, stored.id, stored.correlation_id, gone[side])
            if link is None:
                unlinked[side].append(stored)
                continue
            pair = pairs.setdefault(link.correlation_id, _Pair(link))
            if side in pair.seen:  # two items claim one link: the second is a new item
                unlinked[side].append(stored)
                continue
            pair.seen[side] = stored
    for side, changes in listings:
        for removal in changes.removals:
            if removal.kind is not RemovalKind.DELETED or removal.id in present[side]:
                continue  # only a known deletion counts; the rest was resolved before
            link = inp.links.by_id[side].get(removal.id)
            if link is not None:
                pair = pairs.setdefault(link.correlation_id, _Pair(link))
                if side not in pair.seen:  # not moved under a new id
                    pair.gone.add(side)
    for link in inp.links.pending():  # interrupted intents are finished even if nothing moved
        pairs.setdefault(link.correlation_id, _Pair(link))
    for pair in _twins(inp, unlinked):
        key = "+".join(f"{s.value}:{st.id}" for s, st in sorted(pair.seen.items()))
        pairs[key] = pair
    return list(pairs.values())


def _twins(inp: PlanInput[T], unlinked: Mapping[Side, list[Stored[T]]]) -> list[_Pair[T]]:
    """Unlinked items of both sides, paired where they are one item: the same stamp (the link
    table was lost), the same meeting (iCalendar UID), or the same content (made twice, or
    before Synchronizer). Each item pairs at most once; the rest are new."""
    found: list[_Pair[T]] = []
    rest: dict[Side, list[Stored[T]]] = {side: list(items) for side, items in unlinked.items()}

    def free_stamp(stored: Stored[T]) -> str | None:
        # A stamp a live link holds is on a user's copy of that pair: not a twin's.
        cid = stored.correlation_id
        link = inp.links.by_cid.get(cid) if cid is not None else None
        return cid if link is None or link.state is LinkState.TOMBSTONE else None

    keys: list[Any] = [
        ("stamp", free_stamp),
        ("meeting", lambda s: getattr(s.item, "uid", None)),
        ("content", lambda s: signature(s.item)),
    ]
    for how, key_of in keys:
        waiting: dict[Any, list[Stored[T]]] = {}
        for stored in rest[GROUPWARE]:
            key = key_of(stored)
            if key is not None:
                waiting.setdefault(key, []).append(stored)
        if how == "stamp":
            # A stamp on several items of a side: the oldest is ours, the rest are copies;
            # where their age is unknown nobody can tell, and the stamp pairs nothing.
            waiting = {k: v for k, v in ((k, _oldest(v)) for k, v in waiting.items()) if v}
            crm_groups: dict[Any, list[Stored[T]]] = {}
            for stored in rest[CRM]:
                crm_groups.setdefault(key_of(stored), []).append(stored)
            crm_first = {id(v[0]) for v in (_oldest(g) for g in crm_groups.values()) if v}
        unmatched: list[Stored[T]] = []
        for stored in rest[CRM]:
            key = key_of(stored)
            candidates = waiting.get(key) if key is not None else None
            if how == "stamp" and id(stored) not in crm_first:
                candidates = None
            if candidates:
                twin = candidates.pop(0)
                found.append(_Pair(None, {CRM: stored, GROUPWARE: twin}, how=how))
            else:
                unmatched.append(stored)
        matched = {id(s) for p in found for s in p.seen.values()}
        rest = {CRM: unmatched, GROUPWARE: [s for s in rest[GROUPWARE] if id(s) not in matched]}
    for side in (CRM, GROUPWARE):
        found += [_Pair(None, {side: stored}) for stored in rest[side]]
    return found


def _age(stored: Stored[Any]) -> tuple[bool, datetime]:
    return (stored.created is None, stored.created or datetime.max.replace(tzinfo=UTC))


def _oldest(items: list[Stored[T]]) -> list[Stored[T]]:
    """The one item that holds a stamp among `items` carrying it: the only one, or the
    clearly oldest; none when that cannot be told."""
    if len(items) == 1:
        return items
    if any(s.created is None for s in items):
        return []
    ordered = sorted(items, key=_age)
    return ordered[:1] if ordered[0].created != ordered[1].created else []


# --- deciding -----------------------------------------------------------------------------------


class _Planner(Generic[T]):
    def __init__(self, inp: PlanInput[T], direction: Direction) -> None:
        self.inp: PlanInput[T] = inp
        self.direction = direction
        self.actions: list[Action[T]] = []
        self.skipped: list[str] = []
        self.waiting: list[tuple[Side, str]] = []

    def hash(self, pair: _Pair[T], side: Side) -> str:
        known = pair.hashes.get(side)
        if known is None:
            known = pair.hashes[side] = self.inp.agreed(pair.seen[side].item)
        return known

    def state(self, pair: _Pair[T], side: Side) -> _State:
        if side in pair.gone:
            return _State.GONE
        if side not in pair.seen:
            return _State.ABSENT
        link = pair.link
        if link is None:
            return _State.NEW
        if as_linked(self.inp, side, pair.seen[side], link, lambda: self.hash(pair, side)):
            return _State.SAME
        return _State.CHANGED

    def decide(self, pair: _Pair[T]) -> None:
        crm, gw = self.state(pair, CRM), self.state(pair, GROUPWARE)
        link = pair.link
        if link is None:
            self.decide_unlinked(pair)
            return
        if self.interrupted_create(pair, link):
            return
        if crm is _State.GONE and gw is _State.GONE:
            self.add(Op.FORGET, CRM, pair, reason="deleted on both sides")
        elif _State.GONE in (crm, gw):
            gone_side = CRM if crm is _State.GONE else GROUPWARE
            self.deleted_on(pair, gone_side, gw if gone_side is CRM else crm)
        elif self.left_the_filters(pair):
            return
        elif crm is _State.CHANGED and gw is _State.CHANGED:
            self.both_changed(pair)
        elif _State.CHANGED in (crm, gw):
            self.carry(pair, CRM if crm is _State.CHANGED else GROUPWARE)
        else:
            self.relink_if_needed(pair)

    # --- the cases ---------------------------------------------------------------------------

    def decide_unlinked(self, pair: _Pair[T]) -> None:
        if len(pair.seen) == 2:  # twins: one item on both sides, no link yet
            if self.refused_twin(pair):
                return
            if self.hash(pair, CRM) == self.hash(pair, GROUPWARE):
                self.add(Op.LINK, CRM, pair, reason=f"same item on both sides (by {pair.how})")
            else:
                self.both_changed(pair, f"paired by {pair.how}; ")
            return
        ((side, stored),) = pair.seen.items()
        if not self.direction.leads(side):
            self.skip(side, stored, f"new on {side.value}, which does not lead ({self.direction})")
            return
        waits = self.arrives_elsewhere(stored, side)
        if waits is not None:
            self.skip(side, stored, f"{waits}; paired when it does")
            self.waiting.append((side, stored.id))
            return
        why = self.refusal(stored, side)
        if why is not None:
            self.skip(side, stored, why)
            return
        self.add(Op.CREATE, other(side), pair, source=stored, reason=f"new on {side.value}")

    def arrives_elsewhere(self, stored: Stored[T], side: Side) -> str | None:
        """A meeting organised by another synced user reaches this user's other side through
        that user's sync: in the CRM as a participant's booking (the organiser's sync writes
        the meeting with its participants), in the mailbox as an invitation (when the
        profile invites colleagues). Copying it here too would give this user two; it is
        paired with its twin when that arrives."""
        organizer = (getattr(stored.item, "organizer", "") or "").lower()
        if not organizer or organizer == self.inp.me or organizer not in self.inp.colleagues:
            return None
        if side is GROUPWARE:
            return f"meeting organised by {organizer}, who is synced: it reaches the CRM from there"
        if self.inp.policy.invitations.invites(self.inp.me, self.inp.colleagues):
            return f"meeting organised by {organizer}: the invitation reaches this mailbox"
        return None

    def refused_twin(self, pair: _Pair[T]) -> bool:
        """Twins of which a leading side's item no longer passes the filters: our copy (both
        carry our stamp) goes as for a linked pair; items paired only by content are a
        user's own and are left alone, unpaired."""
        for side, stored in pair.seen.items():
            if not self.direction.leads(side):
                continue
            why = self.refusal(stored, side)
            if why is None or why == OUTSIDE_WINDOW:
                continue
            if pair.how != "stamp" or not self.inp.policy.guard.deletes_enabled:
                self.skip(side, stored, f"{why}; its twin is left as it is")
                return True
            assert stored.correlation_id is not None
            pair.link = LinkSnapshot(stored.correlation_id, None, None)
            for each_side, each in pair.seen.items():
                hashed = self.hash(pair, each_side)
                pair.link = pair.link.with_side(each_side, each.id, each.version, hashed)
            self.add(Op.DELETE, other(side), pair, reason=f"{why}: its copy is removed")
            return True
        return False

    def refusal(self, stored: Stored[T], side: Side) -> str | None:
        return refusal(stored.item, side, self.inp.policy, self.inp.now, self.inp.caps[side])

    def left_the_filters(self, pair: _Pair[T]) -> bool:
        """A linked item that no longer passes the profile's filters (made private, moved out
        of a synced selection or type): its copy goes, as the profile says. Checked on every
        item seen, changed or not: leaving a selection need not change the item's version."""
        link = pair.link
        assert link is not None
        for side, stored in pair.seen.items():
            if not self.direction.leads(side) or is_occurrence_id(link.item_id(side)):
                continue
            why = self.refusal(stored, side)
            if why is None or why == OUTSIDE_WINDOW:
                continue
            copy_side = other(side)
            if link.item_id(copy_side) is None:
                continue
            if not self.inp.policy.guard.deletes_enabled:
                self.skip(side, stored, f"{why}; deletions are switched off, copy kept")
                return True
            self.add(Op.DELETE, copy_side, pair, reason=f"{why}: its copy is removed")
            return True
        return False

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
        # Moved out of the window: its copy follows (an item is never lost by leaving it).
        self.add(Op.UPDATE, target, pair, source=stored, reason=f"changed on {changed.value}")

    def both_changed(self, pair: _Pair[T], prefix: str = "") -> None:
        if self.hash(pair, CRM) == self.hash(pair, GROUPWARE):
            self.add(Op.LINK, CRM, pair, reason=f"{prefix}same change on both sides")
            return
        winner, why = self.winner(pair)
        loser = other(winner)
        self.add(
            Op.UPDATE,
            loser,
            pair,
            source=pair.seen[winner],
            conflict=Conflict(winner, pair.seen[loser], why),
            reason=f"{prefix}conflict: {why}",
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
        kept = pair.seen.get(survivor)
        why = self.refusal(kept, survivor) if kept is not None else None
        if why is not None and why != OUTSIDE_WINDOW and self.direction.leads(survivor):
            # The copy went and the item no longer passes the filters (made private, left
            # the selection): nothing is made again; the pair is let go.
            self.add(Op.FORGET, CRM, pair, reason=f"copy deleted; {why}")
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
            moved = [s for s, st in pair.seen.items() if link.item_id(s) not in (None, st.id)]
            why = f"moved on {moved[0].value}: the link follows" if moved else "versions recorded"
            self.add(Op.LINK, CRM, pair, reason=f"content agrees; {why}")

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
        if self.still_held(op, target, pair):
            return
        if op is Op.LINK:
            source = pair.seen.get(GROUPWARE)
        source_id = source.id if source else (link.item_id(source_side) if link else None)
        target_id = seen.id if seen else (link.item_id(target) if link else None)
        if op is Op.CREATE:
            target_id = None
        version = seen.version if seen else (link.version(target) if link else None)
        shared = None
        if link is None and pair.how == "stamp":
            shared = pair.seen[CRM].correlation_id
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
                conflict=conflict,
                reason=reason,
                shared_stamp=shared,
            )
        )

    def still_held(self, op: Op, target: Side, pair: _Pair[T]) -> bool:
        """A write held earlier (it would have mailed people the profile does not let us
        mail) is not planned again while the target is unchanged and the profile still does
        not allow that mail: the edit stays where it was made, recorded once. Its source is
        read again next run (one read, no write), so that a profile that allows it now, or
        an edit on either side, takes effect then."""
        link = pair.link
        if link is None or op not in (Op.UPDATE, Op.DELETE):
            return False
        needed = held_write(link, op.value, target)
        if needed is None or self.inp.policy.invitations.mode.allows(needed):
            return False
        if self.state(pair, target) is _State.CHANGED:
            return False  # changed there since: decided afresh
        self.skipped.append(
            f"{target.value} {link_id(link, target)}: {op.value} held, it would mail people "
            f"the profile does not let us mail (it needs invitations '{needed.value}'); "
            "make the change there, or allow it in the profile"
        )
        source = link.item_id(other(target))
        if source is not None:
            self.waiting.append((other(target), source))
        return True

    def skip(self, side: Side, stored: Stored[T], why: str) -> None:
        self.skipped.append(f"{side.value} {stored.id}: {why}")


def guard(inp: PlanInput[T], actions: tuple[Action[T], ...]) -> Hold | None:
    """The deletion guard over `actions`: a Hold when they delete too much, or when a side
    listed nothing at all while items are linked."""
    if inp.approve_deletions:
        return None
    deletes = Counter(a.target for a in actions if a.op is Op.DELETE)
    approved = inp.approved_deletions
    if approved is not None and all(n <= approved.get(side, 0) for side, n in deletes.items()):
        return None
    for side in (CRM, GROUPWARE):
        linked = inp.links.linked_counts.get(side, 0)
        if side in inp.listed_nothing and linked > 0:
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
