"""Graph calendar endpoints: events CRUD, calendarView, instances and calendarView/delta."""

from __future__ import annotations

from datetime import datetime

from flask import Response, request

from simulators.microsoft import events as ev
from simulators.microsoft import meetings
from simulators.microsoft.delta import delta_response
from simulators.microsoft.errors import GraphError
from simulators.microsoft.graph_common import (
    base_url,
    expand_extended,
    extended_filter,
    json_body,
    json_response,
    mailbox_route,
    metadata,
    out_zone,
    paged,
    present_ids,
    select,
    state,
    world,
)
from simulators.microsoft.mailbox import Mailbox
from simulators.microsoft.timezones import parse_query_time


def render(mailbox: Mailbox, inst: ev.Instance, extended: list[str] | None = None) -> dict:
    return present_ids(
        ev.render(
            inst,
            out_zone=out_zone(),
            organizer=mailbox.organizer(),
            base_url=base_url(),
            expand_extended=extended,
        )
    )


def _context(mailbox: Mailbox, what: str) -> str:
    return metadata(f"users('{mailbox.address}')/{what}")


def window() -> tuple[datetime, datetime]:
    start, end = request.args.get("startDateTime"), request.args.get("endDateTime")
    if not start or not end:
        raise GraphError(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        )
    return parse_query_time(start), parse_query_time(end)


def _matches_extended(inst: ev.Instance, wanted: tuple[str, str] | None) -> bool:
    if wanted is None:
        return True
    return inst.record.extended.matches(*wanted)


@mailbox_route("/events", methods=["GET"], permission="calendars")
@mailbox_route("/calendar/events", methods=["GET"], permission="calendars")
def list_events(mailbox: Mailbox) -> Response:
    wanted = extended_filter()
    extended = expand_extended()
    items = [
        render(mailbox, i, extended) for i in mailbox.masters() if _matches_extended(i, wanted)
    ]
    return paged(items, _context(mailbox, "events"))


@mailbox_route("/events", methods=["POST"], permission="calendars")
@mailbox_route("/calendar/events", methods=["POST"], permission="calendars")
def create_event(mailbox: Mailbox) -> Response:
    record, created = mailbox.create_event(
        json_body(), dedup_seconds=world().transaction_id_window_seconds
    )
    if created:
        meetings.after_create(world(), state(), mailbox, record)
    # A repeated transactionId answers like the first create (Graph deduplicates silently).
    # Extended properties written are not echoed: only $expand shows them.
    body = render(mailbox, ev.master_instance(record))
    return json_response(
        {"@odata.context": _context(mailbox, "events/$entity"), **body}, status=201
    )


@mailbox_route("/events/<event_id>", methods=["GET"], permission="calendars")
def get_event(mailbox: Mailbox, event_id: str) -> Response:
    inst = mailbox.instance(event_id)
    body = select([render(mailbox, inst, expand_extended())])[0]
    return json_response({"@odata.context": _context(mailbox, "events/$entity"), **body})


@mailbox_route("/events/<event_id>", methods=["PATCH"], permission="calendars")
def update_event(mailbox: Mailbox, event_id: str) -> Response:
    before = meetings.attendee_addresses(mailbox.instance(event_id).record.props)
    inst = mailbox.update_event(event_id, json_body(), request.headers.get("If-Match"))
    meetings.after_update(world(), state(), mailbox, inst, before)
    body = render(mailbox, inst)
    return json_response({"@odata.context": _context(mailbox, "events/$entity"), **body})


@mailbox_route("/events/<event_id>", methods=["DELETE"], permission="calendars")
def delete_event(mailbox: Mailbox, event_id: str) -> Response:
    inst = mailbox.instance(event_id)
    mailbox.delete_event(event_id, request.headers.get("If-Match"))
    meetings.after_delete(world(), state(), mailbox, inst)
    return Response(status=204)


@mailbox_route("/calendarView", methods=["GET"], permission="calendars")
@mailbox_route("/calendar/calendarView", methods=["GET"], permission="calendars")
def calendar_view(mailbox: Mailbox) -> Response:
    start, end = window()
    wanted = extended_filter()
    extended = expand_extended()
    items = [
        render(mailbox, i, extended)
        for i in mailbox.calendar_view(start, end)
        if _matches_extended(i, wanted)
    ]
    return paged(items, _context(mailbox, "calendarView"))


@mailbox_route("/events/<event_id>/instances", methods=["GET"], permission="calendars")
def instances(mailbox: Mailbox, event_id: str) -> Response:
    start, end = window()
    items = [render(mailbox, i) for i in mailbox.instances_of(event_id, start, end)]
    return paged(items, _context(mailbox, f"events('{event_id}')/instances"))


@mailbox_route("/calendarView/delta", methods=["GET"], permission="calendars")
@mailbox_route("/calendar/calendarView/delta", methods=["GET"], permission="calendars")
def calendar_view_delta(mailbox: Mailbox) -> Response:
    for option in ("$select", "$filter", "$orderby", "$search", "$expand"):
        if option in request.args:
            raise GraphError(
                400,
                "ErrorInvalidUrlQuery",
                f"The following parameters are not supported with change tracking over the 'Events' resource: '{option}'.",
            )

    def snapshot(start: datetime, end: datetime) -> list[tuple[str, int, dict]]:
        return [
            (i.id, i.record.seq, {"@odata.type": "#microsoft.graph.event", **render(mailbox, i)})
            for i in mailbox.calendar_view(start, end)
        ]

    def touched(seq: int) -> set[str]:
        with mailbox.lock:
            return {r.id for r in mailbox.records.values() if r.seq > seq and not r.is_series}

    return delta_response(mailbox, "events", snapshot, window, touched)


def _calendar_json(mailbox: Mailbox) -> dict:
    return {
        "id": mailbox.calendar_id,
        "name": "Calendar",
        "color": "auto",
        "hexColor": "",
        "isDefaultCalendar": True,
        "changeKey": "",
        "canShare": True,
        "canViewPrivateItems": True,
        "canEdit": True,
        "allowedOnlineMeetingProviders": ["teamsForBusiness"],
        "defaultOnlineMeetingProvider": "teamsForBusiness",
        "isTallyingResponses": True,
        "isRemovable": False,
        "owner": mailbox.organizer()["emailAddress"],
    }


@mailbox_route("/calendar", methods=["GET"], permission="calendars")
def default_calendar(mailbox: Mailbox) -> Response:
    """The cheap "has this user an Exchange Online mailbox?" probe."""
    return json_response(
        {"@odata.context": _context(mailbox, "calendar/$entity"), **_calendar_json(mailbox)}
    )


@mailbox_route("/calendars", methods=["GET"], permission="calendars")
def calendars(mailbox: Mailbox) -> Response:
    return json_response(
        {"@odata.context": _context(mailbox, "calendars"), "value": [_calendar_json(mailbox)]}
    )
