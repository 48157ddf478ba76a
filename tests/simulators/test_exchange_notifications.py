"""EWS notifications in the simulator, driven by unchanged exchangelib: pull subscriptions
(Subscribe, GetEvents, watermarks, idle timeout, Unsubscribe) and streaming subscriptions
(GetStreamingEvents over a hanging connection that closes after ConnectionTimeout)."""

from __future__ import annotations

import datetime
import threading
import time

import pytest
from exchangelib import IMPERSONATION, EWSDateTime, EWSTimeZone
from exchangelib.errors import (
    ErrorInvalidWatermark,
    ErrorSchemaValidation,
    ErrorSubscriptionAccessDenied,
    ErrorSubscriptionNotFound,
)
from exchangelib.items import CalendarItem, Contact
from exchangelib.properties import CreatedEvent, DeletedEvent, ModifiedEvent, StatusEvent

from simulators.exchange.notifications import EVENTS_PER_NOTIFICATION

OSLO = EWSTimeZone("Europe/Oslo")


def _appointment(account, subject: str = "Board meeting") -> CalendarItem:
    start = EWSDateTime(datetime.date.today().year + 1, 3, 2, 9, 0, tzinfo=OSLO)
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject=subject,
        start=start,
        end=start + datetime.timedelta(hours=1),
    )
    item.save()
    return item


def _advance(exchange_app, seconds: float) -> None:
    exchange_app.test_client().post("/_sim/state", json={"advance_clock": seconds})


def _events(folder, subscription_id: str, watermark: str) -> list:
    """Every event GetEvents has for the subscription (exchangelib asks while MoreEvents)."""
    return [e for n in folder.get_events(subscription_id, watermark) for e in n.events]


def _item_events(events) -> list[tuple[type, str]]:
    return [(type(e), e.item_id.id) for e in events if getattr(e, "item_id", None) is not None]


# --- pull ------------------------------------------------------------------------------------


def test_pull_subscription_reports_changes_after_its_watermark(ews_account):
    account = ews_account("alice")
    calendar = account.calendar
    subscription_id, watermark = calendar.subscribe_to_pull(timeout=10)
    [quiet] = calendar.get_events(subscription_id, watermark)
    assert [type(e) for e in quiet.events] == [StatusEvent]  # nothing happened yet
    assert quiet.more_events is False and quiet.previous_watermark == watermark

    item = _appointment(account)
    item.location = "Room 1"
    item.save(update_fields=["location"])
    [notification] = calendar.get_events(subscription_id, watermark)
    assert _item_events(notification.events) == [(CreatedEvent, item.id), (ModifiedEvent, item.id)]
    folder_events = {
        (type(e), e.folder_id.id) for e in notification.events if e.folder_id is not None
    }
    assert folder_events == {(ModifiedEvent, calendar.id)}  # the calendar's content changed
    assert all(e.watermark for e in notification.events)

    # Returned events leave the subscription's queue.
    last = notification.events[-1].watermark
    assert [type(e) for e in _events(calendar, subscription_id, last)] == [StatusEvent]
    item_id = item.id
    item.delete()
    assert _item_events(_events(calendar, subscription_id, last)) == [(DeletedEvent, item_id)]


def test_pull_subscription_sees_only_its_folders_and_event_types(ews_account):
    account = ews_account("alice")
    subscription_id, watermark = account.calendar.subscribe_to_pull(
        event_types=["CreatedEvent"], timeout=10
    )
    Contact(
        account=account, folder=account.contacts, given_name="Ingrid", display_name="Ingrid"
    ).save()
    item = _appointment(account)
    item.subject = "Board meeting (moved)"
    item.save(update_fields=["subject"])
    events = _events(account.calendar, subscription_id, watermark)
    assert _item_events(events) == [(CreatedEvent, item.id)]


def test_get_events_answers_fifty_at_a_time(ews_account, exchange_app):
    account = ews_account("alice")
    subscription_id, watermark = account.calendar.subscribe_to_pull(
        event_types=["CreatedEvent"], timeout=10
    )
    exchange_app.test_client().post(
        "/_sim/state",
        json={
            "add": {
                "alice@proseware.example": {
                    "appointments": [
                        {
                            "subject": f"Slot {n}",
                            "start": "2027-05-03T09:00:00+02:00",
                            "end": "2027-05-03T09:30:00+02:00",
                        }
                        for n in range(EVENTS_PER_NOTIFICATION + 5)
                    ]
                }
            }
        },
    )
    # exchangelib asks again while MoreEvents is true.
    first, rest = account.calendar.get_events(subscription_id, watermark)
    assert (len(first.events), first.more_events) == (EVENTS_PER_NOTIFICATION, True)
    assert (len(rest.events), rest.more_events) == (5, False)


def test_a_watermark_the_subscription_never_gave_is_refused(ews_account):
    account = ews_account("alice")
    first_id, first_mark = account.calendar.subscribe_to_pull(timeout=10)
    _appointment(account)
    second_id, second_mark = account.calendar.subscribe_to_pull(timeout=10)
    with pytest.raises(ErrorInvalidWatermark):
        _events(account.calendar, first_id, second_mark)
    with pytest.raises(ErrorInvalidWatermark):
        _events(account.calendar, first_id, "bm90IGEgd2F0ZXJtYXJr")
    bob = ews_account("bob")
    bob_id, _ = bob.calendar.subscribe_to_pull(timeout=10)
    with pytest.raises(ErrorInvalidWatermark):  # alice's mailbox, not bob's
        _events(bob.calendar, bob_id, first_mark)
    assert _events(account.calendar, first_id, first_mark)


def test_an_idle_pull_subscription_expires_after_its_timeout(ews_account, exchange_app):
    account = ews_account("alice")
    subscription_id, watermark = account.calendar.subscribe_to_pull(timeout=5)
    _advance(exchange_app, 4 * 60)
    _events(account.calendar, subscription_id, watermark)  # resets the timer
    _advance(exchange_app, 4 * 60)
    _events(account.calendar, subscription_id, watermark)
    _advance(exchange_app, 5 * 60 + 1)
    with pytest.raises(ErrorSubscriptionNotFound):
        _events(account.calendar, subscription_id, watermark)


def test_subscriptions_belong_to_their_creator_and_end_with_unsubscribe(ews_account, exchange_app):
    account = ews_account("alice")
    subscription_id, watermark = account.calendar.subscribe_to_pull(timeout=10)
    with pytest.raises(ErrorSubscriptionAccessDenied):
        _events(ews_account("bob").calendar, subscription_id, watermark)
    assert account.calendar.unsubscribe(subscription_id) is True
    with pytest.raises(ErrorSubscriptionNotFound):
        _events(account.calendar, subscription_id, watermark)
    with pytest.raises(ErrorSubscriptionNotFound):
        account.calendar.unsubscribe(subscription_id)
    # A restart of the EWS process loses every subscription.
    other_id, other_mark = account.calendar.subscribe_to_pull(timeout=10)
    exchange_app.test_client().post("/_sim/state", json={"drop_subscriptions": True})
    with pytest.raises(ErrorSubscriptionNotFound):
        _events(account.calendar, other_id, other_mark)


@pytest.mark.parametrize("minutes", [0, 1441])
def test_pull_timeout_outside_the_schema_is_refused(ews_account, minutes):
    account = ews_account("alice")
    with pytest.raises(ErrorSchemaValidation, match="Timeout"):
        account.calendar.subscribe_to_pull(timeout=minutes)


def test_subscribing_from_a_watermark_needs_it_in_the_types_namespace(ews_account):
    # exchangelib 5.6 writes m:Watermark; the schema (and the Managed API) have t:Watermark.
    account = ews_account("alice")
    _, watermark = account.calendar.subscribe_to_pull(timeout=10)
    with pytest.raises(ErrorSchemaValidation, match="Watermark"):
        account.calendar.subscribe_to_pull(timeout=10, watermark=watermark)


# --- streaming -------------------------------------------------------------------------------


def test_streaming_subscription_delivers_events_as_they_happen(ews_account):
    account = ews_account("alice")
    subscription_id = account.calendar.subscribe_to_streaming()
    created: list[CalendarItem] = []

    def write_later() -> None:
        # Another account writes: exchangelib gives each credential one session by default,
        # and the open stream holds alice's.
        time.sleep(0.5)
        writer = ews_account(
            "svc-sync", primary_smtp_address="alice@proseware.example", access_type=IMPERSONATION
        )
        created.append(_appointment(writer, "Streamed"))

    writer = threading.Thread(target=write_later)
    writer.start()
    began = time.monotonic()
    [notification] = account.calendar.get_streaming_events(
        subscription_id, connection_timeout=1, max_notifications_returned=1
    )
    writer.join()
    assert time.monotonic() - began < 10  # sent when it happened, not at the connection's end
    assert notification.subscription_id == subscription_id
    assert (CreatedEvent, created[0].id) in [
        (type(e), e.item_id.id) for e in notification.events if e.item_id is not None
    ]
    assert all(e.watermark is None for e in notification.events)
    account.calendar.unsubscribe(subscription_id)


def test_streaming_connection_closes_after_its_timeout(ews_account, exchange_app):
    account = ews_account("alice")
    subscription_id = account.calendar.subscribe_to_streaming()
    _appointment(account, "Before the connection")  # waits for the connection to open

    def advance_later() -> None:
        time.sleep(0.5)
        _advance(exchange_app, 61)

    clock = threading.Thread(target=advance_later)
    clock.start()
    notifications = list(
        account.calendar.get_streaming_events(subscription_id, connection_timeout=1)
    )
    clock.join()
    assert len(notifications) == 1  # the waiting event, then ConnectionStatus Closed ends it
    assert [type(e) for e in notifications[0].events if e.item_id] == [CreatedEvent]


def test_streaming_connection_timeout_is_bounded_and_ids_must_exist(ews_account):
    account = ews_account("alice")
    subscription_id = account.calendar.subscribe_to_streaming()
    with pytest.raises(ErrorSchemaValidation, match="ConnectionTimeout"):
        list(account.calendar.get_streaming_events(subscription_id, connection_timeout=31))
    with pytest.raises(ErrorSubscriptionNotFound):
        list(account.calendar.get_streaming_events("no-such-subscription", connection_timeout=1))
