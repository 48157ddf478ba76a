"""SuperOffice entities ↔ canonical items (`common.items`).

Appointments: `Title` is the subject and `Description` the body (plain text, as the
capabilities declare); `IsFree` is show-as free, else busy; `Private` other than `Public`
(PrivateUser, PrivateGroup) is private; `HasAlarm` + `AlarmLeadTime` the reminder; the
company and person links and the activity type (`Task`) are the CRM fields, the type the
connector is told is the default reading as None (a create without a type gets it).
All-day appointments run from local midnight to local midnight in the tenant's zone, so
their dates are read and written in that zone; timed ones are instants (we ask for offsets).
A meeting's participants are attendees except its organiser, the owner of the mother
appointment. Persons: first, middle and last name, the company's name, the job title
(`Title`), e-mail addresses and office, mobile and private phones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from common.connectors.superoffice.client import parse_updated
from common.connectors.superoffice.people import People, Someone
from common.items import Appointment, Attendee, Contact, Phone, ShowAs, When


class Unmappable(ValueError):
    """An entity the mapping cannot read (a date without an offset, a broken value)."""


def instant(text: Any, name: str) -> datetime:
    """A date we asked for with `includeTZOffset`: it must carry its offset."""
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError as exc:
        raise Unmappable(f"{name} is not a date: {text!r}") from exc
    if value.tzinfo is None:
        raise Unmappable(f"{name} has no offset: {text!r}")
    return value


def minutes_of(timespan: Any) -> int:
    """.NET TimeSpan text (`00:15:00`, `1.02:00:00`) as minutes."""
    match = re.fullmatch(r"(?:(\d+)\.)?(\d+):(\d\d):(\d\d)(?:\.\d+)?", str(timespan or ""))
    if match is None:
        return 0
    days, hours, minutes = int(match.group(1) or 0), int(match.group(2)), int(match.group(3))
    return days * 1440 + hours * 60 + minutes


def timespan(minutes: int) -> str:
    days, rest = divmod(max(0, minutes), 1440)
    text = f"{rest // 60:02d}:{rest % 60:02d}:00"
    return f"{days}.{text}" if days else text


def _id(value: Any, key: str) -> int:
    return int(value.get(key) or 0) if isinstance(value, dict) else 0


def owner_of(entity: dict[str, Any]) -> int:
    return _id(entity.get("Associate"), "AssociateId")


def is_booking(entity: dict[str, Any]) -> bool:
    """A participant's row of somebody else's meeting (MotherId is the mother's id)."""
    mother = int(entity.get("MotherId") or 0)
    return bool(mother) and mother != int(entity.get("AppointmentId") or 0)


@dataclass(frozen=True)
class Tenant:
    """What the mapping needs to know about the tenant."""

    zone: str  # IANA name of the tenant's base zone (all-day items live in it)
    default_task: str = "Meeting"  # the activity type that reads as "none given"
    context: str = ""  # CustNNNNN (or the Onsite name): meeting UIDs are unique per tenant

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)


# --- appointments ---------------------------------------------------------------------------


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def all_day_span(start: datetime, end: datetime, zone: ZoneInfo) -> tuple[date, date]:
    """An all-day item's first day and the day after its last, from its instants."""
    first = local_day(start, zone)
    local_end = end.astimezone(zone)
    after = local_end.date() if local_end.time() == time(0) else local_end.date() + timedelta(1)
    return first, max(after, first + timedelta(days=1))


def midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone)


def attendees_of(entity: dict[str, Any], organizer_id: int, people: People) -> tuple[Attendee, ...]:
    found: list[Attendee] = []
    seen: set[str] = set()
    for p in entity.get("Participants") or []:
        associate_id = int(p.get("AssociateId") or 0)
        if associate_id and associate_id == organizer_id:
            continue
        someone = None
        if associate_id:
            someone = people.user(associate_id)
        elif int(p.get("PersonId") or 0):
            someone = people.person(int(p["PersonId"]))
        email = someone.email if someone else str(p.get("EmailAddress") or "")
        if not email or email.lower() in seen:
            continue
        seen.add(email.lower())
        found.append(
            Attendee(
                email=email,
                name=someone.name if someone else "",
                required=p.get("ExternallyOwnedType") != "Optional",
            )
        )
    return tuple(found)


def appointment(
    entity: dict[str, Any], tenant: Tenant, people: People, organizer_id: int
) -> Appointment:
    """The canonical appointment of one SuperOffice appointment row. `organizer_id` is the
    owner of the meeting's mother row (the row's own owner where it is no booking)."""
    start = instant(entity.get("StartDate"), "StartDate")
    end = instant(entity.get("EndDate"), "EndDate")
    if end < start:
        raise Unmappable(f"EndDate {end} is before StartDate {start}")
    when: tuple[When, When]
    if entity.get("IsAlldayEvent"):
        when = all_day_span(start, end, tenant.tz)
    else:
        when = (start.astimezone(UTC), end.astimezone(UTC))
    task = entity.get("Task") if isinstance(entity.get("Task"), dict) else {}
    task_name = str((task or {}).get("Value") or "") or None
    mother = int(entity.get("MotherId") or 0)
    # A meeting's identity (organiser, UID) only for meetings, as the groupware gives it: an
    # appointment of one's own is no meeting, and its hand-made twin in the mailbox has none.
    organizer = people.user(organizer_id) if organizer_id and mother else None
    alarm = minutes_of(entity.get("AlarmLeadTime")) if entity.get("HasAlarm") else None
    return Appointment(
        subject=str(entity.get("Title") or ""),
        start=when[0],
        end=when[1],
        timezone=tenant.zone,
        body=str(entity.get("Description") or ""),
        location=str(entity.get("Location") or ""),
        private=str(entity.get("Private") or "Public") != "Public",
        show_as=ShowAs.FREE if entity.get("IsFree") else ShowAs.BUSY,
        attendees=attendees_of(entity, organizer_id, people),
        reminder_minutes=alarm,
        crm_person_id=_optional_id(entity.get("Person"), "PersonId"),
        crm_company_id=_optional_id(entity.get("Contact"), "ContactId"),
        activity_type=None if task_name == tenant.default_task else task_name,
        last_modified=parse_updated(str(entity["UpdatedDate"]))
        if entity.get("UpdatedDate")
        else None,
        organizer=organizer.email.lower() if organizer else "",
        uid=f"superoffice:{tenant.context}:{mother}" if mother else None,
    )


def _optional_id(value: Any, key: str) -> str | None:
    found = _id(value, key)
    return str(found) if found else None


def dates_of(item: Appointment, zone: ZoneInfo) -> tuple[str, str]:
    """StartDate and EndDate to send: instants with their offset; an all-day item's days
    as local midnights of the tenant's zone."""
    if item.all_day:
        assert isinstance(item.start, date) and isinstance(item.end, date)
        return midnight(item.start, zone).isoformat(), midnight(item.end, zone).isoformat()
    assert isinstance(item.start, datetime) and isinstance(item.end, datetime)
    return item.start.astimezone(UTC).isoformat(), item.end.astimezone(UTC).isoformat()


def appointment_fields(
    item: Appointment,
    tenant: Tenant,
    people: People,
    owner_id: int,
    current: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The AppointmentEntity properties that carry `item` (a create's body, or what an
    update lays over the current entity)."""
    start, end = dates_of(item, tenant.tz)
    held = str((current or {}).get("Private") or "Public")
    body: dict[str, Any] = {
        "Title": item.subject,
        "Description": item.body,
        "Location": item.location,
        "StartDate": start,
        "EndDate": end,
        "IsAlldayEvent": item.all_day,
        "IsFree": item.show_as is ShowAs.FREE,
        # A private item keeps the kind of privacy it has (a group's, a user's).
        "Private": (held if held != "Public" else "PrivateUser") if item.private else "Public",
        "HasAlarm": item.reminder_minutes is not None,
        "AlarmLeadTime": timespan(item.reminder_minutes or 0),
        "Contact": {"ContactId": int(item.crm_company_id or 0)},
        "Person": {"PersonId": int(item.crm_person_id or 0)},
        "Type": "inDiary",
    }
    if item.activity_type is not None or current is None:
        body["Task"] = {"Value": item.activity_type or tenant.default_task}
    if item.attendees or (current or {}).get("Participants"):
        owner_email = (people.user(owner_id) or Someone("", "")).email.lower()
        invited = [
            people.participant(a.email, a.required)
            for a in item.attendees
            if a.email.strip().lower() != owner_email  # the organiser is the owner row
        ]
        owner = {"AssociateId": owner_id, "ExternallyOwnedType": "Organizer"}
        body["Participants"] = [owner, *invited] if invited else []
    return body


# --- persons ----------------------------------------------------------------------------------

PHONE_LISTS = (("OfficePhones", "work"), ("MobilePhones", "mobile"), ("PrivatePhones", "home"))


def _values(items: Any) -> list[str]:
    return [str(i["Value"]) for i in items or [] if isinstance(i, dict) and i.get("Value")]


def contact(entity: dict[str, Any]) -> Contact:
    company = entity.get("Contact") if isinstance(entity.get("Contact"), dict) else None
    phones = tuple(
        Phone(number, kind) for key, kind in PHONE_LISTS for number in _values(entity.get(key))
    )
    return Contact(
        given_name=str(entity.get("Firstname") or ""),
        family_name=str(entity.get("Lastname") or ""),
        middle_name=str(entity.get("MiddleName") or ""),
        company=str((company or {}).get("Name") or ""),
        job_title=str(entity.get("Title") or ""),
        emails=tuple(_values(entity.get("Emails"))),
        phones=phones,
        last_modified=parse_updated(str(entity["UpdatedDate"]))
        if entity.get("UpdatedDate")
        else None,
    )


def person_fields(item: Contact, company_id: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Firstname": item.given_name,
        "MiddleName": item.middle_name,
        "Lastname": item.family_name,
        "Title": item.job_title,
        "Emails": [{"Value": e} for e in item.emails],
        "Contact": {"ContactId": company_id},
    }
    for key, kind in PHONE_LISTS:
        body[key] = [{"Value": p.number} for p in item.phones if _kind(p.kind) == kind]
    return body


def _kind(kind: str) -> str:
    """Phone kinds SuperOffice has no list for are office numbers."""
    return kind if kind in ("mobile", "home") else "work"
