"""Who a meeting's participants are: SuperOffice names them by associate or person id (or an
e-mail address for someone it does not know), attendees elsewhere are addresses.

Users come from the AllUsers archive (read once per connector); persons are looked up one at
a time and remembered.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from common.connectors.superoffice.client import SuperOfficeClient


@dataclass(frozen=True)
class Someone:
    email: str
    name: str


def odata_text(value: str) -> str:
    """A text literal for `$filter` (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass
class People:
    client: SuperOfficeClient
    _users: dict[int, Someone] | None = None
    _user_persons: dict[int, int] = field(default_factory=dict)  # associate -> person id
    _persons: dict[int, Someone | None] = field(default_factory=dict)
    _by_email: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    # Items are read several at once: the users are listed once, not by each of them.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def users(self) -> dict[int, Someone]:
        with self._lock:
            return self._listed()

    def _listed(self) -> dict[int, Someone]:
        if self._users is None:
            rows = self.client.rows(
                "/Archive/AllUsers",
                key="associateDbId",
                select=("personEmail", "fullName", "personId"),
                where="isActive set 1",
                top=5000,
            )
            users: dict[int, Someone] = {}
            for row in rows:
                associate_id = int(row["associateDbId"])
                users[associate_id] = Someone(
                    str(row.get("personEmail") or ""), str(row.get("fullName") or "")
                )
                self._user_persons[associate_id] = int(row.get("personId") or 0)
            self._users = users
        return self._users

    def user(self, associate_id: int) -> Someone | None:
        return self.users().get(associate_id)

    def person(self, person_id: int) -> Someone | None:
        if person_id not in self._persons:
            rows = self.client.rows(
                "/Person",
                key="personId",
                select=("fullName", "email/emailAddress"),
                where=f"personId eq {person_id}",
                top=1,
            )
            self._persons[person_id] = (
                Someone(str(rows[0].get("email/emailAddress") or ""), str(rows[0]["fullName"]))
                if rows
                else None
            )
        return self._persons[person_id]

    def participant(self, email: str, required: bool) -> dict[str, Any]:
        """The ParticipantInfo for an address: a user, else a person with that address, else
        the address alone (an outside participant)."""
        kind = "Required" if required else "Optional"
        wanted = email.strip().lower()
        for associate_id, someone in self.users().items():
            if someone.email.lower() == wanted:
                return {
                    "AssociateId": associate_id,
                    "PersonId": self._user_persons.get(associate_id, 0),
                    "ExternallyOwnedType": kind,
                }
        if wanted not in self._by_email:
            rows = self.client.rows(
                "/Person",
                key="personId",
                select=("contactId",),
                where=f"email/emailAddress eq {odata_text(wanted)}",
                top=1,
            )
            self._by_email[wanted] = (
                {"PersonId": int(rows[0]["personId"]), "ContactId": int(rows[0]["contactId"] or 0)}
                if rows
                else None
            )
        found = self._by_email[wanted]
        if found is not None:
            return {**found, "ExternallyOwnedType": kind}
        return {"EmailAddress": email.strip(), "ExternallyOwnedType": kind}
