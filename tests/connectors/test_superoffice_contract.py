"""The connector contract against the SuperOffice connector talking to the simulator over
https: Online (a user's SuperID tokens) and Onsite (an administrator's credentials acting on
a user's diary). Users act through SuperOffice's own REST API (`SoUser`), never through the
connector.

Where the contract asks what SuperOffice has no notion of, the service says how it stands in
for it: SuperOffice keeps no change token, so "the service forgets every change token" is the
connector's own cursor growing older than its maximum age (`expire_cursors`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic

import pytest
import requests

from common.connectors.superoffice import (
    Stamps,
    SuperOfficeAppointments,
    SuperOfficePersons,
    Tenant,
)
from common.items import Appointment, Contact
from common.kinds import T, Window
from tests.connectors.contract import (
    AppointmentContract,
    ContactContract,
    appointment_sample,
    contact_sample,
)
from tests.fixtures.superoffice_connector import (
    BOB,
    CONTOSO_ZONE,
    MEGAN,
    ONSITE_ZONE,
    SoUser,
    bearer,
    online_client,
    onsite_client,
    onsite_user,
    sign_in,
    wipe_diaries,
)

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
WINDOW = Window(NOW - timedelta(days=2), NOW + timedelta(days=30))
FIELDS = {"subject": "Title", "location": "Location", "body": "Description", "job_title": "Title"}


@dataclass
class SoService(Generic[T]):
    connector: Any
    user: SoUser
    associate_id: int
    window: Window | None
    page_size: int

    def sample(self, n: int) -> Any:
        return appointment_sample(n, NOW) if self.window else contact_sample(n)

    def outside_window(self) -> Appointment:
        start = NOW + timedelta(days=90)
        return Appointment("Far away", start, start + timedelta(hours=1))

    def user_create(self, item: Any, stamp: str | None = None) -> str:
        if isinstance(item, Appointment):
            assert isinstance(item.start, datetime) and isinstance(item.end, datetime)
            body = {
                "Title": item.subject, "Location": item.location, "Description": item.body,
                "StartDate": item.start.isoformat(), "EndDate": item.end.isoformat(),
                "Associate": {"AssociateId": self.associate_id},
            }  # fmt: skip
            kind, key, table = "Appointment", "AppointmentId", "appointment"
        else:
            assert isinstance(item, Contact)
            body = {
                "Firstname": item.given_name, "Lastname": item.family_name,
                "Emails": [{"Value": e} for e in item.emails],
                "Associate": {"AssociateId": self.associate_id},
            }  # fmt: skip
            kind, key, table = "Person", "PersonId", "person"
        made = self.user.call("POST", f"/{kind}", json=body)
        if stamp is not None:
            self.user.put_stamp(table, int(made[key]), stamp)
        return str(made[key])

    def user_edit(self, item_id: str, **changes: Any) -> None:
        kind = "Appointment" if self.window else "Person"
        self.user.edit(kind, int(item_id), **{FIELDS[k]: v for k, v in changes.items()})

    def user_delete(self, item_id: str) -> None:
        kind = "Appointment" if self.window else "Person"
        self.user.call("DELETE", f"/{kind}/{item_id}")

    def expire_cursors(self) -> None:
        # SuperOffice keeps no change token to forget: the connector's cursor expires by age.
        later = datetime.now(UTC) + self.connector.lister.max_age + timedelta(minutes=1)
        self.connector.lister.clock = lambda: later


def _stamps(client: Any) -> Stamps:
    return Stamps(client, device_id="contract-tests")


@pytest.fixture(params=["online", "onsite"])
def appointments(
    request: pytest.FixtureRequest, so_http: requests.Session, so_base: str
) -> Iterator[SoService[Appointment]]:
    if request.param == "online":
        wipe_diaries(so_http, so_base, "Cust12345")
        client = online_client(so_http, so_base, "megan@contoso.example")
        tenant = Tenant(CONTOSO_ZONE, context="Cust12345")
        user = SoUser(so_http, f"{so_base}/Cust12345/api/v1",
                      bearer(sign_in(so_http, so_base, "megan@contoso.example")))  # fmt: skip
        associate = MEGAN
    else:
        wipe_diaries(so_http, so_base, "SuperOffice")
        client = onsite_client(so_http, so_base, "ALICE")
        tenant = Tenant(ONSITE_ZONE, context="SuperOffice")
        user, associate = onsite_user(so_http, so_base, "BOB"), BOB
    stamps = _stamps(client)
    user.stamps = stamps
    connector = SuperOfficeAppointments(
        client, associate, tenant, stamps=stamps, page_size=4, id_page_size=5
    )
    yield SoService(connector, user, associate, WINDOW, 4)


@pytest.fixture
def persons(so_http: requests.Session, so_base: str) -> Iterator[SoService[Contact]]:
    # megan owns no company of the demo world: her persons are those the test makes
    client = online_client(so_http, so_base, "megan@contoso.example")
    stamps = _stamps(client)
    user = SoUser(so_http, f"{so_base}/Cust12345/api/v1",
                  bearer(sign_in(so_http, so_base, "megan@contoso.example")), stamps)  # fmt: skip
    connector = SuperOfficePersons(client, MEGAN, context="Cust12345", stamps=stamps, page_size=3)
    yield SoService(connector, user, MEGAN, None, 3)


class TestSuperOfficeAppointments(AppointmentContract):
    @pytest.fixture
    def service(self, appointments: SoService[Appointment]) -> SoService[Appointment]:
        return appointments


class TestSuperOfficePersons(ContactContract):
    @pytest.fixture
    def service(self, persons: SoService[Contact]) -> SoService[Contact]:
        return persons
