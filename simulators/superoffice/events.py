"""What a webhook event says about a record: the documented `FieldValues` (database column names,
IDs and non-sensitive fields only), the `Values` of a delete, and the changed columns."""

from __future__ import annotations

from typing import Any

from simulators.superoffice.model import AppointmentRecord, ContactRecord, PersonRecord
from simulators.superoffice.timezones import format_utc

# database codes of the appointment columns
PRIVATE = {"Public": 0, "PrivateUser": 1, "PrivateGroup": 2}
TYPE = {"inDiary": 1, "inChecklist": 2}
STATUS = {"NotStarted": 1, "Started": 2, "Completed": 3}


def activity_fields(record: AppointmentRecord) -> dict[str, Any]:
    return {
        "activeDate": format_utc(record.start), "associate_id": record.associate_id,
        "contact_id": record.contact_id, "do_by": format_utc(record.start), "document_id": 0,
        "endDate": format_utc(record.end), "mother_id": record.mother_id,
        "person_id": record.person_id, "private": PRIVATE.get(record.private, 0),
        "project_id": 0, "sale_id": 0, "status": STATUS.get(record.completed, 1),
        "task_idx": 0, "type": TYPE.get(record.type, 1), "updated": format_utc(record.updated),
        "userdef_id": 0, "userdef2_id": 0,
    }  # fmt: skip


def activity_keys(record: AppointmentRecord) -> dict[str, Any]:
    """`Values` of activity.deleted."""
    return {"appointment_id": record.appointment_id, "contact_id": record.contact_id,
            "person_id": record.person_id, "project_id": 0, "sale_id": 0}  # fmt: skip


def person_fields(record: PersonRecord) -> dict[str, Any]:
    return {"person_id": record.person_id, "contact_id": record.contact_id,
            "firstname": record.firstname, "lastname": record.lastname,
            "retired": int(record.retired), "updated": format_utc(record.updated)}  # fmt: skip


def contact_fields(record: ContactRecord) -> dict[str, Any]:
    return {"contact_id": record.contact_id, "name": record.name, "department": record.department,
            "associate_id": record.associate_id, "updated": format_utc(record.updated)}  # fmt: skip


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The columns whose value changed (`updated` always does)."""
    return sorted(k for k in after if before.get(k) != after[k] and k != "updated")
