"""Archive providers behind the OData lists: their columns (camelCase archive names, not entity
property names) and rows. Local dates are in the request's SO-TimeZone; updatedDate is UTC."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulators.superoffice.model import TenantData
from simulators.superoffice.odata import ASSOCIATE, BOOL, DATETIME, INT, STRING
from simulators.superoffice.timezones import Presentation

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Provider:
    name: str
    entity: str
    columns: dict[str, str]
    default_select: tuple[str, ...]
    rows: Callable[[TenantData, Presentation], Rows]


def _local(value: dt.datetime, pres: Presentation) -> dt.datetime:
    return value.astimezone(pres.zone).replace(tzinfo=None)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None)


APPOINTMENT_COLUMNS = {
    "appointmentId": INT, "date": DATETIME, "endDate": DATETIME, "time": STRING, "endTime": STRING,
    "type": STRING, "recordType": STRING, "text": STRING, "title": STRING, "associateId": ASSOCIATE,
    "contactId": INT, "personId": INT, "projectId": INT, "saleId": INT, "updatedDate": DATETIME,
    "updatedBy": STRING, "registeredDate": DATETIME, "location": STRING, "isFree": BOOL,
    "alarm": BOOL, "completed": BOOL, "recurring": BOOL, "recurrenceRuleId": INT, "booking": BOOL,
    "visibleFor": STRING, "priority": STRING, "cautionWarning": STRING, "invitedPersonId": INT,
    "userGroup": STRING, "allDay": BOOL, "private": STRING, "contact/name": STRING,
    "person/fullName": STRING, "associate/name": STRING,
}  # fmt: skip


def appointment_rows(data: TenantData, pres: Presentation) -> Rows:
    rows = []
    for a in data.appointments.values():
        owner = data.associates.get(a.associate_id)
        updater = data.associates.get(a.updated_by)
        company = data.contacts.get(a.contact_id)
        person = data.persons.get(a.person_id)
        start, end = _local(a.start, pres), _local(a.end, pres)
        rows.append({
            "PrimaryKey": a.appointment_id, "appointmentId": a.appointment_id,
            "date": start, "endDate": end, "time": start.strftime("%H:%M"),
            "endTime": end.strftime("%H:%M"), "type": a.task, "recordType": a.type,
            "text": a.description, "title": a.title, "associateId": a.associate_id,
            "contactId": a.contact_id, "personId": a.person_id, "projectId": 0, "saleId": 0,
            "updatedDate": _utc(a.updated), "updatedBy": updater.username if updater else "",
            "registeredDate": _utc(a.created), "location": a.location, "isFree": a.is_free,
            "alarm": a.alarm_minutes is not None, "completed": a.completed == "Completed",
            "recurring": bool(a.recurrence_id), "recurrenceRuleId": a.recurrence_id,
            "booking": bool(a.participants), "visibleFor": a.private, "priority": "",
            "cautionWarning": "OK", "invitedPersonId": 0, "userGroup": "",
            "allDay": a.all_day, "private": a.private,
            "contact/name": company.name if company else "",
            "person/fullName": person.full_name if person else "",
            "associate/name": owner.username if owner else "",
        })  # fmt: skip
    return rows


PERSON_COLUMNS = {
    "personId": INT, "firstName": STRING, "lastName": STRING, "fullName": STRING, "title": STRING,
    "position": STRING, "contactId": INT, "contact/name": STRING, "email/emailAddress": STRING,
    "phone/formattedNumber": STRING, "mobilePhone/formattedNumber": STRING,
    "personUpdatedDate": DATETIME, "updatedDate": DATETIME, "registeredDate": DATETIME,
    "retired": BOOL, "associateId": ASSOCIATE, "isAssociate": BOOL,
}  # fmt: skip


def person_rows(data: TenantData, pres: Presentation) -> Rows:
    rows = []
    for p in data.persons.values():
        company = data.contacts.get(p.contact_id)
        rows.append({
            "PrimaryKey": p.person_id, "personId": p.person_id, "firstName": p.firstname,
            "lastName": p.lastname, "fullName": p.full_name, "title": p.title,
            "position": p.position, "contactId": p.contact_id,
            "contact/name": company.name if company else "",
            "email/emailAddress": p.emails[0] if p.emails else "",
            "phone/formattedNumber": p.phones[0] if p.phones else "",
            "mobilePhone/formattedNumber": p.mobiles[0] if p.mobiles else "",
            "personUpdatedDate": _utc(p.updated), "updatedDate": _utc(p.updated),
            "registeredDate": _utc(p.created), "retired": p.retired,
            "associateId": p.associate_id, "isAssociate": bool(p.associate_id),
        })  # fmt: skip
    return rows


CONTACT_COLUMNS = {
    "contactId": INT, "name": STRING, "department": STRING, "nameDepartment": STRING,
    "orgNr": STRING, "updatedDate": DATETIME, "registeredDate": DATETIME, "associateId": ASSOCIATE,
    "email/emailAddress": STRING, "phone/formattedNumber": STRING, "postAddress/city": STRING,
    "contactDeleted": BOOL, "domain": STRING,
}  # fmt: skip


def contact_rows(data: TenantData, pres: Presentation) -> Rows:
    return [
        {
            "PrimaryKey": c.contact_id,
            "contactId": c.contact_id,
            "name": c.name,
            "department": c.department,
            "nameDepartment": f"{c.name} {c.department}".strip(),
            "orgNr": "",
            "updatedDate": _utc(c.updated),
            "registeredDate": _utc(c.created),
            "associateId": c.associate_id,
            "email/emailAddress": c.emails[0] if c.emails else "",
            "phone/formattedNumber": c.phones[0] if c.phones else "",
            "postAddress/city": c.city,
            "contactDeleted": False,
            "domain": c.domains[0] if c.domains else "",
        }  # fmt: skip
        for c in data.contacts.values()
    ]


USER_COLUMNS = {
    "associateDbId": INT, "name": STRING, "userName": STRING, "fullName": STRING,
    "personEmail": STRING, "personId": INT, "contactId": INT, "isActive": BOOL, "role": STRING,
    "userGroup": STRING, "assocType": STRING,
}  # fmt: skip


def user_rows(data: TenantData, pres: Presentation) -> Rows:
    return [
        {
            "PrimaryKey": a.associate_id,
            "associateDbId": a.associate_id,
            "name": a.username,
            "userName": a.username,
            "fullName": a.full_name,
            "personEmail": a.email,
            "personId": a.person_id,
            "contactId": a.contact_id,
            "isActive": not a.deleted,
            "role": a.role_name,
            "userGroup": a.group,
            "assocType": a.kind,
        }  # fmt: skip
        for a in data.associates.values()
        if a.kind == "InternalAssociate"
    ]


PROVIDERS = {
    p.name.lower(): p
    for p in (
        Provider("FindAppointment", "appointment", APPOINTMENT_COLUMNS,
                 ("appointmentId", "date", "endDate", "type", "text", "associateId", "updatedDate"),
                 appointment_rows),
        Provider("Person", "person", PERSON_COLUMNS,
                 ("personId", "fullName", "contactId", "email/emailAddress", "personUpdatedDate"),
                 person_rows),
        Provider("SimpleContact", "contact", CONTACT_COLUMNS,
                 ("contactId", "name", "department", "updatedDate"), contact_rows),
        Provider("AllUsers", "associate", USER_COLUMNS,
                 ("associateDbId", "userName", "fullName", "personEmail", "isActive", "role"),
                 user_rows),
    )
}  # fmt: skip
PROVIDERS["appointment"] = PROVIDERS["findappointment"]
PROVIDERS["contact"] = PROVIDERS["simplecontact"]
PROVIDERS["user"] = PROVIDERS["allusers"]
