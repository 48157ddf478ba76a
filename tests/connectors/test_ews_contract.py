"""The connector contract against the Exchange connector talking to the EWS simulator
(exchangelib unchanged, FailFast, NTLM, https, a service account impersonating the user):
the calendar and the contacts, both with exact versions (change keys)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from common.items import Appointment, Contact
from tests.connectors.contract import AppointmentContract, ContactContract, ExactVersions
from tests.fixtures.ews_connector import EwsAppointments, EwsContactsService


class TestEwsAppointments(AppointmentContract, ExactVersions[Appointment]):
    @pytest.fixture
    def service(self, ews_appointments: EwsAppointments) -> Iterator[EwsAppointments]:
        yield ews_appointments


class TestEwsContacts(ContactContract, ExactVersions[Contact]):
    @pytest.fixture
    def service(self, ews_contacts: EwsContactsService) -> Iterator[EwsContactsService]:
        yield ews_contacts
