"""Simulator-only endpoints: ``/_sim/state`` (export / seed) and ``/_sim/state/actions`` (what a
Workspace admin or the passing of time would do: block or trust our app, change domain-wide
delegation, revoke a user's tokens, expire sync tokens, move the clock)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from simulators.google.auth import store
from simulators.google.calendar_events import CalendarEvents
from simulators.google.contacts import ContactBookOps
from simulators.google.store import ContactBook
from simulators.world.google import (
    SERVICE_ACCOUNT_CLIENT_ID,
    SYNCHRONIZER_CLIENT_ID,
    GoogleDomain,
)

bp = Blueprint("google_sim_admin", __name__, url_prefix="/_sim/state")


@bp.get("")
def export_state() -> Response:
    s = store()
    return jsonify(
        clock_offset=s.clock_offset,
        domains=[
            {
                "name": d.name,
                "customer_id": d.customer_id,
                "trusted_clients": sorted(d.trusted_clients),
                "blocked_clients": sorted(d.blocked_clients),
                "unconfigured_apps_blocked": d.unconfigured_apps_blocked,
                "delegation": d.delegation,
                "users": [u.email for u in d.users],
            }
            for d in s.world.domains
        ],
        calendars={
            cal.id: {"timeZone": cal.time_zone, "events": list(cal.events.values())}
            for cal in s.calendars.values()
        },
        contacts={
            email: [ContactBookOps(s, email).render(c, None) for c in book.contacts.values()]
            for email, book in s.books.items()
        },
        push=_push_state(),
    )


def _push_state() -> dict[str, Any]:
    push = current_app.extensions["google_push"]
    return {
        "channels": [c.as_json() | {"address": c.address} for c in push.channels.values()],
        "deliveries": list(push.log),
    }


@bp.get("/credentials")
def credentials() -> Response:
    """What a Google Cloud console would hand our product: the OAuth web client and the service
    account's JSON key, with every URL pointing at this simulator (for the demo's set-up)."""
    base = request.host_url.rstrip("/")
    client = next(c for c in store().world.oauth_clients if c.client_id == SYNCHRONIZER_CLIENT_ID)
    account = next(
        a for a in store().world.service_accounts if a.client_id == SERVICE_ACCOUNT_CLIENT_ID
    )
    return jsonify(
        web={
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "auth_uri": base + "/o/oauth2/v2/auth",
            "token_uri": base + "/token",
            "revoke_uri": base + "/revoke",
        },
        service_account=account.key_info(base + "/token"),
    )


@bp.post("")
def seed_state() -> tuple[Response, int] | Response:
    """Replace the parts given: ``calendars`` (events per calendar), ``contacts`` (Person
    resources per user), ``domains`` (policy fields), ``clock_offset``."""
    s = store()
    body = request.get_json(force=True)
    with s.lock:
        for email, calendar in (body.get("calendars") or {}).items():
            cal = s.calendars[email]
            cal.events.clear()
            cal.seqs.clear()
            cal.epoch += 1
            for event in calendar.get("events", []):
                CalendarEvents(s, cal).insert(event)
        for email, people in (body.get("contacts") or {}).items():
            s.books[email] = ContactBook(epoch=s.books[email].epoch + 1)
            for person in people:
                ContactBookOps(s, email).create(person)
        for spec in body.get("domains") or []:
            domain = s.find_domain(str(spec.get("name", "")))
            if domain is None:
                return jsonify(error=f"unknown domain {spec.get('name')!r}"), 400
            for key in ("trusted_clients", "blocked_clients"):
                if key in spec:
                    setattr(domain, key, set(spec[key]))
            for key in ("unconfigured_apps_blocked", "delegation"):
                if key in spec:
                    setattr(domain, key, spec[key])
        if "clock_offset" in body:
            s.clock_offset = float(body["clock_offset"])
    return jsonify(ok=True)


@bp.post("/actions")
def action() -> tuple[Response, int] | Response:
    body: dict[str, Any] = request.get_json(force=True)
    name = body.get("action")
    with store().lock:
        if name in DOMAIN_ACTIONS:
            domain = store().find_domain(str(body.get("domain", "")))
            if domain is None:
                return jsonify(error="unknown or missing domain"), 400
            DOMAIN_ACTIONS[name](domain, body)
        elif name == "revoke_tokens":
            return jsonify(revoked=store().revoke_user(str(body.get("email", "")).lower()))
        elif name == "expire_sync_tokens":
            _expire_sync_tokens(body.get("email"))
        elif name == "set_user_quota":
            requests = int(body.get("requests") or 0)
            window = float(body.get("window_seconds", 100))
            store().user_quota = (requests, window) if requests > 0 else None
        elif name == "advance_clock":
            store().clock_offset += float(body.get("seconds", 0))
        elif name == "set_people_propagation_delay":
            seconds = float(body.get("seconds", 0))
            if seconds < 0:
                return jsonify(error="seconds must not be negative"), 400
            store().people_propagation_seconds = seconds
        else:
            return jsonify(error=f"unknown action {name!r}"), 400
    return jsonify(ok=True)


def _client(body: dict[str, Any]) -> str:
    return str(body.get("client_id", SYNCHRONIZER_CLIENT_ID))


def _block(domain: GoogleDomain, body: dict[str, Any]) -> None:
    domain.blocked_clients.add(_client(body))


def _trust(domain: GoogleDomain, body: dict[str, Any]) -> None:
    domain.blocked_clients.discard(_client(body))
    domain.trusted_clients.add(_client(body))


def _untrust(domain: GoogleDomain, body: dict[str, Any]) -> None:
    domain.trusted_clients.discard(_client(body))


def _set_delegation(domain: GoogleDomain, body: dict[str, Any]) -> None:
    """Domain-wide delegation for ``client_id`` (numeric); no scopes removes it."""
    client_id = str(body.get("client_id", SERVICE_ACCOUNT_CLIENT_ID))
    scopes = list(body.get("scopes") or [])
    if scopes:
        domain.delegation[client_id] = scopes
    else:
        domain.delegation.pop(client_id, None)


DOMAIN_ACTIONS: dict[str, Callable[[GoogleDomain, dict[str, Any]], None]] = {
    "block_app": _block,
    "trust_app": _trust,
    "untrust_app": _untrust,
    "set_delegation": _set_delegation,
}


def _expire_sync_tokens(email: str | None) -> None:
    for calendar in store().calendars.values():
        if email in (None, calendar.owner):
            calendar.epoch += 1
    for owner, book in store().books.items():
        if email in (None, owner):
            book.epoch += 1
