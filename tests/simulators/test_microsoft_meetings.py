"""Meetings in the Graph simulator: attendees get invitations (inside the tenant they land in the
attendee's calendar, outside addresses are mail leaving the tenant), updates and cancellations
follow, and every message is on record; transactionId deduplicates for a bounded time."""

from __future__ import annotations

import time

ADELE = "/users/adele@contoso.example"
MEGAN = "/users/megan@contoso.example"
CUSTOMER = "pat@fabrikam.example"


def meeting(*attendees: str, **extra) -> dict:
    return {
        "subject": "Contract review",
        "start": {"dateTime": "2026-03-27T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-03-27T10:00:00", "timeZone": "UTC"},
        "attendees": [
            {"emailAddress": {"address": a, "name": a}, "type": "required"} for a in attendees
        ],
        **extra,
    }


def sent_mail(ms_server, ms_session) -> list[dict]:
    return ms_session.get(f"{ms_server.url}/_sim/state").json()["sentMail"]


def megans_copies(graph, ical_uid: str) -> list[dict]:
    window = {"startDateTime": "2026-03-20T00:00:00Z", "endDateTime": "2026-04-20T00:00:00Z"}
    items = graph.get(f"{MEGAN}/calendarView", params=window).json()["value"]
    return [i for i in items if i["iCalUId"] == ical_uid]


def test_an_event_without_attendees_sends_nothing(graph, ms_server, ms_session):
    assert graph.post(f"{ADELE}/events", meeting()).status_code == 201
    assert sent_mail(ms_server, ms_session) == []


def test_creating_a_meeting_invites_every_attendee(graph, ms_server, ms_session):
    created = graph.post(f"{ADELE}/events", meeting("megan@contoso.example", CUSTOMER)).json()
    mail = sent_mail(ms_server, ms_session)
    assert [(m["kind"], m["to"], m["internal"]) for m in mail] == [
        ("meetingRequest", "megan@contoso.example", True),
        ("meetingRequest", CUSTOMER, False),  # mail that left the tenant: a customer got it
    ]
    assert {m["iCalUId"] for m in mail} == {created["iCalUId"]}
    assert {m["from"] for m in mail} == {"adele@contoso.example"}
    (copy,) = megans_copies(graph, created["iCalUId"])
    assert copy["id"] != created["id"]
    assert copy["isOrganizer"] is False
    assert copy["organizer"]["emailAddress"]["address"] == "adele@contoso.example"
    assert copy["responseStatus"]["response"] == "notResponded"
    assert copy["subject"] == "Contract review" and copy["isCancelled"] is False


def test_updates_and_cancellations_follow_the_meeting(graph, ms_server, ms_session):
    created = graph.post(f"{ADELE}/events", meeting("megan@contoso.example", CUSTOMER)).json()
    ms_session.post(f"{ms_server.url}/_sim/state", json={"clear_sent_mail": True})
    moved = graph.patch(
        f"{ADELE}/events/{created['id']}",
        {
            "start": {"dateTime": "2026-03-27T13:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-03-27T14:00:00", "timeZone": "UTC"},
            "attendees": [{"emailAddress": {"address": "megan@contoso.example"}}],
        },
    )
    assert moved.status_code == 200
    assert [(m["kind"], m["to"]) for m in sent_mail(ms_server, ms_session)] == [
        ("meetingUpdate", "megan@contoso.example"),
        ("meetingCancellation", CUSTOMER),
    ]
    (copy,) = megans_copies(graph, created["iCalUId"])
    assert copy["start"]["dateTime"].startswith("2026-03-27T13:00")
    ms_session.post(f"{ms_server.url}/_sim/state", json={"clear_sent_mail": True})
    assert graph.delete(f"{ADELE}/events/{created['id']}").status_code == 204
    assert [(m["kind"], m["to"]) for m in sent_mail(ms_server, ms_session)] == [
        ("meetingCancellation", "megan@contoso.example")
    ]
    (copy,) = megans_copies(graph, created["iCalUId"])
    assert copy["isCancelled"] is True


def test_transaction_id_deduplicates_for_a_bounded_time(graph, ms_world):
    ms_world.transaction_id_window_seconds = 0.5
    body = meeting(transactionId="0D3B3B0E-6C62-4F7B-9A7E-1D2C3B4A5F60")
    first = graph.post(f"{ADELE}/events", body).json()
    retried = graph.post(f"{ADELE}/events", body).json()
    assert retried["id"] == first["id"]  # a retry within the window: the same event
    time.sleep(0.6)
    later = graph.post(f"{ADELE}/events", body).json()
    assert later["id"] != first["id"]  # not forever: a later create makes another event
