"""The connector contract against the Microsoft 365 connector talking to the Graph simulator
(msal, requests, https): the calendar (with exact versions: change keys) and contacts in our
own contact folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from common.items import Appointment, Contact
from tests.connectors.contract import AppointmentContract, ContactContract, ExactVersions
from tests.fixtures.graph_connector import (
    GraphAppointments,
    GraphContactsService,
)


class TestGraphAppointments(AppointmentContract, ExactVersions[Appointment]):
    @pytest.fixture
    def service(self, appointments: GraphAppointments) -> Iterator[GraphAppointments]:
        yield appointments


class TestGraphContacts(ContactContract, ExactVersions[Contact]):
    @pytest.fixture
    def service(self, contacts: GraphContactsService) -> Iterator[GraphContactsService]:
        yield contacts
