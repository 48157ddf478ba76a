"""Simulator-only endpoints: ``/_sim/state`` (export / seed) and ``/_sim/state/actions`` (what a
Workspace admin or the passing of time would do: block or trust our app, change domain-wide
delegation, revoke a user's tokens, expire sync tokens, move the clock)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from simulators.google.auth import store
from simulators.google.calendar_events import CalendarEvents
from simulators.google.contacts import ContactBookOps
from simulators.google.store import ContactBook
from simulators.world.google import SYNCHRONIZER_CLIENT_ID

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
    )


@bp.post("")
def seed_state() -> Response:
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
            domain = s.find_domain(spec["name"])
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
    s = store()
    name = body.get("action")
    client_id = body.get("client_id", SYNCHRONIZER_CLIENT_ID)
    domain = s.find_domain(body.get("domain", "")) if body.get("domain") else None
    with s.lock:
        if name in ("block_app", "trust_app", "untrust_app", "set_delegation") and not domain:
            return jsonify(error="unknown or missing domain"), 400
        if name == "block_app":
            domain.blocked_clients.add(client_id)  # type: ignore[union-attr]
        elif name == "trust_app":
            domain.blocked_clients.discard(client_id)  # type: ignore[union-attr]
            domain.trusted_clients.add(client_id)  # type: ignore[union-attr]
        elif name == "untrust_app":
            domain.trusted_clients.discard(client_id)  # type: ignore[union-attr]
        elif name == "set_delegation":
            scopes = list(body.get("scopes") or [])
            if scopes:
                domain.delegation[body["client_id"]] = scopes  # type: ignore[union-attr]
            else:
                domain.delegation.pop(body["client_id"], None)  # type: ignore[union-attr]
        elif name == "revoke_tokens":
            return jsonify(revoked=s.revoke_user(str(body.get("email", "")).lower()))
        elif name == "expire_sync_tokens":
            email = body.get("email")
            for cal in s.calendars.values():
                if email in (None, cal.owner):
                    cal.epoch += 1
            for owner, book in s.books.items():
                if email in (None, owner):
                    book.epoch += 1
        elif name == "advance_clock":
            s.clock_offset += float(body.get("seconds", 0))
        else:
            return jsonify(error=f"unknown action {name!r}"), 400
    return jsonify(ok=True)
