"""The SuperOffice appointment connector on the demo world's calendar (Contoso, SuperOffice
Online): the change listing by content (an edit later the same day, an edit that moves no
date), the reconciliation that finds a deletion no event announced, meetings as one item per
participant, privacy, series with exceptions, all-day items across a DST change, and writes
guarded with If-Unmodified-Since. Users act through SuperOffice's REST API or, for what no
API call does (a change that leaves the row's date), through the simulator's state."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from common.connectors.base import NotFound, Permanent, PreconditionFailed
from common.connectors.superoffice import SuperOfficeAppointments, Tenant
from common.items import (
    Appointment,
    Attendee,
    Recurrence,
    RecurrenceException,
    ShowAs,
    content_hash,
)
from common.kinds import RemovalKind, Window
from tests.connectors.contract import listed, read_all, removed
from tests.fixtures.superoffice import SO_ANCHOR
from tests.fixtures.superoffice_connector import (
    ADELE,
    CONTOSO_ZONE,
    MEGAN,
    NOMAIL,
    SoUser,
    bearer,
    online_client,
    sign_in,
)

OSLO = ZoneInfo(CONTOSO_ZONE)
WINDOW = Window(dt.datetime(2026, 2, 28, tzinfo=dt.UTC), dt.datetime(2026, 5, 1, tzinfo=dt.UTC))
EMAILS = {ADELE: "adele@contoso.example", MEGAN: "megan@contoso.example",
          NOMAIL: "nomail@contoso.example"}  # fmt: skip
Diary = Callable[[int], tuple[SuperOfficeAppointments, SoUser]]


@pytest.fixture
def diary(so_http: requests.Session, so_base: str) -> Diary:
    """`diary(associate)`: the connector on that user's diary (the user's own SuperID
    tokens) and the user acting in SuperOffice."""

    def make(associate: int) -> tuple[SuperOfficeAppointments, SoUser]:
        email = EMAILS[associate]
        client = online_client(so_http, so_base, email)
        connector = SuperOfficeAppointments(
            client, associate, Tenant(CONTOSO_ZONE, context="Cust12345"), page_size=50
        )
        user = SoUser(so_http, f"{so_base}/Cust12345/api/v1",
                      bearer(sign_in(so_http, so_base, email)))  # fmt: skip
        return connector, user

    return make


def by_subject(pages: list[Any]) -> dict[str, Any]:
    return {s.item.subject: s for s in listed(pages).values()}


def local(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """A time on the demo world's calendar (days after its anchor Monday), in Oslo."""
    return dt.datetime.combine(SO_ANCHOR + dt.timedelta(days=day), dt.time(hour, minute), OSLO)


def sim_state(http: requests.Session, base: str) -> dict[str, Any]:
    state: dict[str, Any] = http.get(f"{base}/_sim/state").json()["tenants"]["Cust12345"]
    return state


def set_rows(http: requests.Session, base: str, rows: list[dict[str, Any]]) -> None:
    answer = http.post(
        f"{base}/_sim/state", json={"tenants": {"Cust12345": {"appointments": rows}}}
    )
    assert answer.status_code == 204, answer.text


def entity_gets(connector: SuperOfficeAppointments) -> int:
    return connector.client.calls["GET /Appointment"]


# --- the change listing ---------------------------------------------------------------------


def test_an_edit_later_the_same_day_is_not_missed(diary: Diary) -> None:
    """Mistake: listing changes made *after* the last listing's day (`updatedDate after`
    that day), so an edit made later on the same day, which has that same date, is never
    seen; or reading every row changed today again on every pass."""
    connector, megan = diary(MEGAN)
    pages, cursor = read_all(connector, None, WINDOW)
    demo = by_subject(pages)["Demo for Boston Analytics"]
    connector.client.calls.clear()
    pages, cursor = read_all(connector, cursor, WINDOW)
    assert listed(pages) == {} and removed(pages) == []
    assert connector.client.calls == {"GET /Appointment": 2}  # changes + ids, nothing read
    megan.edit("Appointment", int(demo.id), Title="Demo (moved to Friday)")
    pages, cursor = read_all(connector, cursor, WINDOW)
    assert [s.item.subject for s in listed(pages).values()] == ["Demo (moved to Friday)"]
    megan.edit("Appointment", int(demo.id), Location="Their office")  # the same day again
    pages, cursor = read_all(connector, cursor, WINDOW)
    assert [s.item.location for s in listed(pages).values()] == ["Their office"]
    connector.client.calls.clear()
    pages, _ = read_all(connector, cursor, WINDOW)
    assert listed(pages) == {} and connector.client.calls == {"GET /Appointment": 2}


def test_a_second_edit_the_same_day_is_found_by_content(
    diary: Diary, so_http: requests.Session, so_base: str
) -> None:
    """`updatedDate` is a date: two edits made the same day carry the same one (and a change
    SuperOffice does not stamp carries none). Mistake: deciding "unchanged" by the date or
    by UpdatedDate instead of by the row's content. (A content change under an older date is
    found by the full listing that follows the cursor's maximum age.)"""
    connector, megan = diary(MEGAN)
    pages, cursor = read_all(connector, None, WINDOW)
    flight = by_subject(pages)["Flight to Boston"]
    megan.edit("Appointment", int(flight.id), Title="Flight to Boston (BA)")
    pages, cursor = read_all(connector, cursor, WINDOW)
    first = listed(pages)[flight.id]
    rows = sim_state(so_http, so_base)["appointments"]
    row = next(r for r in rows if r["appointment_id"] == int(flight.id))
    row["location"] = "Gate 12"  # the second edit of the day: content changed, date as it was
    set_rows(so_http, so_base, rows)
    pages, _ = read_all(connector, cursor, WINDOW)
    shown = listed(pages)
    assert list(shown) == [flight.id] and shown[flight.id].item.location == "Gate 12"
    assert shown[flight.id].version == first.version  # UpdatedDate did not move


def test_a_deletion_no_event_announced_is_found_by_reconciling_ids(
    diary: Diary, so_http: requests.Session, so_base: str
) -> None:
    """An appointment removed without any change to list (a hard delete, a purge, an event
    that never arrived) is reported by the next pass. Mistake: a delta that only lists
    changed rows, so the copy of a deleted item lives on."""
    connector, megan = diary(MEGAN)
    pages, cursor = read_all(connector, None, WINDOW)
    items = by_subject(pages)
    call, flight = items["Call Sydney (their morning)"], items["Flight to Boston"]
    rows = sim_state(so_http, so_base)["appointments"]
    set_rows(so_http, so_base, [r for r in rows if r["appointment_id"] != int(call.id)])
    far = dt.datetime(2026, 9, 1, 9, tzinfo=dt.UTC)  # edited out of the window: not deleted
    megan.edit("Appointment", int(flight.id), StartDate=far.isoformat(),
               EndDate=(far + dt.timedelta(hours=1)).isoformat())  # fmt: skip
    pages, cursor = read_all(connector, cursor, WINDOW)
    gone = {r.id: r.kind for r in removed(pages)}
    assert gone == {call.id: RemovalKind.UNKNOWN, flight.id: RemovalKind.UNKNOWN}
    assert listed(pages) == {}
    # Asked (as the engine asks), one is gone and the other only left the window.
    with pytest.raises(NotFound):
        connector.get(call.id)
    assert connector.get(flight.id).item.start == far
    pages, _ = read_all(connector, cursor, WINDOW)
    assert removed(pages) == []  # reported once


# --- meetings -------------------------------------------------------------------------------


def test_a_meeting_is_one_item_per_participant(diary: Diary, so_http: requests.Session,
                                               so_base: str) -> None:  # fmt: skip
    """SuperOffice stores a meeting as the owner's mother appointment and a booking in each
    participant's diary. Each diary lists its own row once, with the organiser and the
    meeting's UID the other copies share. Mistakes: the organiser taken from the row's own
    owner (each participant would "organise" the meeting and the engine would copy it
    around), a participant's diary holding the meeting twice, or a participant's sync
    changing the meeting for everyone."""
    adele, _ = diary(ADELE)
    megan, _ = diary(MEGAN)
    mine = by_subject(read_all(adele, None, WINDOW)[0])["Quarterly review"]
    hers = [s for s in listed(read_all(megan, None, WINDOW)[0]).values()
            if s.item.subject == "Quarterly review"]  # fmt: skip
    assert len(hers) == 1 and hers[0].id != mine.id
    booking = hers[0]
    for copy in (mine, booking):
        assert copy.item.organizer == "adele@contoso.example"
        assert copy.item.uid == mine.item.uid is not None
        assert {a.email for a in copy.item.attendees} == {
            "megan@contoso.example", "ingrid.berg@bergenshipping.example"}  # fmt: skip
    # Made through the organiser's connector: one booking in the colleague's diary, and
    # nothing for an outside address (SuperOffice mails nobody).
    start = local(8, 13)
    meeting = Appointment("Pricing", start, start + dt.timedelta(hours=1), attendees=(
        Attendee("megan@contoso.example", "Megan Bowen"), Attendee("carl@customer.example")))  # fmt: skip
    made = adele.create(meeting, "cid-pricing")
    assert {a.email for a in made.item.attendees} == {
        "megan@contoso.example",
        "carl@customer.example",
    }
    rows = [r for r in sim_state(so_http, so_base)["appointments"] if r["title"] == "Pricing"]
    assert sorted(r["associate_id"] for r in rows) == [ADELE, MEGAN]
    copies = [s for s in listed(read_all(megan, None, WINDOW)[0]).values()
              if s.item.subject == "Pricing"]  # fmt: skip
    assert len(copies) == 1 and copies[0].item.organizer == "adele@contoso.example"
    # The participant's own alarm is theirs to set; the meeting is the organiser's.
    with pytest.raises(Permanent, match="only its organiser"):
        megan.update(booking.id, dataclasses.replace(booking.item, subject="Mine now"), None)
    changed = megan.update(booking.id, dataclasses.replace(booking.item, reminder_minutes=30), None)
    assert changed.item.reminder_minutes == 30 and changed.item.subject == "Quarterly review"
    assert adele.get(mine.id).item.reminder_minutes == 15
    # The organiser deleting the meeting takes every booking with it.
    adele.delete(made.id, made.version)
    assert [r for r in sim_state(so_http, so_base)["appointments"] if r["title"] == "Pricing"] == []


# --- privacy ---------------------------------------------------------------------------------


def test_private_items_read_as_private_and_keep_their_kind_of_privacy(
    diary: Diary, so_http: requests.Session, so_base: str
) -> None:
    """Mistakes: reading only PrivateUser as private (a group's private item would be
    shown to everyone on the other side), or writing every private item as PrivateUser
    (an update would narrow a group's item to its owner)."""
    adele, _ = diary(ADELE)
    nomail, _ = diary(NOMAIL)
    assert by_subject(read_all(adele, None, WINDOW)[0])["Doctor"].item.private
    lunch = by_subject(read_all(nomail, None, WINDOW)[0])["Lunch"]
    assert lunch.item.private and lunch.item.show_as is ShowAs.FREE
    nomail.update(lunch.id, dataclasses.replace(lunch.item, subject="Long lunch"), lunch.version)

    def privacy(title: str) -> str:
        rows = sim_state(so_http, so_base)["appointments"]
        return str(next(r["private"] for r in rows if r["title"] == title))

    assert privacy("Long lunch") == "PrivateGroup"
    start = local(9, 8)
    made = adele.create(Appointment("Dentist", start, start + dt.timedelta(hours=1),
                                    private=True), "cid-dentist")  # fmt: skip
    assert privacy("Dentist") == "PrivateUser" and made.item.private
    adele.update(made.id, dataclasses.replace(made.item, private=False), made.version)
    assert privacy("Dentist") == "Public"


# --- series ----------------------------------------------------------------------------------


def test_a_series_is_read_with_its_moved_and_deleted_occurrences(diary: Diary) -> None:
    """The weekly sales meeting: one row per occurrence in SuperOffice, one series here,
    with the occurrence moved to 10:30 and renamed as an exception and the deleted one as
    an exclusion; every participant's booking rows make the same series."""
    adele, _ = diary(ADELE)
    megan, _ = diary(MEGAN)
    weekly = by_subject(read_all(adele, None, WINDOW)[0])["Weekly sales meeting"]
    item = weekly.item
    assert weekly.id.startswith("r") and item.recurrence is not None
    assert item.recurrence.rule == "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;COUNT=30"
    assert item.start == local(0, 8, 30) and item.end == local(0, 9, 15)
    assert item.recurrence.exclusions == {local(21, 8, 30)}
    (moved,) = item.recurrence.exceptions
    assert moved.original_start == local(14, 8, 30) and moved.start == local(14, 10, 30)
    assert moved.subject == "Weekly sales meeting (moved)" and moved.location is None
    # after the DST change (29 March) the series keeps 08:30 in Oslo
    assert item.recurrence is not None
    hers = by_subject(read_all(megan, None, WINDOW)[0])["Weekly sales meeting"]
    assert hers.id == weekly.id and hers.item.uid == item.uid
    assert content_hash(hers.item) == content_hash(item)


def test_a_series_written_here_is_held_as_superoffice_holds_series(
    diary: Diary, so_http: requests.Session, so_base: str
) -> None:
    """Mistakes: a series written as its first occurrence only, expanded in UTC (its
    occurrences after the DST change an hour off), exceptions or exclusions lost, an
    occurrence's edit rewriting every row, the stamp lost when the rule changes."""
    adele, _ = diary(ADELE)
    start = local(14, 9)  # Monday 16 March, 09:00 Oslo; the series runs past 29 March
    series = Appointment(
        "Planning", start, start + dt.timedelta(hours=1), timezone=CONTOSO_ZONE,
        recurrence=Recurrence(
            "FREQ=WEEKLY;BYDAY=MO;COUNT=6", exclusions=frozenset({local(21, 9)}),
            exceptions=(RecurrenceException(local(28, 9), local(28, 11), local(28, 12),
                                            subject="Planning (late)"),),
        ),
    )  # fmt: skip
    made = adele.create(series, "cid-planning")
    rows = sorted((r for r in sim_state(so_http, so_base)["appointments"]
                   if r["title"].startswith("Planning")), key=lambda r: r["start"])  # fmt: skip
    starts = [dt.datetime.fromisoformat(r["start"]).astimezone(OSLO) for r in rows]
    assert starts == [local(14, 9), local(28, 11), local(35, 9), local(42, 9), local(49, 9)]
    assert [r["title"] for r in rows][1] == "Planning (late)"
    assert content_hash(adele.get(made.id).item) == content_hash(series)
    assert adele.can_express(series.recurrence) and not adele.can_express(  # type: ignore[arg-type]
        Recurrence("FREQ=WEEKLY;BYDAY=MO,WE;COUNT=5")
    ) and not adele.can_express(Recurrence("FREQ=DAILY"))  # fmt: skip
    # One occurrence renamed: only its row is written.
    assert series.recurrence is not None
    renamed = dataclasses.replace(series, recurrence=dataclasses.replace(
        series.recurrence, exceptions=(*series.recurrence.exceptions, RecurrenceException(
            local(35, 9), local(35, 9), local(35, 10), subject="Planning (short)")),
    ))  # fmt: skip
    adele.client.calls.clear()
    again = adele.update(made.id, renamed, made.version)
    assert again.id == made.id and adele.client.calls["PUT /Appointment"] == 1
    assert content_hash(adele.get(made.id).item) == content_hash(renamed)
    # The first occurrence deleted (the row holding our stamp): the stamp moves on. (The
    # series' own values are those most of its rows have.)
    first_gone = dataclasses.replace(renamed, recurrence=dataclasses.replace(
        renamed.recurrence, exclusions=renamed.recurrence.exclusions | {local(14, 9)}))  # fmt: skip
    again = adele.update(made.id, first_gone, again.version)
    assert adele.get(made.id).correlation_id == "cid-planning"
    assert content_hash(adele.get(made.id).item) == content_hash(first_gone)
    # A new rule: the series is made anew; its id changes and it keeps our stamp.
    shorter = dataclasses.replace(series, recurrence=Recurrence("FREQ=WEEKLY;BYDAY=MO;COUNT=2"))
    remade = adele.update(made.id, shorter, again.version)
    assert remade.id != made.id and remade.correlation_id == "cid-planning"
    found = adele.find_by_correlation_id("cid-planning")
    assert found is not None and found.id == remade.id
    with pytest.raises(NotFound):
        adele.get(made.id)
    assert len([r for r in sim_state(so_http, so_base)["appointments"]
                if r["title"].startswith("Planning")]) == 2  # fmt: skip


# --- all-day ---------------------------------------------------------------------------------


def test_all_day_items_are_days_in_the_tenants_zone_across_a_dst_change(
    diary: Diary, so_http: requests.Session, so_base: str
) -> None:
    """Mistake: all-day items written as UTC midnights (an hour into the day in Oslo, and
    two after the clocks change, so the last day reads one too many)."""
    adele, _ = diary(ADELE)
    offsite = by_subject(read_all(adele, None, WINDOW)[0])["Company offsite"]
    assert offsite.item.all_day
    assert (offsite.item.start, offsite.item.end) == (SO_ANCHOR + dt.timedelta(days=10),
                                                      SO_ANCHOR + dt.timedelta(days=13))  # fmt: skip
    fair = Appointment("Fair", dt.date(2026, 3, 27), dt.date(2026, 3, 31))  # over 29 March
    made = adele.create(fair, "cid-fair")
    assert (made.item.start, made.item.end) == (fair.start, fair.end)
    row = next(r for r in sim_state(so_http, so_base)["appointments"] if r["title"] == "Fair")
    assert row["all_day"] is True
    assert dt.datetime.fromisoformat(row["start"]).astimezone(OSLO) == local(25, 0)
    assert dt.datetime.fromisoformat(row["end"]).astimezone(OSLO) == local(29, 0)
    assert content_hash(adele.get(made.id).item) == content_hash(fair)


# --- concurrency -----------------------------------------------------------------------------


def test_a_write_over_a_users_newer_edit_is_refused(diary: Diary) -> None:
    """Mistake: updates and deletes sent without If-Unmodified-Since, so a user's edit made
    after our read is overwritten (or the item deleted under them)."""
    adele, user = diary(ADELE)
    start = local(3, 15)
    made = adele.create(Appointment("Budget", start, start + dt.timedelta(hours=1)), "cid-b")
    time.sleep(1.1)  # If-Unmodified-Since is an HTTP date: whole seconds
    user.edit("Appointment", int(made.id), Title="Budget (user's)")
    with pytest.raises(PreconditionFailed):
        adele.update(made.id, dataclasses.replace(made.item, location="Room 1"), made.version)
    with pytest.raises(PreconditionFailed):
        adele.delete(made.id, made.version)
    fresh = adele.get(made.id)
    assert fresh.item.subject == "Budget (user's)"
    adele.update(made.id, dataclasses.replace(fresh.item, location="Room 1"), fresh.version)
    assert adele.get(made.id).item.location == "Room 1"
