"""SuperOffice webhooks queue a sync: the simulator's real deliveries reach the web app served
on loopback, and each queues a coalesced sync of the user and kind it concerns; a forged one
queues nothing."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

import flask
import pytest
import requests
from sqlalchemy import select

from common.connectors.superoffice import webhooks
from common.kinds import ItemKind
from common.models import (
    CrmKind,
    GroupwareKind,
    InvitationState,
    ItemLink,
    Organisation,
    Profile,
    SyncUser,
    WebhookEvent,
)
from daemon import push
from simulators.platform.ca import DemoCA
from simulators.world.superoffice import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from tests.fixtures.superoffice_connector import (
    ADELE,
    MEGAN,
    SoUser,
    bearer,
    online_client,
    sign_in,
)
from tests.push.conftest import Web

SECRET = "the-profile-secret"
BOTH = {"appointments": "two_way", "contacts": "two_way", "crm_time_zone": "Europe/Oslo"}
CONTOSO_PERSON = 1000  # Ingrid Berg of Bergen Shipping, whose our-contact is Adele


def contoso(web: Web, settings: dict[str, Any] | None = None) -> tuple[int, dict[int, int]]:
    """Contoso's profile (SuperOffice Online and Microsoft 365) with Adele and Megan linked;
    its id and the user ids by associate."""
    with web.db.session() as session:
        org = Organisation(name="Contoso", slug=f"contoso-{uuid.uuid4().hex[:6]}")
        profile = Profile(
            organisation=org, name="Contoso", crm_kind=CrmKind.SUPEROFFICE_ONLINE,
            crm_url="https://online.superoffice.com", crm_tenant="Cust12345",
            crm_credentials={"webhook_secret": SECRET},
            groupware_kind=GroupwareKind.MICROSOFT_365, settings=settings or BOTH,
        )  # fmt: skip
        users = [
            SyncUser(
                profile=profile,
                crm_associate_id=associate,
                mailbox=mailbox,
                invitation_state=InvitationState.ACTIVE,
            )  # fmt: skip
            for associate, mailbox in (
                (ADELE, "adele@contoso.example"),
                (MEGAN, "megan@contoso.example"),
            )
        ]
        session.add_all([org, profile, *users])
        session.flush()
        return profile.id, {u.crm_associate_id: u.id for u in users}


def subscribed(web: Web, so_http: requests.Session, so_base: str, profile_id: int) -> None:
    admin = online_client(so_http, so_base, "adele@contoso.example")
    webhooks.subscribe(admin, f"{web.url}/hooks/superoffice", SECRET, profile_id)


def person_at_contoso(so_http: requests.Session, so_base: str, name: str) -> SoUser:
    """Someone of Contoso working in SuperOffice (signed in to SuperID)."""
    token = bearer(sign_in(so_http, so_base, f"{name}@contoso.example"))
    return SoUser(so_http, f"{so_base}/Cust12345/api/v1", token)


def megan(so_http: requests.Session, so_base: str) -> SoUser:
    return person_at_contoso(so_http, so_base, "megan")


def settle(so_app: flask.Flask) -> None:
    assert so_app.extensions["superoffice"].webhooks.wait_idle(timeout=20)


def recorded(web: Web) -> list[WebhookEvent]:
    with web.db.session() as session:
        return list(session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


APPOINTMENT = {
    "Title": "Pushed",
    "StartDate": "2026-03-10T10:00:00Z",
    "EndDate": "2026-03-10T11:00:00Z",
}


def test_an_appointment_saved_in_superoffice_queues_one_sync_of_its_owners_appointments(
    web: Web, so_app: flask.Flask, so_base: str, so_http: requests.Session
) -> None:
    profile_id, user_of = contoso(web)
    subscribed(web, so_http, so_base, profile_id)
    made = megan(so_http, so_base).call("POST", "/Appointment", json=APPOINTMENT)
    settle(so_app)
    assert web.queued() == [(user_of[MEGAN], ItemKind.APPOINTMENT)]
    (event,) = recorded(web)
    assert event.primary_key == made["AppointmentId"] and event.processed_at is not None


def test_ten_edits_in_a_second_are_one_sync(
    web: Web, so_app: flask.Flask, so_base: str, so_http: requests.Session
) -> None:
    profile_id, user_of = contoso(web)
    subscribed(web, so_http, so_base, profile_id)
    user = megan(so_http, so_base)
    made = user.call("POST", "/Appointment", json=APPOINTMENT)
    for n in range(10):
        user.edit("Appointment", made["AppointmentId"], Location=f"Room {n}")
    settle(so_app)
    assert len(recorded(web)) == 11  # every notification recorded and answered
    assert web.queued() == [(user_of[MEGAN], ItemKind.APPOINTMENT)]


def test_a_person_edited_queues_a_contacts_sync_beside_a_waiting_appointments_one(
    web: Web, so_app: flask.Flask, so_base: str, so_http: requests.Session
) -> None:
    profile_id, user_of = contoso(web)
    subscribed(web, so_http, so_base, profile_id)
    adele = person_at_contoso(so_http, so_base, "adele")
    adele.call("POST", "/Appointment", json=APPOINTMENT)
    adele.edit("Person", CONTOSO_PERSON, Title="Dr")
    settle(so_app)
    assert web.queued() == sorted(
        [(user_of[ADELE], ItemKind.APPOINTMENT), (user_of[ADELE], ItemKind.CONTACT)], key=str
    )


def test_a_deleted_appointment_is_synced_for_whoever_holds_its_link(
    web: Web, so_app: flask.Flask, so_base: str, so_http: requests.Session
) -> None:
    """activity.deleted names no owner: the link says whose it was (Adele deletes Megan's)."""
    profile_id, user_of = contoso(web)
    made = megan(so_http, so_base).call("POST", "/Appointment", json=APPOINTMENT)
    with web.db.session() as session:
        session.add(ItemLink(profile_id=profile_id, sync_user_id=user_of[MEGAN],
                             kind=ItemKind.APPOINTMENT, crm_id=str(made["AppointmentId"]),
                             remote_id="AAMk-1"))  # fmt: skip
    subscribed(web, so_http, so_base, profile_id)
    person_at_contoso(so_http, so_base, "adele").call(
        "DELETE", f"/Appointment/{made['AppointmentId']}"
    )
    settle(so_app)
    assert [e.event for e in recorded(web)] == ["activity.deleted"]
    assert web.queued() == [(user_of[MEGAN], ItemKind.APPOINTMENT)]


def test_a_kind_the_profile_does_not_sync_queues_nothing(
    web: Web, so_app: flask.Flask, so_base: str, so_http: requests.Session
) -> None:
    profile_id, _ = contoso(web, {"crm_time_zone": "Europe/Oslo"})  # contacts are off
    subscribed(web, so_http, so_base, profile_id)
    person_at_contoso(so_http, so_base, "adele").edit("Person", CONTOSO_PERSON, Title="Dr")
    settle(so_app)
    assert [e.event for e in recorded(web)] == ["person.changed"]
    assert web.queued() == []


def test_a_forged_notification_is_refused_and_queues_nothing(web: Web) -> None:
    profile_id, user_of = contoso(web)
    body = json.dumps({
        "EventId": str(uuid.uuid4()), "Event": "activity.changed", "Entity": "activity",
        "PrimaryKey": 4711, "ContextIdentifier": "Cust12345", "ChangedByAssociateId": MEGAN,
        "WebhookName": webhooks.webhook_name(profile_id), "FieldValues": {"associate_id": MEGAN},
    }).encode()  # fmt: skip
    session = requests.Session()
    session.trust_env = False
    for signature in ("", webhooks.signature("a guess", body)):
        answer = session.post(f"{web.url}/hooks/superoffice", data=body, timeout=10,
                              headers={"Content-Type": "application/json",
                                       "X-SuperOffice-Signature": signature})  # fmt: skip
        assert answer.status_code == 401
    assert recorded(web) == [] and web.queued() == []
    # the same body signed with the profile's secret is taken: the refusal was the signature
    good = session.post(f"{web.url}/hooks/superoffice", data=body, timeout=10,
                        headers={"Content-Type": "application/json",
                                 "X-SuperOffice-Signature": webhooks.signature(SECRET, body)})  # fmt: skip
    assert good.status_code == 200 and web.queued() == [(user_of[MEGAN], ItemKind.APPOINTMENT)]


def test_a_deletion_no_link_knows_is_synced_for_whoever_deleted_it(
    web: Web, so_app: flask.Flask, so_base: str, so_http: requests.Session
) -> None:
    """An occurrence of a series is linked under its series' id, not its own: the owner who
    deletes it is synced (the usual case); nobody else is."""
    profile_id, user_of = contoso(web)
    user = megan(so_http, so_base)
    made = user.call("POST", "/Appointment", json=APPOINTMENT)
    subscribed(web, so_http, so_base, profile_id)
    user.call("DELETE", f"/Appointment/{made['AppointmentId']}")
    settle(so_app)
    assert web.queued() == [(user_of[MEGAN], ItemKind.APPOINTMENT)]


@pytest.fixture
def daemon_web(web: Web, so_base: str, demo_ca: DemoCA) -> Web:
    """The daemon's settings: our SuperOffice application and the simulated SuperID."""
    web.settings = dataclasses.replace(
        web.settings,
        superoffice_client_id=DEMO_CLIENT_ID,
        superoffice_client_secret=DEMO_CLIENT_SECRET,
        superoffice_online_url=so_base,
        sync_ca_bundle=demo_ca.ca_file,  # type: ignore[arg-type]
    )
    push.configure(web.settings)
    return web


def system_user(web: Web, profile_id: int, so_http: requests.Session, so_base: str) -> None:
    """The profile signed in to SuperOffice Online (its administrator's SuperID tokens), and
    no webhook secret yet: a profile as the portal makes it."""
    tokens = sign_in(so_http, so_base, "adele@contoso.example")
    with web.db.session() as session:
        profile = session.get(Profile, profile_id)
        assert profile is not None
        profile.crm_credentials = {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "expires_at": tokens.expires_at.isoformat() if tokens.expires_at else None,
        }


def hooks_at(so_app: flask.Flask) -> list[Any]:
    return list(so_app.extensions["superoffice"].tenant("Cust12345").webhooks.values())


def test_the_upkeep_registers_the_webhook_and_sets_it_right_when_superoffice_stopped_it(
    daemon_web: Web, so_app: flask.Flask, so_base: str, so_http: requests.Session
) -> None:
    profile_id, user_of = contoso(daemon_web)
    system_user(daemon_web, profile_id, so_http, so_base)
    report = push.upkeep()
    assert report is not None and report.webhooks.outcomes == {profile_id: "made"}
    (hook,) = hooks_at(so_app)
    assert hook.name == webhooks.webhook_name(profile_id) and hook.state == "Active"
    assert hook.target_url == f"{daemon_web.url}/hooks/superoffice"
    with daemon_web.db.session() as session:
        profile = session.get(Profile, profile_id)
        assert profile is not None
        secret = (profile.crm_credentials or {}).get("webhook_secret")
    assert secret and hook.secret == secret  # made here, kept, given to SuperOffice
    # the secret works: Megan's edit reaches the receiver and queues her sync
    megan(so_http, so_base).call("POST", "/Appointment", json=APPOINTMENT)
    settle(so_app)
    assert daemon_web.queued() == [(user_of[MEGAN], ItemKind.APPOINTMENT)]
    # nothing to do next time
    again = push.upkeep()
    assert again is not None and again.webhooks.outcomes == {profile_id: "ok"}
    # nine failed deliveries stopped it (our receiver was down): set Active again
    hook.state = "TooManyErrors"
    fixed = push.upkeep()
    assert fixed is not None and fixed.webhooks.outcomes == {profile_id: "updated"}
    (hook,) = hooks_at(so_app)
    assert hook.state == "Active" and hook.secret == secret
