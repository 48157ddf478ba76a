"""The simulated CRM's data: one `TenantData` per tenant, records with internal field names.

Recurring appointments are stored the SuperOffice way: one appointment row per occurrence, all
sharing a recurrence rule; an exception is simply an occurrence row that was moved, renamed or
deleted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

from simulators.superoffice import bookings
from simulators.world import superoffice as world


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass
class RecurrenceRule:
    rule_id: int
    rrule: str
    start: dt.datetime  # first occurrence, UTC
    end: dt.datetime  # last occurrence, UTC
    count: int


@dataclass
class Participant:
    associate_id: int = 0
    person_id: int = 0
    contact_id: int = 0
    email: str = ""
    status: str = "Accepted"  # InvitationStatus


@dataclass
class AppointmentRecord:
    appointment_id: int
    associate_id: int
    title: str
    description: str
    start: dt.datetime  # UTC
    end: dt.datetime  # UTC
    created: dt.datetime
    updated: dt.datetime
    created_by: int
    updated_by: int
    location: str = ""
    all_day: bool = False
    private: str = "Public"
    is_free: bool = False
    task: str = "Meeting"
    type: str = "inDiary"
    completed: str = "NotStarted"
    contact_id: int = 0
    person_id: int = 0
    alarm_minutes: int | None = None
    participants: list[Participant] = field(default_factory=list)
    mother_id: int = 0  # 0: no meeting; own id: the mother (owner's) booking; else its mother
    invited_person_id: int = 0  # on a booking: the person invited
    booking_status: str = "None"  # a booking's InvitationStatus (Invitation, Accepted, Moved…)
    recurrence_id: int = 0


@dataclass
class PersonRecord:
    person_id: int
    contact_id: int
    firstname: str
    lastname: str
    emails: list[str]
    phones: list[str]
    mobiles: list[str]
    position: str
    title: str
    created: dt.datetime
    updated: dt.datetime
    created_by: int
    updated_by: int
    associate_id: int = 0  # set when this person is a user (IsAssociate)
    # The person's own "our contact" (PersonEntity.Associate, archive `personAssociateId`),
    # "usually blank": the company's our-contact is the usual owner.
    our_contact_id: int = 0
    retired: bool = False
    deleted: dt.datetime | None = None  # soft-deleted (deletedDate) until purged

    @property
    def visible(self) -> bool:
        return self.deleted is None

    @property
    def full_name(self) -> str:
        return f"{self.firstname} {self.lastname}".strip()


@dataclass
class ContactRecord:
    contact_id: int
    name: str
    department: str
    domains: list[str]
    phones: list[str]
    emails: list[str]
    city: str
    country: str
    associate_id: int
    created: dt.datetime
    updated: dt.datetime
    created_by: int
    updated_by: int
    deleted: dt.datetime | None = None  # soft-deleted (deletedDate) until purged

    @property
    def visible(self) -> bool:
        return self.deleted is None


@dataclass
class AssociateRecord:
    associate_id: int
    username: str
    email: str
    password: str
    person_id: int
    contact_id: int
    full_name: str
    is_administrator: bool
    role_name: str
    group: str
    deleted: bool = False
    kind: str = "InternalAssociate"


@dataclass
class SelectionRecord:
    """A static selection of persons (its members are chosen by hand, not by criteria)."""

    selection_id: int
    name: str
    associate_id: int  # its owner
    person_ids: list[int] = field(default_factory=list)


@dataclass
class ForeignKeyRecord:
    app: str
    device: str
    device_identifier: str
    key: str
    value: str
    table: str
    record_id: int
    created: dt.datetime
    updated: dt.datetime


@dataclass
class WebhookRecord:
    webhook_id: int
    name: str
    events: list[str]
    target_url: str
    secret: str
    state: str
    headers: dict[str, str]
    properties: dict[str, Any]
    registered: dt.datetime
    updated: dt.datetime
    associate_id: int
    total_calls: int = 0
    total_errors: int = 0
    consecutive_errors: int = 0
    last_error: str = ""


@dataclass
class TenantData:
    """Everything one tenant holds, guarded by one lock (requests run in threads)."""

    config: world.Tenant
    associates: dict[int, AssociateRecord] = field(default_factory=dict)
    contacts: dict[int, ContactRecord] = field(default_factory=dict)
    persons: dict[int, PersonRecord] = field(default_factory=dict)
    appointments: dict[int, AppointmentRecord] = field(default_factory=dict)
    rules: dict[int, RecurrenceRule] = field(default_factory=dict)
    selections: dict[int, SelectionRecord] = field(default_factory=dict)
    foreign_keys: list[ForeignKeyRecord] = field(default_factory=list)
    webhooks: dict[int, WebhookRecord] = field(default_factory=dict)
    next_id: int = 100_000
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def context_id(self) -> str:
        return self.config.context_id

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.config.base_time_zone)

    def new_id(self) -> int:
        with self.lock:
            self.next_id += 1
            return self.next_id

    def associate_by_username(self, username: str) -> AssociateRecord | None:
        wanted = username.lower()
        return next(
            (
                a
                for a in self.associates.values()
                if wanted in (a.username.lower(), a.email.lower())
            ),
            None,
        )

    def system_associate(self) -> AssociateRecord:
        return next(a for a in self.associates.values() if a.kind == "SystemAssociate")


def build_tenant(config: world.Tenant) -> TenantData:
    # a copy: /_sim/state may change the tenant's state, the world stays as it was built
    data = TenantData(config=dataclasses.replace(config))
    seeded = utcnow() - dt.timedelta(days=30)
    admin_id = config.associates[0].associate_id if config.associates else 0
    for company in config.companies:
        data.contacts[company.contact_id] = ContactRecord(
            contact_id=company.contact_id,
            name=company.name,
            department=company.department,
            domains=[company.domain],
            phones=[company.phone] if company.phone else [],
            emails=[f"post@{company.domain}"],
            city=company.city,
            country=company.country,
            associate_id=admin_id,
            created=seeded,
            updated=seeded,
            created_by=admin_id,
            updated_by=admin_id,
        )
    for p in config.persons:
        data.persons[p.person_id] = PersonRecord(
            person_id=p.person_id,
            contact_id=p.contact_id,
            firstname=p.firstname,
            lastname=p.lastname,
            emails=[p.email],
            phones=[p.phone] if p.phone else [],
            mobiles=[p.mobile] if p.mobile else [],
            position=p.position,
            title=p.title,
            created=seeded,
            updated=seeded,
            created_by=admin_id,
            updated_by=admin_id,
        )
    # the tenant's own company holds the users' person records
    own_id = 1
    data.contacts[own_id] = ContactRecord(
        own_id, config.name, "", [config.mail_domain], [], [f"info@{config.mail_domain}"],
        "", "Norway", admin_id, seeded, seeded, admin_id, admin_id,
    )  # fmt: skip
    for a in config.associates:
        person_id = 10_000 + a.associate_id
        data.persons[person_id] = PersonRecord(
            person_id, own_id, a.firstname, a.lastname, [a.email], [], [], "", "",
            seeded, seeded, admin_id, admin_id, associate_id=a.associate_id,
        )  # fmt: skip
        data.associates[a.associate_id] = AssociateRecord(
            associate_id=a.associate_id,
            username=a.username,
            email=a.email,
            password=a.password,
            person_id=person_id,
            contact_id=own_id,
            full_name=a.full_name,
            is_administrator=a.is_administrator,
            role_name=a.role_name,
            group=a.group,
            deleted=a.deleted,
        )
    data.associates[9] = AssociateRecord(
        9, "SystemUser", "", "", 0, 0, "System User", True, "System", "Management",
        kind="SystemAssociate",
    )  # fmt: skip
    for seed in config.appointments:
        seed_appointment(data, seed, seeded)
    return data


def _participants(data: TenantData, seed: world.Appointment) -> list[Participant]:
    out = []
    for ref in seed.participants:
        if ref.startswith("person:"):
            person = data.persons[int(ref.removeprefix("person:"))]
            out.append(Participant(person_id=person.person_id, contact_id=person.contact_id))
        elif (assoc := data.associate_by_username(ref)) is not None:
            out.append(Participant(associate_id=assoc.associate_id, person_id=assoc.person_id))
        else:
            out.append(Participant(email=ref, status="Invitation"))
    return out


def seed_appointment(data: TenantData, seed: world.Appointment, when: dt.datetime) -> None:
    owner = data.associate_by_username(seed.owner)
    assert owner is not None, seed.owner
    base = dict(
        associate_id=owner.associate_id,
        description=seed.description,
        created=when,
        updated=when,
        created_by=owner.associate_id,
        updated_by=owner.associate_id,
        location=seed.location,
        all_day=seed.all_day,
        private=seed.private,
        is_free=seed.is_free,
        task=seed.task,
        type=seed.type,
        contact_id=seed.contact_id,
        person_id=seed.person_id,
        alarm_minutes=seed.alarm_minutes,
    )
    start, end = seed.start, seed.end
    if seed.all_day:  # all-day items run from local midnight to midnight
        start = start.replace(hour=0, minute=0)
        end = end.replace(hour=0, minute=0)
    participants = _participants(data, seed)
    if seed.recurrence is None:
        add_appointment(
            data, title=seed.title, start=start, end=end, participants=participants, **base
        )
        return
    duration = end - start
    local_starts = list(rrulestr(seed.recurrence.rrule, dtstart=start.replace(tzinfo=None)))
    rule = RecurrenceRule(
        rule_id=data.new_id(),
        rrule=seed.recurrence.rrule,
        start=local_starts[0].replace(tzinfo=start.tzinfo).astimezone(dt.UTC),
        end=local_starts[-1].replace(tzinfo=start.tzinfo).astimezone(dt.UTC),
        count=len(local_starts),
    )
    data.rules[rule.rule_id] = rule
    for local in local_starts:
        override = seed.recurrence.exceptions.get(local.date(), {})
        if override is None:
            continue  # a deleted occurrence
        occ_start = local.replace(tzinfo=start.tzinfo)
        if "start_hour" in override:
            occ_start = occ_start.replace(hour=int(override["start_hour"]))  # type: ignore[call-overload]
        add_appointment(
            data,
            title=str(override.get("title", seed.title)),
            start=occ_start,
            end=occ_start + duration,
            participants=list(participants),
            recurrence_id=rule.rule_id,
            **base,
        )


def add_appointment(
    data: TenantData,
    *,
    title: str,
    start: dt.datetime,
    end: dt.datetime,
    participants: list[Participant],
    **fields: Any,
) -> AppointmentRecord:
    record = AppointmentRecord(
        appointment_id=data.new_id(),
        title=title,
        start=start.astimezone(dt.UTC),
        end=end.astimezone(dt.UTC),
        participants=participants,
        **fields,
    )
    data.appointments[record.appointment_id] = record
    bookings.sync(data, record)  # one row per participant, the owner's is the mother
    return record
