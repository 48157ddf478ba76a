"""`daemon.connections`: a profile's connectors, and a clear `ProfileIncomplete` naming what a
person must fill in (the daemon marks the user "needs attention" with it)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from common.config import Settings
from common.connectors.graph.contacts import GraphContacts
from common.connectors.graph.events import GraphEvents
from common.connectors.superoffice import SuperOfficeAppointments, SuperOfficePersons
from common.db import Database
from common.kinds import ItemKind, Side
from common.models import CrmKind, GroupwareKind, Profile, SyncUser
from daemon.connections import Connections, ProfileIncomplete

NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)


def profile(**fields: Any) -> Profile:
    values: dict[str, Any] = {
        "id": 1,
        "name": "Contoso",
        "crm_kind": CrmKind.SUPEROFFICE_ONSITE,
        "crm_url": "https://crm.contoso.example/SuperOffice",
        "crm_credentials": {"username": "SYNC", "password": "pw"},
        "groupware_kind": GroupwareKind.MICROSOFT_365,
        "groupware_settings": {"tenant_id": "contoso.example"},
        "settings": {"crm_time_zone": "Europe/Oslo"},
        **fields,
    }
    return Profile(**values)


USER = SyncUser(id=7, crm_associate_id=101, mailbox="megan@contoso.example")


@pytest.fixture
def connections(tmp_path: Path) -> Connections:
    settings = Settings.load(
        environ={},
        instance_path=tmp_path,
        microsoft_client_id="app",
        microsoft_client_secret="secret",
    )
    return Connections(settings, Database(f"sqlite:///{tmp_path / 'x.db'}"))


def test_superoffice_and_microsoft_365_for_each_kind(connections: Connections) -> None:
    made = connections(profile(), USER, ItemKind.APPOINTMENT, NOW)
    crm, groupware = made[Side.CRM], made[Side.GROUPWARE]
    assert isinstance(crm, SuperOfficeAppointments) and crm.associate_id == 101
    assert crm.tenant.zone == "Europe/Oslo"
    assert isinstance(groupware, GraphEvents) and groupware.client.mailbox == USER.mailbox
    contacts = connections(profile(), USER, ItemKind.CONTACT, NOW)
    assert isinstance(contacts[Side.CRM], SuperOfficePersons)
    assert isinstance(contacts[Side.GROUPWARE], GraphContacts)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"settings": {}}, "crm_time_zone"),
        ({"settings": {"crm_time_zone": "Mars/Olympus"}}, "crm_time_zone"),
        ({"crm_credentials": {"username": "SYNC"}}, "password"),
        ({"groupware_settings": {}}, "tenant_id"),
        ({"groupware_kind": GroupwareKind.GOOGLE}, "google is not synced yet"),
        ({"crm_kind": CrmKind.SUPEROFFICE_ONLINE}, "tenant"),
    ],
)
def test_what_is_missing_is_named(
    connections: Connections, fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(ProfileIncomplete, match=named):
        connections(profile(**fields), USER, ItemKind.APPOINTMENT, NOW)


def test_the_simulators_ca_is_verified_with(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    settings = Settings.load(environ={}, instance_path=tmp_path, sync_ca_bundle=str(ca))
    made = Connections(settings, Database(f"sqlite:///{tmp_path / 'x.db'}"))
    assert made.http.verify == str(ca) and made.http.trust_env is False
