"""Our correlation id on SuperOffice records, as a foreign key (ForeignApp/ForeignDevice/Key):
`/api/v1/ForeignApp/{app}/{device}/{deviceId}/Key` holds one value per record and table, and
the same path with `/{key}/{table}?Value=` finds the record that holds a value."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from common.connectors.base import NotFound
from common.connectors.superoffice.client import SuperOfficeClient


@dataclass
class Stamps:
    client: SuperOfficeClient
    app: str = "Synchronizer"
    device: str = "Sync"
    device_id: str = "default"  # one per installation, so two installations do not collide
    key: str = "CorrelationId"

    @property
    def _base(self) -> str:
        return "/ForeignApp/" + "/".join(
            quote(p, safe="") for p in (self.app, self.device, self.device_id)
        )

    def read(self, table: str, record_id: int) -> str | None:
        try:
            found = self.client.get(f"{self._base}/Key/{quote(self.key)}/{table}/{record_id}")
        except NotFound:
            return None
        return str(found.get("Value") or "") or None

    def write(self, table: str, record_id: int, correlation_id: str) -> None:
        body = {"Key": self.key, "Value": correlation_id, "TableName": table, "RecordId": record_id}
        self.client.request("PUT", f"{self._base}/Key", json=body)

    def remove(self, table: str, record_id: int) -> None:
        with contextlib.suppress(NotFound):
            self.client.request("DELETE", f"{self._base}/Key/{quote(self.key)}/{table}/{record_id}")

    def holder(self, table: str, correlation_id: str) -> tuple[int, datetime | None] | None:
        """The record holding the value (SuperOffice answers with one: the first saved)."""
        try:
            found = self.client.get(
                f"{self._base}/Key/{quote(self.key)}/{table}", {"Value": correlation_id}
            )
        except NotFound:
            return None
        record = int(found.get("RecordId") or 0)
        return (record, None) if record else None
