"""Recurrence and time: DST in the item's own zone, odd offsets, all-day dates, exceptions,
series carried as series, and the expansion fallback for a side that cannot hold a rule."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from common.items import (
    Appointment,
    Attendee,
    Recurrence,
    RecurrenceException,
    ShowAs,
    as_single,
    content_hash,
    expand,
    occurrences,
)
from common.models import ItemKind, Side
from daemon.policies import Policy, Window
from daemon.sync import sync
from tests.fixtures.engine import CRM_FIELDS, Clock, MemoryConnector, MemoryStore

WIDE = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def weekly(zone: str, start: datetime, count: int = 6, **more: object) -> Appointment:
    local = start.replace(tzinfo=ZoneInfo(zone))
    return Appointment(
        "Stand-up",
        local,
        local + timedelta(minutes=30),
        timezone=zone,
        recurrence=Recurrence(f"FREQ=WEEKLY;COUNT={count}", **more),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("zone", "first", "utc_before", "utc_after"),
    [
        # Amsterdam leaves CET (+1) for CEST (+2) on 29 March 2026.
        ("Europe/Amsterdam", datetime(2026, 3, 16, 9, 0), "08:00", "07:00"),
        # New York leaves EST (-5) for EDT (-4) on 8 March 2026.
        ("America/New_York", datetime(2026, 2, 23, 9, 0), "14:00", "13:00"),
        # Chatham (+12:45 / +13:45) leaves daylight time on 5 April 2026.
        ("Pacific/Chatham", datetime(2026, 3, 23, 9, 0), "19:15", "20:15"),
    ],
)
def test_series_keep_their_wall_clock_time_across_dst(
    zone: str, first: datetime, utc_before: str, utc_after: str
) -> None:
    series = weekly(zone, first, count=5)
    found = occurrences(series, *WIDE)
    assert len(found) == 5
    local_times = {o.start.astimezone(ZoneInfo(zone)).strftime("%H:%M") for o in found}  # type: ignore[union-attr]
    assert local_times == {"09:00"}
    utc_times = [o.start.astimezone(UTC).strftime("%H:%M") for o in found]  # type: ignore[union-attr]
    assert utc_times[0] == utc_before and utc_times[-1] == utc_after
    durations = {o.end - o.start for o in found}  # type: ignore[operator]
    assert durations == {timedelta(minutes=30)}


def test_chatham_offset_is_45_minutes_and_round_trips_through_utc() -> None:
    start = datetime(2026, 7, 1, 9, 0, tzinfo=ZoneInfo("Pacific/Chatham"))
    item = Appointment("Call", start, start + timedelta(hours=1), timezone="Pacific/Chatham")
    assert start.utcoffset() == timedelta(hours=12, minutes=45)
    as_utc = dataclasses.replace(
        item,
        start=start.astimezone(UTC),
        end=(start + timedelta(hours=1)).astimezone(UTC),
        timezone="UTC",
    )
    assert content_hash(as_utc) == content_hash(item)
    assert as_utc.start.astimezone(ZoneInfo("Pacific/Chatham")).strftime("%H:%M") == "09:00"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "zone", ["Pacific/Chatham", "America/New_York", "Pacific/Kiritimati", "UTC"]
)
def test_all_day_items_never_shift_a_day(zone: str) -> None:
    item = Appointment("Conference", date(2026, 3, 28), date(2026, 3, 31), timezone=zone)
    assert item.all_day
    (occ,) = occurrences(item, *WIDE)
    assert (occ.start, occ.end) == (
        date(2026, 3, 28),
        date(2026, 3, 31),
    )  # three days, end exclusive
    same_in_utc = dataclasses.replace(item, timezone="UTC")
    assert content_hash(same_in_utc) == content_hash(item)


def test_all_day_weekly_series_over_dst_stays_on_its_dates() -> None:
    series = Appointment(
        "Gym",
        date(2026, 3, 23),
        date(2026, 3, 24),
        timezone="Europe/Amsterdam",
        recurrence=Recurrence("FREQ=WEEKLY;COUNT=3"),
    )
    assert [o.start for o in occurrences(series, *WIDE)] == [
        date(2026, 3, 23),
        date(2026, 3, 30),
        date(2026, 4, 6),
    ]


def test_multi_day_item_overlapping_the_window_start_is_in_it() -> None:
    item = Appointment("Trip", date(2026, 2, 27), date(2026, 3, 3))
    window = (datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    assert len(occurrences(item, *window)) == 1


def moved_and_deleted() -> Appointment:
    ams = ZoneInfo("Europe/Amsterdam")
    second = datetime(2026, 3, 23, 9, 0, tzinfo=ams)
    third = datetime(2026, 3, 30, 9, 0, tzinfo=ams)
    return weekly(
        "Europe/Amsterdam",
        datetime(2026, 3, 16, 9, 0),
        count=4,
        exclusions=frozenset({second}),
        exceptions=(
            RecurrenceException(
                third,
                third + timedelta(days=1, hours=2),
                third + timedelta(days=1, hours=3),
                "Stand-up (Tue)",
            ),
        ),
    )


def test_weekly_series_with_a_moved_and_a_deleted_occurrence() -> None:
    found = occurrences(moved_and_deleted(), *WIDE)
    ams = ZoneInfo("Europe/Amsterdam")
    assert [(o.start.astimezone(ams).strftime("%a %d %H:%M"), o.subject) for o in found] == [  # type: ignore[union-attr]
        ("Mon 16 09:00", "Stand-up"),
        ("Tue 31 11:00", "Stand-up (Tue)"),
        ("Mon 06 09:00", "Stand-up"),
    ]


NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def connectors(
    can_express: bool = True,
) -> tuple[
    MemoryConnector[Appointment],
    MemoryConnector[Appointment],
    dict[Side, MemoryConnector[Appointment]],
]:
    clock = Clock(NOW)
    crm: MemoryConnector[Appointment] = MemoryConnector("crm", fields=CRM_FIELDS, clock=clock)
    gw: MemoryConnector[Appointment] = MemoryConnector(
        "gw", clock=clock, can_express=lambda rec: can_express or "COUNT" not in rec.rule
    )
    return crm, gw, {Side.CRM: crm, Side.GROUPWARE: gw}


def test_a_series_maps_to_one_series_with_its_exceptions() -> None:
    crm, gw, both = connectors()
    store = MemoryStore()
    series_id = crm.user_create(moved_and_deleted())
    outcome = sync(ItemKind.APPOINTMENT, both, store, Policy(), NOW)
    assert outcome.report is not None and outcome.report.counts["create_groupware"] == 1
    (copy,) = [item for _, item, _ in gw.items.values()]
    assert copy.recurrence == crm.item(series_id).recurrence
    assert content_hash(copy, CRM_FIELDS) == content_hash(crm.item(series_id), CRM_FIELDS)
    # Deleting one more occurrence on the groupware side updates the one CRM series.
    (gw_id,) = gw.items
    rec = copy.recurrence
    assert rec is not None
    extra = datetime(2026, 4, 6, 9, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
    gw.user_edit(gw_id, recurrence=dataclasses.replace(rec, exclusions=rec.exclusions | {extra}))
    outcome = sync(ItemKind.APPOINTMENT, both, store, Policy(), NOW)
    assert outcome.report is not None and outcome.report.counts["update_crm"] == 1
    assert len(occurrences(crm.item(series_id), *WIDE)) == 2


def test_a_rule_the_other_side_cannot_hold_is_expanded_in_the_window() -> None:
    crm, gw, both = connectors(can_express=False)
    store = MemoryStore()
    policy = Policy(window=Window(days_back=1, days_ahead=30))
    series_id = crm.user_create(moved_and_deleted())
    outcome = sync(ItemKind.APPOINTMENT, both, store, policy, NOW)
    assert outcome.report is not None
    # 16 Mar is before the window; 23 Mar deleted; 31 Mar (moved) and 6 Apr remain.
    subjects = sorted((i.start, i.subject) for _, i, _ in gw.items.values())  # type: ignore[type-var]
    assert [s for _, s in subjects] == ["Stand-up (Tue)", "Stand-up"]
    assert all(i.recurrence is None for _, i, _ in gw.items.values())
    assert any("expanded to 2 occurrences" in note for note in outcome.notes)
    # The series loses an occurrence: its single copy goes; nothing else is touched.
    rec = crm.item(series_id).recurrence
    assert rec is not None
    sixth = datetime(2026, 4, 6, 9, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
    crm.user_edit(
        series_id, recurrence=dataclasses.replace(rec, exclusions=rec.exclusions | {sixth})
    )
    outcome = sync(ItemKind.APPOINTMENT, both, store, policy, NOW)
    assert outcome.report is not None and outcome.report.counts["delete_groupware"] == 1
    assert [i.subject for _, i, _ in gw.items.values()] == ["Stand-up (Tue)"]
    # Editing the copy of an occurrence is not carried back into the series, and says so.
    (copy_id,) = gw.items
    gw.user_edit(copy_id, subject="Changed on the phone")
    outcome = sync(ItemKind.APPOINTMENT, both, store, policy, NOW)
    assert outcome.plan is not None and outcome.plan.writes() == []
    assert any("not carried back" in line for line in outcome.plan.skipped)
    # Deleting the series deletes its copies.
    crm.user_delete(series_id)
    sync(ItemKind.APPOINTMENT, both, store, policy, NOW)
    assert gw.items == {}


def test_an_all_day_series_zone_is_not_content() -> None:
    series = Appointment(
        "Gym",
        date(2026, 3, 23),
        date(2026, 3, 24),
        "Europe/Amsterdam",
        recurrence=Recurrence("FREQ=WEEKLY"),
    )
    assert content_hash(dataclasses.replace(series, timezone="UTC")) == content_hash(series)


def test_an_occurrence_takes_every_value_of_its_exception() -> None:
    # Mistake caught: occurrences()/expand() copying only subject and location, so a copy of
    # an occurrence made private, free or with its own attendees lost that on a side that
    # cannot hold the rule.
    ams = ZoneInfo("Europe/Amsterdam")
    second = datetime(2026, 3, 23, 9, 0, tzinfo=ams)
    series = dataclasses.replace(
        weekly("Europe/Amsterdam", datetime(2026, 3, 16, 9, 0), count=3),
        body="Weekly notes",
        attendees=(Attendee("team@example.com", "Team"),),
        reminder_minutes=10,
    )
    assert series.recurrence is not None
    exc = RecurrenceException(
        second,
        second + timedelta(hours=1),
        second + timedelta(hours=2),
        body="Only this week: <b>demo</b>",
        attendees=(Attendee("boss@example.com", "Boss"),),
        show_as=ShowAs.OUT_OF_OFFICE,
        private=True,
        reminder_minutes=60,
    )
    series = dataclasses.replace(
        series, recurrence=dataclasses.replace(series.recurrence, exceptions=(exc,))
    )
    first, moved, third = occurrences(series, *WIDE)
    assert (moved.body, moved.attendees, moved.show_as, moved.private, moved.reminder_minutes) == (
        "Only this week: <b>demo</b>",
        (Attendee("boss@example.com", "Boss"),),
        ShowAs.OUT_OF_OFFICE,
        True,
        60,
    )
    assert moved.subject == "Stand-up"  # None: as the series
    for plain in (first, third):
        assert (plain.body, plain.attendees, plain.show_as, plain.private) == (
            "Weekly notes",
            (Attendee("team@example.com", "Team"),),
            ShowAs.BUSY,
            False,
        )
        assert plain.reminder_minutes == 10

    copies = expand(series, *WIDE)
    assert [c.recurrence for c in copies] == [None, None, None]
    copy = copies[1]
    assert (copy.start, copy.body, copy.show_as, copy.private, copy.reminder_minutes) == (
        second + timedelta(hours=1),
        "Only this week: <b>demo</b>",
        ShowAs.OUT_OF_OFFICE,
        True,
        60,
    )
    assert copy.attendees == (Attendee("boss@example.com", "Boss"),)
    assert copies[0].body == "Weekly notes" and copies[0].attendees == series.attendees
    assert as_single(series, moved) == copy


def test_an_exception_can_set_a_reminder_of_zero_minutes() -> None:
    # Zero is a value (at the start), not "as the series".
    series = dataclasses.replace(
        weekly("UTC", datetime(2026, 3, 16, 9, 0), count=2), reminder_minutes=15
    )
    assert series.recurrence is not None
    first = series.start
    exc = RecurrenceException(first, first, series.end, reminder_minutes=0, private=False)
    series = dataclasses.replace(
        series, recurrence=dataclasses.replace(series.recurrence, exceptions=(exc,))
    )
    assert [o.reminder_minutes for o in occurrences(series, *WIDE)] == [0, 15]
