"""What a run reads and keeps between runs: the cursor of each side (the connector's token,
the window it was made for, the retry list) and one page of a side's changes, with items the
engine cannot work with set aside.

The window is counted in whole UTC days (`daemon.policies.Window`), so a cursor stays valid
all day; a cursor made for another window is not used, and the side is listed afresh.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from common.connectors.base import ChangeSet, CursorExpired, ItemConnector, T, Throttled
from common.items import Appointment, content_hash, overlaps_window
from common.kinds import ItemKind, Stored, Unreadable, Window
from daemon.apply import RunThrottled
from daemon.policies import Policy

MAX_SLEEP = 5.0  # longer throttles end the run as partial, to be rescheduled


@dataclass(slots=True)
class SideCursor:
    """What is kept between runs for one side: the connector's token, the window it was
    made for, and the ids to read again (items that failed, and what a run stopped part-way
    still owed)."""

    token: str | None = None
    window: tuple[str, str] | None = None
    retry: list[str] = field(default_factory=list)
    # Kept by a run stopped part-way: its full listing of the side came back empty, which
    # the guard must still see when the run resumes (the listing is not read again).
    emptied: bool = False
    # Saved by a run stopped part-way (a checkpoint), not by a run that ended.
    partial: bool = False
    # A checkpoint taken while a full listing was under way: the run that finishes it
    # cannot tell which linked items the whole listing missed.
    listing: bool = False
    # So the run after it lists the side afresh, and deletions no delta reports are found.
    relist: bool = False

    @classmethod
    def load(cls, stored: str | None) -> SideCursor:
        if stored is None:
            return cls()
        try:
            data = json.loads(stored)
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("v") != 2:
            return cls(token=stored)  # a token from before the window was kept: list afresh
        window = data.get("window")
        return cls(
            data.get("token"),
            tuple(window) if window else None,
            list(data["retry"]),
            bool(data.get("emptied", False)),
            bool(data.get("partial", False)),
            bool(data.get("listing", False)),
            bool(data.get("relist", False)),
        )

    def dump(self) -> str:
        return json.dumps(
            {
                "v": 2,
                "token": self.token,
                "window": self.window,
                "retry": self.retry,
                "emptied": self.emptied,
                "partial": self.partial,
                "listing": self.listing,
                "relist": self.relist,
            }
        )


def read_changes(
    connector: ItemConnector[T],
    cursor: str | None,
    window: Window | None,
    sleep: Callable[[float], None],
    max_attempts: int = 4,
) -> ChangeSet[T]:
    """One page of the side's changes; an expired cursor falls back to a full listing."""
    for attempt in range(1, max_attempts + 1):
        try:
            try:
                return connector.changes(cursor, window)
            except CursorExpired:
                return replace(connector.changes(None, window), restarted=True)
        except Throttled as exc:
            if attempt == max_attempts or exc.retry_after > MAX_SLEEP:
                raise RunThrottled(exc.retry_after) from exc
            sleep(exc.retry_after)
    raise AssertionError("unreachable")


def screen(page: ChangeSet[T], window: Window | None) -> ChangeSet[T]:
    """Items the engine cannot work with (a rule dateutil cannot read, a date it cannot
    place) are set aside as unreadable here, once, so that no later step fails on them."""
    kept: list[Stored[T]] = []
    bad: list[Unreadable] = []
    for stored in page.upserts:
        item = stored.item
        if isinstance(item, Appointment) and item.recurrence is not None:
            try:
                content_hash(item)
                if window is not None:
                    overlaps_window(item, window.start, window.end)
            except (ValueError, TypeError, OverflowError) as exc:
                bad.append(Unreadable(stored.id, f"series cannot be read: {exc}"))
                continue
        kept.append(stored)
    if not bad:
        return page
    return replace(page, upserts=kept, unreadable=[*page.unreadable, *bad])


def window_of(kind: ItemKind, policy: Policy, now: datetime) -> Window | None:
    if kind is not ItemKind.APPOINTMENT:
        return None
    return Window(*policy.window.bounds(now))


def window_key(window: Window | None) -> tuple[str, str] | None:
    return (window.start.isoformat(), window.end.isoformat()) if window else None
