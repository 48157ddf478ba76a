"""SyncFolderItems passes over one folder, and the cursors the engine keeps for them.

A cursor is Exchange's SyncState (kept by the engine between runs; a page read again later
goes on from where it was, whatever changed meanwhile) and whether the pass is still the
first, full one. Pages are asked for with `IdOnly`: SyncFolderItems, like FindItem, cannot
return bodies, attendees or a series' occurrences, so each kind reads the items a page
names with GetItem, many per call.

What the first pass shows: every item of the folder once, and an item changed while the
pass is read again later in the same pass (Exchange's sync state remembers which change of
each item the client has), so nothing changed during a listing is lost, and the delta after
it starts where the listing ended.

Sources: SyncFolderItems (https://learn.microsoft.com/exchange/client-developer/
web-service-reference/syncfolderitems-operation: "similar to the FindItem operation in
that it cannot return properties like Body or Attachments"), MaxChangesReturned 1..512
(…/maxchangesreturned), and ErrorInvalidSyncStateData (the ResponseCode reference).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from exchangelib.services import SyncFolderItems

from common.connectors.base import CursorExpired
from common.connectors.ews.client import EwsClient, translated

MAX_CHANGES = 512  # the most SyncFolderItems returns in one answer
_VERSION = 1


@dataclass(frozen=True, slots=True)
class Pass:
    state: str | None = None
    full: bool = True

    def encode(self) -> str:
        return json.dumps({"v": _VERSION, "state": self.state, "full": self.full})

    @classmethod
    def decode(cls, cursor: str) -> Pass:
        """A cursor we made; anything else is expired (listed afresh), never guessed at."""
        try:
            data = json.loads(cursor)
            if not isinstance(data, dict) or data.get("v") != _VERSION or not data.get("state"):
                raise ValueError("not an EWS sync cursor")
            return cls(str(data["state"]), bool(data.get("full", False)))
        except (ValueError, TypeError) as exc:
            raise CursorExpired(f"not a cursor of this connector: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # "create" | "update" | "delete"
    item_id: str
    change_key: str | None


@dataclass(frozen=True, slots=True)
class Page:
    changes: list[Change]
    after: Pass
    more: bool
    full: bool  # the page belongs to the first, full pass


def sync_page(client: EwsClient, folder: Any, cursor: str | None, page_size: int) -> Page:
    """One SyncFolderItems answer from `cursor` (None: the first pass)."""
    if not 1 <= page_size <= MAX_CHANGES:
        raise ValueError(f"a page of {page_size} changes: EWS takes 1 to {MAX_CHANGES}")
    state = Pass() if cursor is None else Pass.decode(cursor)
    client.release  # noqa: B018 (a server we do not support is refused before reading)
    service = SyncFolderItems(account=client.account)
    with translated():
        answers = list(
            service.call(
                folder=folder,
                shape="IdOnly",
                additional_fields=set(),
                sync_state=state.state,
                ignore=None,
                max_changes_returned=page_size,
                sync_scope=None,
            )
        )
    changes: list[Change] = []
    for kind, item in answers:
        if kind not in ("create", "update", "delete"):
            continue  # read-flag changes: mail only
        changes.append(Change(kind, str(item.id), getattr(item, "changekey", None)))
    new_state = service.sync_state or state.state
    last = bool(service.includes_last_item_in_range)
    if not last and not changes and new_state == state.state:
        last = True  # Exchange answered no progress: the pass is over, not endless
    more = not last
    return Page(changes, Pass(new_state, state.full and more), more, state.full)
