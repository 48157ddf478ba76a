"""The Exchange calendar connector against the EWS simulator, on its own and through the
engine with a CRM side: batches, change keys, sync states, meetings and their mail, series,
privacy, categories, time zones and throttling. Each test names the mistake it catches;
what users do happens in Outlook (their own EWS client), not through the connector."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from common.capabilities import EWS_APPOINTMENT, project
from common.connectors.base import NotFound, PreconditionFailed, Write
from common.connectors.ews.events import EwsEvents
from common.connectors.memory import MemoryConnector
from common.items import Appointment, Attendee, Recurrence, RecurrenceException, content_hash
from common.kinds import ItemKind, RunStatus, Side, new_correlation_id
from daemon.policies import AppointmentFilter, Invitations, InviteMode, Policy, PrivatePolicy
from daemon.sync import SyncOutcome, sync
from tests.connectors.contract import read_all
from tests.fixtures.engine import MemoryStore
from tests.fixtures.ews_connector import (
    ALICE,
    BOB,
    NOW,
    WINDOW,
    EwsAppointments,
    Exchange,
    Outlook,
)

CUSTOMER = "pat@customer.example"  # outside the organisation
OSLO = "Europe/Oslo"


def same(a: Appointment, b: Appointment) -> bool:
    return content_hash(project(a, EWS_APPOINTMENT)) == content_hash(project(b, EWS_APPOINTMENT))


def run(
    crm: MemoryConnector[Any], events: EwsEvents, store: Any, policy: Policy | None = None
) -> SyncOutcome[Any]:
    return sync(
        ItemKind.APPOINTMENT,
        {Side.CRM: crm, Side.GROUPWARE: events},
        store,
        policy or Policy(),
        NOW,
        me=ALICE,
        colleagues=frozenset({ALICE, BOB}),
        sleep=lambda seconds: None,
    )


def crm_side(n: int = 0) -> MemoryConnector[Appointment]:
    crm: MemoryConnector[Appointment] = MemoryConnector("crm")
    for i in range(n):
        start = NOW + timedelta(days=1 + i % 10, hours=i % 7)
        crm.user_create(Appointment(f"Visit {i}", start, start + timedelta(minutes=45)))
    return crm


def calendar(exchange: Exchange, address: str = ALICE) -> list[dict[str, Any]]:
    return list(exchange.mailbox(address)["calendar"])


def subjects(exchange: Exchange, address: str = ALICE) -> list[str]:
    return sorted(str(e.get("subject")) for e in calendar(exchange, address))


def crm_subjects(crm: MemoryConnector[Appointment]) -> list[str]:
    return sorted(i.subject for _, i, _ in crm.items.values())


@pytest.fixture
def events(ews_appointments: EwsAppointments) -> EwsEvents:
    return ews_appointments.connector


@pytest.fixture
def outlook(ews_appointments: EwsAppointments) -> Outlook:
    return ews_appointments.outlook


# --- batches and request counts --------------------------------------------------------------


def test_fifty_creates_are_one_create_item_and_a_page_one_sync_and_one_get(
    exchange: Exchange, events: EwsEvents
) -> None:
    """Mistakes caught: one CreateItem (or GetItem) per item, a listing that asks GetItem
    once per item, a delta that reads items again that did not change."""
    events.changes(None, WINDOW)  # the server's version is known from here on
    before = exchange.operations()
    writes: list[Write[Appointment]] = []
    for i in range(50):
        start = NOW + timedelta(days=1 + i % 9, hours=i % 8)
        item = Appointment(f"Batch {i}", start, start + timedelta(minutes=30))
        writes.append(Write("create", item=item, correlation_id=new_correlation_id()))
    results = events.apply_many(writes)
    assert all(not isinstance(r, Exception) for r in results), results
    assert _spent(exchange, before) == {"CreateItem": 1, "GetItem": 1}

    listing = EwsEvents(events.client, page_size=100)
    before = exchange.operations()
    pages, cursor = read_all(listing, None, WINDOW)
    assert len({s.id for p in pages for s in p.upserts}) == 50
    assert _spent(exchange, before) == {"SyncFolderItems": 1, "GetItem": 1}

    before = exchange.operations()
    nothing, cursor = read_all(listing, cursor, WINDOW)
    assert not any(p.upserts or p.removals for p in nothing)
    assert _spent(exchange, before) == {"SyncFolderItems": 1}


def _spent(exchange: Exchange, before: dict[str, int]) -> dict[str, int]:
    after = exchange.operations()
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def test_a_listing_reads_bodies_and_attendees_that_sync_pages_cannot_carry(
    exchange: Exchange, events: EwsEvents, outlook: Outlook
) -> None:
    """Mistake caught: items built from SyncFolderItems' own answer, which has no body and
    no attendees (the engine would then erase both on the other side)."""
    from exchangelib.items import CalendarItem

    start = (NOW + timedelta(days=2)).astimezone(outlook.account.default_timezone)
    meeting = CalendarItem(
        account=outlook.account,
        folder=outlook.account.calendar,
        subject="Planning",
        body="The agenda",
        start=start,
        end=start + timedelta(hours=1),
        required_attendees=[BOB],
    )
    meeting.save(send_meeting_invitations="SendToNone")
    pages, _ = read_all(events, None, WINDOW)
    (listed,) = [s.item for p in pages for s in p.upserts]
    assert listed.body == "The agenda"
    assert [a.email for a in listed.attendees] == [BOB]


# --- change keys -----------------------------------------------------------------------------


def test_a_stale_change_key_fails_its_own_item_only_and_writes_nothing_of_it(
    exchange: Exchange, events: EwsEvents, outlook: Outlook
) -> None:
    """The user moved one meeting's room since the engine read it. Mistakes caught:
    AutoResolve (Exchange keeps the user's room but takes our subject: a half-merged item
    the engine never planned), an update without its change key, and exchangelib's habit of
    raising the first error of a batch (the answer of the item after it lost, so it is
    written again next run)."""
    first = events.create(_visit(1), new_correlation_id())
    second = events.create(_visit(2), new_correlation_id())
    outlook.edit(first.id, location="Room by the user")
    results = events.apply_many(
        [
            Write("update", item_id=first.id, item=_visit(1, "Ours"), if_match=first.version),
            Write("update", item_id=second.id, item=_visit(2, "Ours"), if_match=second.version),
        ]
    )
    assert isinstance(results[0], PreconditionFailed), results
    assert not isinstance(results[1], Exception) and results[1] is not None
    assert results[1].item.subject == "Ours"
    held = outlook.fetch(first.id)
    assert (held.subject, held.location) == ("Visit 1", "Room by the user")


def _visit(n: int, subject: str | None = None) -> Appointment:
    start = NOW + timedelta(days=n)
    return Appointment(subject or f"Visit {n}", start, start + timedelta(hours=1), location="R1")


# --- through the engine ------------------------------------------------------------------------


def test_hand_made_twins_are_paired_stamped_and_edits_and_deletions_cross_both_ways(
    exchange: Exchange, events: EwsEvents, outlook: Outlook, copied_stamp: str
) -> None:
    """Mistakes caught: twins the user typed into Outlook copied again, or paired without
    our stamp (a re-link could not find them); an edit or deletion on either side lost."""
    crm, store = crm_side(5), MemoryStore()
    for _, item, _ in list(crm.items.values())[:2]:
        EwsAppointments(exchange, events, outlook).user_create(item)
    outcome = run(crm, events, store)
    assert outcome.status is RunStatus.SUCCEEDED, outcome.error
    assert subjects(exchange) == [f"Visit {i}" for i in range(5)]
    stamps = {e["extended"].get("SynchronizerCorrelationId") for e in calendar(exchange)}
    assert None not in stamps and len(stamps) == 5
    ids = {e["subject"]: e["id"] for e in calendar(exchange)}
    crm_ids = {item.subject: i for i, (_, item, _) in crm.items.items()}
    crm.user_edit(crm_ids["Visit 0"], subject="Visit 0 (CRM)", location="Oslo")
    crm.user_delete(crm_ids["Visit 1"])
    outlook.edit(ids["Visit 2"], subject="Visit 2 (Outlook)")
    outlook.delete(ids["Visit 3"])
    outcome = run(crm, events, store)
    assert outcome.status is RunStatus.SUCCEEDED, outcome.error
    assert subjects(exchange) == ["Visit 0 (CRM)", "Visit 2 (Outlook)", "Visit 4"]
    assert crm_subjects(crm) == ["Visit 0 (CRM)", "Visit 2 (Outlook)", "Visit 4"]
    assert outlook.fetch(ids["Visit 0"]).location == "Oslo"
    assert run(crm, events, store).writes() == 0


def test_an_invalid_sync_state_lists_the_calendar_afresh_without_duplicates(
    exchange: Exchange, events: EwsEvents, outlook: Outlook
) -> None:
    """Exchange no longer knows the saved SyncState (ErrorInvalidSyncStateData). Mistakes
    caught: the error taken for an empty delta (an edit lost), the fresh listing taken for
    new items (everything copied again) or its absences for deletions."""
    crm, store = crm_side(6), MemoryStore()
    assert run(crm, events, store).status is RunStatus.SUCCEEDED
    target = next(e for e in calendar(exchange) if e["subject"] == "Visit 2")
    outlook.edit(target["id"], subject="Visit 2 (moved)")
    exchange.fault(kind="delta_expired", count=1)
    outcome = run(crm, events, store)
    assert outcome.status is RunStatus.SUCCEEDED, outcome.error
    expected = sorted([f"Visit {i}" for i in (0, 1, 3, 4, 5)] + ["Visit 2 (moved)"])
    assert crm_subjects(crm) == expected and subjects(exchange) == expected


def test_a_throttling_storm_converges_with_no_duplicate_and_no_long_sleep(
    exchange: Exchange, events: EwsEvents
) -> None:
    """A third of EWS calls answer ErrorServerBusy. Mistakes caught: a busy batch taken for
    failed items (lost) or for written ones, a create sent again after it was made (a
    duplicate), a worker sleeping out the back-off."""
    crm, store = crm_side(30), MemoryStore()
    events.changes(None, WINDOW)
    exchange.fault(kind="server_busy", back_off_ms=250, fraction=0.3, seed=11)
    statuses = []
    for _ in range(12):
        outcome = run(crm, events, store)
        statuses.append(outcome.status)
        if outcome.status is RunStatus.SUCCEEDED and outcome.writes() == 0:
            break
    assert statuses[-1] is RunStatus.SUCCEEDED and RunStatus.PARTIAL in statuses, statuses
    assert subjects(exchange) == sorted(f"Visit {i}" for i in range(30))


# --- meetings: no mail unless the profile says so ---------------------------------------------


def crm_meeting() -> Appointment:
    start = NOW + timedelta(days=3)
    return Appointment(
        "Contract review",
        start,
        start + timedelta(hours=1),
        body="Bring the draft.",
        attendees=(
            Attendee(ALICE, "Alice"),
            Attendee(BOB, "Bob Andersen"),
            Attendee(CUSTOMER, "Pat Buyer"),
        ),
    )


def test_a_meeting_mails_nobody_by_default_and_lists_its_participants_in_the_body(
    exchange: Exchange, events: EwsEvents, outlook: Outlook
) -> None:
    """Mistakes caught: SendMeetingInvitations other than SendToNone (Exchange mails the
    customer), the CRM's participants written as attendees, the participants note read back
    as a body edit; and a CRM deletion cancelling (mailing) the meeting."""
    crm, store = crm_side(), MemoryStore()
    crm.user_create(crm_meeting())
    assert run(crm, events, store).status is RunStatus.SUCCEEDED
    (held,) = calendar(exchange)
    raw = outlook.fetch(held["id"])
    assert not raw.required_attendees and not raw.optional_attendees
    assert "Bob Andersen <bob@proseware.example>" in str(raw.body)
    assert "Pat Buyer <pat@customer.example>" in str(raw.body)
    assert exchange.sent_mail() == [] and calendar(exchange, BOB) == []
    assert events.get(held["id"]).item.body == "Bring the draft."
    again = run(crm, events, store)
    assert again.writes() == 0 and exchange.sent_mail() == []
    (crm_id,) = crm.items
    crm.user_delete(crm_id)
    assert run(crm, events, store).status is RunStatus.SUCCEEDED
    assert calendar(exchange) == [] and exchange.sent_mail() == []


def test_a_profile_inviting_colleagues_mails_only_colleagues_and_never_cancels(
    exchange: Exchange, events: EwsEvents, outlook: Outlook
) -> None:
    """Mistakes caught: the invitation mode inverted or applied to every address (the
    customer mailed); a deletion sending cancellations (the brief: SendToNone)."""
    inviting = EwsEvents(events.client, send_invitations=True)
    crm, store = crm_side(), MemoryStore()
    crm.user_create(crm_meeting())
    policy = Policy(invitations=Invitations(InviteMode.INTERNAL))
    assert run(crm, inviting, store, policy).status is RunStatus.SUCCEEDED
    assert [(m["kind"], m["to"], m["internal"]) for m in exchange.sent_mail()] == [
        ("MeetingRequest", BOB, True)
    ]
    (held,) = calendar(exchange)
    raw = outlook.fetch(held["id"])
    assert [a.mailbox.email_address for a in raw.required_attendees] == [BOB]
    assert "Pat Buyer <pat@customer.example>" in str(raw.body)
    assert [e["subject"] for e in calendar(exchange, BOB)] == ["Contract review"]
    (crm_id,) = crm.items
    crm.user_delete(crm_id)
    assert run(crm, inviting, store, policy).status is RunStatus.SUCCEEDED
    assert [m["kind"] for m in exchange.sent_mail()] == ["MeetingRequest"]


def test_stamping_and_updating_a_meeting_the_user_organised_mails_nobody(
    exchange: Exchange, events: EwsEvents, outlook: Outlook
) -> None:
    """A meeting the user sent from Outlook to a customer is paired with its CRM twin, then
    renamed in the CRM. Mistakes caught: our stamp, or the update, written with
    SendMeetingInvitationsOrCancellations other than SendToNone, so the customer gets mail
    for our bookkeeping or for an edit the profile does not send."""
    from exchangelib.items import CalendarItem
    from exchangelib.properties import Attendee as EwsAttendee
    from exchangelib.properties import Mailbox

    meeting = crm_meeting()
    assert isinstance(meeting.start, datetime) and isinstance(meeting.end, datetime)
    sent = CalendarItem(
        account=outlook.account,
        folder=outlook.account.calendar,
        subject=meeting.subject,
        start=meeting.start.astimezone(outlook.account.default_timezone),
        end=meeting.end.astimezone(outlook.account.default_timezone),
        body=meeting.body,
        required_attendees=[EwsAttendee(mailbox=Mailbox(email_address=CUSTOMER))],
    )
    sent.save(send_meeting_invitations="SendToAllAndSaveCopy")
    exchange.sim(clear_sent_mail=True)
    crm, store = crm_side(), MemoryStore()
    crm.user_create(replace(meeting, attendees=(), organizer=ALICE))  # its twin, by signature
    outcome = run(crm, events, store)
    assert outcome.status is RunStatus.SUCCEEDED, outcome.error
    (held,) = calendar(exchange)
    assert held["extended"].get("SynchronizerCorrelationId")
    assert exchange.sent_mail() == []
    # The CRM renames it: written without mail, the customer kept as the attendee.
    (crm_id,) = crm.items
    crm.user_edit(crm_id, subject="Contract review (moved)")
    outcome = run(crm, events, store)
    assert outcome.status is RunStatus.SUCCEEDED and outcome.writes() == 1, outcome.error
    raw = outlook.fetch(held["id"])
    assert raw.subject == "Contract review (moved)"
    assert [a.mailbox.email_address for a in raw.required_attendees] == [CUSTOMER]
    assert exchange.sent_mail() == []


# --- series ------------------------------------------------------------------------------------


def weekly_series() -> Appointment:
    """Mondays at 09:00 in Oslo, across the DST change of 29 March, one occurrence moved and
    renamed, one deleted."""
    zone = ZoneInfo(OSLO)
    start = datetime(2026, 3, 16, 9, tzinfo=zone)
    moved_from = datetime(2026, 3, 30, 9, tzinfo=zone)
    return Appointment(
        "Weekly review",
        start,
        start + timedelta(hours=1),
        timezone=OSLO,
        location="Room 4",
        recurrence=Recurrence(
            "FREQ=WEEKLY;BYDAY=MO;COUNT=6",
            exclusions=frozenset({datetime(2026, 4, 6, 9, tzinfo=zone)}),
            exceptions=(
                RecurrenceException(
                    moved_from,
                    moved_from + timedelta(hours=2),
                    moved_from + timedelta(hours=3),
                    subject="Weekly review (long)",
                ),
            ),
        ),
    )


def occurrences_in_outlook(outlook: Outlook) -> list[tuple[str, str]]:
    """The series as Outlook's calendar view shows it: (UTC start, subject)."""
    view = outlook.account.calendar.view(
        start=datetime(2026, 3, 1, tzinfo=ZoneInfo("UTC")),
        end=datetime(2026, 5, 1, tzinfo=ZoneInfo("UTC")),
    )
    return [(o.start.strftime("%m-%d %H:%M"), str(o.subject)) for o in view]


def test_a_series_with_an_exception_and_a_deleted_occurrence(
    exchange: Exchange, events: EwsEvents, outlook: Outlook
) -> None:
    """Mistakes caught: a series written as single items or without its exceptions, wall
    time lost across DST (UTC kept instead of 09:00 Oslo), an occurrence edited in Outlook
    not moving the series' version (the engine would skip the edit), a delete that ignores
    the version (DeleteItem does), a deleted occurrence that cannot come back."""
    series = weekly_series()
    made = events.create(series, new_correlation_id())
    assert occurrences_in_outlook(outlook) == [
        ("03-16 08:00", "Weekly review"),  # CET
        ("03-23 08:00", "Weekly review"),
        ("03-30 09:00", "Weekly review (long)"),  # CEST, moved by two hours
        ("04-13 07:00", "Weekly review"),
        ("04-20 07:00", "Weekly review"),
    ]
    read = events.get(made.id)
    assert same(read.item, series), read.item
    assert read.version == made.version and read.correlation_id == made.correlation_id

    paged = EwsEvents(events.client, page_size=1)
    pages, cursor = read_all(paged, None, WINDOW)
    assert [s.id for p in pages for s in p.upserts] == [made.id]  # one item, listed once

    # In Outlook, the user moves the occurrence of 13 April to the afternoon.
    occurrence = outlook.account.calendar.get(id=made.id).occurrence(5)
    (found,) = outlook.account.fetch([occurrence])
    found.start = found.start + timedelta(hours=4)
    found.end = found.end + timedelta(hours=4)
    found.save(update_fields=["start", "end"], send_meeting_invitations="SendToNone")
    changed, _ = read_all(paged, cursor, WINDOW)
    (now,) = [s for p in changed for s in p.upserts]
    assert now.id == made.id and now.version != made.version
    assert now.item.recurrence is not None and len(now.item.recurrence.exceptions) == 2
    with pytest.raises(PreconditionFailed):
        events.update(made.id, series, made.version)
    with pytest.raises(PreconditionFailed):
        events.delete(made.id, made.version)
    # With the version read now, the series is written back as the CRM has it, and a
    # deleted occurrence comes back when the CRM no longer deletes it.
    assert series.recurrence is not None
    restored = replace(series, recurrence=replace(series.recurrence, exclusions=frozenset()))
    updated = events.update(made.id, restored, now.version)
    assert same(updated.item, restored), updated.item
    assert [s for s, _ in occurrences_in_outlook(outlook)] == [
        "03-16 08:00", "03-23 08:00", "03-30 09:00", "04-06 07:00", "04-13 07:00", "04-20 07:00"
    ]  # fmt: skip
    restamped = events.stamp(made.id, "a-new-pair", updated.version)
    assert restamped.correlation_id == "a-new-pair" and restamped.version != updated.version
    events.delete(made.id, restamped.version)
    assert calendar(exchange) == []
    with pytest.raises(NotFound):
        events.get(made.id)


def test_a_crm_series_syncs_once_and_outlook_deleting_it_reaches_the_crm(
    exchange: Exchange, events: EwsEvents, outlook: Outlook
) -> None:
    """Through the engine. Mistakes caught: a series that reads back differently from what
    was written (rewritten on every run), or whose deletion in Outlook never reaches the CRM."""
    crm, store = crm_side(), MemoryStore()
    crm.user_create(weekly_series())
    first = run(crm, events, store)
    assert first.status is RunStatus.SUCCEEDED, first.error
    (held,) = calendar(exchange)
    assert held["deleted_occurrences"] and held["exceptions"]
    again = run(crm, events, store)
    assert again.status is RunStatus.SUCCEEDED and again.writes() == 0, again.plans
    outlook.delete(held["id"])
    gone = run(crm, events, store)
    assert gone.status is RunStatus.SUCCEEDED, gone.error
    assert crm.items == {} and calendar(exchange) == []


# --- privacy, categories, all-day items, time zones ----------------------------------------------


def test_private_is_sensitivity_and_categories_cross_both_ways(
    exchange: Exchange, events: EwsEvents, outlook: Outlook
) -> None:
    """Mistakes caught: privacy dropped (a private CRM item shown to delegates in Outlook),
    Outlook's Confidential read as public, categories lost or not read back."""
    start = NOW + timedelta(days=2)
    item = Appointment(
        "Doctor", start, start + timedelta(hours=1), private=True, categories=frozenset({"Red"})
    )
    made = events.create(item, new_correlation_id())
    raw = outlook.fetch(made.id)
    assert raw.sensitivity == "Private" and raw.categories == ["Red"]
    outlook.edit(made.id, sensitivity="Confidential", categories=["Red", "Travel"])
    read = events.get(made.id).item
    assert read.private and read.categories == frozenset({"Red", "Travel"})
    outlook.edit(made.id, sensitivity="Normal")
    assert not events.get(made.id).item.private


def test_a_private_crm_item_reaches_outlook_private_when_the_profile_syncs_it(
    exchange: Exchange, events: EwsEvents, outlook: Outlook
) -> None:
    crm, store = crm_side(), MemoryStore()
    start = NOW + timedelta(days=2)
    crm.user_create(Appointment("Doctor", start, start + timedelta(hours=1), private=True))
    policy = Policy(appointment_filter=AppointmentFilter(private=PrivatePolicy.SYNC_AS_PRIVATE))
    assert run(crm, events, store, policy).status is RunStatus.SUCCEEDED
    (held,) = calendar(exchange)
    assert outlook.fetch(held["id"]).sensitivity == "Private"
    assert run(crm, events, store, policy).writes() == 0


def test_all_day_items_across_a_dst_change_keep_their_dates(
    events: EwsEvents, outlook: Outlook
) -> None:
    """Mistakes caught: an all-day item written as a timed one at midnight UTC (the day
    before in Oslo), or its dates shifted by the hour DST takes away."""
    three_days = Appointment("Trade fair", date(2026, 3, 28), date(2026, 3, 31), timezone=OSLO)
    made = events.create(three_days, new_correlation_id())
    raw = outlook.fetch(made.id)
    assert raw.is_all_day and (raw.start, raw.end) == (date(2026, 3, 28), date(2026, 3, 31))
    saturdays = Appointment(
        "Market day",
        date(2026, 3, 21),
        date(2026, 3, 22),
        timezone=OSLO,
        recurrence=Recurrence("FREQ=WEEKLY;BYDAY=SA;COUNT=3"),
    )
    series = events.create(saturdays, new_correlation_id())
    pages, _ = read_all(events, None, WINDOW)
    listed = {s.id: s.item for p in pages for s in p.upserts}
    assert listed[made.id].start == date(2026, 3, 28) and listed[made.id].end == date(2026, 3, 31)
    assert same(listed[series.id], saturdays), listed[series.id]


def test_a_time_zone_is_written_as_exchange_names_it_and_read_back(
    events: EwsEvents, outlook: Outlook
) -> None:
    """Mistake caught: times written in UTC with the zone lost (a series then drifts by an
    hour at DST), or a Windows zone not read back as its IANA zone."""
    zone = ZoneInfo("America/New_York")
    start = datetime(2026, 3, 24, 9, tzinfo=zone)
    item = Appointment("Call NY", start, start + timedelta(minutes=30), timezone="America/New_York")
    made = events.create(item, new_correlation_id())
    raw = outlook.fetch(made.id)
    assert raw._start_timezone.ms_id == "Eastern Standard Time"
    read = events.get(made.id).item
    assert read.timezone == "America/New_York" and read.start == start
