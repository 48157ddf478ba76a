"""Loads the world's calendars and contacts into a fresh store, through the same code paths the
API uses (so seeded data has every server-written field)."""

from __future__ import annotations

from typing import Any

from simulators.google import event_times
from simulators.google.calendar_events import CalendarEvents
from simulators.google.contacts import ContactBookOps
from simulators.google.store import GoogleStore


def seed(store: GoogleStore) -> None:
    for user in store.world.accounts():
        events = CalendarEvents(store, store.calendars[user.email])
        for spec in user.events:
            _seed_event(events, spec)
        book = ContactBookOps(store, user.email)
        for person in user.contacts:
            book.create(person)


def _seed_event(events: CalendarEvents, spec: dict[str, Any]) -> None:
    body = {k: v for k, v in spec.items() if not k.startswith("_")}
    master = events.insert(body)
    all_day = "date" in master["start"]
    for exception in spec.get("_exceptions", []):
        suffix = event_times.instance_suffix(exception["originalStart"], all_day)
        instance_id = f"{master['id']}_{suffix}"
        if exception.get("cancel"):
            events.delete(instance_id, if_match=None)
        else:
            events.modify(instance_id, exception["patch"], replace=False, if_match=None)
