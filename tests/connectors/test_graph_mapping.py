"""Graph's JSON and canonical items (`common.connectors.graph.mapping`): recurrence patterns
both ways, what Outlook cannot hold, the participants note. The round trips through the
simulator are in test_graph_contract.py and test_graph_connector.py; these pin the rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from common.connectors.graph import mapping
from common.items import Appointment, Attendee, Recurrence, text_of
from common.kinds import Window

START = datetime(2026, 3, 16, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("rule", "pattern"),
    [
        ("FREQ=DAILY;INTERVAL=2", {"type": "daily", "interval": 2}),
        (
            "FREQ=WEEKLY;BYDAY=MO,TH",
            {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "thursday"]},
        ),
        ("FREQ=MONTHLY;BYMONTHDAY=31", {"type": "absoluteMonthly", "dayOfMonth": 31}),
        (
            "FREQ=MONTHLY;BYDAY=-1FR",
            {"type": "relativeMonthly", "daysOfWeek": ["friday"], "index": "last"},
        ),
        (
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1",
            {"type": "relativeMonthly", "index": "first"},
        ),
        (
            "FREQ=YEARLY;BYMONTH=5;BYMONTHDAY=17",
            {"type": "absoluteYearly", "month": 5, "dayOfMonth": 17},
        ),
        (
            "FREQ=YEARLY;BYMONTH=11;BYDAY=4TH",
            {"type": "relativeYearly", "month": 11, "daysOfWeek": ["thursday"], "index": "fourth"},
        ),
    ],
)
def test_rules_outlook_holds_become_its_patterns_and_come_back(rule: str, pattern: dict) -> None:
    """Mistake caught: a pattern that means another series in Outlook (an index taken as a
    day of the month, a missing month)."""
    written = mapping.pattern_of(rule, START, "UTC")
    assert written.items() >= pattern.items()
    back = mapping.rule_of({"pattern": written, "range": {"type": "noEnd"}})
    parts = lambda text: set(text.split(";")) - {"INTERVAL=1"}  # noqa: E731
    assert parts(back) == parts(rule)


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=HOURLY",
        "FREQ=DAILY;BYDAY=MO,TU",
        "FREQ=MONTHLY;BYMONTHDAY=1,15",
        "FREQ=MONTHLY;BYDAY=5MO",
        "FREQ=MONTHLY;BYMONTHDAY=-1",
        "FREQ=WEEKLY;BYWEEKNO=3",
        "FREQ=YEARLY;BYMONTH=1,7",
    ],
)
def test_rules_outlook_cannot_hold_are_said_so(rule: str) -> None:
    """Mistake caught: a rule written as the nearest pattern Outlook has (the series then
    has other dates there); the engine expands such a series into single items instead."""
    assert not mapping.can_express(Recurrence(rule))
    with pytest.raises(mapping.Unmappable):
        mapping.pattern_of(rule, START, "UTC")


def test_a_series_range_is_written_in_its_own_zone() -> None:
    """UNTIL is an instant; Outlook ends a series on a date of its zone (mistake: the UTC
    date, a day early for a late-evening series east of Greenwich)."""
    start = datetime(2026, 3, 16, 23, 30, tzinfo=UTC)  # 00:30 on the 17th in Oslo
    item = Appointment(
        "Night shift",
        start,
        start + timedelta(hours=1),
        timezone="Europe/Oslo",
        recurrence=Recurrence("FREQ=DAILY;UNTIL=20260319T233000Z"),
    )
    written = mapping.recurrence_json(item)
    assert written is not None
    assert written["range"] == {
        "type": "endDate",
        "startDate": "2026-03-17",
        "endDate": "2026-03-20",
        "recurrenceTimeZone": "W. Europe Standard Time",
    }


@pytest.mark.parametrize("html", [False, True])
def test_the_participants_note_is_taken_off_what_is_read(html: bool) -> None:
    """Mistake caught: the note we write read back as the body (an edit carried into the
    CRM, or a note added again on every run)."""
    body = "<html><body><p>Agenda</p></body></html>" if html else "Agenda\n\nBring the draft."
    people = (Attendee("pat@fabrikam.example", "Pat Buyer"), Attendee("lee@partner.example"))
    written = mapping.with_participants(body, people)
    shown = text_of(written)
    assert "Pat Buyer <pat@fabrikam.example>" in shown and "lee@partner.example" in shown
    assert mapping.without_participants(written) == body
    # Outlook renames the classes of HTML it stores ("x_…"): still found.
    if html:
        stored = written.replace(
            'class="synchronizer-participants"', 'class="x_synchronizer-participants"'
        )
        assert mapping.without_participants(stored) == body


def test_a_body_that_mentions_the_heading_in_passing_is_kept() -> None:
    text = f"Notes: see {mapping.PARTICIPANTS_HEADING} below? no."
    assert mapping.without_participants(text) == text


def test_all_day_items_are_dates_at_midnight_in_their_zone() -> None:
    item = Appointment("Fair", date(2026, 3, 28), date(2026, 3, 31), timezone="Europe/Oslo")
    written = mapping.event_json(item)
    assert written["isAllDay"] is True
    assert written["start"] == {
        "dateTime": "2026-03-28T00:00:00",
        "timeZone": "W. Europe Standard Time",
    }
    read = mapping.appointment_of(
        {**written, "id": "x", "originalStartTimeZone": "W. Europe Standard Time"}
    )
    assert (read.start, read.end) == (date(2026, 3, 28), date(2026, 3, 31))


def test_an_items_modification_time_is_read_and_a_series_takes_its_newest_instances() -> None:
    """Mistake caught: `lastModifiedDateTime` not read (a "newest wins" conflict then always
    goes to the CRM, whose time is the only one known), a series dated by its master only
    (an occurrence edited in Outlook would lose to an older CRM edit)."""
    when = {"dateTime": "2026-03-16T09:00:00.0000000", "timeZone": "UTC"}
    until = {"dateTime": "2026-03-16T10:00:00.0000000", "timeZone": "UTC"}
    event = {"id": "e1", "subject": "Visit", "start": when, "end": until,
             "lastModifiedDateTime": "2026-03-10T08:15:30.1234567Z"}  # fmt: skip
    assert mapping.appointment_of(event).last_modified == datetime(
        2026, 3, 10, 8, 15, 30, 123456, tzinfo=UTC
    )
    contact = {"id": "c1", "givenName": "Pat", "lastModifiedDateTime": "2026-03-11T00:00:00Z"}
    assert mapping.contact_of(contact).last_modified == datetime(2026, 3, 11, tzinfo=UTC)
    master = {**event, "type": "seriesMaster", "originalStartTimeZone": "UTC",
              "recurrence": {"pattern": {"type": "daily", "interval": 1},
                             "range": {"type": "numbered", "numberOfOccurrences": 2,
                                       "startDate": "2026-03-16", "recurrenceTimeZone": "UTC"}}}  # fmt: skip
    edited = {**event, "id": "o2", "type": "exception", "subject": "Visit (late)",
              "originalStart": "2026-03-17T09:00:00Z",
              "start": {**when, "dateTime": "2026-03-17T09:00:00.0000000"},
              "end": {**until, "dateTime": "2026-03-17T10:00:00.0000000"},
              "lastModifiedDateTime": "2026-03-12T07:00:00Z"}  # fmt: skip
    window = Window(START - timedelta(days=1), START + timedelta(days=5))
    series = mapping.series_of(master, [{**event, "type": "occurrence",
                                         "originalStart": "2026-03-16T09:00:00Z"}, edited], window)  # fmt: skip
    assert series.last_modified == datetime(2026, 3, 12, 7, tzinfo=UTC)
