"""Calendar API v3 routes (``www.googleapis.com/calendar/v3/…``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from simulators.google import opaque
from simulators.google.auth import check_rate_limits, require_token, store
from simulators.google.calendar_events import CalendarEvents
from simulators.google.errors import bad_request, not_found
from simulators.google.push import PushChannels
from simulators.google.store import Calendar

bp = Blueprint("google_calendar", __name__, url_prefix="/calendar/v3")

_C = "https://www.googleapis.com/auth/calendar"
EVENTS_WRITE = (_C, _C + ".events", _C + ".events.owned")
EVENTS_READ = (
    *EVENTS_WRITE,
    _C + ".readonly",
    _C + ".events.readonly",
    _C + ".events.owned.readonly",
)
CALENDARS_READ = (
    _C, _C + ".readonly", _C + ".calendarlist", _C + ".calendarlist.readonly",
    _C + ".calendars", _C + ".calendars.readonly",
)  # fmt: skip


def _calendar(calendar_id: str, *scopes: str) -> Calendar:
    token = require_token(*scopes)
    check_rate_limits(token)
    wanted = token.email if calendar_id == "primary" else calendar_id.lower()
    calendar = store().calendars.get(wanted)
    # Only the owner's own calendars are visible here (no sharing in the simulator).
    if calendar is None or calendar.owner != token.email:
        raise not_found()
    return calendar


def _events(calendar_id: str, *scopes: str) -> CalendarEvents:
    return CalendarEvents(store(), _calendar(calendar_id, *scopes))


def _body() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise bad_request("Parse Error", "parseError")
    return body


def _list_entry(calendar: Calendar) -> dict[str, Any]:
    return {
        "kind": "calendar#calendarListEntry",
        "etag": opaque.calendar_etag(0),
        "id": calendar.id,
        "summary": calendar.summary,
        "timeZone": calendar.time_zone,
        "colorId": "14",
        "backgroundColor": "#9fe1e7",
        "foregroundColor": "#000000",
        "selected": True,
        "accessRole": "owner",
        "defaultReminders": [{"method": "popup", "minutes": 10}],
        "primary": calendar.primary,
        "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
    }


@bp.get("/users/me/calendarList")
def calendar_list() -> Response:
    token = require_token(*CALENDARS_READ)
    check_rate_limits(token)
    mine = [c for c in store().calendars.values() if c.owner == token.email]
    return jsonify(
        kind="calendar#calendarList",
        etag=opaque.calendar_etag(store().seq),
        nextSyncToken=opaque.encode_token({"calendarList": token.email}),
        items=[_list_entry(c) for c in mine],
    )


@bp.get("/users/me/calendarList/<calendar_id>")
def calendar_list_get(calendar_id: str) -> Response:
    return jsonify(_list_entry(_calendar(calendar_id, *CALENDARS_READ)))


@bp.get("/calendars/<calendar_id>")
def calendar_get(calendar_id: str) -> Response:
    calendar = _calendar(calendar_id, *CALENDARS_READ)
    return jsonify(
        kind="calendar#calendar",
        etag=opaque.calendar_etag(0),
        id=calendar.id,
        summary=calendar.summary,
        timeZone=calendar.time_zone,
        conferenceProperties={"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
    )


@bp.get("/calendars/<calendar_id>/events")
def events_list(calendar_id: str) -> Response:
    params: dict[str, Any] = request.args.to_dict()
    for name in ("privateExtendedProperty", "sharedExtendedProperty"):
        params[name] = request.args.getlist(name)
    return jsonify(_events(calendar_id, *EVENTS_READ).list(params))


@bp.post("/calendars/<calendar_id>/events")
def events_insert(calendar_id: str) -> Response:
    return jsonify(_events(calendar_id, *EVENTS_WRITE).insert(_body()))


@bp.post("/calendars/<calendar_id>/events/import")
def events_import(calendar_id: str) -> Response:
    return jsonify(_events(calendar_id, *EVENTS_WRITE).import_(_body()))


@bp.post("/calendars/<calendar_id>/events/watch")
def events_watch(calendar_id: str) -> Response:
    token = require_token(*EVENTS_READ)
    check_rate_limits(token)
    calendar = _calendar(calendar_id, *EVENTS_READ)
    channel = _push().watch(calendar.id, token.client_id, _body())
    return jsonify(channel.as_json())


@bp.post("/channels/stop")
def channels_stop() -> Response:
    token = require_token(*EVENTS_READ, *CALENDARS_READ)
    check_rate_limits(token)
    _push().stop(token.client_id, _body())
    return Response(status=204)


def _push() -> PushChannels:
    return current_app.extensions["google_push"]


@bp.get("/calendars/<calendar_id>/events/<event_id>")
def events_get(calendar_id: str, event_id: str) -> Response:
    event = _events(calendar_id, *EVENTS_READ).get(event_id)
    if request.headers.get("If-None-Match") == event["etag"]:
        return Response(status=304)
    return jsonify(event)


@bp.route("/calendars/<calendar_id>/events/<event_id>", methods=["PATCH", "PUT"])
def events_modify(calendar_id: str, event_id: str) -> Response:
    events = _events(calendar_id, *EVENTS_WRITE)
    event = events.modify(
        event_id,
        _body(),
        replace=request.method == "PUT",
        if_match=request.headers.get("If-Match"),
    )
    return jsonify(event)


@bp.delete("/calendars/<calendar_id>/events/<event_id>")
def events_delete(calendar_id: str, event_id: str) -> Response:
    _events(calendar_id, *EVENTS_WRITE).delete(event_id, request.headers.get("If-Match"))
    return Response(status=204)


@bp.get("/calendars/<calendar_id>/events/<event_id>/instances")
def events_instances(calendar_id: str, event_id: str) -> Response:
    return jsonify(_events(calendar_id, *EVENTS_READ).instances(event_id, request.args.to_dict()))
