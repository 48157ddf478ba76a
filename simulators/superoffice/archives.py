"""Archive providers behind the OData lists: the columns each one documents (derived into
`archive_columns.json` by tools/derive_superoffice_archive_columns.py from the archive-provider
reference pages) and the rows the simulator holds for some of them.

Column names are the archive's (`appointment/title`, `visibleFor`, `personUpdatedDate`), never
entity property names; a name the provider does not document is refused, as the service refuses
it, and one it documents but the simulator does not fill is refused with a message saying so.
Dates are aware datetimes: local ones in the request's SO-TimeZone, the "updated"/"registered"
ones in UTC (as the reference pages say).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from simulators.superoffice.model import TenantData
from simulators.superoffice.odata import Column
from simulators.superoffice.timezones import Presentation

Rows = list[dict[str, Any]]
VISIBILITY = {"Public": "All", "PrivateUser": "Associate", "PrivateGroup": "Group"}


@cache
def documented() -> dict[str, dict[str, Column]]:
    text = resources.files("simulators.superoffice").joinpath("archive_columns.json").read_text()
    providers = json.loads(text)["providers"]
    return {
        p: {name: (spec[0], spec[1]) for name, spec in cols.items()}
        for p, cols in providers.items()
    }


def _local(value: dt.datetime, pres: Presentation) -> dt.datetime:
    return value.astimezone(pres.zone)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC)


@dataclass(frozen=True)
class Ctx:
    """What a row's cells are read from: the record, its tenant and the presentation."""

    record: Any
    data: TenantData
    pres: Presentation


Cells = dict[str, Callable[[Ctx], Any]]


def _name_of(table: dict, key: int, attr: str) -> str:
    found = table.get(key)
    return (
        str(getattr(found, attr)) if found is not None and getattr(found, "visible", True) else ""
    )


def _company_owner(data: TenantData, contact_id: int) -> int:
    """The company's "our contact" (0 without a company or once it is soft-deleted)."""
    found = data.contacts.get(contact_id)
    return found.associate_id if found is not None and found.visible else 0


APPOINTMENT_CELLS: Cells = {
    "appointmentId": lambda c: c.record.appointment_id,
    "date": lambda c: _local(c.record.start, c.pres),
    "endDate": lambda c: _local(c.record.end, c.pres),
    "time": lambda c: _local(c.record.start, c.pres).strftime("%H:%M"),
    "endTime": lambda c: _local(c.record.end, c.pres).strftime("%H:%M"),
    "type": lambda c: c.record.task,
    "recordType": lambda c: c.record.type,
    "rawType": lambda c: 1 if c.record.type == "inDiary" else 2,
    "text": lambda c: c.record.description,
    "appointment/title": lambda c: c.record.title,
    "appointment/description": lambda c: c.record.description,
    "associateId": lambda c: c.record.associate_id,
    "contactId": lambda c: c.record.contact_id,
    "personId": lambda c: c.record.person_id,
    "projectId": lambda c: 0,
    "saleId": lambda c: 0,
    "updatedDate": lambda c: _utc(c.record.updated),
    "updatedBy": lambda c: c.record.updated_by,
    "registeredDate": lambda c: _utc(c.record.created),
    "registeredBy": lambda c: c.record.created_by,
    "location": lambda c: c.record.location,
    "isFree": lambda c: c.record.is_free,
    "alarm": lambda c: c.record.alarm_minutes is not None,
    "completed": lambda c: c.record.completed == "Completed",
    "recurring": lambda c: bool(c.record.recurrence_id),
    "recurrenceRuleId": lambda c: c.record.recurrence_id,
    "booking": lambda c: bool(c.record.mother_id),
    "invitedPersonId": lambda c: c.record.invited_person_id,
    "visibleFor": lambda c: VISIBILITY.get(c.record.private, "All"),
    "cautionWarning": lambda c: "OK",
    "contact/name": lambda c: _name_of(c.data.contacts, c.record.contact_id, "name"),
    "person/fullName": lambda c: _name_of(c.data.persons, c.record.person_id, "full_name"),
    "associate/userName": lambda c: _name_of(c.data.associates, c.record.associate_id, "username"),
    "associate/fullName": lambda c: _name_of(c.data.associates, c.record.associate_id, "full_name"),
}

PERSON_CELLS: Cells = {
    "personId": lambda c: c.record.person_id,
    "firstName": lambda c: c.record.firstname,
    "lastName": lambda c: c.record.lastname,
    "fullName": lambda c: c.record.full_name,
    "title": lambda c: c.record.title,
    "position": lambda c: c.record.position,
    "contactId": lambda c: c.record.contact_id,
    "personContact/name": lambda c: _name_of(c.data.contacts, c.record.contact_id, "name"),
    "personContact/associateId": lambda c: _company_owner(c.data, c.record.contact_id),
    "personAssociateId": lambda c: c.record.our_contact_id,
    "email/emailAddress": lambda c: c.record.emails[0] if c.record.emails else "",
    "phone/formattedNumber": lambda c: c.record.phones[0] if c.record.phones else "",
    "personMobilePhone/formattedNumber": lambda c: c.record.mobiles[0] if c.record.mobiles else "",
    "personUpdatedDate": lambda c: _utc(c.record.updated),
    "personRegisteredDate": lambda c: _utc(c.record.created),
    "personUpdatedBy": lambda c: c.record.updated_by,
    "personRegisteredBy": lambda c: c.record.created_by,
    "retired": lambda c: c.record.retired,
    "correspondingAssociate/associateDbId": lambda c: c.record.associate_id,
}


@dataclass(frozen=True)
class Member:
    """A person in a static selection (one row per selection and member)."""

    selection_id: int
    person: Any


def _members(data: TenantData) -> list[Member]:
    return [
        Member(s.selection_id, data.persons[p])
        for s in data.selections.values()
        for p in s.person_ids
        if p in data.persons and data.persons[p].visible
    ]


def _of_member(cell: Callable[[Ctx], Any]) -> Callable[[Ctx], Any]:
    """A person column, read from a selection member's person."""
    return lambda c: cell(Ctx(c.record.person, c.data, c.pres))


# The provider's person columns are named as in the Person archive, except the company's
# (`name`) and the person's own e-mail and phone (`personEmail/…`, `personDirectPhone/…`).
SELECTION_CELLS: Cells = {
    "selectionId": lambda c: c.record.selection_id,
    **{
        name: _of_member(PERSON_CELLS[source])
        for name, source in {
            "personId": "personId", "firstName": "firstName", "lastName": "lastName",
            "fullName": "fullName", "title": "title", "contactId": "contactId",
            "name": "personContact/name", "personEmail/emailAddress": "email/emailAddress",
            "personDirectPhone/formattedNumber": "phone/formattedNumber",
            "personMobilePhone/formattedNumber": "personMobilePhone/formattedNumber",
            "personUpdatedDate": "personUpdatedDate", "personAssociateId": "personAssociateId",
            "retired": "retired",
        }.items()
    },
}  # fmt: skip


CONTACT_CELLS: Cells = {
    "contactId": lambda c: c.record.contact_id,
    "name": lambda c: c.record.name,
    "department": lambda c: c.record.department,
    "nameDepartment": lambda c: f"{c.record.name} {c.record.department}".strip(),
    "orgnr": lambda c: "",
    "updatedDate": lambda c: _utc(c.record.updated),
    "registeredDate": lambda c: _utc(c.record.created),
    "updatedBy": lambda c: c.record.updated_by,
    "registeredBy": lambda c: c.record.created_by,
    "associateId": lambda c: c.record.associate_id,
    "email/emailAddress": lambda c: c.record.emails[0] if c.record.emails else "",
    "phone/formattedNumber": lambda c: c.record.phones[0] if c.record.phones else "",
    "postAddress/city": lambda c: c.record.city,
    "url/URLAddress": lambda c: f"https://www.{c.record.domains[0]}" if c.record.domains else "",
    "contactDeleted": lambda c: False,
}

USER_CELLS: Cells = {
    "associateDbId": lambda c: c.record.associate_id,
    "assocName": lambda c: c.record.username,
    "userName": lambda c: c.record.username,
    "fullName": lambda c: c.record.full_name,
    "personEmail": lambda c: c.record.email,
    "personId": lambda c: c.record.person_id,
    "contactId": lambda c: c.record.contact_id,
    "isActive": lambda c: not c.record.deleted,
    "role": lambda c: c.record.role_name,
    "usergroup": lambda c: c.record.group,
    "assocType": lambda c: c.record.kind,
}


@dataclass(frozen=True)
class Provider:
    name: str
    entity: str
    key: str  # the primary key column
    default_select: tuple[str, ...]
    cells: Cells
    records: Callable[[TenantData], list[Any]]

    @property
    def columns(self) -> dict[str, Column]:
        return documented()[self.name]

    @property
    def served(self) -> set[str]:
        return set(self.cells)

    def rows(self, data: TenantData, pres: Presentation) -> Rows:
        out = []
        for record in self.records(data):
            ctx = Ctx(record, data, pres)
            row = {name: cell(ctx) for name, cell in self.cells.items()}
            row["PrimaryKey"] = row[self.key]
            out.append(row)
        return out


PROVIDERS = {
    p.name.lower(): p
    for p in (
        Provider("FindAppointment", "appointment", "appointmentId",
                 ("appointmentId", "date", "endDate", "type", "text", "associateId",
                  "updatedDate"),
                 APPOINTMENT_CELLS, lambda d: list(d.appointments.values())),
        # soft-deleted persons and companies are left out of every list
        Provider("Person", "person", "personId",
                 ("personId", "fullName", "contactId", "email/emailAddress",
                  "personUpdatedDate"),
                 PERSON_CELLS, lambda d: [p for p in d.persons.values() if p.visible]),
        Provider("SimpleContact", "contact", "contactId",
                 ("contactId", "name", "department", "updatedDate"),
                 CONTACT_CELLS, lambda d: [c for c in d.contacts.values() if c.visible]),
        # The members of static selections: only persons (`staticPerson`) are simulated.
        Provider("ContactPersonStaticSelectionV2", "person", "personId",
                 ("selectionId", "personId", "fullName"),
                 SELECTION_CELLS, _members),
        Provider("AllUsers", "associate", "associateDbId",
                 ("associateDbId", "userName", "fullName", "personEmail", "isActive", "role"),
                 USER_CELLS,
                 lambda d: [a for a in d.associates.values() if a.kind == "InternalAssociate"]),
    )
}  # fmt: skip
PROVIDERS["appointment"] = PROVIDERS["findappointment"]
PROVIDERS["contact"] = PROVIDERS["simplecontact"]
PROVIDERS["user"] = PROVIDERS["allusers"]
