"""The EWS simulator refuses what Exchange refuses: updates without a (current) ChangeKey, sync
pages outside 1..512, calendar writes that do not say whether to send; and meetings with
attendees are delivered, so a test can tell who got mail."""

from __future__ import annotations

import datetime

import pytest
import requests
from exchangelib import EWSDateTime, EWSTimeZone
from exchangelib.errors import (
    ErrorChangeKeyRequiredForWriteOperations,
    ErrorIrresolvableConflict,
    ErrorSchemaValidation,
)
from exchangelib.items import (
    ALWAYS_OVERWRITE,
    AUTO_RESOLVE,
    NEVER_OVERWRITE,
    SEND_ONLY_TO_ALL,
    SEND_TO_ALL_AND_SAVE_COPY,
    CalendarItem,
)
from lxml import etree

from simulators.exchange.ops_sync import MAX_CHANGES

OSLO = EWSTimeZone("Europe/Oslo")
NS = {
    "s": "http://schemas.xmlsoap.org/soap/envelope/",
    "m": "http://schemas.microsoft.com/exchange/services/2006/messages",
    "t": "http://schemas.microsoft.com/exchange/services/2006/types",
    "e": "http://schemas.microsoft.com/exchange/services/2006/errors",
}
CUSTOMER = "pat@customer.example"


def _post(ews_url: str, operation: str) -> etree._Element:
    body = f"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="{NS["s"]}" xmlns:m="{NS["m"]}" xmlns:t="{NS["t"]}">
 <s:Header><t:RequestServerVersion Version="Exchange2016"/></s:Header>
 <s:Body>{operation}</s:Body></s:Envelope>"""
    session = requests.Session()
    session.trust_env = False
    response = session.post(
        ews_url, data=body.encode(), auth=("alice@proseware.example", "Alice-Passw0rd!"), timeout=5
    )
    return etree.fromstring(response.content)


def _quarterly_review(account):
    return next(iter(account.calendar.filter(subject="Quarterly review")))


# --- UpdateItem and the ChangeKey ----------------------------------------------------------


@pytest.mark.parametrize("resolution", [NEVER_OVERWRITE, AUTO_RESOLVE, ALWAYS_OVERWRITE])
def test_an_update_without_change_key_is_refused(ews_account, resolution):
    account = ews_account("alice")
    item = _quarterly_review(account)
    keyless = CalendarItem(account=account, folder=account.calendar, id=item.id, changekey=None)
    keyless.location = "Canteen"
    with pytest.raises(ErrorChangeKeyRequiredForWriteOperations):
        account.bulk_update([(keyless, ["location"])], conflict_resolution=resolution)
    item.refresh()
    assert item.location != "Canteen"


def _moved_on(account) -> tuple[CalendarItem, CalendarItem]:
    """The review as the server has it (its location changed) and a copy with the old key."""
    item = _quarterly_review(account)
    stale = CalendarItem(
        account=account, folder=account.calendar, id=item.id, changekey=item.changekey
    )
    item.location = "Board room"
    item.save(update_fields=["location"])
    return item, stale


def test_never_overwrite_with_a_stale_key_changes_nothing(ews_account):
    item, stale = _moved_on(ews_account("alice"))
    stale.subject = "Renamed by a stale writer"
    with pytest.raises(ErrorIrresolvableConflict):
        stale.save(update_fields=["subject"], conflict_resolution=NEVER_OVERWRITE)
    item.refresh()
    assert (item.subject, item.location) == ("Quarterly review", "Board room")
    # With the current key the same update goes through.
    stale.changekey = item.changekey
    stale.save(update_fields=["subject"], conflict_resolution=NEVER_OVERWRITE)
    item.refresh()
    assert item.subject == "Renamed by a stale writer"


def test_always_overwrite_with_a_stale_key_overwrites(ews_account):
    item, stale = _moved_on(ews_account("alice"))
    stale.location = "Canteen"
    stale.save(update_fields=["location"], conflict_resolution=ALWAYS_OVERWRITE)
    item.refresh()
    assert item.location == "Canteen"


def test_a_series_occurrence_needs_the_current_key_of_its_series(ews_account):
    account = ews_account("alice")
    [series] = account.calendar.filter(subject="Weekly sales stand-up")
    third = series.occurrence(index=6)
    third.refresh()
    assert third.type == "Occurrence"  # not one of the seeded exceptions (they have their own key)
    series.location = "Room 2"
    series.save(update_fields=["location"])  # the series moves on: the occurrence's key is stale
    third.subject = "Stand-up (stale)"
    with pytest.raises(ErrorIrresolvableConflict):
        third.save(update_fields=["subject"], conflict_resolution=NEVER_OVERWRITE)


# --- FindItem and SyncFolderItems: no bodies or recipient lists -------------------------------


def test_sync_and_find_leave_out_bodies_and_attendees_that_get_item_returns(ews_account):
    """SyncFolderItems "cannot return properties like Body or Attachments", like FindItem,
    which returns no recipient lists either: a client must read them with GetItem."""
    account = ews_account("alice")
    start = EWSDateTime(2027, 1, 11, 10, tzinfo=OSLO)
    meeting = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="With a body",
        body="The agenda",
        start=start,
        end=start + datetime.timedelta(hours=1),
        required_attendees=["bob@proseware.example"],
    )
    meeting.save(send_meeting_invitations="SendToNone")
    fields = ["subject", "body", "required_attendees"]
    synced = {i.subject: i for _, i in account.calendar.sync_items(only_fields=fields)}
    assert synced["With a body"].body is None
    assert not synced["With a body"].required_attendees
    (read,) = account.fetch([(meeting.id, None)], only_fields=fields)
    assert str(read.body) == "The agenda"
    assert [a.mailbox.email_address for a in read.required_attendees] == ["bob@proseware.example"]


# --- SyncFolderItems: MaxChangesReturned ---------------------------------------------------


def test_max_changes_returned_is_bounded_by_the_schema(ews_account):
    assert MAX_CHANGES == (1, 512)
    account = ews_account("alice")
    assert len(list(account.calendar.sync_items(max_changes_returned=512))) == 10
    with pytest.raises(ErrorSchemaValidation, match="MaxInclusive"):
        list(account.calendar.sync_items(max_changes_returned=513))


@pytest.mark.parametrize("value", ["0", "-1", "many", None])
def test_max_changes_returned_below_one_or_missing_is_a_schema_fault(ews_url, value):
    limit = f"<m:MaxChangesReturned>{value}</m:MaxChangesReturned>" if value is not None else ""
    root = _post(
        ews_url,
        f"""<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>
        <m:SyncFolderId><t:DistinguishedFolderId Id="calendar"/></m:SyncFolderId>
        {limit}</m:SyncFolderItems>""",
    )
    assert root.findtext(".//e:ResponseCode", namespaces=NS) == "ErrorSchemaValidation"
    assert root.find(".//s:Fault", NS) is not None
    assert root.find(".//m:SyncFolderItemsResponseMessage", NS) is None


# --- CreateItem / UpdateItem / DeleteItem must say whether to send ---------------------------


def test_creating_a_calendar_item_needs_send_meeting_invitations(ews_url):
    start = datetime.datetime.now(datetime.UTC).replace(microsecond=0) + datetime.timedelta(days=3)
    end = start + datetime.timedelta(hours=1)
    item = f"""<t:CalendarItem><t:Subject>No word on invitations</t:Subject>
        <t:Start>{start:%Y-%m-%dT%H:%M:%SZ}</t:Start><t:End>{end:%Y-%m-%dT%H:%M:%SZ}</t:End>
        </t:CalendarItem>"""
    root = _post(
        ews_url,
        f'<m:CreateItem MessageDisposition="SaveOnly"><m:Items>{item}</m:Items></m:CreateItem>',
    )
    message = root.find(".//m:CreateItemResponseMessage", NS)
    assert message.get("ResponseClass") == "Error"
    assert (
        message.findtext("m:ResponseCode", namespaces=NS) == "ErrorSendMeetingInvitationsRequired"
    )
    contact = "<t:Contact><t:GivenName>Ingrid</t:GivenName></t:Contact>"
    root = _post(ews_url, f"<m:CreateItem><m:Items>{contact}</m:Items></m:CreateItem>")
    assert root.find(".//m:CreateItemResponseMessage", NS).get("ResponseClass") == "Success"


def test_updating_and_deleting_a_calendar_item_need_the_send_attributes(ews_account, ews_url):
    account = ews_account("alice")
    item = _quarterly_review(account)
    change = f"""<t:ItemChange><t:ItemId Id="{item.id}" ChangeKey="{item.changekey}"/>
        <t:Updates><t:SetItemField><t:FieldURI FieldURI="item:Subject"/>
        <t:CalendarItem><t:Subject>Unsent</t:Subject></t:CalendarItem></t:SetItemField>
        </t:Updates></t:ItemChange>"""
    root = _post(
        ews_url,
        f'<m:UpdateItem ConflictResolution="NeverOverwrite"><m:ItemChanges>{change}'
        "</m:ItemChanges></m:UpdateItem>",
    )
    assert (
        root.findtext(".//m:ResponseCode", namespaces=NS)
        == "ErrorSendMeetingInvitationsOrCancellationsRequired"
    )
    root = _post(
        ews_url,
        f'<m:DeleteItem DeleteType="HardDelete"><m:ItemIds><t:ItemId Id="{item.id}"/>'
        "</m:ItemIds></m:DeleteItem>",
    )
    assert (
        root.findtext(".//m:ResponseCode", namespaces=NS) == "ErrorSendMeetingCancellationsRequired"
    )
    item.refresh()
    assert item.subject == "Quarterly review"


def test_an_unknown_conflict_resolution_fails_schema_validation(ews_url):
    root = _post(
        ews_url,
        '<m:UpdateItem ConflictResolution="LastWriterWins" SendMeetingInvitationsOrCancellations='
        '"SendToNone"><m:ItemChanges/></m:UpdateItem>',
    )
    assert root.findtext(".//e:ResponseCode", namespaces=NS) == "ErrorSchemaValidation"


# --- Meetings are delivered ------------------------------------------------------------------


def _sent_mail(exchange_app) -> list[dict]:
    client = exchange_app.test_client()
    return client.get("/_sim/state").get_json()["organisations"]["proseware.example"]["sent_mail"]


def _meeting(account, subject: str) -> CalendarItem:
    start = EWSDateTime(datetime.date.today().year + 1, 2, 10, 14, 0, tzinfo=OSLO)
    return CalendarItem(
        account=account,
        folder=account.calendar,
        subject=subject,
        start=start,
        end=start + datetime.timedelta(hours=1),
        required_attendees=["bob@proseware.example", CUSTOMER],
    )


def test_a_meeting_saved_without_sending_mails_nobody(ews_account, exchange_app):
    account = ews_account("alice")
    _meeting(account, "Pipeline review").save()  # exchangelib's default: SendToNone
    assert _sent_mail(exchange_app) == []
    assert not list(ews_account("bob").calendar.filter(subject="Pipeline review"))


def test_a_meeting_invites_inside_and_mails_outside(ews_account, exchange_app):
    alice = ews_account("alice")
    meeting = _meeting(alice, "Contract review")
    meeting.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    mail = _sent_mail(exchange_app)
    assert [(m["kind"], m["to"], m["internal"]) for m in mail] == [
        ("MeetingRequest", "bob@proseware.example", True),
        ("MeetingRequest", CUSTOMER, False),  # mail that left the organisation
    ]
    assert {m["from"] for m in mail} == {"alice@proseware.example"}
    meeting.refresh()
    assert meeting.meeting_request_was_sent is True
    # Bob's calendar has the meeting, tentatively, with alice as organizer.
    [copy] = ews_account("bob").calendar.filter(subject="Contract review")
    assert copy.id != meeting.id and copy.uid == meeting.uid
    assert copy.organizer.email_address == "alice@proseware.example"
    assert copy.my_response_type == "NoResponseReceived"
    assert copy.legacy_free_busy_status == "Tentative"

    exchange_app.test_client().post("/_sim/state", json={"clear_sent_mail": True})
    meeting.required_attendees = ["bob@proseware.example"]
    meeting.location = "Room 5"
    meeting.save(
        update_fields=["required_attendees", "location"],
        conflict_resolution=NEVER_OVERWRITE,
        send_meeting_invitations=SEND_ONLY_TO_ALL,
    )
    assert [(m["kind"], m["to"]) for m in _sent_mail(exchange_app)] == [
        ("MeetingUpdate", "bob@proseware.example"),
        ("MeetingCancellation", CUSTOMER),
    ]
    copy.refresh()
    assert copy.location == "Room 5"

    exchange_app.test_client().post("/_sim/state", json={"clear_sent_mail": True})
    meeting.delete(send_meeting_cancellations=SEND_ONLY_TO_ALL)
    assert [(m["kind"], m["to"]) for m in _sent_mail(exchange_app)] == [
        ("MeetingCancellation", "bob@proseware.example")
    ]
    copy.refresh()
    assert copy.is_cancelled is True
