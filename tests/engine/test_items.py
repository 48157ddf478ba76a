"""Canonical items: validation, normalisation and a hash that ignores what servers rewrite."""

from __future__ import annotations

import dataclasses
import json
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
    canonical_zone,
    content_hash,
    from_json,
    iana_zone,
    is_html,
    normalise_rule,
    occurrences,
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


# --- occurrence exceptions carry every field ------------------------------------------------------

SERIES = dataclasses.replace(BASE, recurrence=Recurrence("FREQ=WEEKLY;COUNT=6"))
SECOND = START + timedelta(days=7)


def with_exception(**values: object) -> Appointment:
    exc = RecurrenceException(SECOND, SECOND, SECOND + timedelta(hours=1), **values)  # type: ignore[arg-type]
    return dataclasses.replace(
        SERIES, recurrence=dataclasses.replace(SERIES.recurrence, exceptions=(exc,))
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "override",
    [
        {"subject": "Budget review (short)"},
        {"location": "Room 5"},
        {"body": "Only the numbers"},
        {"attendees": (Attendee("a@example.com", "Ann"),)},
        {"show_as": ShowAs.TENTATIVE},
        {"private": True},
        {"reminder_minutes": 60},
    ],
    ids=lambda o: next(iter(o)),
)
def test_every_exception_field_is_content(override: dict[str, object]) -> None:
    # Mistake caught: a new exception field left out of content_view (its edit never synced).
    assert content_hash(with_exception(**override)) != content_hash(with_exception())
    assert content_hash(with_exception(**override)) != content_hash(SERIES)


def test_an_exception_that_repeats_the_series_is_no_exception() -> None:
    # Graph and EWS report an exception as a full item: every field filled in. Mistake caught:
    # comparing the raw values, so reading back a series with an exception is always an edit.
    echoed = with_exception(
        subject="Budget review",
        location="Room 4",
        body="<p>Line one</p><p>Line two</p>",
        attendees=tuple(reversed(BASE.attendees)),
        show_as=ShowAs.BUSY,
        private=False,
        reminder_minutes=15,
    )
    assert content_hash(echoed) == content_hash(with_exception())
    # ... and an exception that neither moves nor changes its occurrence is none at all.
    assert content_hash(with_exception()) == content_hash(SERIES)
    # But a moved one is an exception, even with no other change.
    moved = RecurrenceException(SECOND, SECOND + timedelta(hours=2), SECOND + timedelta(hours=3))
    assert SERIES.recurrence is not None
    assert content_hash(
        dataclasses.replace(
            SERIES, recurrence=dataclasses.replace(SERIES.recurrence, exceptions=(moved,))
        )
    ) != content_hash(SERIES)


def test_an_exception_that_adds_an_occurrence_the_rule_does_not_make_is_kept() -> None:
    # An unmoved "exception" of a start the rule never makes adds an occurrence (occurrences()
    # shows it); dropping it as trivial would hide that edit.
    extra = START + timedelta(days=3)
    exc = RecurrenceException(extra, extra, extra + timedelta(hours=1))
    assert SERIES.recurrence is not None
    item = dataclasses.replace(
        SERIES, recurrence=dataclasses.replace(SERIES.recurrence, exceptions=(exc,))
    )
    assert content_hash(item) != content_hash(SERIES)


def test_an_exception_of_a_deleted_occurrence_is_no_content() -> None:
    deleted = with_exception(subject="Gone anyway")
    rec = deleted.recurrence
    assert rec is not None
    deleted = dataclasses.replace(
        deleted, recurrence=dataclasses.replace(rec, exclusions=frozenset({SECOND}))
    )
    plain = dataclasses.replace(
        SERIES, recurrence=Recurrence("FREQ=WEEKLY;COUNT=6", frozenset({SECOND}))
    )
    assert content_hash(deleted) == content_hash(plain)


def test_json_round_trip_of_an_exception_with_every_field() -> None:
    item = with_exception(
        subject="S",
        location="L",
        body="<b>B</b>",
        attendees=(Attendee("c@example.com", "Cy", False),),
        show_as=ShowAs.OUT_OF_OFFICE,
        private=True,
        reminder_minutes=0,
    )
    back = from_json(json.loads(json.dumps(to_json(item))))
    assert back == item
    assert isinstance(back, Appointment) and back.recurrence is not None
    (exc,) = back.recurrence.exceptions
    assert exc.show_as is ShowAs.OUT_OF_OFFICE and isinstance(exc.attendees, tuple)
    assert exc.reminder_minutes == 0  # zero is a value, not "as the series"


def test_json_from_before_exceptions_carried_every_field() -> None:
    # Audit rows and held plans written by the old code have only these keys.
    old = to_json(with_exception(subject="Moved"))
    for exc in old["recurrence"]["exceptions"]:
        for key in ("body", "attendees", "show_as", "private", "reminder_minutes"):
            del exc[key]
    assert from_json(old) == with_exception(subject="Moved")


# --- plain text with angle brackets is plain text ------------------------------------------------


@pytest.mark.parametrize(
    ("body", "text"),
    [
        # Mistake caught: any `<letter` taken for HTML, and the address dropped as a tag.
        ("Call <ann@example.com>", "Call <ann@example.com>"),
        ("Ann <a@example.com>, Bob <b@example.com>", "Ann <a@example.com>, Bob <b@example.com>"),
        ("if a < b and c > d", "if a < b and c > d"),
        ("see <https://example.com/x>", "see <https://example.com/x>"),
        ("Call &lt;ann@example.com&gt;", "Call <ann@example.com>"),
        # Real HTML still reduces to its text.
        ("<p>Call &lt;ann@example.com&gt;</p>", "Call <ann@example.com>"),
        ("<div>Call <ann@example.com></div>", "Call <ann@example.com>"),
        (
            '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
            "<style>p{margin:0}</style></head><body><p>Agenda</p><ul><li>one</li><li>two</li>"
            "</ul></body></html>",
            "Agenda\none\ntwo",
        ),
        ("<!DOCTYPE html><title>t</title>Hello", "Hello"),
        ("<B>Bold</B> text", "Bold text"),
        # Line breaks in HTML source are spaces (Outlook wraps long lines); <pre> keeps them.
        (
            '<p class="MsoNormal">A long line\r\nwrapped by Outlook</p>',
            "A long line wrapped by Outlook",
        ),
        ("<pre>a\n  b</pre>", "a\nb"),
    ],
)
def test_text_of_tells_html_from_text(body: str, text: str) -> None:
    assert text_of(body) == text


@pytest.mark.parametrize(
    ("body", "html"),
    [
        ("Call <ann@example.com>", False),
        ("<a@example.com>", False),
        ("x <b y", False),
        ("a <br> b", True),
        ("<a href='x'>x</a>", True),
        ("<o:p></o:p>", True),
        ("<!-- note -->", True),
    ],
)
def test_is_html(body: str, html: bool) -> None:
    assert is_html(body) is html


def test_an_address_in_a_plain_body_is_content() -> None:
    with_address = dataclasses.replace(BASE, body="Call <ann@example.com>")
    assert content_hash(with_address) != content_hash(dataclasses.replace(BASE, body="Call"))
    escaped = dataclasses.replace(BASE, body="<p>Call &lt;ann@example.com&gt;</p>")
    assert content_hash(escaped) == content_hash(with_address)


# --- server rewrites that are not edits ---------------------------------------------------------


def series_in(zone: str, rule: str = "FREQ=WEEKLY;BYDAY=MO") -> Appointment:
    local = datetime(2026, 3, 23, 9, 0, tzinfo=ZoneInfo(zone))
    return Appointment(
        "Stand-up", local, local + timedelta(minutes=30), timezone=zone, recurrence=Recurrence(rule)
    )


@pytest.mark.parametrize("alias", ["Etc/UTC", "GMT", "Etc/GMT", "UCT", "Zulu", "Etc/Universal"])
def test_utc_aliases_are_one_zone(alias: str) -> None:
    assert content_hash(series_in(alias)) == content_hash(series_in("UTC"))
    assert canonical_zone(alias) == "UTC" and iana_zone(alias) == "UTC"


def test_gmt_is_utc_not_london() -> None:
    # Mistake caught: "GMT" read as the Windows "GMT Standard Time" (London, with summer time).
    assert content_hash(series_in("GMT")) != content_hash(series_in("Europe/London"))


@pytest.mark.parametrize(
    ("windows", "iana", "same_group"),
    [
        ("W. Europe Standard Time", "Europe/Berlin", ["Europe/Amsterdam", "Europe/Rome"]),
        ("GMT Standard Time", "Europe/London", ["Europe/Dublin", "Europe/Lisbon"]),
        ("Romance Standard Time", "Europe/Paris", ["Europe/Brussels", "Europe/Madrid"]),
        ("Eastern Standard Time", "America/New_York", ["US/Eastern", "America/Toronto"]),
        ("Pacific Standard Time", "America/Los_Angeles", ["US/Pacific"]),
        ("Central European Standard Time", "Europe/Warsaw", ["Europe/Zagreb"]),
        ("UTC", "UTC", ["Etc/UTC"]),
        ("India Standard Time", "Asia/Calcutta", ["Asia/Kolkata"]),
    ],
)
def test_windows_zone_names_are_their_iana_zones(
    windows: str, iana: str, same_group: list[str]
) -> None:
    assert iana_zone(windows) == iana
    assert canonical_zone(windows) == canonical_zone(iana)
    as_read = series_in(iana_zone(windows))  # a connector reading Graph's originalStartTimeZone
    for zone in [iana, *same_group]:
        assert canonical_zone(zone) == canonical_zone(windows)
        assert content_hash(series_in(zone)) == content_hash(as_read)


def test_different_zones_stay_different() -> None:
    # The same wall-clock time in another group is a real edit of a series.
    assert content_hash(series_in("Europe/Berlin")) != content_hash(series_in("Europe/London"))
    assert content_hash(series_in("Europe/Berlin")) != content_hash(series_in("Europe/Paris"))
    assert canonical_zone("Pacific/Chatham") == "Pacific/Chatham"  # outside the table: as is
    assert iana_zone("Europe/Amsterdam") == "Europe/Amsterdam"  # IANA names are kept


@pytest.mark.parametrize(
    "until",
    [
        "UNTIL=20260413T070000Z",  # the fourth occurrence, 09:00 Amsterdam (CEST)
        "UNTIL=20260413T235959Z",
        "UNTIL=20260413",  # a date: the last day included (Graph's range endDate)
        "UNTIL=20260413T090000",  # floating: read in the series' zone
        "UNTIL=20260419T120000Z",  # anywhere before the fifth
    ],
)
def test_count_and_until_giving_the_same_occurrences_are_equal(until: str) -> None:
    by_count = series_in("Europe/Amsterdam", "FREQ=WEEKLY;BYDAY=MO;COUNT=4")
    by_until = series_in("Europe/Amsterdam", f"FREQ=WEEKLY;BYDAY=MO;{until}")
    assert content_hash(by_until) == content_hash(by_count)
    window = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert [o.start for o in occurrences(by_until, *window)] == [
        o.start for o in occurrences(by_count, *window)
    ]


def test_a_different_end_of_a_series_is_an_edit() -> None:
    # Mistake caught: dropping COUNT/UNTIL from the hash altogether.
    four = series_in("Europe/Amsterdam", "FREQ=WEEKLY;BYDAY=MO;COUNT=4")
    assert content_hash(
        series_in("Europe/Amsterdam", "FREQ=WEEKLY;BYDAY=MO;COUNT=5")
    ) != content_hash(four)
    assert content_hash(
        series_in("Europe/Amsterdam", "FREQ=WEEKLY;BYDAY=MO;UNTIL=20260412")
    ) != content_hash(four)
    assert content_hash(series_in("Europe/Amsterdam")) != content_hash(four)  # no end at all


def test_all_day_count_and_until_are_equal() -> None:
    def gym(rule: str) -> Appointment:
        return Appointment(
            "Gym",
            date(2026, 3, 23),
            date(2026, 3, 24),
            "Europe/Amsterdam",
            recurrence=Recurrence(rule),
        )

    assert content_hash(gym("FREQ=WEEKLY;COUNT=3")) == content_hash(
        gym("FREQ=WEEKLY;UNTIL=20260406")
    )
    assert content_hash(gym("FREQ=WEEKLY;COUNT=3")) == content_hash(
        gym("FREQ=WEEKLY;UNTIL=20260406T215959Z")
    )
    assert content_hash(gym("FREQ=WEEKLY;COUNT=3")) != content_hash(
        gym("FREQ=WEEKLY;UNTIL=20260405")
    )


def test_an_exclusion_of_no_occurrence_is_no_content() -> None:
    series = series_in("Europe/Amsterdam", "FREQ=WEEKLY;BYDAY=MO;COUNT=4")
    tuesday = datetime(2026, 3, 24, 9, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
    monday = datetime(2026, 3, 30, 9, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
    with_stray = dataclasses.replace(
        series, recurrence=Recurrence(series.recurrence.rule, frozenset({tuesday}))
    )  # type: ignore[union-attr]
    assert content_hash(with_stray) == content_hash(series)
    with_real = dataclasses.replace(
        series, recurrence=Recurrence(series.recurrence.rule, frozenset({monday}))
    )  # type: ignore[union-attr]
    assert content_hash(with_real) != content_hash(series)


@pytest.mark.parametrize(
    ("escaped", "plain"),
    [
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("&lt;ann@example.com&gt;", "<ann@example.com>"),
        ("<p>Tom &amp; Jerry</p>", "Tom & Jerry"),
        ("caf&eacute; &#8364;5", "café €5"),
    ],
)
def test_escaped_bodies_are_their_text(escaped: str, plain: str) -> None:
    assert content_hash(dataclasses.replace(BASE, body=escaped)) == content_hash(
        dataclasses.replace(BASE, body=plain)
    )


def test_a_reminder_is_not_normalised_here() -> None:
    # A side that adds its default reminder declares it (common.capabilities); the hash
    # itself must still see a reminder appear.
    assert content_hash(dataclasses.replace(BASE, reminder_minutes=None)) != content_hash(BASE)
