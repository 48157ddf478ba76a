"""SuperOffice webhooks delivered to a real https receiver: HMAC signature, retries, disabling."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import flask
import pytest
from flask.testing import FlaskClient

from simulators.platform.ca import DemoCA
from tests.fixtures.simulators import Serve
from tests.fixtures.superoffice import ADMIN, ONSITE

SECRET = "s3cret-for-hmac"


@dataclass
class Receiver:
    """An https endpoint that records every POST and answers with the queued statuses (then 200)."""

    url: str = ""
    statuses: deque[int] = field(default_factory=deque)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> flask.Flask:
        app = flask.Flask("receiver")

        @app.post("/hook")
        def hook() -> tuple[str, int]:
            with self.lock:
                self.received.append((dict(flask.request.headers), flask.request.get_data()))
                status = self.statuses.popleft() if self.statuses else 200
            return "", status

        return app

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for _, body in self.received]


@pytest.fixture
def receiver(serve: Serve, so_app: flask.Flask, demo_ca: DemoCA) -> Receiver:
    made = Receiver()
    made.url = serve(made.app()).url + "/hook"
    # the simulator trusts the demo CA for https targets, as NetServer trusts public CAs
    so_app.extensions["superoffice"].webhooks.session.verify = demo_ca.ca_file
    return made


def subscribe(client: FlaskClient, url: str, events: list[str], **extra: Any) -> dict[str, Any]:
    response = client.post(
        f"{ONSITE}/Webhook",
        headers=ADMIN,
        json={"Name": "sync", "Events": events, "TargetUrl": url, "Secret": SECRET, **extra},
    )
    assert response.status_code == 200, response.json
    return response.json  # type: ignore[no-any-return]


def settle(app: flask.Flask) -> None:
    assert app.extensions["superoffice"].webhooks.wait_idle(timeout=20)


def new_appointment(client: FlaskClient) -> int:
    body = {"Title": "Hooked", "StartDate": "2026-03-10T10:00:00", "EndDate": "2026-03-10T11:00:00"}
    response = client.post(f"{ONSITE}/Appointment", headers=ADMIN, json=body)
    assert response.status_code == 200
    return int(response.json["AppointmentId"])


def test_events_are_posted_with_a_valid_signature(
    so_client: FlaskClient, so_app: flask.Flask, receiver: Receiver
) -> None:
    hook = subscribe(so_client, receiver.url, ["activity.*", "person.changed"])
    assert hook["State"] == "Active" and receiver.events()[0]["Event"] == "test"
    aid = new_appointment(so_client)
    so_client.put(f"{ONSITE}/Person/7000", headers=ADMIN, json={"Firstname": "Inga"})
    so_client.put(
        f"{ONSITE}/Contact/700", headers=ADMIN, json={"Department": "Sales"}
    )  # not subscribed
    so_client.delete(f"{ONSITE}/Appointment/{aid}", headers=ADMIN)
    settle(so_app)
    events = receiver.events()[1:]
    assert [e["Event"] for e in events] == [
        "activity.created",
        "person.changed",
        "activity.deleted",
    ]
    created, changed, deleted = events
    assert created["PrimaryKey"] == aid and created["Entity"] == "activity"
    # the documented activity columns; the dates are UTC (10:00 Amsterdam = 09:00Z)
    assert (
        created["FieldValues"]["associate_id"] == 700
        and created["FieldValues"]["do_by"] == "2026-03-10T09:00:00"
    )
    assert created["FieldValues"]["private"] == 0 and created["FieldValues"]["type"] == 1
    assert created["ChangedByAssociateId"] == 700 and created["WebhookName"] == "sync"
    assert changed["FieldValues"]["firstname"] == "Inga" and changed["Changes"] == ["firstname"]
    assert deleted["Values"]["appointment_id"] == aid and "FieldValues" not in deleted
    for headers, body in receiver.received:
        expected = base64.b64encode(
            hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
        ).decode()
        assert hmac.compare_digest(headers["X-Superoffice-Signature"], expected)
        assert headers["User-Agent"].startswith("NetServer-Webhook/")
        assert headers["X-Superoffice-Event"] == json.loads(body)["Event"]
    stats = so_client.get(f"{ONSITE}/Webhook/{hook['WebhookId']}", headers=ADMIN).json
    assert (stats["TotalCalls"], stats["TotalErrors"], stats["ConsecutiveErrors"]) == (3, 0, 0)


def test_no_signature_without_a_secret(
    so_client: FlaskClient, so_app: flask.Flask, receiver: Receiver
) -> None:
    subscribe(so_client, receiver.url, ["activity.created"], Secret="")
    new_appointment(so_client)
    settle(so_app)
    assert all("X-Superoffice-Signature" not in headers for headers, _ in receiver.received)


def test_failed_tries_are_retried_within_the_cycle(
    so_client: FlaskClient, so_app: flask.Flask, receiver: Receiver
) -> None:
    hook = subscribe(so_client, receiver.url, ["activity.created"])
    receiver.statuses.extend([500, 503])
    new_appointment(so_client)
    settle(so_app)
    tries = receiver.received[1:]
    assert [h["X-Superoffice-Retry"] for h, _ in tries] == ["0", "1", "2"]
    assert len({h["X-Superoffice-Eventid"] for h, _ in tries}) == 1  # the same event each time
    state = so_client.get(f"{ONSITE}/Webhook/{hook['WebhookId']}", headers=ADMIN).json
    assert (
        state["State"],
        state["TotalCalls"],
        state["TotalErrors"],
        state["ConsecutiveErrors"],
    ) == ("Active", 3, 2, 0)


def test_nine_consecutive_failures_disable_the_webhook(
    so_client: FlaskClient, so_app: flask.Flask, receiver: Receiver
) -> None:
    hook = subscribe(so_client, receiver.url, ["activity.created"])
    url = f"{ONSITE}/Webhook/{hook['WebhookId']}"
    receiver.statuses.extend([500] * 20)
    new_appointment(so_client)
    settle(so_app)
    tries = receiver.received[1:]
    assert [h["X-Superoffice-Retry"] for h, _ in tries] == ["0", "1", "2"] * 3  # three cycles
    state = so_client.get(url, headers=ADMIN).json
    assert (state["State"], state["ConsecutiveErrors"], state["TotalErrors"]) == (
        "TooManyErrors",
        9,
        9,
    )
    assert so_client.get(f"{url}/LastError", headers=ADMIN).json == "HTTP 500 INTERNAL SERVER ERROR"
    new_appointment(so_client)  # disabled: nothing is sent
    settle(so_app)
    assert len(receiver.received) == 10
    receiver.statuses.clear()
    restarted = so_client.put(url, headers=ADMIN, json={"State": "Active"})
    assert restarted.json["State"] == "Active" and restarted.json["ConsecutiveErrors"] == 0
    new_appointment(so_client)
    settle(so_app)
    assert receiver.events()[-1]["Event"] == "activity.created"
    assert so_client.get(url, headers=ADMIN).json["ConsecutiveErrors"] == 0


def test_registration_needs_https_and_a_200_answer(
    so_client: FlaskClient, receiver: Receiver
) -> None:
    body = {"Name": "x", "Events": ["activity.created"], "Secret": SECRET}
    not_https = so_client.post(
        f"{ONSITE}/Webhook", headers=ADMIN, json={**body, "TargetUrl": "http://hooks.example/in"}
    )
    assert not_https.status_code == 400 and "https" in not_https.json["ErrorMessage"]
    receiver.statuses.append(404)
    refused = so_client.post(
        f"{ONSITE}/Webhook", headers=ADMIN, json={**body, "TargetUrl": receiver.url}
    )
    assert refused.status_code == 400 and "404" in refused.json["ErrorMessage"]
    receiver.statuses.append(500)
    tested = so_client.post(
        f"{ONSITE}/Webhook/Test", headers=ADMIN, json={**body, "TargetUrl": receiver.url}
    )
    assert tested.json["Success"] is False
    assert so_client.post(
        f"{ONSITE}/Webhook/Test", headers=ADMIN, json={**body, "TargetUrl": receiver.url}
    ).json == {"Success": True, "Message": "OK"}
    assert so_client.get(f"{ONSITE}/Webhook", headers=ADMIN).json == []


def test_webhook_crud(so_client: FlaskClient, receiver: Receiver) -> None:
    hook = subscribe(so_client, receiver.url, ["contact.*"])
    url = f"{ONSITE}/Webhook/{hook['WebhookId']}"
    assert [w["Name"] for w in so_client.get(f"{ONSITE}/Webhook", headers=ADMIN).json] == ["sync"]
    stopped = so_client.put(
        url, headers=ADMIN, json={"State": "Stopped", "Events": ["contact.created"]}
    )
    assert (stopped.json["State"], stopped.json["Events"]) == ("Stopped", ["contact.created"])
    assert so_client.delete(url, headers=ADMIN).status_code == 204
    assert so_client.get(url, headers=ADMIN).status_code == 404


def test_deleting_a_person_fires_softdeleted(
    so_client: FlaskClient, so_app: flask.Flask, receiver: Receiver
) -> None:
    subscribe(so_client, receiver.url, ["person.*"])
    pid = so_client.post(
        f"{ONSITE}/Person", headers=ADMIN, json={"Firstname": "Gone", "Contact": {"ContactId": 700}}
    ).json["PersonId"]
    so_client.delete(f"{ONSITE}/Person/{pid}", headers=ADMIN)
    settle(so_app)
    events = receiver.events()[1:]
    assert [(e["Event"], e["PrimaryKey"]) for e in events] == [
        ("person.created", pid),
        ("person.softdeleted", pid),
    ]
    assert events[1]["FieldValues"]["contact_id"] == 700
