"""Series for a side that cannot hold their rule: expanded to single occurrences in the window.

Series map to series wherever both sides can express the rule. When the receiving side cannot
(`AppointmentConnector.can_express` says no), the series is replaced, before planning, by one
item per occurrence inside the window, with ids `<series id>@@<original start>`; the planner
then treats them as ordinary items. The expansion is one-way: edits made to such a copied
occurrence are not carried back into the series (the series side leads), and each run says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import cast

from common.connectors.base import ChangeSet, ItemConnector, Removal, Stored, T
from common.items import Appointment, Recurrence, as_single, occurrence_key, occurrences
from common.kinds import ItemKind, Side, Unreadable
from daemon.engine import OCCURRENCE_SEPARATOR, other
from daemon.policies import Policy
from daemon.store import SyncStore


def expand_series(
    kind: ItemKind,
    changes: Mapping[Side, ChangeSet[T]],
    connectors: Mapping[Side, ItemConnector[T]],
    store: SyncStore,
    policy: Policy,
    now: datetime,
) -> tuple[dict[Side, ChangeSet[T]], list[str]]:
    """The change sets with series expanded where their target needs it, and notes saying so."""
    result = dict(changes)
    notes: list[str] = []
    if kind is not ItemKind.APPOINTMENT:
        return result, notes
    window = policy.window.bounds(now)
    for side in (Side.CRM, Side.GROUPWARE):
        can_express = cast(
            Callable[[Recurrence], bool] | None,
            getattr(connectors[other(side)], "can_express", None),
        )
        if can_express is None:
            continue
        result[side] = cast(
            ChangeSet[T],
            _expand_side(
                side, cast(ChangeSet[Appointment], result[side]), can_express, store, window, notes
            ),
        )
    return result, notes


def _expand_side(
    side: Side,
    changes: ChangeSet[Appointment],
    can_express: Callable[[Recurrence], bool],
    store: SyncStore,
    window: tuple[datetime, datetime],
    notes: list[str],
) -> ChangeSet[Appointment]:
    upserts: list[Stored[Appointment]] = []
    removals = list(changes.removals)
    unreadable: list[Unreadable] = []
    touched = False
    for stored in changes.upserts:
        rec = stored.item.recurrence
        if rec is None or can_express(rec):
            upserts.append(stored)
            continue
        touched = True
        try:
            expanded = _occurrences(stored, window)
        except (ValueError, TypeError, OverflowError) as exc:
            # One series dateutil cannot expand never stops the run: it is recorded and
            # read again next time; its occurrence copies are left as they are.
            unreadable.append(Unreadable(stored.id, f"series cannot be expanded: {exc}"))
            continue
        upserts += expanded
        notes.append(
            f"{side.value} series {stored.id} ({rec.rule}) cannot be expressed on "
            f"{other(side).value}: expanded to {len(expanded)} occurrences in the window"
        )
        present = {s.id for s in expanded}
        for link in store.links_with_prefix(ItemKind.APPOINTMENT, side, _prefix(stored.id)):
            linked_id = link.item_id(side)
            if linked_id is None or linked_id in present:
                continue
            # Gone from the series only if it would fall inside the window: an occurrence
            # that the moving window left behind keeps its copy.
            if link.span_end is not None and link.span_end <= window[0]:
                continue
            removals.append(Removal(linked_id))
    for removal in changes.removals:
        for link in store.links_with_prefix(ItemKind.APPOINTMENT, side, _prefix(removal.id)):
            linked_id = link.item_id(side)
            if linked_id is not None:
                touched = True
                removals.append(Removal(linked_id, removal.kind))
    if not touched:
        return changes
    return dataclasses.replace(
        changes,
        upserts=upserts,
        removals=removals,
        unreadable=[*changes.unreadable, *unreadable],
    )


def _occurrences(
    stored: Stored[Appointment], window: tuple[datetime, datetime]
) -> list[Stored[Appointment]]:
    series = stored.item
    found = []
    for occ in occurrences(series, *window):
        single = as_single(series, occ)  # the occurrence's own values, every field
        item_id = f"{_prefix(stored.id)}{occurrence_key(occ.original_start)}"
        found.append(Stored(item_id, stored.version, single, None))
    return found


def _prefix(series_id: str) -> str:
    return f"{series_id}{OCCURRENCE_SEPARATOR}"
