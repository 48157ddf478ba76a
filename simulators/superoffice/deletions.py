"""The soft-delete lifecycle of persons and companies, as SuperOffice documents it.

Deleting a person or a company through the API sets its DeletedDate: from then on it is gone
from every read (entity GETs answer 404, archive lists leave it out) and `*.softdeleted` fires.
Deleting a company soft-deletes its persons with it (restoring it would restore them). After the
retention time (14 days unless the tenant says otherwise) a background job deletes them for
good: `person.deleted` and `contact.deleted` fire (with `Values`, the ids), appointments keep
their row with the person or company link set to 0, and the records' foreign keys are gone.
A person who is a user cannot be deleted, nor the company of one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from simulators.superoffice import events
from simulators.superoffice.errors import ApiError
from simulators.superoffice.model import ContactRecord, PersonRecord, TenantData

RETAIN_DELETED = dt.timedelta(days=14)


@dataclass(frozen=True)
class Event:
    name: str
    primary_key: int
    values: dict[str, Any]
    changes: list[str]


def soft_delete_person(data: TenantData, record: PersonRecord, when: dt.datetime) -> list[Event]:
    if record.associate_id:
        raise ApiError(400, "A person who is a user cannot be deleted")
    before = events.person_root(record)
    record.deleted = when
    changes = events.changes("person_id", before, events.person_root(record))
    return [
        Event("person.softdeleted", record.person_id, events.person_fields(data, record), changes)
    ]


def soft_delete_contact(data: TenantData, record: ContactRecord, when: dt.datetime) -> list[Event]:
    persons = [p for p in data.persons.values() if p.contact_id == record.contact_id and p.visible]
    if any(p.associate_id for p in persons):
        raise ApiError(400, "The company of a user cannot be deleted")
    fired = [e for p in persons for e in soft_delete_person(data, p, when)]
    before = events.contact_root(record)
    record.deleted = when
    changes = events.changes("contact_id", before, events.contact_root(record))
    fired.append(
        Event(
            "contact.softdeleted", record.contact_id, events.contact_fields(data, record), changes
        )
    )
    return fired


def purge(data: TenantData, now: dt.datetime, retain: dt.timedelta = RETAIN_DELETED) -> list[Event]:
    """The nightly hard delete of what was soft-deleted longer than `retain` ago."""
    due = now - retain
    persons = [p for p in data.persons.values() if p.deleted is not None and p.deleted <= due]
    contacts = [c for c in data.contacts.values() if c.deleted is not None and c.deleted <= due]
    fired = [Event("person.deleted", p.person_id, events.person_keys(data, p), []) for p in persons]
    fired += [
        Event("contact.deleted", c.contact_id, events.contact_keys(data, c), []) for c in contacts
    ]
    gone_persons = {p.person_id for p in persons}
    gone_contacts = {c.contact_id for c in contacts}
    for person_id in gone_persons:
        del data.persons[person_id]
    for contact_id in gone_contacts:
        del data.contacts[contact_id]
    for appointment in data.appointments.values():  # ZeroForeignKey: the meeting still happened
        if appointment.person_id in gone_persons:
            appointment.person_id = 0
        if appointment.invited_person_id in gone_persons:
            appointment.invited_person_id = 0
        if appointment.contact_id in gone_contacts:
            appointment.contact_id = 0
        appointment.participants = [
            p for p in appointment.participants if p.person_id not in gone_persons
        ]
    for person in data.persons.values():
        if person.contact_id in gone_contacts:
            person.contact_id = 0
    data.foreign_keys = [
        k
        for k in data.foreign_keys
        if not (k.table == "person" and k.record_id in gone_persons)
        and not (k.table == "contact" and k.record_id in gone_contacts)
    ]
    return fired
