"""Microsoft Graph's change notifications (`/hooks/microsoft`) and lifecycle notifications
(`/hooks/microsoft/lifecycle`).

- The validation handshake: when a subscription is made, Graph POSTs `?validationToken=…` to
  each URL and wants the token back, decoded, as `text/plain` with 200 within 10 seconds.
- A notification names its subscription and repeats the `clientState` the daemon gave it
  (`daemon.push`); it is believed only when that clientState's SHA-256 is the one kept for
  the subscription. A notification of a subscription we do not know is acknowledged and
  dropped (Graph would only try it again); one whose clientState is wrong is forged: if a
  request holds nothing else it is refused (403) and nothing is queued.
- A change: a sync of the subscription's user and kind (coalesced by the daemon).
- Lifecycle: `reauthorizationRequired` marks the subscription to be renewed and asks for the
  upkeep now; `subscriptionRemoved` marks it to be made again, asks for the upkeep, and syncs
  (changes made meanwhile were not announced); `missed` asks for a reconciliation (the user's
  Microsoft 365 side of that kind listed afresh).
The receiver calls no service itself and answers 202 at once (Graph allows 3 seconds).

Sources: https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks
(validation, clientState, 202, timeouts) and
https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy import select

from checksite.database import db_session
from checksite.extensions import csrf
from checksite.hooks import Refused, answer, push_triggers, raw_json
from common.kinds import ItemKind
from common.models import PushState, PushSubscription
from common.push import hash_state

log = logging.getLogger(__name__)

bp = Blueprint("graph_hooks", __name__, url_prefix="/hooks/microsoft")
csrf.exempt(bp)  # Graph proves itself with the clientState, not a form or a session

MAX_BODY = 1024 * 1024  # a batch of notifications without resource data
MAX_TOKEN = 1024
SERVICE = "graph"


@dataclass(frozen=True)
class Believed:
    subscription: PushSubscription
    item: dict[str, Any]


def _validation() -> Response | None:
    """The handshake's answer when the request is one (None otherwise)."""
    token = request.args.get("validationToken")
    if token is None:
        return None
    if len(token) > MAX_TOKEN:
        return Response("validationToken too long", 400, mimetype="text/plain")
    return Response(token, 200, mimetype="text/plain")


def _received() -> tuple[list[Believed], int]:
    """The notifications of the request we believe, and how many carried a wrong clientState;
    Refused when the body is not a notification collection."""
    _, payload = raw_json(MAX_BODY)
    items = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise Refused(400, "not a notification collection")
    return _believed(items)


def _believed(items: list[dict[str, Any]]) -> tuple[list[Believed], int]:
    """The items whose subscription we know and whose clientState is its own, and how many
    carried a wrong one."""
    ids = {str(item.get("subscriptionId") or "") for item in items} - {""}
    session = db_session()
    known = {
        row.external_id: row
        for row in session.scalars(
            select(PushSubscription).where(
                PushSubscription.service == SERVICE, PushSubscription.external_id.in_(ids)
            )
        )
    }
    believed, forged = [], 0
    for item in items:
        row = known.get(str(item.get("subscriptionId") or ""))
        if row is None:
            continue  # not ours (any more): acknowledged, nothing to do
        given = item.get("clientState")
        if (
            isinstance(given, str)
            and row.client_state_hash
            and hmac.compare_digest(hash_state(given), row.client_state_hash)
        ):
            believed.append(Believed(row, item))
        else:
            forged += 1
    if forged:
        log.warning("%d Graph notification(s) with a wrong clientState dropped", forged)
    return believed, forged


def _refused_or_accepted(believed: list[Believed], forged: int) -> tuple[Response, int]:
    if forged and not believed:
        return answer(403, "clientState not valid")
    return answer(202, "accepted")


@bp.post("")
def notifications() -> Response | tuple[Response, int]:
    handshake = _validation()
    if handshake is not None:
        return handshake
    try:
        believed, forged = _received()
    except Refused as refused:
        return refused.answer
    push = push_triggers()
    if push is not None:
        targets = {(b.subscription.sync_user_id, b.subscription.kind) for b in believed}
        try:
            for user_id, kind in sorted(targets):
                push.enqueue_sync(user_id, ItemKind(kind))
        except Exception:  # the queue is down: the poll syncs the change
            log.exception("could not queue the syncs Graph notifications asked for")
    return _refused_or_accepted(believed, forged)


@bp.post("/lifecycle")
def lifecycle() -> Response | tuple[Response, int]:
    handshake = _validation()
    if handshake is not None:
        return handshake
    try:
        believed, forged = _received()
    except Refused as refused:
        return refused.answer
    session = db_session()
    asks: list[tuple[str, int, ItemKind]] = []
    for each in believed:
        event = str(each.item.get("lifecycleEvent") or "")
        row = each.subscription
        if event == "reauthorizationRequired":
            row.state = PushState.REAUTHORIZE
            asks.append(("upkeep", row.sync_user_id, row.kind))
        elif event == "subscriptionRemoved":
            row.state = PushState.REMOVED
            asks += [("upkeep", row.sync_user_id, row.kind), ("sync", row.sync_user_id, row.kind)]
        elif event == "missed":
            asks.append(("reconcile", row.sync_user_id, row.kind))
    session.commit()
    push = push_triggers()
    if push is not None and asks:
        try:
            if any(what == "upkeep" for what, _, _ in asks):
                push.enqueue_upkeep()
            for what, user_id, kind in asks:
                if what == "sync":
                    push.enqueue_sync(user_id, kind)
                elif what == "reconcile":
                    push.enqueue_reconcile(user_id, kind)
        except Exception:  # the queue is down: the upkeep and the poll come anyway
            log.exception("could not queue what Graph's lifecycle notifications asked for")
    return _refused_or_accepted(believed, forged)
