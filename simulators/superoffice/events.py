"""What a webhook event says about a record, as the webhook reference pages document it.

`FieldValues` hold only ids and the documented non-sensitive fields of the root row (no names,
no texts, no addresses); a delete carries `Values` with the ids instead. `Changes` lists the
database columns of the root row that changed (with the primary key and the row's `updated`,
`updated_associate_id` and `updatedCount`). Events fire only for changes of the root table:
an edit that only touches a foreign-key table (a person's or company's e-mail addresses, phone
numbers or domains) changes no root column and fires nothing. An appointment's title and
description live in the `text` table, but saving them rewrites the appointment row's stamp
(`updated`, `updatedCount`), so that is an activity.changed listing only the stamp columns.
"""

from __future__ import annotations

import zlib
from typing import Any

from simulators.superoffice.model import AppointmentRecord, ContactRecord, PersonRecord, TenantData
from simulators.superoffice.timezones import format_utc

# database codes of the appointment columns
PRIVATE = {"Public": 0, "PrivateUser": 1, "PrivateGroup": 2}
TYPE = {"inDiary": 1, "inChecklist": 2}
STATUS = {"NotStarted": 1, "Started": 2, "Completed": 3}
NEVER = "0001-01-01T00:00:00"  # DeletedDate of a record that is not deleted
ROW_STAMP = ["updated", "updated_associate_id", "updatedCount"]


def list_id(text: str) -> int:
    """A stable id for a list item the simulator keeps as text (position, task)."""
    return zlib.crc32(text.encode()) % 10_000 + 1 if text else 0


def _deleted(record: PersonRecord | ContactRecord) -> str:
    return format_utc(record.deleted) if record.deleted else NEVER


# --- root-table columns, the ones a change is noticed in --------------------------------------------


def appointment_root(record: AppointmentRecord) -> dict[str, Any]:
    return {
        "do_by": format_utc(record.start), "activeDate": format_utc(record.start),
        "endDate": format_utc(record.end), "location": record.location,
        "alldayEvent": int(record.all_day), "freeBusy": int(record.is_free),
        "private": PRIVATE.get(record.private, 0), "type": TYPE.get(record.type, 1),
        "status": STATUS.get(record.completed, 1), "task_idx": list_id(record.task),
        "associate_id": record.associate_id, "contact_id": record.contact_id,
        "person_id": record.person_id, "hasAlarm": int(record.alarm_minutes is not None),
        "alarm": record.alarm_minutes or 0, "mother_id": record.mother_id,
        "invitedPersonId": record.invited_person_id,
    }  # fmt: skip


def person_root(record: PersonRecord) -> dict[str, Any]:
    return {
        "firstname": record.firstname, "lastname": record.lastname, "title": record.title,
        "position_idx": list_id(record.position), "retired": int(record.retired),
        "contact_id": record.contact_id, "associate_id": record.our_contact_id,
        "DeletedDate": _deleted(record),
    }  # fmt: skip


def contact_root(record: ContactRecord) -> dict[str, Any]:
    return {
        "name": record.name, "department": record.department,
        "associate_id": record.associate_id, "DeletedDate": _deleted(record),
    }  # fmt: skip


def changes(
    primary_key: str, before: dict[str, Any], after: dict[str, Any], *, stamped: bool = False
) -> list[str]:
    """`Changes` of a *.changed event; [] when the root row was not written (no event then).
    `stamped`: the row's stamp was rewritten although no other root column changed."""
    changed = sorted(k for k in after if before.get(k) != after[k])
    return [primary_key, *changed, *ROW_STAMP] if changed or stamped else []


def created(primary_key: str, root: dict[str, Any]) -> list[str]:
    return [primary_key, *sorted(root), *ROW_STAMP]


# --- FieldValues and Values ---------------------------------------------------------------------


def activity_fields(record: AppointmentRecord) -> dict[str, Any]:
    return {
        "activeDate": format_utc(record.start), "associate_id": record.associate_id,
        "contact_id": record.contact_id, "do_by": format_utc(record.start), "document_id": 0,
        "endDate": format_utc(record.end), "modified_appointment_fields": 0,
        "mother_id": record.mother_id, "person_id": record.person_id,
        "private": PRIVATE.get(record.private, 0), "project_id": 0, "sale_id": 0,
        "status": STATUS.get(record.completed, 1), "task_idx": list_id(record.task),
        "type": TYPE.get(record.type, 1), "updated": format_utc(record.updated),
        "userdef_id": 0, "userdef2_id": 0,
    }  # fmt: skip


def activity_keys(record: AppointmentRecord) -> dict[str, Any]:
    """`Values` of activity.deleted."""
    return {"appointment_id": record.appointment_id, "contact_id": record.contact_id,
            "person_id": record.person_id, "project_id": 0, "sale_id": 0}  # fmt: skip


def person_fields(data: TenantData, record: PersonRecord) -> dict[str, Any]:
    company = data.contacts.get(record.contact_id)
    return {
        "activeInterests": 0, "associate_id": company.associate_id if company else 0,
        "business_idx": 0, "category_idx": 0, "contact_id": record.contact_id,
        "country_id": 578, "DeletedDate": _deleted(record), "group_id": 0,
        "person_id": record.person_id, "position_idx": list_id(record.position),
        "registered": format_utc(record.created), "registered_associate_id": record.created_by,
        "retired": int(record.retired), "source": 0, "updated": format_utc(record.updated),
        "updated_associate_id": record.updated_by, "userdef2_id": 0, "userdef_id": 0,
    }  # fmt: skip


def person_keys(data: TenantData, record: PersonRecord) -> dict[str, Any]:
    """`Values` of person.deleted."""
    company = data.contacts.get(record.contact_id)
    return {"associate_id": company.associate_id if company else 0,
            "contact_id": record.contact_id, "person_id": record.person_id}  # fmt: skip


def contact_fields(data: TenantData, record: ContactRecord) -> dict[str, Any]:
    return {
        "activeInterests": 0, "associate_id": record.associate_id, "business_idx": 0,
        "category_idx": 0, "country_id": 578, "deleted": int(record.deleted is not None),
        "DeletedDate": _deleted(record), "registered": format_utc(record.created),
        "registered_associate_id": record.created_by, "source": 0,
        "updated": format_utc(record.updated), "userdef2_id": 0, "userdef_id": 0,
    }  # fmt: skip


def contact_keys(data: TenantData, record: ContactRecord) -> dict[str, Any]:
    """`Values` of contact.deleted."""
    return {"associate_id": record.associate_id, "contact_id": record.contact_id}
