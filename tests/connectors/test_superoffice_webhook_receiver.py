"""`POST /hooks/superoffice`: the simulator's real webhook deliveries reach the web app served
on loopback and are recorded for the daemon; forged, replayed, stale and other tenants'
notifications are not."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import flask
import pytest
import requests
from flask.testing import FlaskClient
from sqlalchemy import select

from checksite.database import get_database
from common.connectors.superoffice import webhooks
from common.models import CrmKind, GroupwareKind, Organisation, Profile, WebhookEvent
from tests.fixtures.simulators import Serve
from tests.fixtures.superoffice_connector import MEGAN, SoUser, bearer, online_client, sign_in

SECRET = "the-profile-secret"


def make_profile(app: flask.Flask, secret: str, tenant: str = "Cust12345") -> int:
    with app.app_context(), get_database().session() as session:
        org = Organisation(name=f"Org {tenant}", slug=f"org-{uuid.uuid4().hex[:8]}")
        profile = Profile(
            organisation=org, name="Contoso", crm_kind=CrmKind.SUPEROFFICE_ONLINE,
            crm_url="https://online.superoffice.com", crm_tenant=tenant,
            crm_credentials={"webhook_secret": secret}, groupware_kind=GroupwareKind.MICROSOFT_365,
        )  # fmt: skip
        session.add(profile)
        session.flush()
        return profile.id


def events(app: flask.Flask) -> list[WebhookEvent]:
    with app.app_context(), get_database().session() as session:
        return list(session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


def notification(profile_id: int, **extra: Any) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    return {
        "EventId": str(uuid.uuid4()), "Timestamp": now, "Changes": ["appointment_id"],
        "Event": "activity.changed", "PrimaryKey": 4711, "Entity": "activity",
        "ContextIdentifier": "Cust12345", "ChangedByAssociateId": MEGAN,
        "WebhookName": webhooks.webhook_name(profile_id),
        "FieldValues": {"associate_id": MEGAN, "appointment_id": 4711}, **extra,
    }  # fmt: skip


def compact(payload: dict[str, Any]) -> bytes:
    """JSON as a service may write it (no spaces): the signature is over these bytes, so a
    receiver that checks a re-serialised body fails."""
    return json.dumps(payload, separators=(",", ":")).encode()


def post(client: FlaskClient, body: bytes, secret: str = SECRET) -> Any:
    headers = {"X-SuperOffice-Signature": webhooks.signature(secret, body)}
    return client.post("/hooks/superoffice", data=body, headers=headers,
                       content_type="application/json")  # fmt: skip


def test_a_delivery_from_superoffice_is_recorded_for_the_daemon(
    app: flask.Flask, serve: Serve, so_app: flask.Flask, so_base: str, so_http: requests.Session
) -> None:
    """Registration (the simulator's signed test POST must be answered 200), then a user's
    change delivered, checked and recorded with the ids the daemon needs."""
    profile_id = make_profile(app, SECRET)
    receiver = serve(app, tls=False).url + "/hooks/superoffice"
    admin = online_client(so_http, so_base, "adele@contoso.example")
    webhooks.subscribe(admin, receiver, SECRET, profile_id)
    megan = SoUser(so_http, f"{so_base}/Cust12345/api/v1",
                   bearer(sign_in(so_http, so_base, "megan@contoso.example")))  # fmt: skip
    made = megan.call("POST", "/Appointment", json={
        "Title": "Hooked", "StartDate": "2026-03-10T10:00:00Z", "EndDate": "2026-03-10T11:00:00Z",
    })  # fmt: skip
    assert so_app.extensions["superoffice"].webhooks.wait_idle(timeout=20)
    recorded = [e for e in events(app) if e.event == "activity.created"]
    assert len(recorded) == 1, [e.event for e in events(app)]
    event = recorded[0]
    assert event.profile_id == profile_id and event.source == "superoffice"
    assert event.primary_key == made["AppointmentId"] and event.associate_id == MEGAN
    assert event.processed_at is None and event.payload["EventId"] == event.event_id
    hook = so_app.extensions["superoffice"].tenant("Cust12345").webhooks
    assert [w.total_errors for w in hook.values()] == [0]  # every delivery answered 200


def test_a_forged_or_unsigned_notification_is_refused(
    app: flask.Flask, client: FlaskClient
) -> None:
    profile_id = make_profile(app, SECRET)
    other = make_profile(app, "another-profile-secret")
    body = compact(notification(profile_id))
    assert post(client, body, secret="a guess").status_code == 401
    unsigned = client.post("/hooks/superoffice", data=body, content_type="application/json")
    assert unsigned.status_code == 401
    # signed with another profile's secret: the name says whose secret counts
    assert post(client, body, secret="another-profile-secret").status_code == 401
    # a body changed after signing
    signature = webhooks.signature(SECRET, body)
    tampered = body.replace(b"4711", b"4712")
    answer = client.post("/hooks/superoffice", data=tampered, content_type="application/json",
                         headers={"X-SuperOffice-Signature": signature})  # fmt: skip
    assert answer.status_code == 401
    unknown = compact(notification(profile_id, WebhookName="somebody-else"))
    assert post(client, unknown).status_code == 401
    assert events(app) == [] and other != profile_id


def test_a_replayed_notification_is_recorded_once(app: flask.Flask, client: FlaskClient) -> None:
    profile_id = make_profile(app, SECRET)
    body = compact(notification(profile_id))
    first, again = post(client, body), post(client, body)
    assert first.status_code == 200 and first.json == {"outcome": "recorded"}
    # acknowledged (a refusal counts as a failed delivery), not recorded again
    assert again.status_code == 200 and again.json == {"outcome": "already recorded"}
    assert len(events(app)) == 1
    # SuperOffice's own next try of a discarded event has a new EventId: recorded
    assert post(client, compact(notification(profile_id))).json["outcome"] == "recorded"
    assert len(events(app)) == 2


def test_stale_foreign_and_malformed_notifications_are_not_recorded(
    app: flask.Flask, client: FlaskClient
) -> None:
    profile_id = make_profile(app, SECRET)
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).isoformat()
    stale = post(client, compact(notification(profile_id, Timestamp=old)))
    assert stale.status_code == 200 and stale.json["outcome"] == "too old, not recorded"
    foreign = post(client, compact(notification(profile_id, ContextIdentifier="Cust99999")))
    assert foreign.status_code == 400
    no_id = post(client, compact(notification(profile_id, EventId="")))
    assert no_id.status_code == 400
    assert post(client, b"not json").status_code == 400
    huge = compact(notification(profile_id, Padding="x" * 70_000))
    assert post(client, huge).status_code == 413
    test = post(client, compact(notification(profile_id, Event="test")))
    assert test.status_code == 200 and test.json["outcome"] == "test received"
    assert events(app) == []


@pytest.mark.parametrize("bad", ["", "synchronizer-profile-", "synchronizer-profile-x1"])
def test_a_webhook_name_that_is_not_ours_names_no_profile(bad: str) -> None:
    assert webhooks.profile_of(bad) is None
    assert webhooks.profile_of(webhooks.webhook_name(42)) == 42
