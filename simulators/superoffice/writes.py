"""Entity JSON from a request body → record fields (POST, PUT and PATCH of the REST API).

PUT is applied like a full carrier from a GET (the fields present are written); PATCH takes a JSON
Merge Patch object or a JSON Patch list (`replace`/`add`/`remove` on top-level properties).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from dateutil.rrule import rrulestr

from simulators.superoffice import carriers
from simulators.superoffice.errors import ApiError
from simulators.superoffice.model import (
    AppointmentRecord,
    ContactRecord,
    Participant,
    PersonRecord,
    RecurrenceRule,
    TenantData,
)
from simulators.superoffice.timezones import Presentation

PRIVATE_VALUES = ("Public", "PrivateUser", "PrivateGroup")


def body_object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict) or not payload:
        raise ApiError(400, "Entity to save is not in request body")
    return payload


def json_patch(current: dict[str, Any], payload: Any) -> dict[str, Any]:
    """Apply a PATCH body to a carrier, returning the properties to write."""
    if isinstance(payload, dict):
        return payload  # JSON Merge Patch: the properties given
    if not isinstance(payload, list):
        raise ApiError(400, "PATCH takes a JSON Patch list or a Merge Patch object")
    changes: dict[str, Any] = {}
    for op in payload:
        path = str(op.get("path", "")) if isinstance(op, dict) else ""
        name = path.strip("/").split("/")[0]
        if not name or op.get("op") not in ("replace", "add", "remove"):
            raise ApiError(400, f"Unsupported JSON Patch operation {op!r}")
        if name not in current:
            raise ApiError(400, f"Unknown property {name!r} in JSON Patch")
        changes[name] = None if op["op"] == "remove" else op.get("value")
    return changes


def _exists(table: dict[int, Any], record_id: int) -> bool:
    """Known and not soft-deleted (a soft-deleted record is as good as gone)."""
    found = table.get(record_id)
    return found is not None and getattr(found, "visible", True)


def _id_of(value: Any, key: str) -> int:
    if isinstance(value, dict):
        return int(value.get(key) or 0)
    return 0


def _timespan_minutes(text: Any) -> int:
    match = re.fullmatch(r"(\d+):(\d\d):(\d\d)", str(text or ""))
    return int(match.group(1)) * 60 + int(match.group(2)) if match else 0


def _date(value: Any, pres: Presentation, name: str) -> dt.datetime:
    try:
        return pres.parse_local(str(value))
    except ValueError as exc:
        raise ApiError(400, f"{name} is not a valid date: {value!r}") from exc


def _participants(data: TenantData, items: Any) -> list[Participant]:
    out = []
    for item in items or []:
        if not isinstance(item, dict):
            raise ApiError(400, "Participants must be ParticipantInfo objects")
        out.append(
            Participant(
                associate_id=int(item.get("AssociateId") or 0),
                person_id=int(item.get("PersonId") or 0),
                contact_id=int(item.get("ContactId") or 0),
                email=str(item.get("EmailAddress") or ""),
                status=str(item.get("InvitationStatus") or "Invitation"),
            )
        )
    return out


def apply_appointment(
    data: TenantData, record: AppointmentRecord, body: dict[str, Any], pres: Presentation
) -> None:
    if "Title" in body:
        record.title = str(body["Title"] or "")
    if "Description" in body:
        record.description = str(body["Description"] or "")
    if "Location" in body:
        record.location = str(body["Location"] or "")
    if body.get("StartDate"):
        record.start = _date(body["StartDate"], pres, "StartDate")
    if body.get("EndDate"):
        record.end = _date(body["EndDate"], pres, "EndDate")
    for key, attr in (("IsAlldayEvent", "all_day"), ("IsFree", "is_free")):
        if key in body and body[key] is not None:
            setattr(record, attr, bool(body[key]))
    if body.get("Private") is not None:
        if body["Private"] not in PRIVATE_VALUES:
            raise ApiError(400, f"Private must be one of {PRIVATE_VALUES}")
        record.private = body["Private"]
    elif body.get("VisibleFor"):
        kinds = {v.get("Visibility") for v in body["VisibleFor"] if isinstance(v, dict)}
        record.private = (
            "PrivateUser"
            if "Associate" in kinds
            else "PrivateGroup"
            if "Group" in kinds
            else "Public"
        )
    if body.get("Type") in ("inDiary", "inChecklist"):
        record.type = body["Type"]
    if body.get("Completed") in ("NotStarted", "Started", "Completed"):
        record.completed = body["Completed"]
    if isinstance(body.get("Task"), dict) and body["Task"].get("Value"):
        record.task = str(body["Task"]["Value"])
    if "Associate" in body and (owner := _id_of(body["Associate"], "AssociateId")):
        if owner not in data.associates:
            raise ApiError(400, f"Associate id {owner} not found")
        record.associate_id = owner
    if "Contact" in body:
        record.contact_id = _id_of(body["Contact"], "ContactId")
        if record.contact_id and not _exists(data.contacts, record.contact_id):
            raise ApiError(400, f"Contact id {record.contact_id} not found")
    if "Person" in body:
        record.person_id = _id_of(body["Person"], "PersonId")
        if record.person_id and not _exists(data.persons, record.person_id):
            raise ApiError(400, f"Person id {record.person_id} not found")
    if "HasAlarm" in body or "AlarmLeadTime" in body:
        has = body.get("HasAlarm", record.alarm_minutes is not None)
        record.alarm_minutes = _timespan_minutes(body.get("AlarmLeadTime")) if has else None
    if "Participants" in body and body["Participants"] is not None:
        record.participants = _participants(data, body["Participants"])
    if record.end < record.start:
        raise ApiError(400, "EndDate is before StartDate")


def recurrence_rrule(info: dict[str, Any]) -> str:
    """RecurrenceInfo (the patterns the carrier emits) → an RRULE for expansion."""
    pattern = info.get("Pattern")
    parts: list[str] = []
    if pattern == "Daily":
        day = info.get("DayPattern") or {}
        parts = ["FREQ=DAILY", f"INTERVAL={int(day.get('Cycle') or 1)}"]
        if day.get("Pattern") == "EveryWorkday":
            parts.append("BYDAY=MO,TU,WE,TH,FR")
    elif pattern == "Weekly":
        week = info.get("WeekPattern") or {}
        names = [w.strip() for w in str(week.get("Weekdays") or "Monday").split(",")]
        days = ",".join(n[:2].upper() for n in names if n in carriers.WEEKDAYS)
        parts = ["FREQ=WEEKLY", f"INTERVAL={int(week.get('Cycle') or 1)}", f"BYDAY={days or 'MO'}"]
    elif pattern == "Monthly":
        month = info.get("MonthPattern") or {}
        parts = ["FREQ=MONTHLY", f"INTERVAL={int(month.get('Cycle') or 1)}",
                 f"BYMONTHDAY={int(month.get('Day') or 1)}"]  # fmt: skip
    elif pattern == "Yearly":
        parts = [
            "FREQ=YEARLY",
            f"INTERVAL={int((info.get('YearPattern') or {}).get('Cycle') or 1)}",
        ]
    else:
        raise ApiError(400, f"Recurrence pattern {pattern!r} is not supported")
    return ";".join(parts)


def expand_recurrence(
    data: TenantData, first: AppointmentRecord, info: dict[str, Any], pres: Presentation
) -> list[AppointmentRecord]:
    """Create the occurrence rows of a new recurring appointment (the first one exists); the
    caller books each one's participants."""
    rule_text = recurrence_rrule(info)
    local_start = first.start.astimezone(pres.zone).replace(tzinfo=None)
    if info.get("RecurrenceEndType") == "EndDate" and info.get("EndDate"):
        until = _date(info["EndDate"], pres, "Recurrence.EndDate").astimezone(pres.zone)
        rule_text += f";UNTIL={until.strftime('%Y%m%dT235959')}"
    else:
        rule_text += f";COUNT={min(int(info.get('RecurrenceCounter') or 10), 500)}"
    starts = list(rrulestr(rule_text, dtstart=local_start))
    if not starts:
        raise ApiError(400, "The recurrence has no occurrences")
    rule = RecurrenceRule(
        data.new_id(), rule_text,
        starts[0].replace(tzinfo=pres.zone).astimezone(dt.UTC),
        starts[-1].replace(tzinfo=pres.zone).astimezone(dt.UTC), len(starts),
    )  # fmt: skip
    data.rules[rule.rule_id] = rule
    duration = first.end - first.start
    made = []
    for index, local in enumerate(starts):
        start = local.replace(tzinfo=pres.zone).astimezone(dt.UTC)
        if index == 0:
            record = first
            record.start, record.end = start, start + duration
        else:
            record = AppointmentRecord(**{**vars(first), "appointment_id": data.new_id(),
                                          "participants": list(first.participants)})  # fmt: skip
            record.start, record.end = start, start + duration
        record.recurrence_id = rule.rule_id
        data.appointments[record.appointment_id] = record
        made.append(record)
    return made


def _element_values(items: Any) -> list[str]:
    return [str(i["Value"]) for i in items or [] if isinstance(i, dict) and i.get("Value")]


def apply_person(data: TenantData, record: PersonRecord, body: dict[str, Any]) -> None:
    for key, attr in (("Firstname", "firstname"), ("Lastname", "lastname"), ("Title", "title")):
        if key in body:
            setattr(record, attr, str(body[key] or ""))
    for key, attr in (
        ("Emails", "emails"),
        ("OfficePhones", "phones"),
        ("MobilePhones", "mobiles"),
    ):
        if key in body:
            setattr(record, attr, _element_values(body[key]))
    if "Position" in body:
        record.position = str((body["Position"] or {}).get("Value") or "")
    if "Retired" in body and body["Retired"] is not None:
        record.retired = bool(body["Retired"])
    if "Associate" in body:
        record.our_contact_id = _id_of(body["Associate"], "AssociateId")
        if record.our_contact_id and record.our_contact_id not in data.associates:
            raise ApiError(400, f"Associate id {record.our_contact_id} not found")
    if "Contact" in body:
        record.contact_id = _id_of(body["Contact"], "ContactId")
        if record.contact_id and not _exists(data.contacts, record.contact_id):
            raise ApiError(400, f"Contact id {record.contact_id} not found")
    if not (record.firstname or record.lastname):
        raise ApiError(400, "A person needs a first or last name")


def apply_contact(data: TenantData, record: ContactRecord, body: dict[str, Any]) -> None:
    for key, attr in (("Name", "name"), ("Department", "department")):
        if key in body:
            setattr(record, attr, str(body[key] or ""))
    for key, attr in (("Emails", "emails"), ("Phones", "phones")):
        if key in body:
            setattr(record, attr, _element_values(body[key]))
    if "Domains" in body and body["Domains"] is not None:
        record.domains = [str(d) for d in body["Domains"]]
    if "Associate" in body and (owner := _id_of(body["Associate"], "AssociateId")):
        record.associate_id = owner
    if not record.name:
        raise ApiError(400, "A company needs a name")
