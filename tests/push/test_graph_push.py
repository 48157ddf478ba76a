"""Microsoft Graph change notifications through the real HTTP paths: the daemon's upkeep makes
each user's subscriptions at the simulated Graph (which validates our served receiver first),
the simulator posts notifications of the users' own edits to it, and each queues a coalesced
sync; lifecycle notifications renew, reconcile and make again; a forged clientState is
refused and queues nothing."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import timedelta
from typing import Any

import flask
import msal
import pytest
import requests
from sqlalchemy import select

from common.connectors.graph.auth import token_state
from common.kinds import ItemKind, Side
from common.models import (
    CrmKind,
    GroupwareKind,
    InvitationState,
    Organisation,
    Profile,
    PushState,
    PushSubscription,
    SyncUser,
    utcnow,
)
from common.push import hash_state
from daemon import push
from daemon.reading import SideCursor
from daemon.store import SqlStore
from simulators.platform.ca import DemoCA
from simulators.platform.server import SimServer
from simulators.world.microsoft import SYNCHRONIZER_APP_ID, SYNCHRONIZER_SECRET
from tests.fixtures.microsoft import GraphClient, sign_in
from tests.push.conftest import Web

ADELE, MEGAN = "adele@contoso.example", "megan@contoso.example"
EVENT = {
    "subject": "Pushed",
    "start": {"dateTime": "2026-03-27T09:00:00", "timeZone": "UTC"},
    "end": {"dateTime": "2026-03-27T10:00:00", "timeZone": "UTC"},
}


@dataclasses.dataclass
class Tenant:
    """Contoso's Microsoft 365 as its users see it, and the simulator behind it."""

    ms_app: flask.Flask
    server: SimServer
    http: requests.Session

    def signed_in(self, mailbox: str) -> tuple[dict[str, Any], str]:
        """The token state a user's sign-in leaves for the daemon, and an access token for
        the user's own edits."""
        cache = msal.SerializableTokenCache()
        app = msal.ConfidentialClientApplication(
            SYNCHRONIZER_APP_ID, client_credential=SYNCHRONIZER_SECRET,
            authority=f"{self.server.url}/contoso.example", instance_discovery=False,
            http_client=self.http, token_cache=cache,
        )  # fmt: skip
        result = sign_in(app, self.http, mailbox, ["Calendars.ReadWrite", "Contacts.ReadWrite"],
                         consent="accept")  # fmt: skip
        assert "access_token" in result, result
        return token_state(cache), result["access_token"]

    def outlook(self, token: str) -> GraphClient:
        return GraphClient(self.server.url, self.http, token)

    def settle(self) -> None:
        assert self.ms_app.extensions["microsoft_notifications"].wait_idle(timeout=20)

    def subscriptions(self) -> list[dict[str, Any]]:
        state = self.http.get(f"{self.server.url}/_sim/state", timeout=10).json()
        return state["subscriptions"]  # type: ignore[no-any-return]

    def lifecycle(self, subscription: str, event: str) -> None:
        body = {"lifecycle": [{"subscription": subscription, "event": event}]}
        answer = self.http.post(f"{self.server.url}/_sim/state", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        self.settle()


@pytest.fixture
def tenant(ms_app: flask.Flask, ms_server: SimServer, ms_session: requests.Session) -> Tenant:
    return Tenant(ms_app, ms_server, ms_session)


@pytest.fixture
def daemon_web(web: Web, tenant: Tenant, demo_ca: DemoCA) -> Web:
    """The daemon's settings point at the simulated Microsoft and trust the demo CA."""
    web.settings = dataclasses.replace(
        web.settings,
        microsoft_client_id=SYNCHRONIZER_APP_ID,
        microsoft_client_secret=SYNCHRONIZER_SECRET,
        microsoft_authority_host=tenant.server.url,
        microsoft_graph_url=tenant.server.url,
        sync_ca_bundle=demo_ca.ca_file,  # type: ignore[arg-type]
    )
    push.configure(web.settings)
    return web


def link(web: Web, tenant: Tenant, *mailboxes: str, contacts: bool = False) -> dict[str, int]:
    """Contoso's profile with the users signed in; their ids by mailbox."""
    settings = {"crm_time_zone": "Europe/Oslo", "contacts": "two_way" if contacts else "off"}
    with web.db.session() as session:
        org = Organisation(name="Contoso", slug=f"contoso-{uuid.uuid4().hex[:6]}")
        profile = Profile(
            organisation=org, name="Contoso", crm_kind=CrmKind.SUPEROFFICE_ONSITE,
            crm_url="https://crm.contoso.example/SuperOffice",
            groupware_kind=GroupwareKind.MICROSOFT_365,
            groupware_settings={"tenant_id": "contoso.example"}, settings=settings,
        )  # fmt: skip
        users = [
            SyncUser(
                profile=profile,
                crm_associate_id=100 + n,
                mailbox=mailbox,
                invitation_state=InvitationState.ACTIVE,
                tokens=tenant.signed_in(mailbox)[0],
            )  # fmt: skip
            for n, mailbox in enumerate(mailboxes)
        ]
        session.add_all([org, profile, *users])
        session.flush()
        return {u.mailbox: u.id for u in users}


def rows(web: Web) -> list[PushSubscription]:
    with web.db.session() as session:
        return list(session.scalars(select(PushSubscription).order_by(PushSubscription.id)))


def post(url: str, items: list[dict[str, Any]]) -> requests.Response:
    session = requests.Session()
    session.trust_env = False
    return session.post(url, data=json.dumps({"value": items}), timeout=10,
                        headers={"Content-Type": "application/json"})  # fmt: skip


def test_the_upkeep_subscribes_each_user_and_kind_to_our_validated_receiver(
    daemon_web: Web, tenant: Tenant
) -> None:
    users = link(daemon_web, tenant, ADELE, MEGAN, contacts=True)
    report = push.upkeep()
    assert report is not None and len(report.graph.made) == 4 and report.graph.failed == []
    made = {(r.sync_user_id, r.kind): r for r in rows(daemon_web)}
    assert set(made) == {(u, k) for u in users.values() for k in ItemKind}
    assert all(r.state is PushState.ACTIVE and r.client_state_hash for r in made.values())
    at_graph = {s["id"]: s for s in tenant.subscriptions()}
    assert set(at_graph) == {r.external_id for r in made.values()}
    for sub in at_graph.values():
        assert sub["notificationUrl"] == f"{daemon_web.url}/hooks/microsoft"
        assert sub["lifecycleNotificationUrl"] == f"{daemon_web.url}/hooks/microsoft/lifecycle"
        assert sub["clientState"] and hash_state(sub["clientState"]) in {
            r.client_state_hash for r in made.values()
        }
    # contacts: our own folder's, not the user's whole address book
    contact_rows = [r for r in made.values() if r.kind is ItemKind.CONTACT]
    assert all(r.resource and "/contactFolders/" in r.resource for r in contact_rows)
    # nothing to do a moment later: no second subscription for anyone
    again = push.upkeep()
    assert again is not None and again.graph.made == again.graph.renewed == []
    assert len(tenant.subscriptions()) == 4


def test_an_edit_in_outlook_queues_one_sync_of_that_users_appointments(
    daemon_web: Web, tenant: Tenant
) -> None:
    users = link(daemon_web, tenant, ADELE, MEGAN)
    push.upkeep()
    outlook = tenant.outlook(tenant.signed_in(ADELE)[1])
    made = outlook.post("/me/events", EVENT).json()
    for n in range(9):  # ten notifications in a second: one sync
        outlook.patch(f"/me/events/{made['id']}", {"subject": f"Pushed {n}"})
    tenant.settle()
    assert daemon_web.queued() == [(users[ADELE], ItemKind.APPOINTMENT)]
    delivered = tenant.ms_app.extensions["microsoft_notifications"].log
    assert len(delivered) == 10 and all(d["status"] == 202 for d in delivered)


def test_a_forged_client_state_is_refused_and_queues_nothing(
    daemon_web: Web, tenant: Tenant
) -> None:
    users = link(daemon_web, tenant, ADELE)
    push.upkeep()
    (row,) = rows(daemon_web)
    forged = {
        "subscriptionId": row.external_id, "clientState": "a guess", "changeType": "updated",
        "resource": "Users/x/Events/y", "tenantId": "t",
    }  # fmt: skip
    url = f"{daemon_web.url}/hooks/microsoft"
    assert post(url, [forged]).status_code == 403
    assert post(url, [{**forged, "clientState": None}]).status_code == 403
    assert post(f"{url}/lifecycle", [{**forged, "lifecycleEvent": "missed"}]).status_code == 403
    assert daemon_web.queued() == [] and huey_empty(daemon_web)
    # Graph's own notification carries the clientState the upkeep gave: believed
    (sub,) = tenant.subscriptions()
    assert post(url, [{**forged, "clientState": sub["clientState"]}]).status_code == 202
    assert daemon_web.queued() == [(users[ADELE], ItemKind.APPOINTMENT)]


def huey_empty(web: Web) -> bool:
    return web.pending("reconcile") == [] and web.pending("subscription_upkeep") == []


def test_a_notification_of_a_subscription_we_do_not_know_is_acknowledged_and_dropped(
    daemon_web: Web,
) -> None:
    item = {"subscriptionId": str(uuid.uuid4()), "clientState": "x", "changeType": "updated"}
    assert post(f"{daemon_web.url}/hooks/microsoft", [item]).status_code == 202
    assert daemon_web.queued() == []


def test_the_validation_handshake_echoes_the_token_as_plain_text(daemon_web: Web) -> None:
    session = requests.Session()
    session.trust_env = False
    token = "Validation: Testing client application reachability <b>&amp;</b>"
    for path in ("/hooks/microsoft", "/hooks/microsoft/lifecycle"):
        answer = session.post(daemon_web.url + path, params={"validationToken": token}, timeout=10)
        assert answer.status_code == 200 and answer.text == token
        assert answer.headers["Content-Type"].startswith("text/plain")
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_reauthorization_required_renews_the_subscription(daemon_web: Web, tenant: Tenant) -> None:
    link(daemon_web, tenant, ADELE)
    push.upkeep()
    (before,) = rows(daemon_web)
    assert before.external_id is not None and before.expires_at is not None
    tenant.lifecycle(before.external_id, "reauthorizationRequired")
    assert rows(daemon_web)[0].state is PushState.REAUTHORIZE
    (sub,) = tenant.subscriptions()
    assert sub["needsReauthorization"]
    assert daemon_web.run("subscription_upkeep") == 1
    (after,) = rows(daemon_web)
    assert after.state is PushState.ACTIVE and after.external_id == before.external_id
    assert after.expires_at is not None and after.expires_at > before.expires_at
    (sub,) = tenant.subscriptions()
    assert not sub["needsReauthorization"]


def test_missed_notifications_relist_the_users_microsoft_side_at_the_next_sync(
    daemon_web: Web, tenant: Tenant
) -> None:
    users = link(daemon_web, tenant, ADELE)
    push.upkeep()
    (row,) = rows(daemon_web)
    store = SqlStore(daemon_web.db, _profile_of(daemon_web, users[ADELE]), users[ADELE])
    store.save_cursor(ItemKind.APPOINTMENT, Side.GROUPWARE, SideCursor(token="delta-1").dump())
    assert row.external_id is not None
    tenant.lifecycle(row.external_id, "missed")
    assert daemon_web.run("reconcile") == 1
    saved = SideCursor.load(store.load_cursor(ItemKind.APPOINTMENT, Side.GROUPWARE))
    assert saved.relist and saved.token == "delta-1"
    assert daemon_web.queued() == [(users[ADELE], ItemKind.APPOINTMENT)]


def _profile_of(web: Web, user_id: int) -> int:
    with web.db.session() as session:
        user = session.get(SyncUser, user_id)
        assert user is not None
        return user.profile_id


def test_a_removed_subscription_is_made_again_and_the_user_synced(
    daemon_web: Web, tenant: Tenant
) -> None:
    users = link(daemon_web, tenant, ADELE)
    push.upkeep()
    (before,) = rows(daemon_web)
    assert before.external_id is not None
    tenant.lifecycle(before.external_id, "subscriptionRemoved")
    assert rows(daemon_web)[0].state is PushState.REMOVED and tenant.subscriptions() == []
    assert daemon_web.queued() == [(users[ADELE], ItemKind.APPOINTMENT)]
    assert daemon_web.run("subscription_upkeep") == 1
    (after,) = rows(daemon_web)
    (sub,) = tenant.subscriptions()
    assert after.state is PushState.ACTIVE and after.external_id == sub["id"] != before.external_id


def test_subscriptions_are_renewed_a_day_before_they_expire_and_ended_with_the_user(
    daemon_web: Web, tenant: Tenant
) -> None:
    users = link(daemon_web, tenant, ADELE)
    push.upkeep()
    (made,) = rows(daemon_web)
    assert made.expires_at is not None
    assert timedelta(days=2, hours=23) < made.expires_at - utcnow() <= timedelta(days=3)
    early = push.upkeep(utcnow() + timedelta(hours=47))  # more than a day left
    assert early is not None and early.graph.renewed == []
    late = push.upkeep(utcnow() + timedelta(hours=49))  # less than a day left
    assert late is not None and late.graph.renewed == [(users[ADELE], ItemKind.APPOINTMENT)]
    (renewed,) = rows(daemon_web)
    assert renewed.expires_at is not None and renewed.expires_at > made.expires_at
    with daemon_web.db.session() as session:  # unlinked
        user = session.get(SyncUser, users[ADELE])
        assert user is not None
        user.invitation_state = InvitationState.DISABLED
    ended = push.upkeep()
    assert ended is not None and ended.graph.deleted == [(users[ADELE], ItemKind.APPOINTMENT)]
    assert rows(daemon_web) == [] and tenant.subscriptions() == []


def test_a_subscription_graph_could_not_validate_is_recorded_and_made_later(
    daemon_web: Web, tenant: Tenant
) -> None:
    link(daemon_web, tenant, ADELE)
    rt = push.runtime()
    push.use(dataclasses.replace(rt, settings=dataclasses.replace(rt.settings,
             public_url="http://127.0.0.1:9/unreachable")))  # fmt: skip
    failed = push.upkeep()
    assert failed is not None and len(failed.graph.failed) == 1
    (row,) = rows(daemon_web)
    assert row.state is PushState.FAILED and "validation" in (row.last_error or "").lower()
    assert tenant.subscriptions() == []
    push.use(rt)
    fixed = push.upkeep()
    assert fixed is not None and len(fixed.graph.made) == 1
    assert rows(daemon_web)[0].state is PushState.ACTIVE and len(tenant.subscriptions()) == 1


def test_a_user_who_needs_attention_keeps_no_subscription_until_fixed(
    daemon_web: Web, tenant: Tenant
) -> None:
    """Their credentials were refused: Graph would refuse a renewal too, and notifications
    would only queue syncs that do not run."""
    users = link(daemon_web, tenant, ADELE)
    push.upkeep()

    def mark(reason: str | None) -> None:
        with daemon_web.db.session() as session:
            user = session.get(SyncUser, users[ADELE])
            assert user is not None
            user.needs_attention = reason

    mark("Microsoft 365 refused the refresh token")
    gone = push.upkeep()
    assert gone is not None and gone.graph.deleted == [(users[ADELE], ItemKind.APPOINTMENT)]
    assert rows(daemon_web) == [] and tenant.subscriptions() == []
    mark(None)  # a person fixed it
    back = push.upkeep()
    assert back is not None and back.graph.made == [(users[ADELE], ItemKind.APPOINTMENT)]


def test_bodies_that_are_not_notifications_are_refused(daemon_web: Web) -> None:
    session = requests.Session()
    session.trust_env = False
    url = f"{daemon_web.url}/hooks/microsoft"
    for body, status in (
        (b"not json", 400),
        (b'{"value": "x"}', 400),
        (b"[1, 2]", 400),
        (json.dumps({"value": [{"x": "y" * 1_100_000}]}).encode(), 413),
    ):
        for path in ("", "/lifecycle"):
            answer = session.post(url + path, data=body, timeout=10,
                                  headers={"Content-Type": "application/json"})  # fmt: skip
            assert answer.status_code == status, (body[:20], path)
    assert daemon_web.queued() == []
