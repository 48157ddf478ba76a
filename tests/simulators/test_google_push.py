"""Calendar push notifications from the simulator to a real HTTPS receiver: events.watch and
channels.stop through google-api-python-client, unchanged; the messages are checked as the
receiver sees them (headers only, sync first, then exists)."""

from __future__ import annotations

import threading
from typing import Any

import flask
import pytest
from googleapiclient.errors import HttpError

from simulators.google.push import DEFAULT_TTL_SECONDS
from simulators.world.google import SCOPE_CALENDAR

ALICE = "alice@northwind.example"


class Receiver:
    """A webhook receiver: records every POST and answers with the next scripted status."""

    def __init__(self) -> None:
        self.app = flask.Flask("receiver")
        self.messages: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        self.app.add_url_rule("/hook", "hook", self._hook, methods=["POST"])

    def _hook(self) -> flask.Response:
        with self.lock:
            self.messages.append(
                {
                    "headers": {k: v for k, v in flask.request.headers if k.startswith("X-Goog")},
                    "body": flask.request.get_data(),
                }
            )
            status = self.statuses.pop(0) if self.statuses else 200
        return flask.Response(status=status)


@pytest.fixture
def receiver(serve: Any, google_app: Any, demo_ca: Any) -> tuple[Receiver, str]:
    hook = Receiver()
    server = serve(hook.app)  # https, certificate from the demo CA
    google_app.extensions["google_push"].session.verify = demo_ca.ca_file
    return hook, f"{server.url}/hook"


@pytest.fixture
def calendar(google_service: Any, google_token: Any) -> Any:
    return google_service("calendar", "v3", google_token(ALICE, SCOPE_CALENDAR))


@pytest.fixture
def push(google_app: Any) -> Any:
    return google_app.extensions["google_push"]


def _event(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "start": {"dateTime": "2026-11-24T10:00:00+01:00"},
        "end": {"dateTime": "2026-11-24T11:00:00+01:00"},
    }


def test_watch_sends_sync_then_exists_with_the_channel_token(calendar, receiver, push):
    hook, address = receiver
    channel = (
        calendar.events()
        .watch(
            calendarId="primary",
            body={"id": "chan-1", "type": "web_hook", "address": address, "token": "t=alice-1"},
        )
        .execute()
    )
    assert channel["kind"] == "api#channel" and channel["id"] == "chan-1"
    assert channel["resourceId"] and channel["token"] == "t=alice-1"
    assert push.flush()
    created = calendar.events().insert(calendarId="primary", body=_event("Pinged")).execute()
    calendar.events().delete(calendarId="primary", eventId=created["id"]).execute()
    assert push.flush()
    states = [m["headers"]["X-Goog-Resource-State"] for m in hook.messages]
    assert states == ["sync", "exists", "exists"]
    numbers = [int(m["headers"]["X-Goog-Message-Number"]) for m in hook.messages]
    assert numbers == sorted(numbers) and numbers[0] == 1
    for message in hook.messages:
        headers = message["headers"]
        assert headers["X-Goog-Channel-Id"] == "chan-1"
        assert headers["X-Goog-Channel-Token"] == "t=alice-1"
        assert headers["X-Goog-Resource-Id"] == channel["resourceId"]
        assert headers["X-Goog-Resource-Uri"].startswith(
            "https://www.googleapis.com/calendar/v3/calendars/"
        )
        assert headers["X-Goog-Channel-Expiration"].endswith("GMT")
        assert message["body"] == b""  # Calendar notifications carry no data: list to see it


def test_stop_ends_the_channel_and_needs_its_resource_id(calendar, receiver, push):
    hook, address = receiver
    channel = (
        calendar.events()
        .watch(calendarId="primary", body={"id": "chan-2", "type": "web_hook", "address": address})
        .execute()
    )
    with pytest.raises(HttpError) as err:
        calendar.channels().stop(body={"id": "chan-2", "resourceId": "someone-else"}).execute()
    assert err.value.resp.status == 404
    calendar.channels().stop(body={"id": "chan-2", "resourceId": channel["resourceId"]}).execute()
    assert push.flush()
    before = len(hook.messages)
    calendar.events().insert(calendarId="primary", body=_event("After stop")).execute()
    assert push.flush()
    assert len(hook.messages) == before
    with pytest.raises(HttpError) as err:  # gone
        calendar.channels().stop(
            body={"id": "chan-2", "resourceId": channel["resourceId"]}
        ).execute()
    assert err.value.resp.status == 404


def test_an_expired_channel_is_silent(calendar, receiver, push, google_server, sim_session):
    hook, address = receiver
    channel = (
        calendar.events()
        .watch(
            calendarId="primary",
            body={"id": "chan-3", "type": "web_hook", "address": address, "params": {"ttl": "60"}},
        )
        .execute()
    )
    assert push.flush()
    sim_session.post(
        google_server.url + "/_sim/state/actions", json={"action": "advance_clock", "seconds": 61}
    ).raise_for_status()
    calendar.events().insert(calendarId="primary", body=_event("Too late")).execute()
    assert push.flush()
    assert [m["headers"]["X-Goog-Resource-State"] for m in hook.messages] == ["sync"]
    assert int(channel["expiration"]) > 0


def test_expiration_defaults_to_a_week_and_is_never_longer(calendar, receiver, google_store):
    _, address = receiver
    now_ms = int(google_store.now() * 1000)
    week_ms = DEFAULT_TTL_SECONDS * 1000
    plain = (
        calendar.events()
        .watch(calendarId="primary", body={"id": "c-a", "type": "web_hook", "address": address})
        .execute()
    )
    assert abs(int(plain["expiration"]) - (now_ms + week_ms)) < 5000
    greedy = (
        calendar.events()
        .watch(
            calendarId="primary",
            body={
                "id": "c-b",
                "type": "web_hook",
                "address": address,
                "expiration": str(now_ms + 30 * 24 * 3600 * 1000),
            },
        )
        .execute()
    )
    assert int(greedy["expiration"]) <= now_ms + week_ms + 5000


def test_watch_refuses_plain_http_and_a_reused_channel_id(calendar, receiver):
    _, address = receiver
    with pytest.raises(HttpError) as err:
        calendar.events().watch(
            calendarId="primary",
            body={"id": "c-http", "type": "web_hook", "address": "http://127.0.0.1:9/hook"},
        ).execute()
    assert err.value.resp.status == 400
    assert err.value.error_details[0]["reason"] == "push.webhookUrlNotHttps"
    body = {"id": "c-dup", "type": "web_hook", "address": address}
    calendar.events().watch(calendarId="primary", body=body).execute()
    with pytest.raises(HttpError) as err:
        calendar.events().watch(calendarId="primary", body=body).execute()
    assert err.value.error_details[0]["reason"] == "channelIdNotUnique"


def test_a_failing_receiver_is_retried_on_5xx_only(calendar, receiver, push):
    hook, address = receiver
    push.retry_delays = (0.05, 0.05, 0.05)
    hook.statuses = [503, 200]  # the sync message: refused once, then taken
    calendar.events().watch(
        calendarId="primary", body={"id": "c-retry", "type": "web_hook", "address": address}
    ).execute()
    assert push.flush()
    assert [m["headers"]["X-Goog-Resource-State"] for m in hook.messages] == ["sync", "sync"]
    hook.statuses = [404]  # not retried
    calendar.events().insert(calendarId="primary", body=_event("Lost")).execute()
    assert push.flush()
    assert [m["headers"]["X-Goog-Resource-State"] for m in hook.messages][2:] == ["exists"]
