"""Graph change notifications: a user's subscriptions to their calendar and our contact folder.

A subscription is made (`POST /subscriptions`) with the URL Graph posts change notifications
to, the URL it posts lifecycle notifications to, a `clientState` secret it repeats in every
notification (how the receiver tells Graph's notifications from forged ones) and an expiry:
Outlook resources live at most 10,080 minutes, so the daemon renews them (`PATCH` with a new
`expirationDateTime`). Before creating one Graph validates each URL (it posts a
`validationToken` that must come back as plain text within 10 seconds): the web app must be
reachable at `public_url` when a subscription is made or its URL changed. Renewing also
answers a `reauthorizationRequired` lifecycle notification; `delete` ends one.

Sources: https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks,
https://learn.microsoft.com/en-us/graph/api/subscription-post-subscriptions (maximum lifetime
per resource), https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from common.connectors.base import NotFound
from common.connectors.graph.client import Call, GraphClient, check
from common.connectors.graph.delta import item_path

MAX_LIFETIME = timedelta(minutes=10_080)  # Outlook events and contacts: under seven days
CHANGE_TYPES = "created,updated,deleted"


def events_resource() -> str:
    return "me/events"


def contacts_resource(folder_id: str) -> str:
    return f"me/contactFolders/{item_path(folder_id)}/contacts"


@dataclass(frozen=True)
class Made:
    subscription_id: str
    expires_at: datetime


def _expiry(value: object, asked: datetime) -> datetime:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return asked  # Graph answered without a readable expiry: what we asked for


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def create(
    client: GraphClient,
    resource: str,
    *,
    notification_url: str,
    lifecycle_url: str,
    client_state: str,
    expires_at: datetime,
) -> Made:
    body = {
        "changeType": CHANGE_TYPES,
        "resource": resource,
        "notificationUrl": notification_url,
        "lifecycleNotificationUrl": lifecycle_url,
        "clientState": client_state,
        "expirationDateTime": _stamp(expires_at),
    }
    call = Call("POST", "/subscriptions", body)
    made = check(call, client.send([call])[0]).json()
    return Made(str(made["id"]), _expiry(made.get("expirationDateTime"), expires_at))


def renew(client: GraphClient, subscription_id: str, expires_at: datetime) -> datetime:
    """A new expiry (renewing also reauthorizes); NotFound when Graph no longer has it."""
    call = Call(
        "PATCH",
        f"/subscriptions/{item_path(subscription_id)}",
        {"expirationDateTime": _stamp(expires_at)},
    )
    answer = check(call, client.send([call])[0]).json()
    return _expiry(answer.get("expirationDateTime"), expires_at)


def delete(client: GraphClient, subscription_id: str) -> None:
    """End it; one Graph no longer has is ended already."""
    call = Call("DELETE", f"/subscriptions/{item_path(subscription_id)}")
    with contextlib.suppress(NotFound):
        check(call, client.send([call])[0])
