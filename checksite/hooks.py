"""Push receivers: services announcing changes (`/hooks/...`).

`POST /hooks/superoffice` takes SuperOffice's webhook notifications. The signature is checked
over the raw body with the secret of the profile the subscription belongs to (its name says
which), before anything in the body is believed; an Online tenant's notification must come
from the profile's own tenant. A good one is recorded (`WebhookEvent`), a sync of each user
and kind it concerns is queued (`checksite.push_targets`; coalesced by the daemon, so ten
notifications in a second are one sync) and the row is marked processed; the answer is 200
at once: the receiver calls no service. An EventId already recorded (SuperOffice
trying again after a lost answer, or a captured request replayed) and a notification older
than `MAX_AGE` (older than the recorded EventIds are kept) are acknowledged and not recorded:
a refusal would count as a failed delivery and, nine in a row, stop the subscription.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from checksite.database import db_session
from checksite.extensions import csrf
from checksite.push_targets import superoffice_targets
from common.connectors.superoffice import webhooks
from common.kinds import ItemKind
from common.models import CrmKind, Profile, WebhookEvent
from common.push import PushTriggers

log = logging.getLogger(__name__)

bp = Blueprint("hooks", __name__, url_prefix="/hooks")
csrf.exempt(bp)  # services sign their requests; there is no form or session here

MAX_BODY = 64 * 1024  # notifications carry ids only: a few hundred bytes
MAX_AGE = timedelta(days=1)
SUPEROFFICE = (CrmKind.SUPEROFFICE_ONLINE, CrmKind.SUPEROFFICE_ONSITE)


def answer(status: int, outcome: str) -> tuple[Response, int]:
    return jsonify(outcome=outcome), status


class Refused(Exception):
    """A body the receiver will not read: `answer` says why, with its status."""

    def __init__(self, status: int, outcome: str) -> None:
        super().__init__(outcome)
        self.answer = answer(status, outcome)


def raw_json(max_body: int) -> tuple[bytes, Any]:
    """The request's raw body (signatures are over these bytes) and its JSON; Refused when it
    is larger than `max_body` (whatever Content-Length claims) or not JSON."""
    if (request.content_length or 0) > max_body:
        raise Refused(413, "too large")
    raw = request.get_data(cache=False)
    if len(raw) > max_body:
        raise Refused(413, "too large")
    try:
        return raw, json.loads(raw)
    except ValueError:
        raise Refused(400, "not JSON") from None


@bp.post("/superoffice")
def superoffice() -> tuple[Response, int]:
    try:
        raw, payload = raw_json(MAX_BODY)
    except Refused as refused:
        return refused.answer
    profile_id = webhooks.profile_of(
        payload.get("WebhookName") if isinstance(payload, dict) else None
    )
    session = db_session()
    profile = (
        session.scalars(
            select(Profile).where(Profile.id == profile_id, Profile.crm_kind.in_(SUPEROFFICE))
        ).first()
        if profile_id is not None
        else None
    )
    secret = str(((profile.crm_credentials or {}) if profile else {}).get("webhook_secret") or "")
    signed = request.headers.get("X-SuperOffice-Signature", "")
    if profile is None or not webhooks.verify(secret, raw, signed):
        return answer(401, "signature not valid")
    try:
        note = webhooks.parse(payload)
    except webhooks.BadNotification as exc:
        return answer(400, str(exc))
    if note.is_test:  # the registration's test POST (it names no tenant)
        return answer(200, "test received")
    online = profile.crm_kind is CrmKind.SUPEROFFICE_ONLINE
    if online and note.context.lower() != (profile.crm_tenant or "").lower():
        return answer(400, "another tenant's notification")
    now = datetime.now(UTC)
    if note.timestamp is not None and now - note.timestamp > MAX_AGE:
        return answer(200, "too old, not recorded")
    event = WebhookEvent(
        profile_id=profile.id,
        source="superoffice",
        event_id=note.event_id,
        event=note.event,
        entity=note.entity,
        primary_key=note.primary_key,
        associate_id=note.associate_id,
        changed_by=note.changed_by,
        occurred_at=note.timestamp,
        received_at=now,
        payload=note.payload,
    )
    session.add(event)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return answer(200, "already recorded")
    if _queue_syncs(superoffice_targets(session, profile.id, note)):
        event.processed_at = datetime.now(UTC)
        session.commit()
    return answer(200, "recorded")


def push_triggers() -> PushTriggers | None:
    return current_app.extensions.get("push")


def _queue_syncs(targets: list[tuple[int, ItemKind]]) -> bool:
    """Ask the daemon for each sync; False when it cannot be asked (the row then waits, and
    the poll syncs the change at the user's next interval)."""
    push = push_triggers()
    if push is None:
        return False
    try:
        for user_id, kind in targets:
            push.enqueue_sync(user_id, kind)
    except Exception:  # the queue is down: the notification is recorded, the poll remains
        log.exception("could not queue the syncs a notification asked for")
        return False
    return True
