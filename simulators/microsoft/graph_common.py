"""What every Graph endpoint shares: the caller's token, permissions, the target user and
mailbox, Outlook's throttling, OData query options and JSON responses."""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from flask import Blueprint, Response, current_app, request

from simulators.microsoft import ids, tokens
from simulators.microsoft.errors import GraphError
from simulators.microsoft.extended import key_of
from simulators.microsoft.mailbox import Mailbox
from simulators.platform.control import claim_fault
from simulators.world.microsoft import MicrosoftWorld, Tenant, User

bp = Blueprint("graph", __name__, url_prefix="/v1.0")
V1 = "/v1.0"


@dataclass
class GraphState:
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)
    # every meeting request, update and cancellation the mailboxes sent (see meetings.py)
    sent_mail: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Caller:
    tenant: Tenant
    user: User | None  # None for an application (client credentials) token
    scopes: frozenset[str]
    roles: frozenset[str]
    app_id: str


def world() -> MicrosoftWorld:
    return current_app.extensions["microsoft_world"]


def state() -> GraphState:
    return current_app.extensions["microsoft_graph"]


def base_url() -> str:
    return request.host_url.rstrip("/")


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    resp = Response(json.dumps(payload), status=status, mimetype="application/json")
    resp.headers["OData-Version"] = "4.0"
    if headers:
        resp.headers.update(headers)
    return resp


def caller() -> Caller:
    # Kept on the request (not `g`): a $batch part runs in its own request but the same app context.
    cached = request.environ.get("sim.graph_caller")
    if cached is not None:
        return cached
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer ") or not header[7:].strip():
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    try:
        claims = tokens.decode(header[7:].strip())
    except tokens.TokenError as exc:
        message = (
            str(exc) if not exc.expired else "Lifetime validation failed, the token is expired."
        )
        raise GraphError(401, "InvalidAuthenticationToken", message) from None
    if claim_fault("token_expired"):
        raise GraphError(
            401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."
        )
    tenant = world().tenant(claims.get("tid", ""))
    if tenant is None:
        raise GraphError(
            401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
        )
    user = tenant.user(claims["oid"]) if claims.get("idtyp") == "user" else None
    who = Caller(
        tenant=tenant,
        user=user,
        scopes=frozenset(str(claims.get("scp", "")).split()),
        roles=frozenset(claims.get("roles", [])),
        app_id=str(claims.get("appid", "")),
    )
    request.environ["sim.graph_caller"] = who
    return who


def require(
    delegated: tuple[str, ...], application: tuple[str, ...], *, directory: bool = False
) -> Caller:
    who = caller()
    granted = who.scopes if who.user is not None else who.roles
    if not granted.intersection(delegated if who.user is not None else application):
        if directory:
            raise GraphError(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        raise GraphError(
            403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
        )
    return who


def target_user(user_key: str | None, *, directory: bool = False) -> User:
    who = caller()
    if user_key is None:
        if who.user is None:
            raise GraphError(
                400, "BadRequest", "/me request is only valid with delegated authentication flow."
            )
        return who.user
    user = who.tenant.user(user_key)
    if user is None:
        if directory:
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{user_key}' does not exist or one of its queried reference-property objects are not present.",
            )
        raise GraphError(404, "ErrorInvalidUser", f"The requested user '{user_key}' is invalid.")
    return user


def mailbox_of(user: User) -> Mailbox:
    who = caller()
    if who.user is not None and who.user.id != user.id:
        raise GraphError(
            403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
        )
    if not user.has_mailbox:
        raise GraphError(
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        )
    return state().mailboxes[user.id]


def _throttled(message: str) -> GraphError:
    return GraphError(429, "ApplicationThrottled", message, headers={"Retry-After": "1"})


def _enter(mailbox: Mailbox) -> None:
    limits = world()
    now = time.monotonic()
    with mailbox.lock:
        if mailbox.in_flight >= limits.mailbox_concurrency:
            mailbox.concurrency_refusals += 1
            raise _throttled("Application is over its MailboxConcurrency limit.")
        window = mailbox.recent_requests
        while window and window[0] <= now - limits.mailbox_window_seconds:
            window.popleft()
        if len(window) >= limits.mailbox_requests_per_window:
            retry = max(1, int(window[0] + limits.mailbox_window_seconds - now) + 1)
            raise GraphError(
                429,
                "ApplicationThrottled",
                "Application is over its MailboxRequests limit.",
                headers={"Retry-After": str(retry)},
            )
        window.append(now)
        mailbox.in_flight += 1
        mailbox.peak_in_flight = max(mailbox.peak_in_flight, mailbox.in_flight)


def mailbox_route(rule: str, **options: Any) -> Callable:
    """Register `fn(mailbox, **kwargs)` under /me{rule} and /users/<user_key>{rule}, with the
    permission check (`options["permission"]`: "calendars" or "contacts"), the mailbox lookup and
    Outlook's per-mailbox limits. A `mailbox_hold` fault (latency_ms) keeps the request in flight
    while it holds its slot, so tests can provoke MailboxConcurrency."""
    permission = options.pop("permission")
    writes = any(m in options.get("methods", ["GET"]) for m in ("POST", "PATCH", "DELETE"))

    def decorator(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def view(user_key: str | None = None, **kwargs: Any) -> Response:
            names = _PERMISSIONS[permission]
            wanted = (
                names
                if writes or request.method != "GET"
                else names + tuple(n.replace("ReadWrite", "Read") for n in names)
            )
            user = target_user(user_key)
            require(wanted, wanted)
            mailbox = mailbox_of(user)
            _enter(mailbox)
            try:
                hold = claim_fault("mailbox_hold")
                if hold is not None:
                    time.sleep(float(hold.get("latency_ms", 500)) / 1000)
                return fn(mailbox, **kwargs)
            finally:
                with mailbox.lock:
                    mailbox.in_flight -= 1

        # One endpoint per rule and function, so a function may serve several rules.
        bp.add_url_rule(f"/me{rule}", f"{fn.__name__}:me{rule}", view, **options)
        bp.add_url_rule(f"/users/<user_key>{rule}", f"{fn.__name__}:users{rule}", view, **options)
        return fn

    return decorator


_PERMISSIONS = {
    "calendars": ("Calendars.ReadWrite",),
    "contacts": ("Contacts.ReadWrite",),
}


# --- OData query options ---------------------------------------------------------------


def prefer(name: str) -> str | None:
    for part in request.headers.get("Prefer", "").split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == name.lower():
            return value.strip().strip('"')
    return None


def immutable_ids() -> bool:
    return (prefer("IdType") or "").lower() == "immutableid"


def client_id(item_id: str) -> str:
    """An item id in the form the client asked for with `Prefer: IdType`."""
    return ids.immutable(item_id) if immutable_ids() else item_id


def present_ids(item: dict) -> dict:
    """`item` with its ids in the form the client asked for."""
    if not immutable_ids():
        return item
    out = {**item, "id": ids.immutable(item["id"])}
    if item.get("seriesMasterId"):
        out["seriesMasterId"] = ids.immutable(item["seriesMasterId"])
    return out


def out_zone() -> str | None:
    return prefer("outlook.timezone")


def page_size(default: int) -> int:
    raw = request.args.get("$top") or prefer("odata.maxpagesize")
    try:
        return max(1, min(int(raw), 1000)) if raw else default
    except ValueError:
        raise GraphError(400, "BadRequest", f"Invalid page size '{raw}'.") from None


def select(items: list[dict]) -> list[dict]:
    fields = request.args.get("$select")
    if not fields:
        return items
    keep = {f.strip() for f in fields.split(",")} | {"id", "@odata.etag", "@removed", "@odata.type"}
    return [{k: v for k, v in item.items() if k in keep} for item in items]


_EQ = re.compile(r"(\w+)\s+eq\s+'((?:[^']|'')*)'", re.IGNORECASE)
_EXT_ANY = re.compile(
    r"singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*\1/id\s+eq\s+'((?:[^']|'')*)'\s+and\s+\1/value\s+eq\s+'((?:[^']|'')*)'\s*\)",
    re.IGNORECASE,
)
_EXPAND_EXT = re.compile(
    r"singleValueExtendedProperties(?:\(\s*\$filter\s*=\s*(.*)\))?\s*$", re.IGNORECASE
)


def filter_equals() -> dict[str, str]:
    """`a eq 'x' and b eq 'y'` as {a: x, b: y}; anything else is refused as Graph does."""
    text = request.args.get("$filter")
    if not text:
        return {}
    found = {m.group(1): m.group(2).replace("''", "'") for m in _EQ.finditer(text)}
    if not found:
        raise GraphError(400, "BadRequest", f"Invalid filter clause: {text}")
    return found


def extended_filter() -> tuple[str, str] | None:
    """(id, value) of `singleValueExtendedProperties/Any(ep: ep/id eq '…' and ep/value eq '…')`."""
    text = request.args.get("$filter")
    if not text:
        return None
    match = _EXT_ANY.fullmatch(text.strip())
    if match is None:
        raise GraphError(
            400, "ErrorInvalidUrlQueryFilter", f"The query filter '{text}' is not supported."
        )
    prop_id = match.group(2).replace("''", "'")
    key_of(prop_id)  # a malformed id is refused, not silently matched against nothing
    return prop_id, match.group(3).replace("''", "'")


def expand_extended() -> list[str] | None:
    """None without `$expand`; else the ids of `singleValueExtendedProperties($filter=id eq '…')`.
    The filter on id is the documented (and only) way: there is no "all properties" expand."""
    text = request.args.get("$expand")
    if not text:
        return None
    match = _EXPAND_EXT.match(text.strip())
    if match is None:
        raise GraphError(400, "BadRequest", f"Parsing OData Select and Expand failed: {text}")
    ids = [
        m.replace("''", "'")
        for m in re.findall(r"id\s+eq\s+'((?:[^']|'')*)'", match.group(1) or "", re.IGNORECASE)
    ]
    if not ids:
        raise GraphError(
            400,
            "ErrorInvalidUrlQuery",
            "singleValueExtendedProperties can only be expanded with $filter=id eq '{id}'.",
        )
    for prop_id in ids:
        key_of(prop_id)
    return ids


def paged(items: list[dict], context: str, default_top: int = 10) -> Response:
    """A collection page with `$skip`-based @odata.nextLink, as Outlook lists page."""
    size = page_size(default_top)
    skip = int(request.args.get("$skip", "0") or 0)
    chunk = items[skip : skip + size]
    payload: dict[str, Any] = {"@odata.context": context, "value": select(chunk)}
    if skip + size < len(items):
        args = request.args.to_dict()
        args["$skip"] = str(skip + size)
        payload["@odata.nextLink"] = link(request.path, args)
    headers = {}
    if prefer("odata.maxpagesize"):
        headers["Preference-Applied"] = f"odata.maxpagesize={size}"
    if out_zone():
        headers["Preference-Applied"] = ", ".join(
            filter(None, [headers.get("Preference-Applied"), f'outlook.timezone="{out_zone()}"'])
        )
    return json_response(payload, headers=headers)


_SAFE = "$,:'()="


def link(path: str, args: dict[str, str]) -> str:
    return f"{base_url()}{path}?{urlencode(args, safe=_SAFE, quote_via=quote)}"


def metadata(fragment: str) -> str:
    return f"{base_url()}/v1.0/$metadata#{fragment}"


def json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
    return body
