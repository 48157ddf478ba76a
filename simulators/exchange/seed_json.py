"""`POST /_sim/state {"add": {...}}`: appointments and contacts given as JSON, read into the
world's dataclasses so they are created exactly like the demo world's."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from simulators.world.exchange import Appointment, ContactCard, OccurrenceEdit, RecurrenceRule


def _aware(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r}: give a time with its UTC offset")
    return parsed


def appointment_from_json(data: dict[str, Any]) -> Appointment:
    rule = data.get("recurrence")
    recurrence = None
    if rule:
        recurrence = RecurrenceRule(
            pattern=rule["pattern"],
            interval=int(rule.get("interval", 1)),
            days=tuple(rule.get("days", ())),
            count=rule.get("count"),
            until=date.fromisoformat(rule["until"]) if rule.get("until") else None,
        )
    edits = tuple(
        OccurrenceEdit(
            index=int(e["index"]),
            subject=e.get("subject"),
            shift=timedelta(minutes=int(e.get("shift_minutes", 0))),
        )
        for e in data.get("edits", ())
    )
    return Appointment(
        subject=data["subject"],
        start=_aware(data["start"]),
        end=_aware(data["end"]),
        tz=data.get("tz", "UTC"),
        all_day=bool(data.get("all_day", False)),
        private=bool(data.get("private", False)),
        location=data.get("location", ""),
        body=data.get("body", ""),
        categories=tuple(data.get("categories", ())),
        recurrence=recurrence,
        edits=edits,
        deleted=tuple(int(i) for i in data.get("deleted", ())),
    )


def contact_from_json(data: dict[str, Any]) -> ContactCard:
    fields = ContactCard.__dataclass_fields__
    return ContactCard(**{k: str(v) for k, v in data.items() if k in fields})
