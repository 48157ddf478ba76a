"""The Microsoft 365 connector against the Graph simulator, as the product runs it: msal with
the user's delegated tokens from a real sign-in (authorization code flow), requests on https
with the demo CA. What users do happens through Graph itself, with Outlook's own token (a
separate sign-in), never through the connector under test; operators act through the
simulator's `/_sim` API.

Import the fixtures a test module uses (`from tests.connectors.graph_fixtures import ...`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msal
import pytest
import requests

from common.connectors.graph.auth import (
    DelegatedTokens,
    GraphApp,
    MemoryTokenStore,
    TokenStore,
    token_state,
)
from common.connectors.graph.client import GraphClient
from common.connectors.graph.contacts import GraphContacts
from common.connectors.graph.events import GraphEvents
from common.connectors.graph.mapping import STAMP_ID
from common.items import Appointment, Contact
from common.kinds import Window
from simulators.microsoft import create_app
from simulators.platform.server import SimServer
from simulators.world.microsoft import (
    SYNCHRONIZER_APP_ID,
    SYNCHRONIZER_SECRET,
    MicrosoftWorld,
    demo_world,
)
from tests.connectors.contract import appointment_sample, contact_sample
from tests.fixtures.microsoft import GraphClient as RawGraph
from tests.fixtures.microsoft import sign_in

ADELE = "adele@contoso.example"
TENANT = "contoso.example"
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
WINDOW = Window(NOW - timedelta(days=2), NOW + timedelta(days=30))
SCOPES = ["Calendars.ReadWrite", "Contacts.ReadWrite"]


@pytest.fixture
def graph_world() -> MicrosoftWorld:
    """The demo world with Adele's mailbox empty, so every item a test sees is its own."""
    world = demo_world(anchor=date(2026, 3, 23))
    tenant = world.tenant(TENANT)
    assert tenant is not None
    for user in tenant.users:
        user.events, user.contacts = [], []
    return world


@pytest.fixture
def graph_server(graph_world: MicrosoftWorld, serve: Any) -> SimServer:
    return serve(create_app(graph_world))


def signed_in_state(server: SimServer, session: requests.Session, login: str) -> dict[str, Any]:
    """The token state a user's sign-in leaves (msal's cache, refresh token included)."""
    cache = msal.SerializableTokenCache()
    app = msal.ConfidentialClientApplication(
        SYNCHRONIZER_APP_ID,
        client_credential=SYNCHRONIZER_SECRET,
        authority=f"{server.url}/{login.partition('@')[2]}",
        instance_discovery=False,
        http_client=session,
        token_cache=cache,
    )
    result = sign_in(app, session, login, SCOPES, consent="accept")
    assert "access_token" in result and "refresh_token" in result, result
    return token_state(cache)


@dataclass
class Mailbox:
    """One mailbox as the connector and its user see it."""

    server: SimServer
    session: requests.Session
    store: TokenStore
    tokens: DelegatedTokens
    client: GraphClient
    user: OutlookGraph  # Outlook: the user's own requests
    sleeps: list[float] = field(default_factory=list)

    def sim(self, **payload: Any) -> dict[str, Any]:
        answer = self.session.post(f"{self.server.url}/_sim/state", json=payload)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def state(self) -> dict[str, Any]:
        return dict(self.session.get(f"{self.server.url}/_sim/state").json())

    def fault(self, **rule: Any) -> None:
        answer = self.session.post(f"{self.server.url}/_sim/faults", json=rule)
        assert answer.status_code == 201, answer.text

    def clear_faults(self) -> None:
        self.session.delete(f"{self.server.url}/_sim/faults")

    def stats(self) -> dict[str, int]:
        return dict(self.session.get(f"{self.server.url}/_sim/stats").json()["endpoints"])

    def reset_stats(self) -> None:
        self.session.delete(f"{self.server.url}/_sim/stats")

    def adele(self) -> dict[str, Any]:
        for tenant in self.state()["tenants"]:
            for user in tenant["users"]:
                if user["userPrincipalName"] == ADELE:
                    return dict(user)
        raise AssertionError("no Adele")

    def sent_mail(self) -> list[dict[str, Any]]:
        return list(self.state()["sentMail"])


@pytest.fixture
def mailbox(graph_server: SimServer, ms_session: requests.Session) -> Mailbox:
    state = signed_in_state(graph_server, ms_session, ADELE)
    store = MemoryTokenStore(state)
    app = GraphApp(
        SYNCHRONIZER_APP_ID, SYNCHRONIZER_SECRET, f"{graph_server.url}/{TENANT}", ms_session
    )
    tokens = DelegatedTokens(app, store, ADELE)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)  # Retry-After waits, so tests can see them honoured
        time.sleep(seconds)

    client = GraphClient(tokens, ADELE, root=graph_server.url, session=ms_session, sleep=sleep)
    # Outlook, signed in on its own: its token is not the connector's.
    outlook_state = signed_in_state(graph_server, ms_session, ADELE)
    outlook = DelegatedTokens(app, MemoryTokenStore(outlook_state), ADELE)
    user = OutlookGraph(graph_server.url, ms_session, outlook.access_token())
    return Mailbox(graph_server, ms_session, store, tokens, client, user, sleeps)


# --- what a user does in Outlook, written here (not with the connector's mapping) ----------


class OutlookGraph(RawGraph):
    """Graph as the user's client uses it; ids come back in the immutable form the
    connector uses, so a test can compare them (both forms name the same item)."""

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Prefer": 'IdType="ImmutableId"', **kwargs.pop("headers", {})}
        return super().request(method, path, headers=headers, **kwargs)


def _when(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def outlook_event(item: Appointment) -> dict[str, Any]:
    assert isinstance(item.start, datetime) and isinstance(item.end, datetime)
    return {
        "subject": item.subject,
        "start": _when(item.start),
        "end": _when(item.end),
        "location": {"displayName": item.location},
        "body": {"contentType": "text", "content": item.body},
        "isReminderOn": False,
    }


_EVENT_EDITS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "subject": lambda v: {"subject": v},
    "location": lambda v: {"location": {"displayName": v}},
    "body": lambda v: {"body": {"contentType": "text", "content": v}},
}


def outlook_contact(item: Contact) -> dict[str, Any]:
    return {
        "givenName": item.given_name,
        "surname": item.family_name,
        "jobTitle": item.job_title,
        "emailAddresses": [{"address": e, "name": e} for e in item.emails],
    }


_CONTACT_EDITS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "job_title": lambda v: {"jobTitle": v},
    "given_name": lambda v: {"givenName": v},
}


def stamp_json(stamp: str) -> list[dict[str, str]]:
    """Our stamp as a copied item carries it (Outlook copies extended properties)."""
    return [{"id": STAMP_ID, "value": stamp}]


@dataclass
class GraphAppointments:
    """The contract's `Service` for the calendar."""

    mailbox: Mailbox
    connector: GraphEvents
    page_size: int = 4
    window: Window | None = WINDOW

    def sample(self, n: int) -> Appointment:
        return appointment_sample(n, NOW)

    def outside_window(self) -> Appointment:
        start = NOW + timedelta(days=90)
        return Appointment("Far away", start, start + timedelta(hours=1))

    def user_create(self, item: Appointment, stamp: str | None = None) -> str:
        body = outlook_event(item)
        if stamp is not None:
            body["singleValueExtendedProperties"] = stamp_json(stamp)
        answer = self.mailbox.user.post(f"/users/{ADELE}/events", body)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def user_edit(self, item_id: str, **changes: Any) -> None:
        body: dict[str, Any] = {}
        for name, value in changes.items():
            body.update(_EVENT_EDITS[name](value))
        answer = self.mailbox.user.patch(f"/users/{ADELE}/events/{item_id}", body)
        assert answer.status_code == 200, answer.text

    def user_delete(self, item_id: str) -> None:
        answer = self.mailbox.user.delete(f"/users/{ADELE}/events/{item_id}")
        assert answer.status_code == 204, answer.text

    def expire_cursors(self) -> None:
        self.mailbox.sim(reset_sync_states=True)


@dataclass
class GraphContactsService:
    """The contract's `Service` for contacts, in our own contact folder."""

    mailbox: Mailbox
    connector: GraphContacts
    folder_id: str
    page_size: int = 4
    window: Window | None = None

    def sample(self, n: int) -> Contact:
        return contact_sample(n)

    def outside_window(self) -> Contact:
        raise NotImplementedError("contacts have no window")

    def user_create(self, item: Contact, stamp: str | None = None) -> str:
        body = outlook_contact(item)
        if stamp is not None:
            body["singleValueExtendedProperties"] = stamp_json(stamp)
        answer = self.mailbox.user.post(
            f"/users/{ADELE}/contactFolders/{self.folder_id}/contacts", body
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def user_edit(self, item_id: str, **changes: Any) -> None:
        body: dict[str, Any] = {}
        for name, value in changes.items():
            body.update(_CONTACT_EDITS[name](value))
        answer = self.mailbox.user.patch(f"/users/{ADELE}/contacts/{item_id}", body)
        assert answer.status_code == 200, answer.text

    def user_delete(self, item_id: str) -> None:
        answer = self.mailbox.user.delete(f"/users/{ADELE}/contacts/{item_id}")
        assert answer.status_code == 204, answer.text

    def expire_cursors(self) -> None:
        self.mailbox.sim(reset_sync_states=True)


@pytest.fixture
def appointments(mailbox: Mailbox) -> Iterator[GraphAppointments]:
    connector = GraphEvents(mailbox.client, page_size=4, window=WINDOW)
    yield GraphAppointments(mailbox, connector)


@pytest.fixture
def contacts(mailbox: Mailbox) -> Iterator[GraphContactsService]:
    # The user (or an earlier run) made our folder; the connector finds it by its name.
    made = mailbox.user.post(f"/users/{ADELE}/contactFolders", {"displayName": "Synchronizer"})
    assert made.status_code == 201, made.text
    connector = GraphContacts(mailbox.client, page_size=4)
    yield GraphContactsService(mailbox, connector, str(made.json()["id"]))
