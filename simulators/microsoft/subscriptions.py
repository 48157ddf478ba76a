"""Graph `/subscriptions` for Outlook events and contacts (change notifications by webhook).

Creating one validates the notificationUrl (and the lifecycleNotificationUrl) with the
validation-token handshake before anything is stored; `clientState` is required here, as the
webhooks guide says; `expirationDateTime` must be in the future and at most 10,080 minutes away
(Outlook's maximum). PATCH renews (and reauthorizes), `POST /subscriptions/{id}/reauthorize`
answers a reauthorizationRequired challenge, DELETE ends it; an expired subscription is gone.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from flask import Response, current_app

from simulators.microsoft.errors import GraphError
from simulators.microsoft.graph_common import (
    Caller,
    bp,
    caller,
    immutable_ids,
    json_body,
    json_response,
    metadata,
    require,
)
from simulators.microsoft.notifications import Notifier, Subscription
from simulators.microsoft.timezones import parse_query_time

MAX_MINUTES = 10_080  # Outlook message, event, contact: under seven days
CHANGE_TYPES = ("created", "updated", "deleted")
_RESOURCE = re.compile(
    r"/?(?:me|users/(?P<user>[^/]+))/(?:(?:calendar|calendars/[^/]+)/)?(?P<events>events)$"
    r"|/?(?:me|users/(?P<cuser>[^/]+))/(?:contactFolders/[^/]+/)?(?P<contacts>contacts)$",
    re.IGNORECASE,
)
_PERMISSIONS = {
    "events": ("Calendars.Read", "Calendars.ReadWrite"),
    "contacts": ("Contacts.Read", "Contacts.ReadWrite"),
}


def notifier() -> Notifier:
    return current_app.extensions["microsoft_notifications"]


def _bad(message: str, code: str = "InvalidRequest") -> GraphError:
    return GraphError(400, code, message)


def _context() -> str:
    return metadata("subscriptions")


def _check_url(url: object, name: str) -> str:
    if not isinstance(url, str) or not url:
        raise _bad(f"{name} is required.")
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    plain_ok = loopback and current_app.config["GRAPH_NOTIFICATIONS_ALLOW_LOOPBACK_HTTP"]
    if parts.scheme != "https" and not (parts.scheme == "http" and plain_ok):
        raise _bad(f"Invalid {name} '{url}': the URL must use https.")
    return url


def _expiration(value: object) -> datetime:
    if not isinstance(value, str):
        raise _bad("expirationDateTime is required.")
    try:
        when = parse_query_time(value)
    except (GraphError, ValueError):
        raise _bad(f"Invalid expirationDateTime '{value}'.") from None
    now = datetime.now(UTC)
    if when <= now:
        raise _bad("Subscription expiration must be in the future.")
    if when > now + timedelta(minutes=MAX_MINUTES):
        raise _bad(f"Subscription expiration can only be {MAX_MINUTES} minutes in the future.")
    return when


def _target(who: Caller, resource: object) -> tuple[str, str]:
    """(kind, user id) of a subscribable resource the caller may read."""
    match = _RESOURCE.fullmatch(str(resource or "").strip())
    if match is None:
        raise _bad(f"Resource '{resource}' is not supported for change notifications.")
    kind = "events" if match.group("events") else "contacts"
    user_key = match.group("user") or match.group("cuser")
    if user_key is None:
        if who.user is None:
            raise _bad("/me request is only valid with delegated authentication flow.")
        user = who.user
    else:
        user = who.tenant.user(user_key)
        if user is None:
            raise GraphError(
                404, "ErrorInvalidUser", f"The requested user '{user_key}' is invalid."
            )
    if who.user is not None and who.user.id != user.id:
        raise GraphError(403, "ExtensionError", "Access is denied to the requested resource.")
    require(_PERMISSIONS[kind], _PERMISSIONS[kind])
    if not user.has_mailbox:
        raise GraphError(
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        )
    return kind, user.id


def _creator(who: Caller) -> str:
    return who.user.id if who.user is not None else who.app_id


def _mine(sub_id: str) -> Subscription:
    who = caller()
    sub = notifier().get(sub_id)
    if sub is None or sub.app_id != who.app_id or sub.tenant_id != who.tenant.id:
        raise GraphError(404, "ResourceNotFound", f"The object '{sub_id}' doesn't exist.")
    if who.user is not None and sub.creator_id != who.user.id:
        raise GraphError(403, "ExtensionError", "Access is denied to the requested resource.")
    return sub


@bp.post("/subscriptions")
def create_subscription() -> Response:
    who = caller()
    body = json_body()
    kind, user_id = _target(who, body.get("resource"))
    types = tuple(t.strip() for t in str(body.get("changeType") or "").split(",") if t.strip())
    if not types or any(t not in CHANGE_TYPES for t in types):
        raise _bad(f"Invalid changeType '{body.get('changeType')}'.")
    client_state = body.get("clientState")
    if not isinstance(client_state, str) or not client_state or len(client_state) > 128:
        raise _bad("clientState is required (at most 128 characters).")
    url = _check_url(body.get("notificationUrl"), "notificationUrl")
    lifecycle = body.get("lifecycleNotificationUrl")
    if lifecycle is not None:
        lifecycle = _check_url(lifecycle, "lifecycleNotificationUrl")
    expiration = _expiration(body.get("expirationDateTime"))
    for endpoint in filter(None, (url, lifecycle)):
        problem = notifier().validate_endpoint(endpoint)
        if problem is not None:
            raise _bad(f"Subscription validation request failed for '{endpoint}': {problem}.")
    sub = Subscription(
        id=str(uuid.uuid4()),
        resource=str(body["resource"]),
        kind=kind,
        user_id=user_id,
        tenant_id=who.tenant.id,
        app_id=who.app_id,
        creator_id=_creator(who),
        change_types=types,
        notification_url=url,
        lifecycle_url=lifecycle,
        client_state=client_state,
        expiration=expiration,
        immutable_ids=immutable_ids(),
    )
    notifier().add(sub)
    return json_response({"@odata.context": f"{_context()}/$entity", **sub.as_json()}, 201)


@bp.get("/subscriptions")
def list_subscriptions() -> Response:
    who = caller()
    creator = who.user.id if who.user is not None else None
    found = notifier().of_app(who.app_id, who.tenant.id, creator)
    return json_response({"@odata.context": _context(), "value": [s.as_json() for s in found]})


@bp.get("/subscriptions/<sub_id>")
def get_subscription(sub_id: str) -> Response:
    sub = _mine(sub_id)
    return json_response({"@odata.context": f"{_context()}/$entity", **sub.as_json()})


@bp.patch("/subscriptions/<sub_id>")
def renew_subscription(sub_id: str) -> Response:
    sub = _mine(sub_id)
    body = json_body()
    unknown = set(body) - {"expirationDateTime", "notificationUrl"}
    if unknown:
        raise _bad(
            f"Only expirationDateTime and notificationUrl can be updated: {sorted(unknown)}."
        )
    expiration = _expiration(body.get("expirationDateTime"))
    if "notificationUrl" in body:
        url = _check_url(body["notificationUrl"], "notificationUrl")
        problem = notifier().validate_endpoint(url)
        if problem is not None:
            raise _bad(f"Subscription validation request failed for '{url}': {problem}.")
        sub.notification_url = url
    sub.expiration = expiration
    sub.needs_reauthorization = False  # renewing also reauthorizes
    return json_response({"@odata.context": f"{_context()}/$entity", **sub.as_json()})


@bp.post("/subscriptions/<sub_id>/reauthorize")
def reauthorize_subscription(sub_id: str) -> Response:
    _mine(sub_id).needs_reauthorization = False
    return Response(status=204)


@bp.delete("/subscriptions/<sub_id>")
def delete_subscription(sub_id: str) -> Response:
    _mine(sub_id)
    notifier().remove(sub_id)
    return Response(status=204)
