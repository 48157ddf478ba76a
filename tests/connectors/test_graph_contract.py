"""The connector contract against the Microsoft 365 connector talking to the Graph simulator
(msal, requests, https): the calendar (with exact versions: change keys) and contacts in our
own contact folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from common.items import Appointment, Contact
from tests.connectors.contract import AppointmentContract, ContactContract, ExactVersions
from tests.connectors.graph_fixtures import (  # noqa: F401 (fixtures)
    GraphAppointments,
    GraphContactsService,
    appointments,
    contacts,
    graph_server,
    graph_world,
    mailbox,
)


class TestGraphAppointments(AppointmentContract, ExactVersions[Appointment]):
    @pytest.fixture
    def service(self, appointments: GraphAppointments) -> Iterator[GraphAppointments]:  # noqa: F811
        yield appointments


class TestGraphContacts(ContactContract, ExactVersions[Contact]):
    @pytest.fixture
    def service(self, contacts: GraphContactsService) -> Iterator[GraphContactsService]:  # noqa: F811
        yield contacts
