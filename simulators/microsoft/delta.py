"""Graph delta queries over a mailbox: @odata.nextLink pages, @odata.deltaLink states, removals,
and 410 syncStateNotFound for an unknown or expired state (or a `delta_expired` fault).

Items carry `@odata.type`; `@removed` is reported for items deleted or moved out of the window
since the token, whether or not the client ever saw them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from flask import Response, request

from simulators.microsoft.errors import GraphError
from simulators.microsoft.graph_common import (
    client_id,
    json_response,
    link,
    metadata,
    page_size,
    prefer,
)
from simulators.microsoft.mailbox import EVENTS, DeltaState, Mailbox, PageState
from simulators.platform.control import claim_fault

# Outlook pages delta answers in tens unless `Prefer: odata.maxpagesize` says otherwise.
DEFAULT_PAGE_SIZE = 10

Snapshot = Callable[..., list[tuple[str, int, dict]]]
Touched = Callable[[int], set[str]]  # ids of items changed after a change counter value
_ODATA_TYPES = {"events": "#microsoft.graph.event", "contacts": "#microsoft.graph.contact"}


def sync_state_not_found() -> GraphError:
    return GraphError(
        410,
        "syncStateNotFound",
        "The sync state generation is not found. Delete the sync state and start again.",
    )


def _changes_since(
    mailbox: Mailbox, state: DeltaState, snapshot: Snapshot, touched: Touched | None
) -> PageState:
    seq = mailbox.seq
    current = snapshot(*state.window) if state.window else snapshot()
    ids = {item_id for item_id, _, _ in current}
    changed = [
        body
        for item_id, item_seq, body in current
        if item_seq > state.seq or item_id not in state.seen
    ]
    # Removed: what the client saw and is gone, but also (Outlook does not know what the client
    # saw) whatever was deleted or changed out of the window since the token.
    gone = state.seen | mailbox.removed_since(state.seq, state.scope)
    if touched is not None:
        gone |= touched(state.seq)
    removed = [
        {
            "@odata.type": _ODATA_TYPES[state.kind],
            "id": client_id(item_id),
            "@removed": {"reason": "deleted"},
        }
        for item_id in sorted(gone - ids)
    ]
    final = DeltaState(state.kind, seq, frozenset(ids), state.window, state.scope)
    return PageState(changed + removed, final)


def _initial(
    mailbox: Mailbox,
    kind: str,
    snapshot: Snapshot,
    window: Callable[[], tuple[datetime, datetime]] | None,
    scope: str,
) -> PageState:
    bounds = window() if window else None
    seq = mailbox.seq
    current = snapshot(*bounds) if bounds else snapshot()
    ids = frozenset(item_id for item_id, _, _ in current)
    state = DeltaState(kind, seq, ids, bounds, scope)
    return PageState([body for _, _, body in current], state)


def delta_response(
    mailbox: Mailbox,
    kind: str,
    snapshot: Snapshot,
    window: Callable[[], tuple[datetime, datetime]] | None = None,
    touched: Touched | None = None,
    scope: str = EVENTS,
) -> Response:
    """`scope`: whose deletions the state reports (events, or one contact folder's contacts);
    a token of another scope is unknown here."""
    skip_token = request.args.get("$skiptoken")
    delta_token = request.args.get("$deltatoken")
    if (skip_token or delta_token) and claim_fault("delta_expired"):
        mailbox.forget_sync_states()
        raise sync_state_not_found()
    if skip_token:
        page = mailbox.pages.get(skip_token)
        if page is None or page.final.kind != kind or page.final.scope != scope:
            raise sync_state_not_found()
    elif delta_token:
        state = mailbox.delta_states.get(delta_token)
        if state is None or state.kind != kind or state.scope != scope:
            raise sync_state_not_found()
        page = _changes_since(mailbox, state, snapshot, touched)
    else:
        page = _initial(mailbox, kind, snapshot, window, scope)

    size = page_size(DEFAULT_PAGE_SIZE)
    chunk, rest = page.items[:size], page.items[size:]
    entity = "event" if kind == "events" else "contact"
    payload: dict = {"@odata.context": metadata(f"Collection({entity})"), "value": chunk}
    if rest:
        payload["@odata.nextLink"] = link(
            request.path, {"$skiptoken": mailbox.save_page(PageState(rest, page.final))}
        )
    else:
        payload["@odata.deltaLink"] = link(
            request.path, {"$deltatoken": mailbox.save_delta_state(page.final)}
        )
    headers = {}
    if prefer("odata.maxpagesize"):
        headers["Preference-Applied"] = f"odata.maxpagesize={size}"
    return json_response(payload, headers=headers)
