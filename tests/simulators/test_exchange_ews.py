"""Unchanged exchangelib against the EWS simulator: full round trips, sync, and Exchange's errors."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

import pytest
from exchangelib import IMPERSONATION, EWSDateTime, EWSTimeZone
from exchangelib.errors import (
    ErrorAccessDenied,
    ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange,
    ErrorCalendarOccurrenceIsDeletedFromRecurrence,
    ErrorImpersonateUserDenied,
    ErrorInvalidChangeKey,
    ErrorInvalidSyncStateData,
    ErrorIrresolvableConflict,
    ErrorItemNotFound,
    ErrorServerBusy,
)
from exchangelib.indexed_properties import EmailAddress, PhoneNumber
from exchangelib.items import CalendarItem, Contact
from exchangelib.protocol import FailFast, FaultTolerance
from exchangelib.recurrence import Recurrence, WeeklyPattern

from simulators.platform.control import control_of

OSLO = EWSTimeZone("Europe/Oslo")


def _series_start() -> EWSDateTime:
    # Tuesdays around the end of October: the series crosses the change from CEST to CET.
    today = datetime.date.today()
    year = today.year + 1
    return EWSDateTime(year, 10, 13, 10, 0, tzinfo=OSLO)


def test_calendar_round_trip_with_series_exception_and_correlation_id(
    ews_account, correlation_field, exchange_app
):
    account = ews_account("alice")
    calendar = account.calendar
    assert calendar.name == "Calendar"
    initial = list(calendar.sync_items())
    assert initial and {change for change, _ in initial} == {"create"}
    seeded_subjects = {item.subject for _, item in initial}
    assert "Weekly sales stand-up" in seeded_subjects
    state = calendar.item_sync_state

    start = _series_start()
    series = CalendarItem(
        account=account,
        folder=calendar,
        subject="Steering group",
        start=start,
        end=start + datetime.timedelta(hours=1),
        recurrence=Recurrence(
            pattern=WeeklyPattern(interval=1, weekdays=[2]), start=start.date(), number=4
        ),
        **{correlation_field: "so-appointment-42"},
    )
    series.save()
    original_id = series.id

    # Found again by the correlation id (a FindItem restriction on the extended property).
    [found] = calendar.filter(**{correlation_field: "so-appointment-42"})
    assert found.id == original_id
    assert getattr(found, correlation_field) == "so-appointment-42"
    assert found.type == "RecurringMaster"

    window_start, window_end = (
        start - datetime.timedelta(days=1),
        start + datetime.timedelta(days=30),
    )
    occurrences = [
        o
        for o in calendar.view(start=window_start, end=window_end)
        if o.subject == "Steering group"
    ]
    assert len(occurrences) == 4
    # 10:00 local in every week, before and after the DST change (08:00 UTC, then 09:00 UTC).
    assert {o.start.astimezone(ZoneInfo("Europe/Oslo")).hour for o in occurrences} == {10}
    assert {o.start.hour for o in occurrences} == {8, 9}

    # An exception: the second occurrence moved by two hours and renamed.
    second = series.occurrence(index=2)
    second.refresh()
    assert second.type == "Occurrence"
    second.subject = "Steering group (moved)"
    second.start += datetime.timedelta(hours=2)
    second.end += datetime.timedelta(hours=2)
    second.save(update_fields=["subject", "start", "end"])
    # And a deleted occurrence.
    fourth = series.occurrence(index=4)
    fourth.refresh()
    fourth.delete()
    with pytest.raises(ErrorCalendarOccurrenceIsDeletedFromRecurrence):
        series.occurrence(index=4).refresh()

    series.refresh()
    assert [o.start for o in series.modified_occurrences] == [
        occurrences[1].start + datetime.timedelta(hours=2)
    ]
    assert len(series.deleted_occurrences) == 1
    in_view = sorted(
        (
            o
            for o in calendar.view(start=window_start, end=window_end)
            if o.subject.startswith("Steering")
        ),
        key=lambda o: o.start,
    )
    assert [(o.subject, o.type) for o in in_view] == [
        ("Steering group", "Occurrence"),
        ("Steering group (moved)", "Exception"),
        ("Steering group", "Occurrence"),
    ]

    # UpdateItem keeps the id and issues a new change key.
    old_key = series.changekey
    series.subject = "Steering group (renamed)"
    series.save(update_fields=["subject"])
    assert series.id == original_id
    assert series.changekey != old_key
    series.refresh()
    assert series.subject == "Steering group (renamed)"
    assert getattr(series, correlation_field) == "so-appointment-42"

    # Incremental sync: one create (the series, in its latest state) since the saved state.
    changes = list(
        calendar.sync_items(sync_state=state, only_fields=["subject", correlation_field])
    )
    assert [(c, i.subject) for c, i in changes] == [("create", "Steering group (renamed)")]
    state = calendar.item_sync_state

    # A seeded item changed and one deleted show up as update and delete.
    doctor = next(item for _, item in initial if item.subject == "Doctor")
    doctor.refresh()
    doctor.location = "Clinic"
    doctor.save(update_fields=["location"])
    series.delete()
    changes = list(calendar.sync_items(sync_state=state))
    assert sorted(c for c, _ in changes) == ["delete", "update"]
    deleted = next(i for c, i in changes if c == "delete")
    assert deleted.id == original_id
    assert control_of(exchange_app).stats.snapshot()["total"] > 10
    operations = exchange_app.extensions["exchange_simulator"].counter.snapshot()
    assert operations["proseware.example SyncFolderItems"] == 3


def test_contacts_round_trip(ews_account, correlation_field):
    account = ews_account("alice")
    contacts = account.contacts
    state = [i for _, i in contacts.sync_items()] and contacts.item_sync_state
    contact = Contact(
        account=account,
        folder=contacts,
        given_name="Ingrid",
        surname="Lund",
        display_name="Ingrid Lund",
        company_name="Fjord Fisk AS",
        email_addresses=[EmailAddress(label="EmailAddress1", email="ingrid@fjordfisk.example")],
        phone_numbers=[PhoneNumber(label="BusinessPhone", phone_number="+47 55 00 00 00")],
        **{correlation_field: "so-person-7"},
    )
    contact.save()
    contact.refresh()
    assert contact.email_addresses[0].email == "ingrid@fjordfisk.example"
    assert contact.phone_numbers[0].phone_number == "+47 55 00 00 00"
    assert getattr(contact, correlation_field) == "so-person-7"

    contact.email_addresses = [
        EmailAddress(label="EmailAddress1", email="ingrid.lund@fjordfisk.example")
    ]
    contact.job_title = "Daglig leder"
    contact.save(update_fields=["email_addresses", "job_title"])
    [again] = contacts.filter(**{correlation_field: "so-person-7"})
    assert again.email_addresses[0].email == "ingrid.lund@fjordfisk.example"
    assert again.job_title == "Daglig leder"

    changes = list(contacts.sync_items(sync_state=state))
    assert [(c, i.display_name) for c, i in changes] == [("create", "Ingrid Lund")]
    contact_id = contact.id
    contact.delete()
    assert [c for c, _ in contacts.sync_items()] == ["delete"]
    [gone] = account.fetch(ids=[(contact_id, None)])
    assert isinstance(gone, ErrorItemNotFound)


def test_sync_pages_until_last_item_in_range(ews_account, exchange_app):
    account = ews_account("alice")
    items = list(account.calendar.sync_items(max_changes_returned=3))
    assert len(items) == 10  # the seeded calendar, in pages of three
    operations = exchange_app.extensions["exchange_simulator"].counter.snapshot()
    assert operations["proseware.example SyncFolderItems"] == 4
    assert list(account.calendar.sync_items()) == []


def test_one_response_message_per_requested_id(ews_account):
    account = ews_account("alice")
    real = next(iter(account.calendar.all().only("subject")))
    results = list(account.fetch(ids=[(real.id, real.changekey), ("AAMkAAAAAAAAAA==", None)]))
    assert results[0].subject == real.subject
    assert isinstance(results[1], ErrorItemNotFound)


def test_stale_change_key_is_refused(ews_account):
    account = ews_account("alice")
    item = next(iter(account.calendar.filter(subject="Quarterly review")))
    stale = CalendarItem(
        account=account, folder=account.calendar, id=item.id, changekey=item.changekey
    )
    item.location = "Board room"
    item.save(update_fields=["location"])
    stale.location = "Canteen"
    with pytest.raises(ErrorIrresolvableConflict):
        stale.save(update_fields=["location"], conflict_resolution="NeverOverwrite")
    item.refresh()
    assert item.location == "Board room"
    # AutoResolve (exchangelib's default): the server's newer location stays, other changes apply.
    stale.location = "Canteen"
    stale.subject = "Quarterly review (agenda sent)"
    stale.save(update_fields=["location", "subject"])
    item.refresh()
    assert (item.location, item.subject) == ("Board room", "Quarterly review (agenda sent)")
    forged = CalendarItem(
        account=account, folder=account.calendar, id=item.id, changekey="bm90IG91cnM="
    )
    forged.location = "Roof"
    with pytest.raises(ErrorInvalidChangeKey):
        forged.save(update_fields=["location"])


def test_server_busy_back_off_is_honoured_by_fault_tolerance(ews_account, exchange_app):
    control_of(exchange_app).faults.add(
        {"kind": "server_busy", "path": "Exchange.asmx", "count": 1, "back_off_ms": 400}
    )
    account = ews_account("alice", retry_policy=FaultTolerance(max_wait=10))
    began = datetime.datetime.now()
    assert account.calendar.total_count >= 10
    waited = (datetime.datetime.now() - began).total_seconds()
    assert waited >= 0.4
    assert control_of(exchange_app).faults.active() == []


def test_server_busy_with_fail_fast_carries_back_off(ews_account, exchange_app):
    control_of(exchange_app).faults.add({"kind": "server_busy", "count": 1, "back_off_ms": 297749})
    account = ews_account("alice", retry_policy=FailFast())
    with pytest.raises(ErrorServerBusy) as raised:
        _ = account.calendar
    assert raised.value.back_off == 297.749


def test_expired_sync_state_is_reported(ews_account, exchange_app):
    account = ews_account("alice")
    list(account.calendar.sync_items())
    control_of(exchange_app).faults.add({"kind": "delta_expired", "count": 1})
    with pytest.raises(ErrorInvalidSyncStateData):
        list(account.calendar.sync_items())


def test_impersonation_needs_the_role(ews_account):
    service = ews_account(
        "svc-sync", primary_smtp_address="bob@proseware.example", access_type=IMPERSONATION
    )
    assert service.calendar.total_count == 4
    intruder = ews_account(
        "alice", primary_smtp_address="bob@proseware.example", access_type=IMPERSONATION
    )
    with pytest.raises(ErrorImpersonateUserDenied):
        _ = intruder.calendar
    # Delegate access needs folder permissions nobody granted alice on bob's mailbox.
    nosy = ews_account("alice", primary_smtp_address="bob@proseware.example")
    with pytest.raises(ErrorAccessDenied):
        _ = nosy.calendar


def test_version_is_guessed_from_server_version_info(ews_account):
    account = ews_account("alice", version=None)
    assert account.version.build.major_version == 15
    assert account.version.build.minor_version == 2
    assert account.version.api_version == "Exchange2016"


def test_find_item_pages_and_honours_additional_properties(ews_account, exchange_app):
    account = ews_account("alice")
    query = account.calendar.all().only("subject", "start", "sensitivity").order_by("subject")
    query.page_size = 3
    rows = list(query)
    assert len(rows) == 10
    assert [r.subject for r in rows] == sorted(r.subject for r in rows)
    doctor = next(r for r in rows if r.subject == "Doctor")
    assert doctor.sensitivity == "Private"
    assert doctor.location is None  # not asked for, not sent
    operations = exchange_app.extensions["exchange_simulator"].counter.snapshot()
    assert operations["proseware.example FindItem"] == 4
    assert "proseware.example GetItem" not in operations


def test_seeded_calendar_as_exchangelib_reads_it(ews_account):
    account = ews_account("alice")
    items = {i.subject: i for i in account.calendar.all()}
    assert items["Company day"].is_all_day and isinstance(items["Company day"].start, datetime.date)
    fair = items["Trade fair"]
    assert (fair.end - fair.start).days == 2  # three days; exchangelib makes the end inclusive
    assert items["Doctor"].sensitivity == "Private"
    tokyo = items["Call with Tokyo office"]
    assert tokyo.start.astimezone(ZoneInfo("Asia/Tokyo")).hour == 9
    assert tokyo._start_timezone.key == "Asia/Tokyo"
    standup = items["Weekly sales stand-up"]
    assert standup.type == "RecurringMaster"
    assert standup.recurrence.boundary.number == 40
    assert len(standup.modified_occurrences) == 1 and len(standup.deleted_occurrences) == 1
    [moved] = [o for o in standup.modified_occurrences]
    exception = account.calendar.get(id=moved.id)
    assert exception.subject == "Sales stand-up (moved)"
    assert exception.type == "Exception"


def test_convert_id_between_formats(ews_account):
    from exchangelib.properties import EWS_ID, HEX_ENTRY_ID, AlternateId

    account = ews_account("alice")
    item = next(iter(account.calendar.all().only("subject")))
    [hex_id] = account.protocol.convert_ids(
        [AlternateId(id=item.id, format=EWS_ID, mailbox=account.primary_smtp_address)], HEX_ENTRY_ID
    )
    assert hex_id.format == HEX_ENTRY_ID
    [back] = account.protocol.convert_ids(
        [AlternateId(id=hex_id.id, format=HEX_ENTRY_ID, mailbox=account.primary_smtp_address)],
        EWS_ID,
    )
    assert back.id == item.id


def test_max_concurrency_budget_answers_server_busy(ews_account, exchange_app):
    runtime = exchange_app.extensions["exchange_simulator"].runtime("proseware.example")
    budget = runtime.budget
    assert budget.limit == 27
    for _ in range(budget.limit):  # 27 requests of alice's still in progress
        assert budget.acquire("alice@proseware.example")
    account = ews_account("alice", retry_policy=FailFast())
    with pytest.raises(ErrorServerBusy, match="policy part 'MaxConcurrency', policy value '27'"):
        _ = account.calendar
    # Bob has his own budget.
    assert ews_account("bob").calendar.total_count == 4
    budget.release("alice@proseware.example")
    assert account.calendar.total_count == 10


def test_all_day_and_relative_monthly_series_created_by_exchangelib(ews_account):
    from exchangelib import EWSDate
    from exchangelib.recurrence import RelativeMonthlyPattern

    new_york = EWSTimeZone("America/New_York")
    account = ews_account("alice")
    year = datetime.date.today().year + 1
    holiday = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Long weekend",
        start=EWSDate(year, 3, 13),
        end=EWSDate(year, 3, 15),
        is_all_day=True,
    )
    holiday.save()
    holiday.refresh()
    assert holiday.is_all_day is True  # sent as "1", answered as "true"
    assert (holiday.start, holiday.end) == (EWSDate(year, 3, 13), EWSDate(year, 3, 15))

    start = EWSDateTime(year, 1, 1, 9, 0, tzinfo=new_york)
    first_monday = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Portfolio review",
        start=start,
        end=start + datetime.timedelta(hours=1),
        recurrence=Recurrence(
            pattern=RelativeMonthlyPattern(interval=1, weekday=1, week_number=1),
            start=start.date(),
            end=EWSDate(year, 6, 30),
        ),
    )
    first_monday.save()
    view = [
        o.start.astimezone(ZoneInfo("America/New_York"))
        for o in account.calendar.view(start=start, end=start + datetime.timedelta(days=200))
        if o.subject == "Portfolio review"
    ]
    assert [(d.month, d.weekday(), d.day <= 7, d.hour) for d in view] == [
        (m, 0, True, 9) for m in range(1, 7)
    ]


def test_changing_the_series_time_drops_its_exceptions(ews_account):
    account = ews_account("alice")
    standup = next(iter(account.calendar.filter(subject="Weekly sales stand-up")))
    assert standup.modified_occurrences and standup.deleted_occurrences
    standup.start += datetime.timedelta(minutes=30)
    standup.end += datetime.timedelta(minutes=30)
    standup.save(update_fields=["start", "end"])
    standup.refresh()
    assert standup.modified_occurrences is None and standup.deleted_occurrences is None
    assert standup.last_occurrence is not None


def test_calendar_view_says_when_it_was_cut(ews_url):
    import requests
    from lxml import etree

    begin = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    end = begin + datetime.timedelta(days=90)
    body = f"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
 <s:Header><t:RequestServerVersion Version="Exchange2016"/></s:Header>
 <s:Body><m:FindItem Traversal="Shallow">
  <m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>
  <m:CalendarView MaxEntriesReturned="{{limit}}" StartDate="{begin:%Y-%m-%dT%H:%M:%SZ}"
    EndDate="{end:%Y-%m-%dT%H:%M:%SZ}"/>
  <m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds>
 </m:FindItem></s:Body></s:Envelope>"""
    session = requests.Session()
    session.trust_env = False
    ns = {"m": "http://schemas.microsoft.com/exchange/services/2006/messages"}
    results = {}
    for limit in (2, 1000):
        response = session.post(
            ews_url,
            data=body.replace("{limit}", str(limit)).encode(),
            auth=("alice@proseware.example", "Alice-Passw0rd!"),
            timeout=5,
        )
        root = etree.fromstring(response.content).find(".//m:RootFolder", ns)
        results[limit] = (root.get("TotalItemsInView"), root.get("IncludesLastItemInRange"))
    assert results[2] == ("2", "false")
    assert results[1000][1] == "true" and int(results[1000][0]) > 2


def test_resolve_names(ews_account):
    from exchangelib.errors import ErrorNameResolutionNoResults

    account = ews_account("alice")
    [alice] = account.protocol.resolve_names(["alice@proseware.example"])
    assert (alice.name, alice.email_address) == ("Alice Andersen", "alice@proseware.example")
    [bob] = account.protocol.resolve_names(["Bo"])
    assert bob.email_address == "bob@proseware.example"
    # Two Andersens: a warning, both returned.
    both = account.protocol.resolve_names(["andersen"])
    assert sorted(m.email_address for m in both) == [
        "alice@proseware.example",
        "bob@proseware.example",
    ]
    [missing] = account.protocol.resolve_names(["nobody"])
    assert isinstance(missing, ErrorNameResolutionNoResults)


def test_an_occurrence_index_past_the_series_end_is_refused(ews_account):
    account = ews_account("alice")
    [series] = account.calendar.filter(subject="Weekly sales stand-up")  # 40 occurrences
    assert series.type == "RecurringMaster"
    last = series.occurrence(index=40)
    last.refresh()
    assert last.type == "Occurrence"
    with pytest.raises(ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange):
        series.occurrence(index=41).refresh()
