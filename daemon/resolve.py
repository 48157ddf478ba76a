"""Before planning: turn what a listing could not say into facts, by asking the side.

A listing tells "this item is no longer here", rarely why. The planner may only delete what
is known to be deleted, so every other absence of a linked item is resolved here with one
batched read (`get_many`):

| what the listing showed                                   | resolved as                   |
|-----------------------------------------------------------|-------------------------------|
| removal "deleted"                                         | deleted                       |
| removal "unknown" (Graph calendarView delta) or           | read it: not found → deleted; |
| "left the range", of a linked item                        | found → an edit (moved out)   |
| a full listing without a linked item whose last           | left by time: nothing to do,  |
| occurrence ended before the window                        | its copy stays                |
| a full listing without any other linked item              | read it, as above             |
| a stamped item under a new id, its link's old id not seen | read the old id: not found →  |
|                                                           | it moved (the link follows)   |
| a linked item reported deleted                            | looked up by its stamp: found |
|                                                           | under another id, it moved    |
| an item left on the retry list by an earlier run          | read it again                 |
| an unlinked item of a listing that hides our stamps       | its stamp read: it pairs it   |
| a create interrupted before its link was written          | `find_by_correlation_id`: the |
|                                                           | copy joins its link, whether  |
|                                                           | or not the listing shows the  |
|                                                           | stamp, and is never copied    |
|                                                           | back (no duplicate)           |

Occurrence copies of expanded series (`<series>@@<start>`) are not asked for: they are not
items of the side, and `daemon.expansion` accounts for them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from common.connectors.base import ItemConnector
from common.kinds import (
    ChangeSet,
    LinkSnapshot,
    LinkState,
    Removal,
    RemovalKind,
    Side,
    Stored,
    T,
    Window,
)
from daemon.engine import LinkIndex, is_occurrence_id


@dataclass(slots=True)
class Resolution:
    lookups: int = 0  # items read to resolve


def resolve(
    side: Side,
    changes: ChangeSet[T],
    connector: ItemConnector[T],
    links: LinkIndex,
    window: Window | None,
    *,
    missing: Iterable[LinkSnapshot] = (),
    retry: Iterable[str] = (),
    report: Resolution | None = None,
    recover: bool = True,
) -> ChangeSet[T]:
    """`changes` with every removal known to be a deletion, every item that only left the
    listing as an upsert, and moves made visible. `missing`: linked items a completed full
    listing did not show; `retry`: ids an earlier run could not finish; `recover`: look
    interrupted creates up (once a run)."""
    report = report if report is not None else Resolution()
    upserts = list(changes.upserts)
    present = {s.id for s in upserts}
    removals: list[Removal] = []
    ask: list[str] = []
    for removal in changes.removals:
        if removal.id in present:
            continue
        linked = links.by_id[side].get(removal.id)
        if removal.kind is RemovalKind.DELETED:
            removals.append(removal)
        elif linked is not None and not is_occurrence_id(removal.id):
            ask.append(removal.id)
    for link in missing:
        item_id = link.item_id(side)
        if item_id is None or item_id in present or is_occurrence_id(item_id):
            continue
        if window is not None and link.span_end is not None and link.span_end <= window.start:
            continue  # left the window by time: not synced any more, its copy stays
        ask.append(item_id)
    for stored in upserts:  # a stamped item under a new id: did the old one go?
        if stored.correlation_id is None:
            continue
        claimed = links.by_cid.get(stored.correlation_id)
        old = (
            claimed.item_id(side) if claimed and claimed.state is not LinkState.TOMBSTONE else None
        )
        reported = any(r.id == old for r in removals)
        if old is not None and old != stored.id and old not in present and not reported:
            ask.append(old)
    for link in links.pending() if recover else ():  # a create that may have happened
        if link.pending_action != f"create_{side.value}" or link.item_id(side) is not None:
            continue
        report.lookups += 1
        found = connector.find_by_correlation_id(link.correlation_id)
        if found is not None:
            stamped = dataclasses.replace(found, correlation_id=link.correlation_id)
            upserts = [s for s in upserts if s.id != found.id] + [stamped]
            present.add(found.id)
    if not getattr(connector, "stamps_in_listing", True):
        # The listing hides our stamps (Graph delta cannot expand extended properties): an
        # item no link knows by id is read, so a re-link pairs it by its stamp, not by luck.
        unknown = [
            s.id for s in upserts if s.correlation_id is None and s.id not in links.by_id[side]
        ]
        if unknown:
            report.lookups += len(unknown)
            held = {i: cid for i, cid in connector.stamps_of(unknown).items() if cid}
            upserts = [
                dataclasses.replace(s, correlation_id=held[s.id]) if s.id in held else s
                for s in upserts
            ]
    ask += [item_id for item_id in retry if item_id not in present]
    ask = list(dict.fromkeys(ask))
    if ask:
        report.lookups += len(ask)
        for item_id, found in connector.get_many(ask).items():
            if found is None:
                if links.by_id[side].get(item_id) is not None:
                    removals.append(Removal(item_id, RemovalKind.DELETED))
            elif found.id not in present:
                upserts.append(found)
                present.add(found.id)
    upserts += moved_elsewhere(side, upserts, removals, connector, links, report)
    return dataclasses.replace(changes, upserts=upserts, removals=removals)


def moved_elsewhere(
    side: Side,
    upserts: Sequence[Stored[T]],
    removals: Iterable[Removal],
    connector: ItemConnector[T],
    links: LinkIndex,
    report: Resolution,
) -> list[Stored[T]]:
    """A linked item reported deleted (or not found under its id) may only have moved
    where the listing does not look (another folder, out of the window): asked by its stamp,
    it is found, and returned with the stamp so the link follows it; only what cannot be
    found is deleted (and only that can beat an edit)."""
    present = {s.id for s in upserts}
    stamps = {s.correlation_id for s in upserts if s.correlation_id}
    found: list[Stored[T]] = []
    for removal in removals:
        gone_link = links.by_id[side].get(removal.id)
        if gone_link is None or is_occurrence_id(removal.id):
            continue
        cid = gone_link.correlation_id
        if cid in stamps:
            continue
        report.lookups += 1
        moved = connector.find_by_correlation_id(cid)
        if moved is not None and moved.id != removal.id and moved.id not in present:
            found.append(dataclasses.replace(moved, correlation_id=cid))
            present.add(moved.id)
            stamps.add(cid)
    return found


def missing_from_listing(
    side: Side, links: Iterable[LinkSnapshot], seen: set[str]
) -> list[LinkSnapshot]:
    """Live links whose item on `side` a completed full listing did not show."""
    return [
        link
        for link in links
        if link.state is not LinkState.TOMBSTONE
        and link.item_id(side) is not None
        and link.item_id(side) not in seen
    ]
