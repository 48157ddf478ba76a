"""SuperOffice webhooks: what a subscription is called, how a notification is signed, and
what one says.

A notification is a POST whose `X-SuperOffice-Signature` is base64(HMAC-SHA256(Secret, raw
body)); it is checked over the raw bytes, in constant time, before anything in the body is
believed. The body names the subscription (`WebhookName`, ours are `synchronizer-profile-<id>`,
so the receiver knows whose secret to check with), the event (`activity.changed`, …), the
record's id and, in `FieldValues` (`Values` for a delete), only ids and non-sensitive fields:
the receiver records it, and the daemon reads the record through the API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from common.connectors.superoffice.client import SuperOfficeClient

NAME_PREFIX = "synchronizer-profile-"
EVENTS = (
    "activity.created", "activity.changed", "activity.deleted",
    "person.created", "person.changed", "person.softdeleted", "person.deleted",
    "contact.changed", "contact.softdeleted", "contact.deleted",
)  # fmt: skip
_NAME = re.compile(rf"^{re.escape(NAME_PREFIX)}(\d+)$")


class BadNotification(ValueError):
    """A body that is not a SuperOffice notification."""


def webhook_name(profile_id: int) -> str:
    return f"{NAME_PREFIX}{profile_id}"


def profile_of(name: Any) -> int | None:
    match = _NAME.match(str(name or ""))
    return int(match.group(1)) if match else None


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(secret: str, body: bytes, given: str) -> bool:
    return bool(secret) and hmac.compare_digest(signature(secret, body), given.strip())


@dataclass(frozen=True)
class Notification:
    event_id: str
    event: str
    entity: str
    primary_key: int | None
    associate_id: int | None  # the record's owner, where the event names one
    changed_by: int | None
    timestamp: datetime | None
    context: str
    payload: dict[str, Any]

    @property
    def is_test(self) -> bool:
        return self.event == "test"


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse(payload: Any) -> Notification:
    if not isinstance(payload, dict):
        raise BadNotification("the body is not a JSON object")
    event_id, event = str(payload.get("EventId") or ""), str(payload.get("Event") or "")
    if not event_id or len(event_id) > 64 or not event or len(event) > 64:
        raise BadNotification("EventId and Event are required")
    values = payload.get("FieldValues") or payload.get("Values") or {}
    if not isinstance(values, dict):
        raise BadNotification("FieldValues must be an object")
    return Notification(
        event_id=event_id,
        event=event,
        entity=str(payload.get("Entity") or event.split(".")[0])[:32],
        primary_key=_int(payload.get("PrimaryKey")),
        associate_id=_int(values.get("associate_id")),
        changed_by=_int(payload.get("ChangedByAssociateId")),
        timestamp=_time(payload.get("Timestamp")),
        context=str(payload.get("ContextIdentifier") or ""),
        payload=payload,
    )


def subscribe(
    client: SuperOfficeClient, target_url: str, secret: str, profile_id: int
) -> dict[str, Any]:
    """Register our receiver for the events the sync listens to (SuperOffice POSTs a test
    notification first, which the receiver must answer 200)."""
    body = {
        "Name": webhook_name(profile_id),
        "Events": list(EVENTS),
        "TargetUrl": target_url,
        "Secret": secret,
        "Type": "webhook",
        "State": "Active",
    }
    created: dict[str, Any] = client.request("POST", "/Webhook", json=body).json()
    return created


def ensure(
    client: SuperOfficeClient,
    target_url: str,
    secret: str,
    profile_id: int,
    *,
    new_secret: bool = False,
) -> str:
    """Our subscription registered, active, at `target_url`, for our events, signed with
    `secret`: "made", "updated" (it had stopped, moved or lost events, or the secret is
    `new_secret`; SuperOffice stops a webhook after nine failed deliveries until someone
    sets it Active again) or "ok". Copies under our name beyond the first are deleted (each
    would deliver every event)."""
    name = webhook_name(profile_id)
    ours = [h for h in client.get("/Webhook") or [] if h.get("Name") == name]
    if not ours:
        subscribe(client, target_url, secret, profile_id)
        return "made"
    hook, extra = ours[0], ours[1:]
    for copy in extra:
        client.request("DELETE", f"/Webhook/{copy['WebhookId']}")
    wanted = {"TargetUrl": target_url, "State": "Active", "Events": sorted(EVENTS)}
    current = {
        "TargetUrl": hook.get("TargetUrl"),
        "State": hook.get("State"),
        "Events": sorted(hook.get("Events") or []),
    }
    if current == wanted and not new_secret:
        return "ok"
    body = {**hook, **wanted, "Secret": secret}
    client.request("PUT", f"/Webhook/{hook['WebhookId']}", json=body)
    return "updated"
