"""Meetings as SuperOffice stores them: one appointment row per participant.

The owner's row is the mother (`mother_id` = its own id, `invitedPersonId` = the owner's
person); every invited user gets a booking row in their own diary (`associate_id` = them,
`mother_id` = the mother, type BookingForDiary and status Invitation until they answer), every
invited person without a login one with `associate_id` 0 (accepted at once, they cannot log in).
E-mail-only participants have no row. All rows share the meeting's text, time and links; only
the owner changes them, and a change of the mother is written to every booking row.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from simulators.superoffice.errors import ApiError

if TYPE_CHECKING:  # model seeds its meetings through this module
    from simulators.superoffice.model import AppointmentRecord, Participant, TenantData

# fields every row of a meeting has in common
SHARED = ("title", "description", "location", "start", "end", "all_day", "private", "task",
          "contact_id", "person_id", "is_free", "recurrence_id")  # fmt: skip
Key = tuple[str, int]


def _key(p: Participant) -> Key | None:
    if p.associate_id:
        return ("associate", p.associate_id)
    if p.person_id:
        return ("person", p.person_id)
    return None


def bookings_of(data: TenantData, mother: AppointmentRecord) -> list[AppointmentRecord]:
    return [
        a
        for a in data.appointments.values()
        if a.mother_id == mother.appointment_id and a.appointment_id != mother.appointment_id
    ]


def is_booking(record: AppointmentRecord) -> bool:
    return bool(record.mother_id) and record.mother_id != record.appointment_id


def mother_of(data: TenantData, record: AppointmentRecord) -> AppointmentRecord:
    return data.appointments.get(record.mother_id, record) if is_booking(record) else record


def _wanted(data: TenantData, mother: AppointmentRecord) -> dict[Key, Participant]:
    wanted: dict[Key, Participant] = {}
    for p in mother.participants:
        key = _key(p)
        if key is not None and key != ("associate", mother.associate_id):
            wanted.setdefault(key, p)
    return wanted


def _new_booking(data: TenantData, mother: AppointmentRecord, key: Key) -> AppointmentRecord:
    kind, ident = key
    if kind == "associate":
        user = data.associates[ident]
        owner, person, kind_name, status = ident, user.person_id, "BookingForDiary", "Invitation"
    else:
        owner, person, kind_name, status = 0, ident, "inDiary", "Accepted"
    return replace(
        mother,
        appointment_id=data.new_id(),
        associate_id=owner,
        invited_person_id=person,
        type=kind_name,
        booking_status=status,
        participants=[],
        alarm_minutes=None,
        completed="NotStarted",
    )


def sync(
    data: TenantData, mother: AppointmentRecord
) -> tuple[list[AppointmentRecord], list[AppointmentRecord], list[AppointmentRecord]]:
    """Make the booking rows follow the mother's participants and shared fields; returns the
    rows (created, changed, deleted)."""
    for p in mother.participants:
        if p.associate_id and p.associate_id not in data.associates:
            raise ApiError(400, f"Associate id {p.associate_id} not found")
        if p.person_id and p.person_id not in data.persons:
            raise ApiError(400, f"Person id {p.person_id} not found")
    wanted = _wanted(data, mother)
    existing = {
        ("associate", b.associate_id) if b.associate_id else ("person", b.invited_person_id): b
        for b in bookings_of(data, mother)
    }
    if wanted:
        mother.mother_id = mother.appointment_id
        owner = data.associates.get(mother.associate_id)
        mother.invited_person_id = owner.person_id if owner else 0
    else:
        mother.mother_id, mother.invited_person_id = 0, 0
    created, changed = [], []
    for key in wanted:
        booking = existing.get(key)
        if booking is None:
            booking = _new_booking(data, mother, key)
            data.appointments[booking.appointment_id] = booking
            created.append(booking)
            continue
        differs = [f for f in SHARED if getattr(booking, f) != getattr(mother, f)]
        if differs:
            for name in differs:
                setattr(booking, name, getattr(mother, name))
            booking.updated, booking.updated_by = mother.updated, mother.updated_by
            if booking.associate_id and "start" in differs:
                booking.booking_status = "Moved"  # the invitee is asked again
            changed.append(booking)
    deleted = [b for key, b in existing.items() if key not in wanted]
    for booking in deleted:
        del data.appointments[booking.appointment_id]
    return created, changed, deleted


def check_booking_change(before: AppointmentRecord, after: AppointmentRecord) -> None:
    """A participant may keep their own alarm and status, not change the shared meeting."""
    differs = [f for f in SHARED if getattr(before, f) != getattr(after, f)]
    if differs or before.participants != after.participants:
        raise ApiError(
            400,
            f"Appointment {before.appointment_id} is a participant's booking of meeting "
            f"{before.mother_id}: only its owner changes the meeting",
        )
