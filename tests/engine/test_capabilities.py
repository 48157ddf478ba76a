"""Lossy mappings per side: what each side holds (`project`), the common view two sides
compare in (`agreed_hash`), and `merge`, which carries a real edit and never loses on the
target what the source cannot express."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.capabilities import (
    BUSY_FREE,
    EWS_APPOINTMENT,
    EWS_CONTACT,
    GOOGLE_CONTACT,
    GOOGLE_EVENT,
    GRAPH_CONTACT,
    GRAPH_EVENT,
    SUPEROFFICE_APPOINTMENT,
    SUPEROFFICE_PERSON,
    Capabilities,
    agree,
    agreed_hash,
    common_view,
    merge,
    nearest_reminder,
    nearest_show_as,
    project,
)
from common.items import (
    APPOINTMENT_FIELDS,
    CONTACT_FIELDS,
    EXCEPTION_FIELDS,
    Appointment,
    Attendee,
    Contact,
    Recurrence,
    RecurrenceException,
    ShowAs,
    When,
    content_view,
    overlay,
)

START = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)
CRM = SUPEROFFICE_APPOINTMENT
GROUPWARE = {"graph": GRAPH_EVENT, "ews": EWS_APPOINTMENT, "google": GOOGLE_EVENT}
APPOINTMENT_SIDES = {"superoffice": CRM, **GROUPWARE}
CONTACT_SIDES = {
    "superoffice": SUPEROFFICE_PERSON,
    "graph": GRAPH_CONTACT,
    "ews": EWS_CONTACT,
    "google": GOOGLE_CONTACT,
}
HTML_BODY = (
    "<html><head><style>p{margin:0}</style></head><body>"
    '<p class="MsoNormal"><b>Agenda</b></p><ul><li>numbers</li></ul></body></html>'
)


def meeting(**values: Any) -> Appointment:
    base: dict[str, Any] = {
        "subject": "Budget review",
        "start": START,
        "end": START + timedelta(hours=1),
        "body": "Agenda\nnumbers",
        "attendees": (Attendee("ann@example.com", "Ann"),),
    }
    return Appointment(**{**base, **values})


def series(*exceptions: RecurrenceException, **values: Any) -> Appointment:
    return meeting(recurrence=Recurrence("FREQ=WEEKLY;COUNT=6", exceptions=exceptions), **values)


def occurrence(week: int, **values: Any) -> RecurrenceException:
    original = START + timedelta(weeks=week)
    return RecurrenceException(original, original, original + timedelta(hours=1), **values)


# --- the declaration ------------------------------------------------------------------------------


def test_a_side_without_privacy_or_attendees_does_not_keep_them() -> None:
    caps = Capabilities(APPOINTMENT_FIELDS, private=False, attendees=False)
    assert "private" not in caps.fields and "attendees" not in caps.fields
    assert not caps.exception_fields & {"private", "attendees"}
    # ... and a field left out means the side cannot hold it either.
    caps = Capabilities(APPOINTMENT_FIELDS - {"private"})
    assert caps.private is False


def test_timing_goes_together_and_busy_is_always_held() -> None:
    assert Capabilities(frozenset({"subject", "start"})).fields >= {"start", "end", "timezone"}
    with pytest.raises(ValueError, match="busy"):
        Capabilities(APPOINTMENT_FIELDS, show_as=frozenset({ShowAs.FREE}))
    with pytest.raises(ValueError, match="exception fields"):
        Capabilities(APPOINTMENT_FIELDS, exception_fields=frozenset({"categories"}))
    with pytest.raises(ValueError, match="empty"):
        Capabilities(APPOINTMENT_FIELDS, reminders=())
    # An occurrence cannot override what the side does not keep at all.
    caps = Capabilities(APPOINTMENT_FIELDS - {"body"})
    assert "body" not in caps.exception_fields


def test_the_services_declare_what_the_vendor_facts_say() -> None:
    assert CRM.show_as == BUSY_FREE and "categories" not in CRM.fields
    assert {"crm_person_id", "crm_company_id", "activity_type"} <= CRM.fields
    assert not CRM.body_html and CRM.reminder_default is None and CRM.private
    assert GRAPH_EVENT.show_as == frozenset(ShowAs) and GRAPH_EVENT.body_html
    assert GRAPH_EVENT.reminder_default == 15 == EWS_APPOINTMENT.reminder_default
    assert GOOGLE_EVENT.show_as == BUSY_FREE and "categories" not in GOOGLE_EVENT.fields
    assert GOOGLE_EVENT.reminder_default is None and not GOOGLE_EVENT.body_html
    for side in GROUPWARE.values():
        assert not {"crm_person_id", "crm_company_id", "activity_type"} & side.fields
        assert "private" not in side.exception_fields
    assert CRM.exception_fields == EXCEPTION_FIELDS
    assert SUPEROFFICE_PERSON.fields == CONTACT_FIELDS
    assert GRAPH_CONTACT.max_emails == EWS_CONTACT.max_emails == 3
    assert "crm_person_id" not in GOOGLE_CONTACT.fields


def test_nearest_values() -> None:
    for shown in (ShowAs.TENTATIVE, ShowAs.ELSEWHERE, ShowAs.OUT_OF_OFFICE, ShowAs.BUSY):
        assert nearest_show_as(shown, BUSY_FREE) is ShowAs.BUSY
    assert nearest_show_as(ShowAs.FREE, BUSY_FREE) is ShowAs.FREE
    assert nearest_show_as(ShowAs.ELSEWHERE, frozenset(ShowAs)) is ShowAs.ELSEWHERE
    steps = (0, 5, 15, 30, 60)
    assert [nearest_reminder(m, steps) for m in (0, 3, 7, 10, 20, 45, 600)] == [
        0,
        5,
        5,
        15,  # a tie goes to the earlier reminder
        15,
        60,
        60,
    ]


# --- project ------------------------------------------------------------------------------------


def test_project_holds_the_nearest_value() -> None:
    item = meeting(show_as=ShowAs.ELSEWHERE, body=HTML_BODY, private=True, reminder_minutes=7)
    held = project(item, CRM)
    assert held.show_as is ShowAs.BUSY and held.body == "Agenda\nnumbers"
    assert held.private and held.reminder_minutes == 7
    assert project(item, GRAPH_EVENT) == item  # Graph holds all of it
    stepped = Capabilities(APPOINTMENT_FIELDS, reminders=(0, 5, 15), private=False)
    held = project(item, stepped)
    assert held.reminder_minutes == 5 and held.private is False
    no_attendees = Capabilities(APPOINTMENT_FIELDS, attendees=False)
    assert project(item, no_attendees).attendees == ()


def test_project_leaves_a_plain_body_alone() -> None:
    # Mistake caught: running every body through text_of on a plain-text side (blank lines
    # and spacing the user typed would be rewritten on every write).
    item = meeting(body="Dear Ann,\n\n  see <ann@example.com>  ")
    assert project(item, CRM).body == item.body


def test_project_puts_the_default_reminder_on_an_item_without_one() -> None:
    assert project(meeting(reminder_minutes=None), GRAPH_EVENT).reminder_minutes == 15
    assert project(meeting(reminder_minutes=None), CRM).reminder_minutes is None
    assert project(meeting(reminder_minutes=0), GRAPH_EVENT).reminder_minutes == 0


def test_project_of_occurrence_exceptions() -> None:
    item = series(
        occurrence(1, show_as=ShowAs.ELSEWHERE, private=True, body=HTML_BODY, reminder_minutes=7)
    )
    (held,) = project(item, GOOGLE_EVENT).recurrence.exceptions  # type: ignore[union-attr]
    assert held.show_as is ShowAs.BUSY and held.body == "Agenda\nnumbers"
    assert held.private is None  # not held per occurrence: as the series
    assert held.reminder_minutes == 7  # an occurrence gets no default reminder
    stepped = Capabilities(APPOINTMENT_FIELDS, reminders=(0, 10))
    (held,) = project(item, stepped).recurrence.exceptions  # type: ignore[union-attr]
    assert held.reminder_minutes == 10 and held.show_as is ShowAs.ELSEWHERE


def test_project_keeps_the_first_emails_a_contact_can_hold() -> None:
    person = Contact("Ada", "Lovelace", emails=("a@x.org", "b@x.org", "c@x.org", "d@x.org"))
    assert project(person, GRAPH_CONTACT).emails == ("a@x.org", "b@x.org", "c@x.org")
    assert project(person, GOOGLE_CONTACT) == person


# --- the common view: round trips ---------------------------------------------------------------


def exchange_rewrites(item: Appointment) -> Appointment:
    """What Exchange does to what it is given: a plain body wrapped in HTML, entities
    escaped, the default reminder put on."""
    body = item.body.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    paragraphs = "".join(f"<p>{line}</p>" for line in body.split("\n"))
    return dataclasses.replace(
        item,
        body=f"<html><head><meta charset='utf-8'></head><body>{paragraphs}</body></html>",
        reminder_minutes=15 if item.reminder_minutes is None else item.reminder_minutes,
    )


@pytest.mark.parametrize("groupware", GROUPWARE.values(), ids=GROUPWARE.keys())
def test_a_crm_item_written_to_the_groupware_and_read_back_agrees(
    groupware: Capabilities,
) -> None:
    crm_item = meeting(
        body="Call <ann@example.com> & Bob",
        crm_company_id="12",
        activity_type="Meeting",
        recurrence=Recurrence("FREQ=WEEKLY;COUNT=4", exceptions=(occurrence(1, subject="Moved"),)),
    )
    written = project(crm_item, groupware)
    read_back = exchange_rewrites(written) if groupware.body_html else written
    assert agreed_hash(read_back, CRM, groupware) == agreed_hash(crm_item, CRM, groupware)
    # ... and what the groupware user then changes is an edit.
    edited = dataclasses.replace(read_back, subject="Budget review (moved)")
    assert agreed_hash(edited, CRM, groupware) != agreed_hash(crm_item, CRM, groupware)


@pytest.mark.parametrize("groupware", GROUPWARE.values(), ids=GROUPWARE.keys())
def test_a_groupware_item_written_to_the_crm_and_read_back_agrees(groupware: Capabilities) -> None:
    gw_item = series(
        occurrence(2, show_as=ShowAs.TENTATIVE, body="<p>Short one</p>"),
        show_as=ShowAs.ELSEWHERE,
        body=HTML_BODY,
        categories=frozenset({"Blue"}),
        reminder_minutes=15,
        private=True,
    )
    gw_item = project(gw_item, groupware)
    crm_item = project(gw_item, CRM)
    assert crm_item.show_as is ShowAs.BUSY and crm_item.body == "Agenda\nnumbers"
    assert agreed_hash(crm_item, CRM, groupware) == agreed_hash(gw_item, CRM, groupware)


def test_what_a_side_cannot_express_is_no_edit() -> None:
    # Mistake caught: comparing raw values, so a CRM that knows only busy sees Graph's
    # "elsewhere" as a change on every run (and writes busy back over it).
    busy = meeting(show_as=ShowAs.BUSY)
    for shown in (ShowAs.ELSEWHERE, ShowAs.TENTATIVE, ShowAs.OUT_OF_OFFICE):
        assert agree(meeting(show_as=shown), busy, CRM, GRAPH_EVENT)
        assert not agree(meeting(show_as=shown), busy, GRAPH_EVENT, EWS_APPOINTMENT)
    assert not agree(meeting(show_as=ShowAs.FREE), busy, CRM, GRAPH_EVENT)
    no_privacy = Capabilities(APPOINTMENT_FIELDS, private=False)
    assert agree(meeting(private=True), meeting(), no_privacy, GRAPH_EVENT)
    assert not agree(meeting(private=True), meeting(), CRM, GRAPH_EVENT)
    # Fields one side does not keep are not compared.
    assert agree(meeting(categories=frozenset({"Blue"})), meeting(), CRM, GRAPH_EVENT)
    assert agree(meeting(crm_company_id="7"), meeting(), CRM, GOOGLE_EVENT)
    assert not agree(meeting(crm_company_id="7"), meeting(), CRM, CRM)


def test_a_default_reminder_is_no_edit() -> None:
    # Mistake caught: the groupware's default 15 minutes seen as an edit of an item the CRM
    # wrote without an alarm (and the alarm then written back into the CRM, or removed).
    no_alarm = meeting(reminder_minutes=None)
    defaulted = meeting(reminder_minutes=15)
    assert agree(no_alarm, defaulted, CRM, GRAPH_EVENT)
    assert agree(no_alarm, defaulted, GRAPH_EVENT, CRM)
    assert not agree(no_alarm, meeting(reminder_minutes=30), CRM, GRAPH_EVENT)
    assert not agree(defaulted, meeting(reminder_minutes=30), CRM, GRAPH_EVENT)
    # Google declares no default: its reminders are compared as they are.
    assert not agree(no_alarm, defaulted, CRM, GOOGLE_EVENT)
    # The same on an occurrence that repeats the default the series shows.
    assert agree(
        series(occurrence(1, reminder_minutes=15)), series(), CRM, GRAPH_EVENT
    ) and not agree(series(occurrence(1, reminder_minutes=30)), series(), CRM, GRAPH_EVENT)


@pytest.mark.parametrize(("a", "b"), list(itertools.permutations(APPOINTMENT_SIDES.values(), 2)))
def test_the_common_view_is_the_same_both_ways(a: Capabilities, b: Capabilities) -> None:
    item = series(
        occurrence(1, show_as=ShowAs.ELSEWHERE, reminder_minutes=15),
        show_as=ShowAs.TENTATIVE,
        body=HTML_BODY,
        reminder_minutes=None,
        private=True,
    )
    assert agreed_hash(item, a, b) == agreed_hash(item, b, a)


# --- merge ----------------------------------------------------------------------------------------


def test_merge_keeps_what_the_source_cannot_express() -> None:
    target = meeting(
        show_as=ShowAs.ELSEWHERE,
        body=HTML_BODY,
        categories=frozenset({"Blue"}),
        reminder_minutes=15,
    )
    source = meeting(show_as=ShowAs.BUSY, body="Agenda\nnumbers", reminder_minutes=None)
    # Mistake caught: overlaying every shared field, which writes busy over "elsewhere", the
    # plain text over the formatted body and drops the default reminder.
    assert merge(target, source, CRM, GRAPH_EVENT) == target
    edited = dataclasses.replace(source, subject="Budget review 2")
    merged = merge(target, edited, CRM, GRAPH_EVENT)
    assert merged == dataclasses.replace(target, subject="Budget review 2")


def test_merge_carries_real_edits_as_the_target_holds_them() -> None:
    target = meeting(show_as=ShowAs.ELSEWHERE, body=HTML_BODY, reminder_minutes=15)
    source = meeting(
        show_as=ShowAs.FREE,
        body="Agenda\nnumbers\nand a demo",
        reminder_minutes=30,
        private=True,
        crm_company_id="12",
    )
    merged = merge(target, source, CRM, GRAPH_EVENT)
    assert merged.show_as is ShowAs.FREE
    assert merged.body == "Agenda\nnumbers\nand a demo"
    assert merged.reminder_minutes == 30 and merged.private
    assert merged.crm_company_id is None  # Graph does not keep CRM links
    # From the groupware to the CRM: the value the CRM can hold.
    crm_target = meeting(show_as=ShowAs.FREE)
    merged = merge(crm_target, meeting(show_as=ShowAs.OUT_OF_OFFICE), GRAPH_EVENT, CRM)
    assert merged.show_as is ShowAs.BUSY


def test_merge_takes_timing_together() -> None:
    target = meeting(timezone="Europe/Amsterdam")
    moved = meeting(
        start=START + timedelta(hours=2), end=START + timedelta(hours=3), timezone="UTC"
    )
    merged = merge(target, moved, CRM, GRAPH_EVENT)
    assert (merged.start, merged.end, merged.timezone) == (moved.start, moved.end, "UTC")
    # The zone a single item is reported in is no edit: the target keeps its own.
    same = meeting(timezone="UTC")
    assert merge(target, same, CRM, GRAPH_EVENT).timezone == "Europe/Amsterdam"


def test_merge_keeps_what_the_source_side_does_not_keep() -> None:
    # What overlay did: the CRM keeps no categories, so it cannot have changed them.
    target = meeting(categories=frozenset({"Blue"}))
    merged = merge(target, meeting(subject="New", categories=frozenset()), CRM, GRAPH_EVENT)
    assert merged.subject == "New" and merged.categories == {"Blue"}
    assert overlay(target, meeting(subject="New"), CRM.fields - {"categories"}).categories == {
        "Blue"
    }


def test_merge_of_a_series_keeps_an_occurrence_value_the_source_cannot_express() -> None:
    # Graph's occurrence shows "elsewhere"; the CRM holds busy (the series' value). When the
    # CRM deletes another occurrence, the whole series is written: the occurrence must keep
    # "elsewhere", and the deletion must be carried.
    target = series(occurrence(1, show_as=ShowAs.ELSEWHERE), occurrence(2, subject="Week 3"))
    crm = project(target, CRM)
    assert agree(crm, target, CRM, GRAPH_EVENT)
    assert merge(target, crm, CRM, GRAPH_EVENT) == target
    third = START + timedelta(weeks=3)
    rec = crm.recurrence
    assert rec is not None
    deleted = dataclasses.replace(crm, recurrence=dataclasses.replace(rec, exclusions={third}))
    merged = merge(target, deleted, CRM, GRAPH_EVENT)
    assert merged.recurrence is not None
    assert merged.recurrence.exclusions == {third}
    assert {e.original_start: e.show_as for e in merged.recurrence.exceptions} == {
        START + timedelta(weeks=1): ShowAs.ELSEWHERE,
        START + timedelta(weeks=2): None,
    }
    assert agree(merged, deleted, CRM, GRAPH_EVENT)


def test_merge_of_a_series_carries_occurrence_edits() -> None:
    target = series(occurrence(1, show_as=ShowAs.ELSEWHERE, subject="Week 2"))
    moved_start = START + timedelta(weeks=1, days=1)
    source = series(
        RecurrenceException(
            START + timedelta(weeks=1),
            moved_start,
            moved_start + timedelta(hours=1),
            subject="Week 2 (Tue)",
        ),
        occurrence(4, private=True),
    )
    merged = merge(target, source, CRM, GRAPH_EVENT)
    assert merged.recurrence is not None
    # Graph keeps no privacy per occurrence: the fifth occurrence has nothing it can hold.
    (first,) = merged.recurrence.exceptions
    assert (first.start, first.subject, first.show_as) == (
        moved_start,
        "Week 2 (Tue)",
        ShowAs.ELSEWHERE,
    )
    assert agree(merged, source, CRM, GRAPH_EVENT)
    # An occurrence the source put back in its place (no exception any more) goes back.
    back = merge(merged, series(), CRM, GRAPH_EVENT)
    assert back.recurrence is not None
    assert [(e.start, e.subject, e.show_as) for e in back.recurrence.exceptions] == [
        (START + timedelta(weeks=1), None, ShowAs.ELSEWHERE)
    ]
    assert agree(back, series(), CRM, GRAPH_EVENT)


def test_merge_keeps_the_targets_form_of_an_equal_rule() -> None:
    target = meeting(recurrence=Recurrence("FREQ=WEEKLY;UNTIL=20260420T090000Z"))
    source = meeting(recurrence=Recurrence("FREQ=WEEKLY;COUNT=6"), subject="Renamed")
    merged = merge(target, source, CRM, GRAPH_EVENT)
    assert merged.recurrence == target.recurrence and merged.subject == "Renamed"
    shorter = meeting(recurrence=Recurrence("FREQ=WEEKLY;COUNT=5"))
    assert merge(target, shorter, CRM, GRAPH_EVENT).recurrence == shorter.recurrence


def test_merge_of_contacts() -> None:
    target = Contact("Ada", "Lovelace", emails=("a@x.org", "b@x.org", "c@x.org"))
    source = Contact(
        "Ada", "Lovelace", emails=("a@x.org", "b@x.org", "c@x.org", "d@x.org"), crm_person_id="4"
    )
    assert merge(target, source, SUPEROFFICE_PERSON, GRAPH_CONTACT) == target
    edited = dataclasses.replace(source, job_title="Analyst", emails=("e@x.org",))
    merged = merge(target, edited, SUPEROFFICE_PERSON, GRAPH_CONTACT)
    assert merged.job_title == "Analyst" and merged.emails == ("e@x.org",)
    assert merged.crm_person_id is None


# --- properties ------------------------------------------------------------------------------------

_SUBJECTS = st.sampled_from(["Budget", "Budget ", "Review", "Call <ann@example.com>"])
_BODIES = st.sampled_from(
    ["", "Agenda\nnumbers", HTML_BODY, "<p>Agenda</p><p>numbers</p>", "a < b"]
)
_SHOW_AS = st.sampled_from(list(ShowAs))
_REMINDERS = st.sampled_from([None, 0, 5, 15, 30])
_ATTENDEES = st.sampled_from(
    [(), (Attendee("ann@example.com", "Ann"),), (Attendee("bob@example.com", "Bob", False),)]
)


def _shift(value: When, *, weeks: int = 0, days: int = 0, hours: int = 0) -> When:
    if isinstance(value, datetime):
        return value + timedelta(weeks=weeks, days=days, hours=hours)
    return value + timedelta(weeks=weeks, days=days + (1 if hours else 0))


@st.composite
def _exceptions(draw: st.DrawFn, first: When) -> RecurrenceException:
    original = _shift(first, weeks=draw(st.integers(0, 5)))
    start = _shift(original, days=draw(st.sampled_from([0, 0, 1])))
    values = {
        "subject": draw(st.one_of(st.none(), _SUBJECTS)),
        "body": draw(st.one_of(st.none(), _BODIES)),
        "show_as": draw(st.one_of(st.none(), _SHOW_AS)),
        "private": draw(st.one_of(st.none(), st.booleans())),
        "reminder_minutes": draw(_REMINDERS),
        "attendees": draw(st.one_of(st.none(), _ATTENDEES)),
    }
    return RecurrenceException(original, start, _shift(start, hours=1), **values)


@st.composite
def _appointments(draw: st.DrawFn) -> Appointment:
    first: When = draw(st.sampled_from([START, START, START + timedelta(hours=2), START.date()]))
    recurrence = None
    if draw(st.booleans()):
        recurrence = Recurrence(
            draw(
                st.sampled_from(
                    ["FREQ=WEEKLY;COUNT=6", "FREQ=WEEKLY;UNTIL=20260420T090000Z", "FREQ=WEEKLY"]
                )
            ),
            exclusions=frozenset(
                _shift(first, weeks=w) for w in draw(st.sets(st.integers(0, 5), max_size=2))
            ),
            exceptions=tuple(draw(st.lists(_exceptions(first), max_size=3))),
        )
    return meeting(
        subject=draw(_SUBJECTS),
        start=first,
        end=_shift(first, hours=1),
        timezone=draw(st.sampled_from(["UTC", "Etc/UTC", "Europe/London"])),
        body=draw(_BODIES),
        show_as=draw(_SHOW_AS),
        private=draw(st.booleans()),
        categories=draw(st.sampled_from([frozenset(), frozenset({"Blue"})])),
        attendees=draw(_ATTENDEES),
        reminder_minutes=draw(_REMINDERS),
        recurrence=recurrence,
        crm_company_id=draw(st.sampled_from([None, "7"])),
    )


_STEPPED = Capabilities(
    APPOINTMENT_FIELDS - {"categories"},
    show_as=frozenset({ShowAs.BUSY, ShowAs.FREE, ShowAs.TENTATIVE}),
    private=False,
    reminders=(0, 10, 30),
    attendees=False,
    exception_fields=frozenset({"subject", "show_as"}),
)
_SIDES = st.sampled_from([*APPOINTMENT_SIDES.values(), _STEPPED])


@settings(max_examples=400, deadline=None)
@given(raw_target=_appointments(), raw_source=_appointments(), sc=_SIDES, tc=_SIDES)
def test_merge_carries_every_edit_and_loses_nothing(
    raw_target: Appointment, raw_source: Appointment, sc: Capabilities, tc: Capabilities
) -> None:
    target, source = project(raw_target, tc), project(raw_source, sc)
    merged = merge(target, source, sc, tc)
    # Always carries: afterwards the two agree in the common view.
    assert agreed_hash(merged, sc, tc) == agreed_hash(source, sc, tc)
    # Never loses: a field the source does not keep, or one both already agree on, stays as
    # the target has it.
    shared = sc.fields & tc.fields
    t_view = content_view(common_view(target, sc, tc), shared)
    s_view = content_view(common_view(source, sc, tc), shared)
    timing_differs = any(t_view[f] != s_view[f] for f in {"start", "end", "timezone"})
    # When the series' own values change, its occurrences that showed the old value follow.
    series_changes = any(
        t_view[f] != s_view[f] for f in shared & (EXCEPTION_FIELDS | {"start", "end", "timezone"})
    )
    for f in dataclasses.fields(Appointment):
        name = f.name
        if name in {"start", "end", "timezone"} and timing_differs:
            continue
        if name == "recurrence" and series_changes:
            continue
        if name not in shared or t_view[name] == s_view[name]:
            assert getattr(merged, name) == getattr(target, name), name
    # What is written is what the target can hold.
    assert project(merged, tc) == merged


@settings(max_examples=200, deadline=None)
@given(item=_appointments(), sc=_SIDES, tc=_SIDES)
def test_merging_what_already_agrees_changes_nothing(
    item: Appointment, sc: Capabilities, tc: Capabilities
) -> None:
    target = project(item, tc)
    source = project(item, sc)  # the same item as the source side holds it
    assert agree(target, source, sc, tc)
    assert merge(target, source, sc, tc) == target


@settings(max_examples=200, deadline=None)
@given(item=_appointments(), caps=_SIDES)
def test_project_is_idempotent(item: Appointment, caps: Capabilities) -> None:
    once = project(item, caps)
    assert project(once, caps) == once


@settings(max_examples=200, deadline=None)
@given(item=_appointments(), a=_SIDES, b=_SIDES)
def test_the_common_view_does_not_depend_on_the_order_of_the_sides(
    item: Appointment, a: Capabilities, b: Capabilities
) -> None:
    if a.reminders is not None and b.reminders is not None and a.reminders != b.reminders:
        return  # two stepped sides: nearest-of-nearest depends on order (no real pair has it)
    assert agreed_hash(item, a, b) == agreed_hash(item, b, a)


@pytest.mark.parametrize(("a", "b"), list(itertools.permutations(CONTACT_SIDES.values(), 2)))
def test_contacts_round_trip(a: Capabilities, b: Capabilities) -> None:
    person = Contact(
        "Ada", "Lovelace", emails=("a@x.org", "b@x.org", "c@x.org", "d@x.org"), crm_person_id="4"
    )
    held = project(person, a)
    written = project(held, b)
    assert agreed_hash(written, a, b) == agreed_hash(held, a, b)
    assert merge(written, held, a, b) == written
