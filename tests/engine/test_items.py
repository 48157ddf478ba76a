"""Canonical items: validation, normalisation and a hash that ignores what servers rewrite."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from common.items import (
    Address,
    Appointment,
    Attendee,
    Contact,
    Phone,
    Recurrence,
    RecurrenceException,
    ShowAs,
    content_hash,
    from_json,
    normalise_rule,
    overlay,
    text_of,
    to_json,
)

AMS = ZoneInfo("Europe/Amsterdam")
START = datetime(2026, 3, 23, 9, 0, tzinfo=AMS)
BASE = Appointment(
    subject="Budget review",
    start=START,
    end=START + timedelta(hours=1),
    timezone="Europe/Amsterdam",
    body="Line one\nLine two",
    location="Room 4",
    categories=frozenset({"CRM", "Sales"}),
    attendees=(Attendee("a@example.com", "Ann"), Attendee("b@example.com", "Bob", False)),
    reminder_minutes=15,
)


@pytest.mark.parametrize(
    "rewritten",
    [
        pytest.param(
            dataclasses.replace(BASE, last_modified=datetime.now(UTC)), id="server-timestamp"
        ),
        pytest.param(
            dataclasses.replace(
                BASE,
                body="<html><head><style>p{}</style></head><body><p>Line one</p><p>Line&nbsp;two</p></body></html>",
            ),
            id="html-wrapped-body",
        ),
        pytest.param(
            dataclasses.replace(BASE, body="Line one\r\n\r\n  Line   two  "), id="whitespace"
        ),
        pytest.param(dataclasses.replace(BASE, subject="  Budget   review "), id="subject-spaces"),
        pytest.param(
            dataclasses.replace(BASE, attendees=tuple(reversed(BASE.attendees))),
            id="attendee-order",
        ),
        pytest.param(
            dataclasses.replace(
                BASE, attendees=(Attendee("A@Example.com", "Ann"), BASE.attendees[1])
            ),
            id="email-case",
        ),
        pytest.param(
            dataclasses.replace(BASE, categories=frozenset({"sales", "crm"})), id="category-case"
        ),
        pytest.param(
            dataclasses.replace(
                BASE,
                start=START.astimezone(UTC),
                end=(START + timedelta(hours=1)).astimezone(UTC),
                timezone="UTC",
            ),
            id="single-item-reported-in-utc",
        ),
        pytest.param(
            dataclasses.replace(BASE, start=START.replace(second=31, microsecond=5)),
            id="seconds-dropped",
        ),
    ],
)
def test_what_servers_rewrite_is_no_change(rewritten: Appointment) -> None:
    assert content_hash(rewritten) == content_hash(BASE)


@pytest.mark.parametrize(
    "edited",
    [
        dataclasses.replace(BASE, subject="Budget review 2"),
        dataclasses.replace(BASE, body="Line one\nLine three"),
        dataclasses.replace(BASE, start=START + timedelta(minutes=30)),
        dataclasses.replace(BASE, private=True),
        dataclasses.replace(BASE, show_as=ShowAs.TENTATIVE),
        dataclasses.replace(BASE, reminder_minutes=30),
        dataclasses.replace(BASE, attendees=BASE.attendees[:1]),
        dataclasses.replace(BASE, crm_company_id="12"),
        dataclasses.replace(BASE, recurrence=Recurrence("FREQ=WEEKLY")),
    ],
)
def test_real_edits_change_the_hash(edited: Appointment) -> None:
    assert content_hash(edited) != content_hash(BASE)


def test_a_series_zone_is_content_but_a_single_items_zone_is_not() -> None:
    series = dataclasses.replace(BASE, recurrence=Recurrence("FREQ=WEEKLY;BYDAY=MO"))
    in_utc = dataclasses.replace(
        series,
        start=START.astimezone(UTC),
        end=(START + timedelta(hours=1)).astimezone(UTC),
        timezone="UTC",
    )
    assert content_hash(in_utc) != content_hash(series)  # 09:00 Amsterdam vs 08:00 UTC weekly


def test_rules_are_normalised() -> None:
    assert (
        normalise_rule("RRULE:freq=weekly;byday=WE,MO;INTERVAL=1;WKST=MO")
        == "BYDAY=MO,WE;FREQ=WEEKLY"
    )
    a = dataclasses.replace(BASE, recurrence=Recurrence("FREQ=WEEKLY;BYDAY=MO,WE"))
    b = dataclasses.replace(BASE, recurrence=Recurrence("BYDAY=WE,MO;FREQ=WEEKLY;INTERVAL=1"))
    assert content_hash(a) == content_hash(b)


def test_hash_limited_to_fields_a_side_keeps() -> None:
    other = dataclasses.replace(BASE, categories=frozenset())
    kept = {"subject", "start", "end", "timezone", "body"}
    assert content_hash(other, kept) == content_hash(BASE, kept)
    assert content_hash(other) != content_hash(BASE)


def test_overlay_keeps_what_the_source_side_does_not_carry() -> None:
    crm_version = dataclasses.replace(BASE, subject="New", categories=frozenset())
    merged = overlay(BASE, crm_version, {"subject", "start", "end", "timezone"})
    assert merged.subject == "New" and merged.categories == BASE.categories


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("plain", "plain"),
        ("a < b & c", "a < b & c"),
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("<div>one<br>two</div>", "one\ntwo"),
        ("<p>x</p><script>alert(1)</script>", "x"),
    ],
)
def test_text_of_bodies(body: str, text: str) -> None:
    assert text_of(body) == text


def test_validation() -> None:
    with pytest.raises(ValueError, match="aware"):
        Appointment("x", datetime(2026, 1, 1, 9), datetime(2026, 1, 1, 10))
    with pytest.raises(ValueError, match="both"):
        Appointment("x", date(2026, 1, 1), datetime(2026, 1, 1, 10, tzinfo=UTC))
    with pytest.raises(ValueError, match="before"):
        Appointment("x", date(2026, 1, 2), date(2026, 1, 1))
    with pytest.raises(Exception, match="Nowhere"):
        Appointment("x", date(2026, 1, 1), date(2026, 1, 2), timezone="Nowhere/Land")


def test_json_round_trip() -> None:
    series = dataclasses.replace(
        BASE,
        recurrence=Recurrence(
            "FREQ=WEEKLY;BYDAY=MO",
            exclusions=frozenset({START + timedelta(days=7)}),
            exceptions=(
                RecurrenceException(
                    START + timedelta(days=14),
                    START + timedelta(days=15),
                    START + timedelta(days=15, hours=1),
                    "Moved",
                ),
            ),
        ),
        last_modified=datetime(2026, 3, 1, tzinfo=UTC),
    )
    assert from_json(to_json(series)) == series
    all_day = Appointment("Holiday", date(2026, 5, 1), date(2026, 5, 4), private=True)
    assert from_json(to_json(all_day)) == all_day
    person = Contact(
        "Ada",
        "Lovelace",
        emails=("ada@example.com",),
        phones=(Phone("+44 20 7946 0000", "mobile"),),
        addresses=(Address(city="London"),),
        selections=frozenset({"3"}),
    )
    assert from_json(to_json(person)) == person


def test_contact_hash_ignores_formatting() -> None:
    a = Contact(
        "Ada",
        "Lovelace",
        emails=("Ada@Example.com", "b@example.com"),
        phones=(Phone("+31 (20) 555-0101"),),
    )
    b = Contact(
        " Ada ",
        "Lovelace",
        emails=("b@example.com", "ada@example.com"),
        phones=(Phone("+312055501 01"),),
    )
    assert content_hash(a) == content_hash(b)
    assert content_hash(dataclasses.replace(a, job_title="CTO")) != content_hash(a)
