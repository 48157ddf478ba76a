"""SuperOffice webhooks delivered to a real https receiver: HMAC signature, retries, disabling."""

from __future__ import annotations

import base64
import datetime as dt
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
    # FieldValues: ids and non-sensitive fields only, no names; Changes: the root row's columns
    assert "firstname" not in changed["FieldValues"] and changed["FieldValues"]["person_id"] == 7000
    assert changed["Changes"] == [
        "person_id",
        "firstname",
        "updated",
        "updated_associate_id",
        "updatedCount",
    ]
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


def test_only_a_200_counts_as_received(
    so_client: FlaskClient, so_app: flask.Flask, receiver: Receiver
) -> None:
    body = {"Name": "x", "Events": ["activity.created"], "TargetUrl": receiver.url}
    receiver.statuses.append(204)  # a 2xx that is not 200 does not register the webhook
    refused = so_client.post(f"{ONSITE}/Webhook", headers=ADMIN, json=body)
    assert refused.status_code == 400 and "204" in refused.json["ErrorMessage"]
    hook = subscribe(so_client, receiver.url, ["activity.created"])
    receiver.statuses.extend([202, 201])
    new_appointment(so_client)
    settle(so_app)
    tries = receiver.received[2:]
    assert [h["X-Superoffice-Retry"] for h, _ in tries] == ["0", "1", "2"]
    stats = so_client.get(f"{ONSITE}/Webhook/{hook['WebhookId']}", headers=ADMIN).json
    assert (stats["TotalCalls"], stats["TotalErrors"]) == (3, 2)


def test_an_event_failing_three_times_is_discarded_and_sent_again_as_a_new_event(
    so_client: FlaskClient, so_app: flask.Flask, receiver: Receiver
) -> None:
    subscribe(so_client, receiver.url, ["activity.created"])
    receiver.statuses.extend([500, 500, 500])
    aid = new_appointment(so_client)
    settle(so_app)
    tries = receiver.received[1:]
    assert [h["X-Superoffice-Retry"] for h, _ in tries] == ["0", "1", "2", "0"]
    event_ids = [json.loads(body)["EventId"] for _, body in tries]
    assert len(set(event_ids[:3])) == 1  # one event, tried three times
    assert event_ids[3] != event_ids[0]  # discarded: the next attempt is a new event
    last = json.loads(tries[3][1])
    assert (last["Event"], last["PrimaryKey"]) == ("activity.created", aid)
    assert tries[3][0]["X-Superoffice-Eventid"] == last["EventId"]
    signed = base64.b64encode(hmac.new(SECRET.encode(), tries[3][1], hashlib.sha256).digest())
    assert tries[3][0]["X-Superoffice-Signature"] == signed.decode()


PERSON_FIELDS = {"activeInterests", "associate_id", "business_idx", "category_idx", "contact_id",
                 "country_id", "DeletedDate", "group_id", "person_id", "position_idx", "registered",
                 "registered_associate_id", "retired", "source", "updated", "updated_associate_id",
                 "userdef2_id", "userdef_id"}  # fmt: skip
CONTACT_FIELDS = {"activeInterests", "associate_id", "business_idx", "category_idx", "country_id",
                  "deleted", "DeletedDate", "registered", "registered_associate_id", "source",
                  "updated", "userdef2_id", "userdef_id"}  # fmt: skip
ACTIVITY_FIELDS = {"activeDate", "associate_id", "contact_id", "do_by", "document_id", "endDate",
                   "modified_appointment_fields", "mother_id", "person_id", "private",
                   "project_id", "sale_id", "status", "task_idx", "type", "updated",
                   "userdef2_id", "userdef_id"}  # fmt: skip


def test_payloads_carry_only_the_documented_fields(
    so_client: FlaskClient, so_app: flask.Flask, receiver: Receiver
) -> None:
    subscribe(so_client, receiver.url, ["person.created", "contact.created", "activity.created"])
    company = so_client.post(
        f"{ONSITE}/Contact", headers=ADMIN, json={"Name": "Private Ltd", "Department": "Secret"}
    ).json
    so_client.post(f"{ONSITE}/Person", headers=ADMIN, json={
        "Firstname": "Jane", "Lastname": "Hidden", "Contact": {"ContactId": company["ContactId"]},
        "Emails": [{"Value": "jane@private.example"}]})  # fmt: skip
    new_appointment(so_client)
    settle(so_app)
    contact, person, activity = receiver.events()[1:]
    assert set(contact["FieldValues"]) == CONTACT_FIELDS
    assert set(person["FieldValues"]) == PERSON_FIELDS
    assert set(activity["FieldValues"]) == ACTIVITY_FIELDS
    raw = b"".join(body for _, body in receiver.received)
    for secret in (
        b"Private Ltd",
        b"Secret",
        b"Jane",
        b"Hidden",
        b"jane@private.example",
        b"Hooked",
    ):
        assert secret not in raw


def test_changed_fires_only_for_changes_of_the_root_row(
    so_client: FlaskClient, so_app: flask.Flask, receiver: Receiver
) -> None:
    subscribe(so_client, receiver.url, ["person.changed", "contact.changed", "activity.changed"])
    before = so_client.get(f"{ONSITE}/Person/7000", headers=ADMIN)
    # e-mail, phone and domain rows are other tables: no event, and the updated date stays
    so_client.put(f"{ONSITE}/Person/7000", headers=ADMIN,
                  json={"Emails": [{"Value": "new@mail.example"}], "MobilePhones": [{"Value": "1"}]})  # fmt: skip
    so_client.put(f"{ONSITE}/Contact/700", headers=ADMIN, json={"Domains": ["moved.example"]})
    after = so_client.get(f"{ONSITE}/Person/7000", headers=ADMIN)
    assert after.json["Emails"][0]["Value"] == "new@mail.example"
    assert after.json["UpdatedDate"] == before.json["UpdatedDate"]
    assert after.headers["Last-Modified"] == before.headers["Last-Modified"]
    so_client.put(f"{ONSITE}/Person/7000", headers=ADMIN, json={"Firstname": "Inga"})
    aid = new_appointment(so_client)
    so_client.put(f"{ONSITE}/Appointment/{aid}", headers=ADMIN, json={"Title": "Retitled"})
    so_client.put(f"{ONSITE}/Appointment/{aid}", headers=ADMIN, json={"Location": "Room 2"})
    settle(so_app)
    events = [(e["Event"], e["Changes"]) for e in receiver.events()[1:]]
    stamp = ["updated", "updated_associate_id", "updatedCount"]
    assert events == [
        ("person.changed", ["person_id", "firstname", *stamp]),
        ("activity.changed", ["appointment_id", *stamp]),  # the text rewrites the row's stamp
        ("activity.changed", ["appointment_id", "location", *stamp]),
    ]


def test_the_soft_delete_lifecycle_of_a_company_and_its_persons(
    so_client: FlaskClient, so_app: flask.Flask, receiver: Receiver
) -> None:
    subscribe(so_client, receiver.url, ["person.*", "contact.*"])
    cid = so_client.post(f"{ONSITE}/Contact", headers=ADMIN, json={"Name": "Short-lived"}).json[
        "ContactId"
    ]
    pids = [
        so_client.post(
            f"{ONSITE}/Person",
            headers=ADMIN,
            json={"Firstname": name, "Contact": {"ContactId": cid}},
        ).json["PersonId"]  # fmt: skip
        for name in ("One", "Two")
    ]
    linked = so_client.post(f"{ONSITE}/Appointment", headers=ADMIN, json={
        "Title": "With them", "StartDate": "2026-03-10T10:00:00", "EndDate": "2026-03-10T11:00:00",
        "Contact": {"ContactId": cid}, "Person": {"PersonId": pids[0]}}).json["AppointmentId"]  # fmt: skip
    settle(so_app)
    receiver.received.clear()
    assert so_client.delete(f"{ONSITE}/Contact/{cid}", headers=ADMIN).status_code == 204
    settle(so_app)
    soft = receiver.events()
    assert [(e["Event"], e["PrimaryKey"]) for e in soft] == [
        ("person.softdeleted", pids[0]),
        ("person.softdeleted", pids[1]),
        ("contact.softdeleted", cid),
    ]
    assert all(e["FieldValues"]["DeletedDate"] != "0001-01-01T00:00:00" for e in soft)
    assert soft[2]["FieldValues"]["deleted"] == 1 and "DeletedDate" in soft[2]["Changes"]
    # soft-deleted: gone from every read
    for path in (f"Contact/{cid}", f"Person/{pids[0]}"):
        assert so_client.get(f"{ONSITE}/{path}", headers=ADMIN).status_code == 404
    listed = so_client.get(f"{ONSITE}/Person", headers=ADMIN, query_string={
        "$select": "personId", "$filter": f"contactId eq {cid}"}).json["value"]  # fmt: skip
    assert listed == []
    appointment = so_client.get(f"{ONSITE}/Appointment/{linked}", headers=ADMIN).json
    assert appointment["Contact"] is None and appointment["Person"] is None
    # the hard delete runs after the 14 days of retention, not before
    receiver.received.clear()
    now = dt.datetime.now(dt.UTC)
    for days, expected in ((13, 0), (15, 3)):
        so_client.post("/_sim/state", json={"tenants": {"SuperOffice": {
            "purge_deleted": {"now": (now + dt.timedelta(days=days)).isoformat()}}}})  # fmt: skip
        settle(so_app)
        assert len(receiver.events()) == expected
    hard = receiver.events()
    assert [(e["Event"], e["PrimaryKey"], e.get("Values")) for e in hard] == [
        ("person.deleted", pids[0], {"associate_id": 700, "contact_id": cid, "person_id": pids[0]}),
        ("person.deleted", pids[1], {"associate_id": 700, "contact_id": cid, "person_id": pids[1]}),
        ("contact.deleted", cid, {"associate_id": 700, "contact_id": cid}),
    ]
    assert all("FieldValues" not in e for e in hard)
    kept = so_app.extensions["superoffice"].tenant("SuperOffice").appointments[linked]
    assert (kept.contact_id, kept.person_id) == (0, 0)  # the meeting still happened
