"""Records → the JSON carriers of the REST API (property names as in the Swagger definitions)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from simulators.superoffice import bookings, timezones
from simulators.superoffice.model import (
    AppointmentRecord,
    AssociateRecord,
    ContactRecord,
    ForeignKeyRecord,
    PersonRecord,
    TenantData,
    WebhookRecord,
)
from simulators.superoffice.timezones import Presentation, format_utc

TABLE_RIGHT = {"Mask": "Select, Update, Insert, Delete", "Reason": ""}
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
RRULE_DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


def timespan(minutes: int) -> str:
    """.NET TimeSpan text, as AlarmLeadTime/LeadTime are serialised."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def associate(data: TenantData, associate_id: int) -> dict[str, Any] | None:
    record = data.associates.get(associate_id)
    if record is None:
        return None
    return {
        "AssociateId": record.associate_id,
        "Name": record.username,
        "PersonId": record.person_id,
        "Rank": record.associate_id,
        "Tooltip": record.full_name,
        "Type": record.kind,
        "GroupIdx": 1 if record.group == "Management" else 2,
        "FullName": record.full_name,
        "FormalName": record.full_name,
        "Deleted": record.deleted,
        "EjUserId": 0,
        "UserName": record.username,
    }


def contact_summary(data: TenantData, contact_id: int) -> dict[str, Any] | None:
    record = data.contacts.get(contact_id)
    if record is None or not record.visible:  # soft-deleted: not given back
        return None
    owner = data.associates.get(record.associate_id)
    return {
        "ContactId": record.contact_id,
        "Name": record.name,
        "Department": record.department,
        "OrgNr": "",
        "URL": f"https://www.{record.domains[0]}" if record.domains else "",
        "City": record.city,
        "DirectPhone": record.phones[0] if record.phones else "",
        "AssociateId": record.associate_id,
        "CountryId": 578,
        "EmailAddress": record.emails[0] if record.emails else "",
        "AssociateFullName": owner.full_name if owner else "",
        "CountryName": record.country,
        "FullName": record.name,
        "IsOwnerContact": record.contact_id == 1,
    }


def person_summary(data: TenantData, person_id: int) -> dict[str, Any] | None:
    record = data.persons.get(person_id)
    if record is None or not record.visible:  # soft-deleted: not given back
        return None
    company = data.contacts.get(record.contact_id)
    return {
        "PersonId": record.person_id,
        "Firstname": record.firstname,
        "Lastname": record.lastname,
        "FullName": record.full_name,
        "FormalName": record.full_name,
        "Position": record.position,
        "Title": record.title,
        "Email": record.emails[0] if record.emails else "",
        "DirectPhone": record.phones[0] if record.phones else "",
        "MobilePhone": record.mobiles[0] if record.mobiles else "",
        "ContactId": record.contact_id,
        "ContactName": company.name if company else "",
        "AssociateId": record.associate_id,
        "Retired": int(record.retired),
    }


def _elements(values: list[str]) -> list[dict[str, Any]]:
    return [{"Value": v, "StrippedValue": v.replace(" ", ""), "Description": ""} for v in values]


def _visible_for(data: TenantData, record: AppointmentRecord) -> list[dict[str, Any]]:
    if record.private == "PrivateUser":
        owner = data.associates[record.associate_id]
        return [
            {
                "VisibleId": owner.associate_id,
                "Visibility": "Associate",
                "DisplayValue": owner.full_name,
            }
        ]
    if record.private == "PrivateGroup":
        return [{"VisibleId": 2, "Visibility": "Group", "DisplayValue": "Sales"}]
    return [{"VisibleId": 0, "Visibility": "All", "DisplayValue": "All"}]


def participant(p: Any) -> dict[str, Any]:
    return {
        "AssociateId": p.associate_id,
        "PersonId": p.person_id,
        "ContactId": p.contact_id,
        "EmailId": 0,
        "SendEmail": bool(p.email),
        "InvitationStatus": p.status,
        "EmailAddress": p.email,
        "Description": "",
        "ExternallyOwnedType": "Required",
        "ExternallyOwnedStatus": "Accepted" if p.status == "Accepted" else "NotResponded",
    }


def recurrence(data: TenantData, record: AppointmentRecord, pres: Presentation) -> dict[str, Any]:
    rule = data.rules.get(record.recurrence_id)
    if rule is None:
        return {"RecurrenceId": 0, "IsRecurrence": False, "Pattern": "Unknown", "Dates": []}
    parts = dict(p.split("=", 1) for p in rule.rrule.split(";") if "=" in p)
    freq = parts.get("FREQ", "")
    interval = int(parts.get("INTERVAL", "1"))
    days = [d[-2:] for d in parts.get("BYDAY", "").split(",") if d]
    local_start = rule.start.astimezone(data.zone)
    out: dict[str, Any] = {
        "RecurrenceId": rule.rule_id,
        "StartDate": pres.format_local(rule.start),
        "EndDate": pres.format_local(rule.end),
        "RecurrenceCounter": rule.count,
        "RecurrenceEndType": "Counter",
        "IsRecurrence": True,
        "Dates": [
            {"Date": pres.format_local(a.start), "IsConflict": False, "Description": a.title}
            for a in sorted(data.appointments.values(), key=lambda a: a.start)
            if a.recurrence_id == rule.rule_id and not bookings.is_booking(a)
        ],
    }
    if freq == "DAILY":
        out["Pattern"] = "Daily"
        out["DayPattern"] = {
            "Pattern": "EveryWorkday"
            if days == ["MO", "TU", "WE", "TH", "FR"]
            else "EveryCyclicDay",
            "Cycle": interval,
        }
    elif freq == "WEEKLY":
        # SuperOffice's Weekdays is a flags enum; the Swagger lists single names, so one day is shown
        day = RRULE_DAYS.index(days[0]) if days else local_start.weekday()
        out["Pattern"] = "Weekly"
        out["WeekPattern"] = {"Weekdays": WEEKDAYS[day], "Cycle": interval}
    elif freq == "MONTHLY":
        day = int(parts.get("BYMONTHDAY", local_start.day))
        out["Pattern"] = "Monthly"
        out["MonthPattern"] = {"Pattern": "DayOfMonth", "Cycle": interval, "Day": day}
    elif freq == "YEARLY":
        out["Pattern"] = "Yearly"
        out["YearPattern"] = {"Pattern": "DayOfMonth", "Cycle": interval, "Day": local_start.day}
    else:
        out["Pattern"] = "Custom"
    return out


def appointment(
    data: TenantData, record: AppointmentRecord, pres: Presentation, self_url: str
) -> dict[str, Any]:
    booking = bookings.is_booking(record)
    meeting = bookings.mother_of(data, record)  # a booking shows its meeting's participants
    return {
        "AppointmentId": record.appointment_id,
        "Associate": associate(data, record.associate_id),
        "Contact": contact_summary(data, record.contact_id),
        "Person": person_summary(data, record.person_id),
        "CreatedBy": associate(data, record.created_by),
        "UpdatedBy": associate(data, record.updated_by),
        "CreatedDate": format_utc(record.created),
        "UpdatedDate": format_utc(record.updated),
        "Description": record.description,
        "Title": record.title,
        "Agenda": "",
        "InternalNotes": "",
        "StartDate": pres.format_local(record.start),
        "EndDate": pres.format_local(record.end),
        "ActiveDate": pres.format_local(record.start),
        "MotherId": record.mother_id,
        "Private": record.private,
        "VisibleFor": _visible_for(data, record),
        "Type": record.type,
        "Completed": record.completed,
        "ActiveLinks": 0,
        "Links": [],
        "HasAlarm": record.alarm_minutes is not None,
        "AlarmLeadTime": timespan(record.alarm_minutes or 0),
        "IsFree": record.is_free,
        "IsAlldayEvent": record.all_day,
        "LeadTime": timespan(0),
        "LagTime": timespan(0),
        "Location": record.location,
        "RejectCounter": 0,
        "RejectReason": "",
        "Recurrence": recurrence(data, record, pres),
        "Participants": [participant(p) for p in meeting.participants],
        "AssignmentStatus": "None",
        "InvitationStatus": record.booking_status
        if booking
        else ("Accepted" if record.participants else "None"),
        "BookingType": "Participant" if booking else ("Owner" if record.participants else "None"),
        "HasConflict": False,
        "Task": task_item(record.task, record.type),
        "PreferredTZLocation": timezones.by_iana(data.config.base_time_zone).location_id,
        "IsMileStone": False,
        "CautionWarning": "OK",
        "OwnedExternally": "None",
        "JoinVideomeetUrl": "",
        "CustomFields": {},
        "IsPublished": False,
        "TableRight": TABLE_RIGHT,
        "_Links": {"Self": self_url},
    }


TASKS = ["Meeting", "Phone", "Internal", "Personal", "Event", "Travel", "To-do"]


def task_item(name: str, kind: str) -> dict[str, Any]:
    return {
        "TaskListItemId": TASKS.index(name) + 1 if name in TASKS else 1,
        "Value": name,
        "Direction": "SaintAll",
        "Type": "ToDo" if kind == "inChecklist" else "Appointment",
        "Tooltip": name,
        "Deleted": False,
        "IsDefaultAlldayEvent": name == "Event",
        "IsDefaultFree": name == "Personal",
        "IsDefaultPublished": False,
    }


def person(data: TenantData, record: PersonRecord, self_url: str) -> dict[str, Any]:
    return {
        "PersonId": record.person_id,
        "Firstname": record.firstname,
        "MiddleName": "",
        "Lastname": record.lastname,
        "Mrmrs": "",
        "Title": record.title,
        "FullName": record.full_name,
        "FormalName": record.full_name,
        "CreatedDate": format_utc(record.created),
        "UpdatedDate": format_utc(record.updated),
        "CreatedBy": associate(data, record.created_by),
        "UpdatedBy": associate(data, record.updated_by),
        "Emails": _elements(record.emails),
        "OfficePhones": _elements(record.phones),
        "MobilePhones": _elements(record.mobiles),
        "PrivatePhones": [],
        "OtherPhones": [],
        "Faxes": [],
        "Urls": [],
        "Position": {"Id": 0, "Value": record.position, "Tooltip": record.position}
        if record.position
        else None,
        "Contact": contact_summary(data, record.contact_id),
        "IsAssociate": bool(record.associate_id),
        "CorrespondingAssociate": associate(data, record.associate_id),
        "Associate": associate(data, record.our_contact_id),
        "Retired": record.retired,
        "NoMailing": False,
        "UsePersonAddress": False,
        "Description": "",
        "CustomFields": {},
        "TableRight": TABLE_RIGHT,
        "_Links": {"Self": self_url},
    }


def contact(data: TenantData, record: ContactRecord, self_url: str) -> dict[str, Any]:
    return {
        "ContactId": record.contact_id,
        "Name": record.name,
        "Department": record.department,
        "OrgNr": "",
        "Number1": str(record.contact_id),
        "Number2": "",
        "CreatedDate": format_utc(record.created),
        "UpdatedDate": format_utc(record.updated),
        "CreatedBy": associate(data, record.created_by),
        "UpdatedBy": associate(data, record.updated_by),
        "Associate": associate(data, record.associate_id),
        "Emails": _elements(record.emails),
        "Phones": _elements(record.phones),
        "Faxes": [],
        "Urls": _elements([f"https://www.{d}" for d in record.domains]),
        "Domains": record.domains,
        "Persons": [
            person_summary(data, p.person_id)
            for p in data.persons.values()
            if p.contact_id == record.contact_id and p.visible
        ],
        "Country": {"CountryId": 578, "Name": record.country, "EnglishName": record.country},
        "Address": {"Formatted": record.city},
        "Description": "",
        "Deleted": int(record.deleted is not None),
        "NoMailing": False,
        "CustomFields": {},
        "TableRight": TABLE_RIGHT,
        "_Links": {"Self": self_url},
    }


def principal(data: TenantData, record: AssociateRecord) -> dict[str, Any]:
    """SoPrincipalCarrier: what /User/currentPrincipal returns."""
    functions = ["admin-all", "sync-admin"] if record.is_administrator else []
    return {
        "UserType": record.kind,
        "Associate": record.username,
        "AssociateId": record.associate_id,
        "IsPerson": bool(record.person_id),
        "PersonId": record.person_id,
        "CountryId": 578,
        "HomeCountryId": 578,
        "ContactId": record.contact_id,
        "GroupId": 1 if record.group == "Management" else 2,
        "RoleId": 1 if record.is_administrator else 2,
        "RoleName": record.role_name,
        "RoleDescription": record.role_name,
        "RoleType": "System" if record.kind == "SystemAssociate" else "Employee",
        "Licenses": [],
        "FullName": record.full_name,
        "EMailAddress": record.email,
        "FunctionRights": functions,
        "EjUserId": 0,
        "EjAccessLevel": 0,
        "EjUserStatus": "StatusNone",
        "ProvidedCredentials": [],
        "SecondaryGroups": [],
        "DatabaseContextIdentifier": data.context_id,
        "UserName": record.username,
    }


def user(data: TenantData, record: AssociateRecord, self_url: str) -> dict[str, Any]:
    return {
        "AssociateId": record.associate_id,
        "Name": record.username,
        "UserName": record.username,
        "Rank": record.associate_id,
        "Tooltip": record.full_name,
        "Role": {
            "Id": 1 if record.is_administrator else 2,
            "Value": record.role_name,
            "Tooltip": "",
        },
        "UserGroup": {
            "Id": 1 if record.group == "Management" else 2,
            "Value": record.group,
            "Deleted": False,
        },
        "OtherGroups": [],
        "Person": person_summary(data, record.person_id),
        "Deleted": record.deleted,
        "Type": record.kind,
        "IsPersonRetired": False,
        "IsOnTravel": False,
        "Credentials": [],
        "LicenseOwners": [],
        "NickName": record.username,
        "WaitingForApproval": False,
        "EjUserId": 0,
        "TableRight": TABLE_RIGHT,
        "_Links": {"Self": self_url},
    }


def foreign_key(record: ForeignKeyRecord) -> dict[str, Any]:
    return {
        "Key": record.key,
        "Value": record.value,
        "RecordId": record.record_id,
        "TableName": record.table,
        "CreatedDate": format_utc(record.created),
        "UpdatedDate": format_utc(record.updated),
        "CreatedBy": "",
        "UpdatedBy": "",
        "TableRight": TABLE_RIGHT,
    }


def webhook(data: TenantData, record: WebhookRecord, self_url: str | None) -> dict[str, Any]:
    out = {
        "WebhookId": record.webhook_id,
        "Name": record.name,
        "Events": record.events,
        "TargetUrl": record.target_url,
        "Secret": record.secret,
        "State": record.state,
        "Type": "webhook",
        "Headers": record.headers,
        "Properties": record.properties,
        "Registered": format_utc(record.registered),
        "RegisteredAssociate": associate(data, record.associate_id),
        "Updated": format_utc(record.updated),
        "UpdatedAssociate": associate(data, record.associate_id),
        "ErrorEmails": [],
        "ErrorAssociates": [],
        "Description": "",
        "NotifyVia": "None",
        "NotifyWhen": "None",
        "TotalCalls": record.total_calls,
        "TotalErrors": record.total_errors,
        "ConsecutiveErrors": record.consecutive_errors,
        "LastError": record.last_error,
    }
    if self_url is not None:
        out["_Links"] = {"Self": self_url}
    return out


def time_zone(loc: timezones.Location, at: dt.datetime | None = None) -> dict[str, Any]:
    return {
        "TZLocationID": loc.location_id,
        "Name": loc.name,
        "TZLocationCode": loc.code,
        "TZLocationCities": loc.cities,
        "IsoNumber": 0,
        "TimeZoneSTDRules": {},
        "TimeZoneDSTRules": {},
    }
