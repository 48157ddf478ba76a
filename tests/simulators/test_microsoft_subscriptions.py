"""Graph change notifications in the simulator: /subscriptions with the validation-token
handshake, clientState, expiry and renewal, lifecycle notifications, and notifications POSTed
to a real https receiver."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import flask
import pytest

from simulators.platform.ca import DemoCA
from tests.fixtures.microsoft import GraphClient

ADELE = "/users/adele@contoso.example"
STATE = "keep-this-secret-4711"


@dataclass
class Receiver:
    """An https endpoint: answers the validation handshake as told, records notifications and
    answers them with the queued statuses (then 202)."""

    url: str = ""
    echo: str = "token"  # "token" | "wrong" | "404"
    statuses: deque[int] = field(default_factory=deque)
    posts: list[tuple[str, dict]] = field(default_factory=list)  # (path, body)
    validations: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> flask.Flask:
        app = flask.Flask("graph-receiver")

        @app.post("/<kind>")
        def hook(kind: str) -> flask.Response:
            token = flask.request.args.get("validationToken")
            if token is not None:
                with self.lock:
                    self.validations += 1
                if self.echo == "404":
                    return flask.Response("no", 404)
                text = token if self.echo == "token" else token.upper()
                return flask.Response(text, 200, mimetype="text/plain")
            with self.lock:
                self.posts.append((kind, json.loads(flask.request.get_data())))
                status = self.statuses.popleft() if self.statuses else 202
            return flask.Response("", status)

        return app

    def items(self, kind: str = "changes") -> list[dict]:
        with self.lock:
            return [item for path, body in self.posts if path == kind for item in body["value"]]


@pytest.fixture
def receiver(serve, ms_app, demo_ca: DemoCA) -> Receiver:
    made = Receiver()
    made.url = serve(made.app()).url
    notifier = ms_app.extensions["microsoft_notifications"]
    notifier.session.verify = demo_ca.ca_file  # Graph trusts public CAs; here the demo CA
    notifier.retry_delays = (0.05, 0.05)
    return made


def settle(ms_app) -> None:
    assert ms_app.extensions["microsoft_notifications"].wait_idle(timeout=20)


def in_minutes(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def subscribe(graph: GraphClient, receiver: Receiver, **extra) -> dict:
    body = {
        "changeType": "created,updated,deleted",
        "notificationUrl": f"{receiver.url}/changes",
        "lifecycleNotificationUrl": f"{receiver.url}/lifecycle",
        "resource": f"{ADELE}/events",
        "expirationDateTime": in_minutes(60),
        "clientState": STATE,
        **extra,
    }
    answer = graph.post("/subscriptions", body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def new_event(graph: GraphClient, subject: str = "Notified") -> dict:
    body = {
        "subject": subject,
        "start": {"dateTime": "2026-03-27T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-03-27T10:00:00", "timeZone": "UTC"},
    }
    answer = graph.post(f"{ADELE}/events", body)
    assert answer.status_code == 201
    return answer.json()


def test_creating_a_subscription_validates_both_endpoints(graph, receiver):
    sub = subscribe(graph, receiver)
    assert receiver.validations == 2  # notificationUrl and lifecycleNotificationUrl
    assert sub["clientState"] == STATE and sub["changeType"] == "created,updated,deleted"
    assert graph.get(f"/subscriptions/{sub['id']}").json()["id"] == sub["id"]


@pytest.mark.parametrize("echo", ["wrong", "404"])
def test_a_failed_handshake_creates_nothing(graph, receiver, echo):
    receiver.echo = echo
    body = {
        "changeType": "created",
        "notificationUrl": f"{receiver.url}/changes",
        "resource": f"{ADELE}/events",
        "expirationDateTime": in_minutes(60),
        "clientState": STATE,
    }
    answer = graph.post("/subscriptions", body)
    assert answer.status_code == 400
    assert "validation" in answer.json()["error"]["message"].lower()
    assert graph.get("/subscriptions").json()["value"] == []


@pytest.mark.parametrize(
    "change",
    [
        {"clientState": None},  # required
        {"expirationDateTime": 10_081},  # minutes from now: Outlook allows at most 10,080
        {"expirationDateTime": -1},
        {"changeType": "created,moved"},
        {"notificationUrl": "http://hooks.example.net/changes"},  # https only
        {"resource": f"{ADELE}/messages"},
    ],
)
def test_bad_subscriptions_are_refused(graph, receiver, change):
    body = {
        "changeType": "created",
        "notificationUrl": f"{receiver.url}/changes",
        "resource": f"{ADELE}/events",
        "expirationDateTime": in_minutes(60),
        "clientState": STATE,
        **change,
    }
    if isinstance(body["expirationDateTime"], int):  # computed now, not at collection
        body["expirationDateTime"] = in_minutes(body["expirationDateTime"])
    assert (
        graph.post("/subscriptions", {k: v for k, v in body.items() if v is not None}).status_code
        == 400
    )


def test_changes_are_posted_with_the_client_state(graph, receiver, ms_app):
    sub = subscribe(graph, receiver)
    contacts = subscribe(graph, receiver, resource=f"{ADELE}/contacts", changeType="created")
    event = new_event(graph)
    graph.patch(f"{ADELE}/events/{event['id']}", {"subject": "Renamed"})
    graph.delete(f"{ADELE}/events/{event['id']}")
    contact = graph.post(f"{ADELE}/contacts", {"givenName": "Noted"}).json()
    settle(ms_app)
    items = receiver.items()
    assert [(i["subscriptionId"], i["changeType"], i["resourceData"]["id"]) for i in items] == [
        (sub["id"], "created", event["id"]),
        (sub["id"], "updated", event["id"]),
        (sub["id"], "deleted", event["id"]),
        (contacts["id"], "created", contact["id"]),
    ]
    assert {i["clientState"] for i in items} == {STATE}
    adele = graph.get(ADELE).json()["id"]
    assert items[0]["resource"] == f"Users/{adele}/Events/{event['id']}"
    assert items[0]["resourceData"]["@odata.type"] == "#Microsoft.Graph.Event"
    assert items[0]["tenantId"] and items[0]["subscriptionExpirationDateTime"]


def test_renewal_and_expiry(graph, receiver, ms_app):
    sub = subscribe(graph, receiver, expirationDateTime=in_minutes(0.05))  # three seconds
    later = in_minutes(120)
    renewed = graph.patch(f"/subscriptions/{sub['id']}", {"expirationDateTime": later})
    assert renewed.status_code == 200
    assert renewed.json()["expirationDateTime"][:19] == later[:19]
    too_far = graph.patch(f"/subscriptions/{sub['id']}", {"expirationDateTime": in_minutes(10_081)})
    assert too_far.status_code == 400
    short = subscribe(graph, receiver, expirationDateTime=in_minutes(0.03))  # two seconds
    time.sleep(2.2)
    assert graph.get(f"/subscriptions/{short['id']}").status_code == 404
    assert [s["id"] for s in graph.get("/subscriptions").json()["value"]] == [sub["id"]]
    new_event(graph)
    settle(ms_app)
    assert {i["subscriptionId"] for i in receiver.items()} == {sub["id"]}


def test_reauthorization_pauses_notifications_until_answered(
    graph, receiver, ms_app, ms_server, ms_session
):
    sub = subscribe(graph, receiver)
    ms_session.post(
        f"{ms_server.url}/_sim/state",
        json={"lifecycle": [{"subscription": sub["id"], "event": "reauthorizationRequired"}]},
    )
    lost = new_event(graph, "Lost while paused")
    settle(ms_app)
    assert [i["lifecycleEvent"] for i in receiver.items("lifecycle")] == ["reauthorizationRequired"]
    assert receiver.items("lifecycle")[0]["clientState"] == STATE
    assert receiver.items() == []
    assert graph.post(f"/subscriptions/{sub['id']}/reauthorize", {}).status_code == 204
    kept = new_event(graph, "After reauthorizing")
    settle(ms_app)
    assert [i["resourceData"]["id"] for i in receiver.items()] == [kept["id"]]
    assert lost["id"] != kept["id"]


def test_undelivered_notifications_end_in_a_missed_lifecycle_event(graph, receiver, ms_app):
    subscribe(graph, receiver)
    receiver.statuses.extend([500, 500, 500])  # the first try and both retries fail
    new_event(graph)
    settle(ms_app)
    assert len(receiver.items()) == 3
    assert [i["lifecycleEvent"] for i in receiver.items("lifecycle")] == ["missed"]


def test_a_revoked_grant_removes_the_users_subscriptions(
    ms_server, ms_session, ms_user_token, receiver, ms_app
):
    user_graph = GraphClient(ms_server.url, ms_session, ms_user_token("adele@contoso.example"))
    sub = subscribe(user_graph, receiver, resource="/me/events")
    assert sub["creatorId"] == user_graph.get("/me").json()["id"]
    ms_session.post(
        f"{ms_server.url}/_sim/state", json={"revoke_refresh_tokens": ["adele@contoso.example"]}
    )
    settle(ms_app)
    assert [i["lifecycleEvent"] for i in receiver.items("lifecycle")] == ["subscriptionRemoved"]
    assert user_graph.get(f"/subscriptions/{sub['id']}").status_code == 404


def test_a_user_cannot_subscribe_to_another_mailbox(ms_server, ms_session, ms_user_token, receiver):
    user_graph = GraphClient(ms_server.url, ms_session, ms_user_token("adele@contoso.example"))
    answer = user_graph.post(
        "/subscriptions",
        {
            "changeType": "created",
            "notificationUrl": f"{receiver.url}/changes",
            "resource": "/users/megan@contoso.example/events",
            "expirationDateTime": in_minutes(60),
            "clientState": STATE,
        },
    )
    assert answer.status_code == 403
    assert receiver.validations == 0
