"""SuperOffice <-> Microsoft 365 end to end (issue 11, "Done when"): the engine with the SQL
store between the SuperOffice connector and the Graph connector, both against their
simulators through requests and msal unchanged (`tests/fixtures/superoffice_m365.py`).

Every scenario ends with what both services hold: the same occurrences in the user's diary
and mailbox, each once, nothing lost, and no mail to anyone outside the organisation (the
Microsoft simulator records every message it sends). Each test names the mistakes it catches.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, select

from common.connectors.graph.auth import SyncUserTokens
from common.kinds import ItemKind, RunStatus
from common.models import AuditEntry, Cursor, SyncRun
from daemon.policies import (
    AppointmentFilter,
    ConflictPolicy,
    Invitations,
    InviteMode,
    PrivatePolicy,
)
from tests.fixtures.graph_connector import signed_in_state
from tests.fixtures.superoffice_m365 import (
    ADELE,
    LEE,
    MEGAN,
    PAGE,
    POLICY,
    Colleague,
    Scene,
    Seen,
    at,
    needs_reauthorisation,
)


def _utc(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def test_initial_sync_both_ways_pairs_hand_made_twins(scene: Scene) -> None:
    """Adele's diary and her mailbox meet for the first time. Two CRM appointments she had
    already typed into Outlook by hand are paired with them, not copied a second time; the
    rest goes across both ways; her persons reach her contact folder once.

    Mistakes caught: twins not paired by content (each would be held twice), the pairing
    matching on subject alone (the lunch on another day would be swallowed), a side's
    first listing losing its last page (small pages here), a second run writing again."""
    adele = scene.link(ADELE)
    review = ("Quarterly review", at(23, 10), at(23, 11))
    visit = ("Customer visit", at(24, 13), at(24, 14, 30))
    lunch = ("Lunch with Ingrid", at(25, 12), at(25, 13))
    planning = ("Planning", at(26, 9), at(26, 10))
    for subject, start, end in (review, visit, lunch, planning):
        adele.make_in_crm(subject, start, end)
    # Typed into Outlook by hand: the visit and the planning (same times), and a lunch of
    # the same name on another day, which is no twin.
    twins = {
        subject: adele.make_in_outlook(subject, start, end)
        for subject, start, end in (visit, planning)
    }
    adele.make_in_outlook("Lunch with Ingrid", at(27, 12), at(27, 13))
    adele.make_in_outlook("Dentist", at(30, 8), at(30, 9))

    first = scene.sync(adele)
    scene.settle(adele)

    expected = Counter(
        Seen(subject, start, end)
        for subject, start, end in (
            review, visit, lunch, planning,
            ("Lunch with Ingrid", at(27, 12), at(27, 13)),
            ("Dentist", at(30, 8), at(30, 9)),
        )
    )  # fmt: skip
    scene.assert_in_step(adele, expected)
    # The hand-made twins are the ones kept (paired, not replaced by copies), and ours are
    # only the copies: six events in all.
    events = scene.ms_user(adele)["events"]
    assert len(events) == 6, [e["subject"] for e in events]
    for subject, made in twins.items():
        assert adele.outlook_event(subject)["id"] == made
    ours = sorted(e["subject"] for e in events if e["transactionId"])
    assert ours == ["Lunch with Ingrid", "Quarterly review"]
    assert first.counts.get("paired") == 2, first.counts  # in the first run, not later


def test_initial_sync_of_persons_both_ways(scene: Scene) -> None:
    """Adele's persons (her companies' people) reach a contact folder of ours once, and a
    contact she adds to that folder reaches SuperOffice once. Mistakes caught: a listing
    page lost or read twice (pages of five here), the folder made twice, a contact created
    in both directions (each side's new item copied back)."""
    adele = scene.link(ADELE)
    persons = scene.persons(adele)
    assert sum(persons.values()) > 2 * PAGE  # several pages on each side
    scene.sync(adele, ItemKind.CONTACT)
    assert scene.contacts(adele) == persons
    folders = [f["displayName"] for f in scene.ms_user(adele)["contactFolders"]]
    assert folders.count("Synchronizer") == 1
    folder = next(f["id"] for f in scene.ms_user(adele)["contactFolders"])
    made = adele.outlook.post(
        f"/users/{ADELE}/contactFolders/{folder}/contacts",
        {"givenName": "Pat", "surname": "Buyer", "displayName": "Pat Buyer",
         "emailAddresses": [{"address": "pat@fabrikam.example", "name": "Pat Buyer"}]},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    scene.settle(adele, kind=ItemKind.CONTACT)
    assert scene.persons(adele) == persons + Counter({"Pat Buyer": 1})
    assert scene.contacts(adele) == scene.persons(adele)


def test_edits_on_each_side_reach_the_other(scene: Scene) -> None:
    """Adele moves and renames an appointment in SuperOffice and moves one in Outlook; later
    the same day she changes the SuperOffice one again; she renames a person in SuperOffice
    and a contact in Outlook. Each edit reaches the other side, in place (no new item).

    Mistakes caught: an edit read as a new item (a second copy), the listing comparing
    SuperOffice's day-grained `updatedDate` with "after" (the second edit of the day would
    be missed), an edit carried back over itself as a conflict, a person's name change not
    reaching the contact (or the other way)."""
    adele = scene.link(ADELE)
    review = adele.make_in_crm("Quarterly review", at(23, 10), at(23, 11), Location="Room 1")
    dentist = adele.make_in_outlook(
        "Dentist", at(30, 8), at(30, 9), location={"displayName": "Main street"}
    )
    scene.settle(adele)
    scene.settle(adele, kind=ItemKind.CONTACT)
    copies = {
        e["subject"]: e["id"] for e in adele.outlook.get(f"/users/{ADELE}/events").json()["value"]
    }

    adele.crm.edit(
        "Appointment", review, Title="Quarterly review (moved)", Location="Board room",
        StartDate=at(24, 14).isoformat(), EndDate=at(24, 15).isoformat(),
    )  # fmt: skip
    moved = adele.outlook.patch(
        f"/users/{ADELE}/events/{dentist}",
        {"location": {"displayName": "Clinic"}, "start": _utc(at(31, 8)), "end": _utc(at(31, 9))},
    )
    assert moved.status_code == 200, moved.text
    scene.settle(adele)
    scene.assert_in_step(
        adele,
        Counter([
            Seen("Quarterly review (moved)", at(24, 14), at(24, 15), "Board room"),
            Seen("Dentist", at(31, 8), at(31, 9), "Clinic"),
        ]),
    )  # fmt: skip

    adele.crm.edit("Appointment", review, Location="Board room 2")  # the same day, again
    scene.settle(adele)
    scene.assert_in_step(
        adele,
        Counter([
            Seen("Quarterly review (moved)", at(24, 14), at(24, 15), "Board room 2"),
            Seen("Dentist", at(31, 8), at(31, 9), "Clinic"),
        ]),
    )  # fmt: skip
    # Edited in place on both sides: the same SuperOffice row, the same Outlook events.
    assert {r["appointment_id"] for r in scene.so_rows(adele)} >= {review}
    assert adele.outlook_event("Dentist")["id"] == dentist
    assert adele.outlook_event("Quarterly review (moved)")["id"] == copies["Quarterly review"]

    # Persons: a name changed in SuperOffice, another in Outlook.
    kim = next(p for p in scene.so_state()["persons"] if p["firstname"] == "Kim")
    adele.crm.edit("Person", kim["person_id"], Firstname="Kimberly")
    folder = next(f["id"] for f in scene.ms_user(adele)["contactFolders"])
    listed = adele.outlook.get(f"/users/{ADELE}/contactFolders/{folder}/contacts?$top=100")
    ingrid = next(c for c in listed.json()["value"] if c["givenName"] == "Ingrid")
    renamed = adele.outlook.patch(
        f"/users/{ADELE}/contacts/{ingrid['id']}",
        {"givenName": "Inga", "displayName": f"Inga {ingrid['surname']}"},
    )
    assert renamed.status_code == 200, renamed.text
    scene.settle(adele, kind=ItemKind.CONTACT)
    names = scene.persons(adele)
    assert names[f"Kimberly {kim['lastname']}"] == 1 and names[f"Inga {ingrid['surname']}"] == 1
    assert names[f"Ingrid {ingrid['surname']}"] == 0
    assert scene.contacts(adele) == names


def test_deletes_on_each_side_reach_the_other(scene: Scene) -> None:
    """Adele deletes an appointment in SuperOffice (no event tells anyone: the listing's
    reconciliation of ids must find it) and one in Outlook; a person in SuperOffice and a
    contact in Outlook. Each deletion reaches the other side, and nothing else goes.

    Mistakes caught: a deletion nobody announced never noticed, a removal Graph reports
    only as "left the view" taken for a deletion without asking (or ignored), a deletion
    carried back as a re-creation, more deleted than was deleted."""
    adele = scene.link(ADELE)
    review = adele.make_in_crm("Quarterly review", at(23, 10), at(23, 11))
    adele.make_in_crm("Customer visit", at(24, 13), at(24, 14))
    adele.make_in_outlook("Dentist", at(30, 8), at(30, 9))
    gym = adele.make_in_outlook("Gym", at(31, 7), at(31, 8))
    scene.settle(adele)
    scene.settle(adele, kind=ItemKind.CONTACT)
    persons = scene.persons(adele)

    adele.crm.call("DELETE", f"/Appointment/{review}")
    assert adele.outlook.delete(f"/users/{ADELE}/events/{gym}").status_code == 204
    scene.settle(adele)
    scene.assert_in_step(
        adele,
        Counter([
            Seen("Customer visit", at(24, 13), at(24, 14)),
            Seen("Dentist", at(30, 8), at(30, 9)),
        ]),
    )  # fmt: skip

    kim = next(p for p in scene.so_state()["persons"] if p["firstname"] == "Kim")
    adele.crm.call("DELETE", f"/Person/{kim['person_id']}")
    folder = next(f["id"] for f in scene.ms_user(adele)["contactFolders"])
    listed = adele.outlook.get(f"/users/{ADELE}/contactFolders/{folder}/contacts?$top=100")
    ingrid = next(c for c in listed.json()["value"] if c["givenName"] == "Ingrid")
    gone = adele.outlook.delete(f"/users/{ADELE}/contacts/{ingrid['id']}")
    assert gone.status_code == 204, gone.text
    scene.settle(adele, kind=ItemKind.CONTACT)
    left = persons - Counter([f"Kim {kim['lastname']}", f"Ingrid {ingrid['surname']}"])
    assert scene.persons(adele) == left
    assert scene.contacts(adele) == left


@pytest.mark.parametrize(
    ("policy", "last", "winner"),
    [
        (ConflictPolicy.CRM_WINS, "outlook", "crm"),
        (ConflictPolicy.GROUPWARE_WINS, "crm", "outlook"),
        (ConflictPolicy.NEWEST_WINS, "crm", "crm"),
        (ConflictPolicy.NEWEST_WINS, "outlook", "outlook"),
    ],
)
def test_a_conflict_is_settled_as_the_policy_says(
    scene: Scene, policy: ConflictPolicy, last: str, winner: str
) -> None:
    """The same appointment is changed on both sides between two runs (`last` edits a
    second later than the other). Both sides end with the version the profile's policy
    names, and the other version is gone from both.

    Mistakes caught: a policy inverted, "newest" read from a side whose modification time
    is missing or ignored (one side always wins), the loser written back over the winner
    on the next run, the conflict settled on one side only."""
    scene.policy = replace(POLICY, conflict=policy)
    adele = scene.link(ADELE)
    review = adele.make_in_crm("Quarterly review", at(23, 10), at(23, 11), Location="Room 1")
    scene.settle(adele)
    copy = adele.outlook_event("Quarterly review")["id"]

    def in_crm() -> None:
        adele.crm.edit("Appointment", review, Location="Room CRM")

    def in_outlook() -> None:
        patched = adele.outlook.patch(
            f"/users/{ADELE}/events/{copy}", {"location": {"displayName": "Room Outlook"}}
        )
        assert patched.status_code == 200, patched.text

    first, second = (in_outlook, in_crm) if last == "crm" else (in_crm, in_outlook)
    first()
    time.sleep(1.1)  # SuperOffice's UpdatedDate counts whole seconds
    second()
    outcome = scene.sync(adele)
    assert outcome.counts.get("conflicts") == 1, outcome.counts
    scene.settle(adele)
    where = {"crm": "Room CRM", "outlook": "Room Outlook"}[winner]
    scene.assert_in_step(adele, Counter([Seen("Quarterly review", at(23, 10), at(23, 11), where)]))


def test_a_recurring_series_with_exceptions_goes_across_as_a_series(scene: Scene) -> None:
    """A weekly meeting made in SuperOffice (Tuesdays 09:00 Oslo time, across the clock
    change) with one occurrence moved and renamed and one deleted; another made in Outlook
    (Thursdays 14:00) with the same kinds of exception. Each arrives on the other side as a
    series with those exceptions, every occurrence at its wall time.

    Mistakes caught: a series copied as single appointments (or the other way), an
    exception lost or applied to the wrong occurrence, a deleted occurrence coming back,
    occurrences after the clock change an hour off (a rule expanded in UTC)."""
    adele = scene.link(ADELE)
    oslo = {"SO-TimeZone": "NO, includeTZOffset"}  # SuperOffice's client works in local time
    made = adele.crm.call(
        "POST", "/Appointment", headers=oslo, json={
            "Title": "Weekly sales", "StartDate": "2026-03-24T09:00:00",
            "EndDate": "2026-03-24T10:00:00", "Associate": {"AssociateId": adele.associate_id},
            "Recurrence": {"IsRecurrence": True, "Pattern": "Weekly",
                           "WeekPattern": {"Weekdays": "Tuesday", "Cycle": 1},
                           "RecurrenceEndType": "Counter", "RecurrenceCounter": 4},
        },
    )  # fmt: skip
    rule = made["Recurrence"]["RecurrenceId"]
    rows = sorted(
        (r for r in scene.so_state()["appointments"] if r["recurrence_id"] == rule),
        key=lambda r: r["start"],
    )
    assert len(rows) == 4
    adele.crm.call("DELETE", f"/Appointment/{rows[1]['appointment_id']}")  # 31 March
    late = {"StartDate": at(38, 10).isoformat(), "EndDate": at(38, 11).isoformat()}
    adele.crm.edit("Appointment", rows[2]["appointment_id"], Title="Weekly sales (late)", **late)

    series = adele.make_weekly_in_outlook("Team sync", at(26, 14), hours=1, count=4)
    instances = adele.outlook.get(
        f"/users/{ADELE}/events/{series}/instances",
        params={"startDateTime": "2026-03-20T00:00:00Z", "endDateTime": "2026-04-30T00:00:00Z"},
    ).json()["value"]
    by_day = {i["start"]["dateTime"][:10]: i["id"] for i in instances}
    moved = adele.outlook.patch(
        f"/users/{ADELE}/events/{by_day['2026-04-02']}",
        {"subject": "Team sync (moved)", "start": _utc(at(33, 15)), "end": _utc(at(33, 16))},
    )
    assert moved.status_code == 200, moved.text
    assert adele.outlook.delete(f"/users/{ADELE}/events/{by_day['2026-04-09']}").status_code == 204

    scene.settle(adele)
    scene.assert_in_step(
        adele,
        Counter([
            Seen("Weekly sales", at(24, 9), at(24, 10)),
            Seen("Weekly sales (late)", at(38, 10), at(38, 11)),
            Seen("Weekly sales", at(45, 9), at(45, 10)),
            Seen("Team sync", at(26, 14), at(26, 15)),
            Seen("Team sync (moved)", at(33, 15), at(33, 16)),
            Seen("Team sync", at(47, 14), at(47, 15)),
        ]),
    )  # fmt: skip
    # Series on both sides: two masters in the mailbox, two rules in SuperOffice.
    events = scene.ms_user(adele)["events"]
    assert sorted(e["type"] for e in events) == ["seriesMaster", "seriesMaster"], events
    rules = Counter(r["recurrence_id"] for r in scene.so_rows(adele))
    assert len(rules) == 2 and 0 not in rules, rules


@pytest.mark.parametrize("private", [PrivatePolicy.SYNC_AS_PRIVATE, PrivatePolicy.SKIP])
def test_a_private_item_stays_private_or_stays_home(scene: Scene, private: PrivatePolicy) -> None:
    """A private appointment in SuperOffice and a private event in Outlook. Synced as
    private, each arrives private (Outlook's `sensitivity`, SuperOffice's `Private`); under
    the default policy (skip private items) neither leaves its side, and the public one
    goes across all the same.

    Mistakes caught: privacy dropped on the way (a colleague with access to the calendar
    would read it), the filter applied on one side only, a skipped item taken for deleted
    (its twin would be removed) or copied on the next run."""
    scene.policy = replace(POLICY, appointment_filter=AppointmentFilter(private=private))
    adele = scene.link(ADELE)
    adele.make_in_crm("Doctor", at(23, 8), at(23, 9), Private="PrivateUser")
    adele.make_in_outlook("Personal", at(24, 17), at(24, 18), sensitivity="private")
    adele.make_in_crm("Team lunch", at(25, 11), at(25, 12))
    scene.settle(adele)
    doctor = Seen("Doctor", at(23, 8), at(23, 9), private=True)
    personal = Seen("Personal", at(24, 17), at(24, 18), private=True)
    lunch = Seen("Team lunch", at(25, 11), at(25, 12))
    if private is PrivatePolicy.SYNC_AS_PRIVATE:
        scene.assert_in_step(adele, Counter([doctor, personal, lunch]))
        assert {r["private"] for r in scene.so_rows(adele) if r["title"] == "Personal"} == {
            "PrivateUser"
        }
        assert adele.outlook_event("Doctor")["sensitivity"] == "private"
    else:
        assert scene.diary(adele) == Counter([doctor, lunch])
        assert scene.mailbox(adele) == Counter([personal, lunch])


def test_all_day_items_across_the_clock_change_keep_their_days(scene: Scene) -> None:
    """A two-day offsite in SuperOffice over the night Oslo's clocks go forward (28-29 March)
    and an all-day event in Outlook on the short day itself (29 March, 23 hours). Each
    arrives as an all-day item on the same days; in SuperOffice it runs from local midnight
    to local midnight.

    Mistakes caught: days taken from UTC instants (a day early in Oslo), midnight computed
    with the offset before the change (the day after it would end at 01:00), an all-day
    item turned into a timed one."""
    adele = scene.link(ADELE)
    oslo = ZoneInfo("Europe/Oslo")
    midnight = {d: datetime(2026, 3, d, tzinfo=oslo).isoformat() for d in (28, 29, 30)}
    adele.make_in_crm(
        "Company offsite", at(28, 0), at(30, 0), IsAlldayEvent=True,
        StartDate=midnight[28], EndDate=midnight[30],
    )  # fmt: skip
    local = "W. Europe Standard Time"
    made = adele.outlook.post(
        f"/users/{ADELE}/events",
        {"subject": "Spring day", "isAllDay": True, "isReminderOn": False,
         "start": {"dateTime": "2026-03-29T00:00:00", "timeZone": local},
         "end": {"dateTime": "2026-03-30T00:00:00", "timeZone": local}},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    scene.settle(adele)
    scene.assert_in_step(
        adele,
        Counter([
            Seen("Company offsite", date(2026, 3, 28), date(2026, 3, 30), all_day=True),
            Seen("Spring day", date(2026, 3, 29), date(2026, 3, 30), all_day=True),
        ]),
    )  # fmt: skip
    for row in scene.so_rows(adele):
        start = datetime.fromisoformat(row["start"]).replace(tzinfo=UTC).astimezone(oslo)
        end = datetime.fromisoformat(row["end"]).replace(tzinfo=UTC).astimezone(oslo)
        assert row["all_day"] and (start.hour, start.minute, end.hour, end.minute) == (0, 0, 0, 0)
    assert adele.outlook_event("Company offsite")["isAllDay"] is True


def test_a_meeting_of_three_synced_colleagues_is_one_event_in_each_mailbox(scene: Scene) -> None:
    """Adele books a meeting in SuperOffice with Megan, Lee (both synced) and a customer.
    SuperOffice keeps it as it does: her mother appointment and a booking in each
    participant's diary. Each of the three mailboxes gets the meeting exactly once, whatever
    order the users' syncs run in, and nobody gets an invitation (the default); when Adele
    moves it, all three follow.

    Mistakes caught: a participant's booking and the invitation the organiser's copy would
    send both arriving (two events), attendees written to Outlook (Outlook mails each one,
    the customer included), a booking taken for the participant's own appointment and
    copied back into SuperOffice, a move reaching the organiser's mailbox only."""
    adele, megan, lee = scene.link(ADELE), scene.link(MEGAN), scene.link(LEE)
    ingrid = next(p for p in scene.so_state()["persons"] if p["firstname"] == "Ingrid")
    meeting = adele.make_in_crm(
        "Contract review", at(25, 10), at(25, 11), Location="Board room",
        Participants=[{"AssociateId": u.associate_id} for u in (adele, megan, lee)]
        + [{"PersonId": ingrid["person_id"]}],
    )  # fmt: skip
    rows = [r for r in scene.so_state()["appointments"] if r["mother_id"] == meeting]
    assert sorted(r["associate_id"] for r in rows) == [0, 100, 101, 103]  # the customer's: 0

    for user in (megan, adele, lee):  # a participant's sync may come first
        scene.sync(user)
    scene.settle()
    held = Counter([Seen("Contract review", at(25, 10), at(25, 11), "Board room")])
    for user in (adele, megan, lee):
        scene.assert_in_step(user, held)
        assert len(scene.ms_user(user)["events"]) == 1, user.address
        assert user.outlook_event("Contract review")["attendees"] == []
    assert scene.sent_mail() == []

    moved = {"StartDate": at(26, 14).isoformat(), "EndDate": at(26, 15).isoformat()}
    adele.crm.edit("Appointment", meeting, **moved)
    scene.settle()
    held = Counter([Seen("Contract review", at(26, 14), at(26, 15), "Board room")])
    for user in (adele, megan, lee):
        scene.assert_in_step(user, held)
        assert len(scene.ms_user(user)["events"]) == 1, user.address
    assert scene.sent_mail() == []


def test_a_meeting_made_in_outlook_with_synced_colleagues_is_one_booking_each(
    scene: Scene,
) -> None:
    """Megan invites Adele, Lee and a customer in Outlook (Outlook delivers the invitation
    to her colleagues' mailboxes and mails the customer: her own mail). SuperOffice gets
    the meeting as it keeps meetings: Megan's appointment with a booking for each colleague
    (the customer by address); each diary and mailbox holds it once, and Synchronizer
    sends no mail of its own.

    Mistakes caught: each participant's delivered copy made into a second SuperOffice
    meeting (or a second booking), the booking copied back into the mailbox beside the
    invitation, our stamp written on Megan's meeting (Outlook mails every attendee, the
    customer too, an update for any change the organiser's copy gets)."""
    adele, megan, lee = scene.link(ADELE), scene.link(MEGAN), scene.link(LEE)
    megan.make_in_outlook(
        "Pricing workshop", at(27, 13), at(27, 14),
        attendees=[{"emailAddress": {"address": a}, "type": "required"}
                   for a in (ADELE, LEE, "pat@fabrikam.example")],
    )  # fmt: skip
    invitations = scene.sent_mail()
    assert sorted(m["to"] for m in invitations) == [ADELE, LEE, "pat@fabrikam.example"]
    for user in (adele, lee, megan):
        scene.sync(user)
    scene.settle()
    assert scene.sent_mail() == invitations  # nothing more sent
    held = Counter([Seen("Pricing workshop", at(27, 13), at(27, 14))])
    for user in (adele, megan, lee):
        assert scene.diary(user) == scene.mailbox(user) == held, user.address
        assert len(scene.ms_user(user)["events"]) == 1, user.address
    rows = [r for r in scene.so_state()["appointments"] if r["title"] == "Pricing workshop"]
    assert len({r["mother_id"] for r in rows}) == 1, rows
    assert sorted(r["associate_id"] for r in rows) == [100, 101, 103]
    mother = next(r for r in rows if r["associate_id"] == megan.associate_id)
    assert "pat@fabrikam.example" in {p["email"] for p in mother["participants"]}


def test_a_revoked_grant_marks_its_user_for_reauthorisation_and_spares_the_others(
    scene: Scene,
) -> None:
    """An administrator revokes Adele's sessions in Entra; her access token runs out. Her
    next run fails with Entra's reason and marks her "needs re-authorisation" (what the
    portal shows); Megan's run goes on as ever; Adele's later runs do not ask Entra again
    with the dead grant and change nothing anywhere; once she signs in again, what waited
    goes across.

    Mistakes caught: a refused refresh failing everybody's run (or the daemon), the reason
    lost, the dead grant tried on every run, a failed run taken as "the mailbox is empty"
    and its items deleted on the CRM side."""
    adele, megan = scene.link(ADELE), scene.link(MEGAN)
    adele.make_in_crm("Quarterly review", at(23, 10), at(23, 11))
    megan.make_in_crm("Demo", at(24, 10), at(24, 11))
    scene.settle()
    adele.make_in_crm("Follow-up", at(25, 10), at(25, 11))
    megan.make_in_crm("Second demo", at(26, 10), at(26, 11))

    scene.ms_post(revoke_refresh_tokens=[ADELE])
    scene.ms_fault(kind="token_expired", count=1)  # her cached access token has expired
    failed = scene.run(adele)
    assert failed.status is RunStatus.FAILED and "AADSTS50173" in str(failed.error)
    assert "needs re-authorisation: AADSTS50173" in str(needs_reauthorisation(scene.db, adele))
    assert needs_reauthorisation(scene.db, megan) is None
    scene.sync(megan)  # unaffected
    scene.assert_in_step(
        megan,
        Counter(
            [Seen("Demo", at(24, 10), at(24, 11)), Seen("Second demo", at(26, 10), at(26, 11))]
        ),
    )
    # Adele's next run fails at once: no token request, no Graph request; nothing changed.
    before = scene.ms_stats()
    again = scene.run(adele)
    assert again.status is RunStatus.FAILED and "AADSTS50173" in str(again.error)
    assert scene.ms_stats() == before
    assert scene.mailbox(adele) == Counter([Seen("Quarterly review", at(23, 10), at(23, 11))])
    assert sum(scene.diary(adele).values()) == 2

    # She signs in again (the portal replaces her token state): what waited goes across.
    SyncUserTokens(scene.db, adele.sync_user_id).save(
        signed_in_state(scene.ms, scene.ms_http, ADELE)
    )
    scene.settle(adele)
    scene.assert_in_step(
        adele,
        Counter([
            Seen("Quarterly review", at(23, 10), at(23, 11)),
            Seen("Follow-up", at(25, 10), at(25, 11)),
        ]),
    )  # fmt: skip
    assert needs_reauthorisation(scene.db, adele) is None  # the portal no longer asks her


def test_expired_change_tokens_mean_a_full_listing_without_duplicates(scene: Scene) -> None:
    """Graph forgets the mailbox's delta tokens (410 syncStateNotFound), with edits waiting
    on both sides; later SuperOffice's cursor grows older than its maximum age. Each time
    the side is listed afresh: the edits go across, an event deleted meanwhile is found
    missing, nothing is copied a second time and nothing else is deleted.

    Mistakes caught: the 410 failing the run for good, a fresh listing taken for new items
    (every item copied again) or read as a delta (the deletion it cannot report is never
    noticed), an edit lost between the last delta and the fresh listing."""
    adele = scene.link(ADELE)
    review = adele.make_in_crm("Quarterly review", at(23, 10), at(23, 11))
    visit = adele.make_in_crm("Customer visit", at(24, 13), at(24, 14))
    dentist = adele.make_in_outlook("Dentist", at(30, 8), at(30, 9))
    gym = adele.make_in_outlook("Gym", at(31, 7), at(31, 8))
    scene.settle(adele)

    adele.crm.edit("Appointment", review, Location="Board room")
    clinic = {"location": {"displayName": "Clinic"}}
    assert adele.outlook.patch(f"/users/{ADELE}/events/{dentist}", clinic).status_code == 200
    scene.ms_post(reset_sync_states=True)
    # Deleted while no token remembers it: only the fresh listing's absence tells.
    assert adele.outlook.delete(f"/users/{ADELE}/events/{gym}").status_code == 204
    scene.settle(adele)
    expected = Counter([
        Seen("Quarterly review", at(23, 10), at(23, 11), "Board room"),
        Seen("Customer visit", at(24, 13), at(24, 14)),
        Seen("Dentist", at(30, 8), at(30, 9), "Clinic"),
    ])  # fmt: skip
    scene.assert_in_step(adele, expected)
    assert len(scene.ms_user(adele)["events"]) == 3

    adele.crm.edit("Appointment", visit, Location="Bergen")
    scene.later = timedelta(days=2)  # SuperOffice's cursor is now too old to be trusted
    scene.so_reset_stats()
    scene.sync(adele)
    read = scene.so_stats().get("GET /<tenant_id>/api/v1/Appointment/<int:appointment_id>")
    assert read == 3  # listed afresh: each of her appointments read again
    scene.settle(adele)
    scene.assert_in_step(
        adele,
        expected
        - Counter([Seen("Customer visit", at(24, 13), at(24, 14))])
        + Counter([Seen("Customer visit", at(24, 13), at(24, 14), "Bergen")]),
    )
    assert len(scene.ms_user(adele)["events"]) == 3


def test_a_429_storm_on_graph_is_waited_out_and_the_sync_converges(scene: Scene) -> None:
    """Graph answers 429 (Retry-After: 1) to 30 % of the connector's requests, batch parts
    and whole batches included, for a first sync of appointments and contacts both ways.
    The runs converge: everything once on each side, the waits Graph asked for honoured,
    never more than four requests in flight to the mailbox.

    Mistakes caught: a throttled part taken for a failure (an item never copied) or its
    create sent again after it was made (a duplicate), a throttled page of a listing
    skipped, Retry-After ignored (no wait), a retry storm past Outlook's concurrency."""
    adele = scene.link(ADELE)
    crm = [(f"Visit {n}", at(23 + n % 8, 8 + n), at(23 + n % 8, 9 + n)) for n in range(8)]
    mine = [(f"Errand {n}", at(24 + n, 17), at(24 + n, 18)) for n in range(4)]
    for subject, start, end in crm:
        adele.make_in_crm(subject, start, end)
    for subject, start, end in mine:
        adele.make_in_outlook(subject, start, end)
    persons = scene.persons(adele)
    # Only the connector's own requests (`/me/…` and its batches), not Outlook's.
    scene.ms_fault(
        kind="status", status=429, retry_after=1, fraction=0.3, path=r"^/v1\.0/(me/|\$batch)",
        seed=11,
    )  # fmt: skip
    for kind in (ItemKind.APPOINTMENT, ItemKind.CONTACT):
        for _ in range(6):  # a run the storm stops part-way is simply run again
            if scene.run(adele, kind).status is RunStatus.SUCCEEDED:
                break
        scene.settle(adele, kind=kind)
    throttled = [f for f in scene.ms_faults() if f["kind"] == "status"]
    assert throttled and throttled[0]["hits"] >= 5, throttled  # the storm was real
    assert 1.0 in scene.waits  # Graph's Retry-After, honoured
    scene.ms_clear_faults()
    scene.assert_in_step(
        adele, Counter(Seen(subject, start, end) for subject, start, end in crm + mine)
    )
    assert len(scene.ms_user(adele)["events"]) == len(crm) + len(mine)
    assert scene.contacts(adele) == persons and scene.persons(adele) == persons
    assert scene.ms_user(adele)["throttling"]["peakInFlight"] <= 4


def test_a_superoffice_tenant_moved_to_another_host_is_found_again(scene: Scene) -> None:
    """SuperOffice moves Contoso's tenant to another host between two runs. The host the
    profile knew answers 421 (Wrong subdomain); the connector looks the tenant up again
    (`/api/state`), carries on there, and the run goes through: edits on both sides made
    after the move go across.

    Mistakes caught: the 421 taken for a failure (the user's sync stops until someone
    edits the profile), the lookup kept until its ValidUntil whatever the service says,
    a retry on the old host in a loop."""
    adele = scene.link(ADELE)
    review = adele.make_in_crm("Quarterly review", at(23, 10), at(23, 11))
    scene.settle(adele)
    old = scene.site.endpoint
    assert old is not None and "127.0.0.1" in old

    scene.so_post({"api_host": "localhost"})
    state = scene.so_http.get(f"{scene.so_base}/api/state/Cust12345").json()
    adele.crm.api = f"{state['Endpoint']}/api/v1"  # her own client found the new host too
    adele.crm.edit("Appointment", review, Location="Board room")
    adele.make_in_outlook("Dentist", at(30, 8), at(30, 9))
    scene.so_reset_stats()
    scene.settle(adele)
    assert scene.site.endpoint == state["Endpoint"] != old
    lookups = [k for k in scene.so_stats() if k.startswith("GET /api/state")]
    assert lookups, scene.so_stats()  # it looked the tenant up again
    scene.assert_in_step(
        adele,
        Counter([
            Seen("Quarterly review", at(23, 10), at(23, 11), "Board room"),
            Seen("Dentist", at(30, 8), at(30, 9)),
        ]),
    )  # fmt: skip


def test_relinking_a_user_pairs_everything_again_without_duplicates(scene: Scene) -> None:
    """Adele is unlinked (her links and cursors are gone with her sync user) and linked
    again, with an edit made on each side meanwhile. The new link finds every pair again
    (by our stamps, by content where there is none): no item is copied a second time on
    either side, none is deleted, and the edits go across.

    Mistakes caught: a re-link copying everything again (the first sync's twins not found
    by their stamps), a series or a contact duplicated, a stamp found on one side only
    taken for a new item, an edit made meanwhile lost in the pairing."""
    adele = scene.link(ADELE)
    review = adele.make_in_crm("Quarterly review", at(23, 10), at(23, 11))
    adele.make_in_crm("Customer visit", at(24, 13), at(24, 14))
    dentist = adele.make_in_outlook("Dentist", at(30, 8), at(30, 9))
    adele.make_weekly_in_outlook("Team sync", at(26, 14), hours=1, count=3)
    scene.settle(adele)
    scene.settle(adele, kind=ItemKind.CONTACT)
    events, rows = len(scene.ms_user(adele)["events"]), len(scene.so_rows(adele))
    persons = scene.persons(adele)

    scene.unlink(adele)
    # Edits that change what identifies an item by content: only our stamps pair these.
    later = {"StartDate": at(23, 11).isoformat(), "EndDate": at(23, 12).isoformat()}
    adele.crm.edit("Appointment", review, Location="Board room", **later)
    renamed = {"subject": "Dentist (moved)", "location": {"displayName": "Clinic"}}
    assert adele.outlook.patch(f"/users/{ADELE}/events/{dentist}", renamed).status_code == 200
    adele = scene.link(ADELE)
    scene.settle(adele)
    scene.settle(adele, kind=ItemKind.CONTACT)

    scene.assert_in_step(
        adele,
        Counter([
            Seen("Quarterly review", at(23, 11), at(23, 12), "Board room"),
            Seen("Customer visit", at(24, 13), at(24, 14)),
            Seen("Dentist (moved)", at(30, 8), at(30, 9), "Clinic"),
            Seen("Team sync", at(26, 14), at(26, 15)),
            Seen("Team sync", at(33, 14), at(33, 15)),
            Seen("Team sync", at(40, 14), at(40, 15)),
        ]),
    )  # fmt: skip
    assert len(scene.ms_user(adele)["events"]) == events
    assert len(scene.so_rows(adele)) == rows
    assert scene.persons(adele) == persons and scene.contacts(adele) == persons


# --- meetings organised in Outlook, changed in SuperOffice ---------------------------------

PAT = "pat@fabrikam.example"  # a customer


def _attendees(*addresses: str) -> list[dict[str, Any]]:
    return [{"emailAddress": {"address": a}, "type": "required"} for a in addresses]


def _megan_organises_two_meetings(scene: Scene) -> tuple[Colleague, dict[str, int]]:
    """Megan (the only synced user) organises in Outlook a meeting with a customer and one
    with colleagues only; both reach her SuperOffice diary. Her SuperOffice appointments by
    subject."""
    megan = scene.link(MEGAN)
    megan.make_in_outlook(
        "Pricing workshop", at(27, 13), at(27, 14), attendees=_attendees(ADELE, PAT)
    )
    megan.make_in_outlook("Team sync", at(26, 9), at(26, 10), attendees=_attendees(ADELE, LEE))
    scene.settle(megan)
    rows = {r["title"]: r["appointment_id"] for r in scene.so_rows(megan)}
    assert sorted(rows) == ["Pricing workshop", "Team sync"]
    return megan, rows


def _move_in_crm(user: Colleague, appointment: int, start: datetime, end: datetime) -> None:
    user.crm.edit("Appointment", appointment, StartDate=start.isoformat(), EndDate=end.isoformat())


def _run_errors(scene: Scene, run_id: int) -> list[dict[str, Any]]:
    with scene.db.session() as session:
        run = session.get(SyncRun, run_id)
        assert run is not None
        return list((run.errors or {}).get("items", []))


def _change_keys(user: Colleague) -> dict[str, str]:
    events = user.outlook.get(f"/users/{user.address}/events").json()["value"]
    return {e["subject"]: e["changeKey"] for e in events}


def _holds(scene: Scene) -> list[AuditEntry]:
    with scene.db.session() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == "held")))


@pytest.mark.parametrize(
    ("mode", "moved"),
    [
        (InviteMode.NONE, set()),
        (InviteMode.INTERNAL, {"Team sync"}),
        (InviteMode.ALL, {"Team sync", "Pricing workshop"}),
    ],
)
def test_a_crm_change_to_a_meeting_organised_in_outlook_mails_only_whom_the_profile_allows(
    scene: Scene, mode: InviteMode, moved: set[str]
) -> None:
    """Megan organised two meetings in Outlook, one with a customer; she moves both in
    SuperOffice. Changing the organiser's event makes Outlook mail every attendee an update,
    so the change reaches Outlook only where the profile lets us mail all of its attendees
    (nobody by default; colleagues when it invites colleagues; customers only when it says
    so); the others are held: the event keeps its time in Outlook, SuperOffice keeps the
    edit, and the run records why in plain words. The mail Outlook sent is exactly the
    updates for the meetings that moved.

    Mistakes caught: the organiser's event patched whatever the profile says (the customer
    gets an update from a sync), the policy inverted or ignored (an internal meeting held
    under "colleagues", a customer's mailed under "colleagues"), a held edit lost (the CRM
    put back to Outlook's time) or written anyway, the hold recorded without its reason."""
    scene.policy = replace(POLICY, invitations=Invitations(mode))
    megan, rows = _megan_organises_two_meetings(scene)
    mailed = len(scene.sent_mail())
    new_times = {
        "Pricing workshop": (at(28, 13), at(28, 14)),
        "Team sync": (at(26, 11), at(26, 12)),
    }
    for subject, (start, end) in new_times.items():
        _move_in_crm(megan, rows[subject], start, end)

    outcome = scene.run(megan)

    held = {"Team sync", "Pricing workshop"} - moved
    assert outcome.status is (RunStatus.PARTIAL if held else RunStatus.SUCCEEDED), outcome.error
    old_times = {
        "Pricing workshop": (at(27, 13), at(27, 14)),
        "Team sync": (at(26, 9), at(26, 10)),
    }
    assert scene.mailbox(megan) == Counter(
        Seen(s, *(new_times[s] if s in moved else old_times[s])) for s in new_times
    )
    assert scene.diary(megan) == Counter(Seen(s, *new_times[s]) for s in new_times)
    attendees = {"Pricing workshop": [ADELE, PAT], "Team sync": [ADELE, LEE]}
    sent = sorted((m["subject"], m["to"], m["kind"]) for m in scene.sent_mail()[mailed:])
    assert sent == sorted((s, a, "meetingUpdate") for s in moved for a in attendees[s])
    reasons = [e["error"] for e in _run_errors(scene, outcome.run_id)]
    assert len(reasons) == len(held), reasons
    if "Pricing workshop" in held:
        assert any(
            "organised in Outlook with outside attendees" in r
            and PAT in r
            and "allow updates to outside attendees in the profile" in r
            for r in reasons
        ), reasons
    assert sorted(h.reason is not None for h in _holds(scene)) == [True] * len(held)


def test_a_held_change_waits_quietly_until_made_in_outlook_or_allowed_by_the_profile(
    scene: Scene,
) -> None:
    """With the default profile (nobody is mailed), Megan moves her two Outlook meetings in
    SuperOffice and deletes a third one, with a customer, there. All three are held once.
    Later runs, a fresh listing of both sides included, neither write nor record them again.
    She then moves the colleagues' meeting in Outlook to the same time: the pair agrees again.
    Finally the profile allows mail to outside attendees: the held move and deletion go to
    Outlook on the next run, and Outlook mails the update and the cancellation.

    Mistakes caught: the held write planned (and refused, and recorded) again on every run
    or every fresh listing, a held deletion carried as a deletion anyway (a cancellation to
    the customer), the CRM's edit given up for Outlook's old time, the hold never lifted
    when the profile allows it (or when Outlook agrees)."""
    megan, rows = _megan_organises_two_meetings(scene)
    walkthrough = megan.make_in_outlook(
        "Offer walkthrough", at(30, 10), at(30, 11), attendees=_attendees(PAT)
    )
    scene.settle(megan)
    offer = next(r for r in scene.so_rows(megan) if r["title"] == "Offer walkthrough")
    mailed = len(scene.sent_mail())
    _move_in_crm(megan, rows["Pricing workshop"], at(28, 13), at(28, 14))
    _move_in_crm(megan, rows["Team sync"], at(26, 11), at(26, 12))
    megan.crm.call("DELETE", f"/Appointment/{offer['appointment_id']}")

    first = scene.run(megan)
    assert first.status is RunStatus.PARTIAL, first.error
    reasons = sorted(e["error"] for e in _run_errors(scene, first.run_id))
    assert len(reasons) == 3 and len(_holds(scene)) == 3, reasons
    assert any("deleting it there would mail its attendees a cancellation" in r for r in reasons)
    assert any("with attendees (adele@contoso.example, lee@contoso.example)" in r for r in reasons)
    assert scene.sent_mail()[mailed:] == []
    outlook_before = _change_keys(megan)
    assert sorted(outlook_before) == ["Offer walkthrough", "Pricing workshop", "Team sync"]

    # Later runs, and a fresh listing of both sides (as a new day's window brings): quiet.
    again = scene.sync(megan)
    with scene.db.session() as session:
        session.execute(delete(Cursor).where(Cursor.sync_user_id == megan.sync_user_id))
    fresh = scene.sync(megan)
    for outcome in (again, fresh):
        assert outcome.writes() == 0, outcome.counts
        assert not _run_errors(scene, outcome.run_id)
    assert len(_holds(scene)) == 3
    assert _change_keys(megan) == outlook_before  # untouched: not even a stamp
    assert scene.sent_mail()[mailed:] == []
    assert scene.diary(megan) == Counter([
        Seen("Pricing workshop", at(28, 13), at(28, 14)),
        Seen("Team sync", at(26, 11), at(26, 12)),
    ])  # fmt: skip

    # Megan moves the colleagues' meeting in Outlook herself (her own mail to colleagues).
    team = megan.outlook_event("Team sync")["id"]
    moved = megan.outlook.patch(
        f"/users/{MEGAN}/events/{team}", {"start": _utc(at(26, 11)), "end": _utc(at(26, 12))}
    )
    assert moved.status_code == 200, moved.text
    agreed = scene.sync(megan)
    assert agreed.writes() == 0, agreed.counts  # nothing to carry: both sides agree
    assert Seen("Team sync", at(26, 11), at(26, 12)) in scene.mailbox(megan)

    # The profile now allows mail to outside attendees: the held changes go across.
    scene.policy = replace(POLICY, invitations=Invitations(InviteMode.ALL))
    mailed = len(scene.sent_mail())
    scene.settle(megan)
    assert scene.mailbox(megan) == scene.diary(megan) == Counter([
        Seen("Pricing workshop", at(28, 13), at(28, 14)),
        Seen("Team sync", at(26, 11), at(26, 12)),
    ])  # fmt: skip
    assert walkthrough not in {e["id"] for e in scene.ms_user(megan)["events"]}
    sent = sorted((m["subject"], m["to"], m["kind"]) for m in scene.sent_mail()[mailed:])
    assert sent == [
        ("Offer walkthrough", PAT, "meetingCancellation"),
        ("Pricing workshop", ADELE, "meetingUpdate"),
        ("Pricing workshop", PAT, "meetingUpdate"),
    ]
