"""The connector contract against the in-memory connector, in the shapes the real services
have: exact versions or day-grained ones, stamps shown or hidden in listings, removals that
say "deleted" or only "unknown", creates idempotent or not, batches or single calls."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic

import pytest

from common.connectors.memory import MemoryConnector
from common.items import CONTACT_FIELDS, Appointment, Contact
from common.kinds import RemovalKind, T, Window
from tests.connectors.contract import (
    AppointmentContract,
    ContactContract,
    ExactVersions,
    appointment_sample,
    contact_sample,
)

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
WINDOW = Window(NOW - timedelta(days=2), NOW + timedelta(days=30))


@dataclass
class MemoryService(Generic[T]):
    connector: MemoryConnector[T]
    window: Window | None
    page_size: int = field(init=False)

    def __post_init__(self) -> None:
        self.page_size = self.connector.page_size

    def sample(self, n: int) -> Any:
        if self.window is None:
            return contact_sample(n)
        return appointment_sample(n, NOW)

    def outside_window(self) -> Appointment:
        start = NOW + timedelta(days=90)
        return Appointment("Far away", start, start + timedelta(hours=1))

    def user_create(self, item: T, stamp: str | None = None) -> str:
        return self.connector.user_create(item, stamp)

    def user_edit(self, item_id: str, **changes: Any) -> None:
        self.connector.user_edit(item_id, **changes)

    def user_delete(self, item_id: str) -> None:
        self.connector.user_delete(item_id)

    def expire_cursors(self) -> None:
        self.connector.expire_cursors()


SHAPES: dict[str, dict[str, Any]] = {
    "graph-like": {
        "batch_size": 20,
        "idempotent_create": True,
        "stamps_in_listing": False,
        "removal_kind": RemovalKind.UNKNOWN,
    },
    "ews-like": {"batch_size": 10, "idempotent_create": False},
    "plain": {},
}


class TestMemoryAppointments(AppointmentContract, ExactVersions[Appointment]):
    @pytest.fixture(params=sorted(SHAPES))
    def service(self, request: pytest.FixtureRequest) -> Iterator[MemoryService[Appointment]]:
        connector: MemoryConnector[Appointment] = MemoryConnector(
            "gw", page_size=4, **SHAPES[request.param]
        )
        yield MemoryService(connector, WINDOW)


class TestMemoryCoarseAppointments(AppointmentContract):
    """As SuperOffice: day-grained versions, no batches."""

    @pytest.fixture
    def service(self) -> Iterator[MemoryService[Appointment]]:
        connector: MemoryConnector[Appointment] = MemoryConnector(
            "crm", page_size=4, exact_versions=False
        )
        yield MemoryService(connector, WINDOW)


class TestMemoryContacts(ContactContract, ExactVersions[Contact]):
    @pytest.fixture
    def service(self) -> Iterator[MemoryService[Contact]]:
        connector: MemoryConnector[Contact] = MemoryConnector(
            "gw", page_size=3, fields=CONTACT_FIELDS, batch_size=20
        )
        yield MemoryService(connector, None)
