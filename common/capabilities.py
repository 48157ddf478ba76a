"""What each side can hold of a canonical item (its lossy mappings), declared per connector.

A side that cannot express a value (show-as "elsewhere" in a CRM that knows only busy and
free, a reminder of 7 minutes where only fixed steps exist, an HTML body on a plain-text
side, privacy where there is none) holds the nearest value it has. The engine compares items
only in the *common view* (what both sides can hold), so such a value is never seen as an
edit, and writes with `merge`, which keeps on the target what the source could not express
and always carries what the source really changed.

    project(item, caps)                 what a side with `caps` holds of `item`
    common_view(item, a, b)             the item as both sides can hold it
    agreed_hash(item, a, b)             content hash of the common view over the shared fields
    merge(target, source, sc, tc)       what to write to the target to carry source's change

A create writes `project(source, target_caps)`; an update writes `merge(...)`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar, cast

from common.items import (
    APPOINTMENT_FIELDS,
    CONTACT_FIELDS,
    EXCEPTION_FIELDS,
    TIMING_FIELDS,
    Appointment,
    Contact,
    Recurrence,
    RecurrenceException,
    ShowAs,
    When,
    content_hash,
    content_view,
    is_html,
    is_occurrence,
    occurrence_key,
    text_of,
)

ItemT = TypeVar("ItemT", Appointment, Contact)

ALL_SHOW_AS: frozenset[ShowAs] = frozenset(ShowAs)
BUSY_FREE: frozenset[ShowAs] = frozenset({ShowAs.BUSY, ShowAs.FREE})


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a side keeps (`fields`) and which values of them it can express.

    - `show_as`: the show-as values it has; any other is held as busy (tentative, elsewhere
      and out-of-office all block the time). Busy is always among them.
    - `private`: whether it can hold privacy. If not, it holds every item as not private and
      "private" is not among its fields (so privacy is never compared with it).
    - `reminders`: None for any number of minutes, else the steps it has (a value is held as
      the nearest step; a tie goes to the earlier reminder).
    - `reminder_default`: the reminder it puts on an item written without one (Outlook's 15
      minutes), so that it is no edit; None if it adds none.
    - `body_html`: whether it holds HTML bodies; if not, an HTML body is held as its text.
    - `attendees`: whether it holds attendees (if not, "attendees" is not among its fields).
    - `exception_fields`: which `RecurrenceException` overrides an occurrence of a series can
      have there (only fields it keeps at all); others are held as "as the series".
    - `max_emails`: how many e-mail addresses a contact can have there (the first are kept).

    Timing fields go together: a side that keeps one of start, end, timezone keeps all three.
    """

    fields: frozenset[str]
    show_as: frozenset[ShowAs] = ALL_SHOW_AS
    private: bool = True
    reminders: tuple[int, ...] | None = None
    reminder_default: int | None = None
    body_html: bool = True
    attendees: bool = True
    exception_fields: frozenset[str] = EXCEPTION_FIELDS
    max_emails: int | None = None

    def __post_init__(self) -> None:
        fields = frozenset(self.fields)
        if fields & TIMING_FIELDS:
            fields |= TIMING_FIELDS
        if not self.private:
            fields -= {"private"}
        if not self.attendees:
            fields -= {"attendees"}
        show_as = frozenset(ShowAs(v) for v in self.show_as)
        if ShowAs.BUSY not in show_as:
            raise ValueError("every side can show an item as busy")
        reminders = None
        if self.reminders is not None:
            reminders = tuple(sorted(set(self.reminders)))
            if not reminders:
                raise ValueError("reminder steps, if given, cannot be empty (use no field)")
        unknown = frozenset(self.exception_fields) - EXCEPTION_FIELDS
        if unknown:
            raise ValueError(f"not exception fields: {sorted(unknown)}")
        if self.max_emails is not None and self.max_emails < 1:
            raise ValueError("max_emails must be at least 1")
        object.__setattr__(self, "fields", fields)
        object.__setattr__(self, "private", "private" in fields)
        object.__setattr__(self, "attendees", "attendees" in fields)
        object.__setattr__(self, "show_as", show_as)
        object.__setattr__(self, "reminders", reminders)
        object.__setattr__(self, "exception_fields", frozenset(self.exception_fields) & fields)

    @classmethod
    def full(cls, kind: type[Appointment] | type[Contact] = Appointment) -> Capabilities:
        """A side that holds everything as it is (the in-memory service)."""
        return cls(APPOINTMENT_FIELDS if kind is Appointment else CONTACT_FIELDS)


# --- the real services ----------------------------------------------------------------------------
# Sources: /work/shared/reference/{superoffice,microsoft,google_tls}.md, the SuperOffice Swagger
# files (specs/superoffice/Swagger-v1-Appointment.json), the Calendar v3 discovery document
# shipped in google-api-python-client, and exchangelib's field definitions. Where they say
# nothing, the choice is the conservative one (declaring less than a side holds loses at worst
# the carrying of a rare edit; declaring more makes a value it drops look like an edit forever)
# and the comment says so.

_CRM_ONLY = frozenset({"crm_person_id", "crm_company_id", "activity_type"})

SUPEROFFICE_APPOINTMENT = Capabilities(
    # No categories: SuperOffice has an activity type (`Task`), which is `activity_type`, not
    # free categories. It keeps the person and company links and the type.
    fields=APPOINTMENT_FIELDS - {"categories"},
    # `IsFree` is a boolean ("True if free, false if busy"): busy and free only. (The sync
    # carrier's `IsTentative` is an invitation's state, not a show-as a user sets.)
    show_as=BUSY_FREE,
    # `Private` Public|PrivateUser|PrivateGroup and `VisibleFor`; the user needs the
    # "Confidential activities" licence (InfoBridge KB 202745891).
    private=True,
    # `HasAlarm` + `AlarmLeadTime` (a TimeSpan string): any number of minutes. The reference
    # does not say that a create without an alarm gets one from the user's preferences (only
    # `GET /Appointment/default` pre-fills); the connector writes `HasAlarm` explicitly.
    reminders=None,
    reminder_default=None,
    # `Description` is a string; the reference says formatted descriptions are carried "where
    # both sides support them" without saying the REST API stores HTML: held as plain text.
    body_html=False,
    # `Participants[]`: associates, persons, or an `EmailAddress`; `ExternallyOwnedType`
    # Required|Optional.
    attendees=True,
    # Each occurrence is its own appointment (`UpdateAppointmentWithMode` takes one
    # occurrence's id, `UpdateMode: OnlyThis`), so an occurrence holds all its own fields.
    exception_fields=EXCEPTION_FIELDS,
)

GRAPH_EVENT = Capabilities(
    # No CRM links or CRM type (they could live in extended properties; the stamp does).
    fields=APPOINTMENT_FIELDS - _CRM_ONLY,
    # showAs free|tentative|busy|oof|workingElsewhere|unknown (unknown is read as busy).
    show_as=ALL_SHOW_AS,
    # sensitivity normal|personal|private|confidential.
    private=True,
    # reminderMinutesBeforeStart (any minutes) with isReminderOn. The default is the
    # mailbox's (Outlook's is 15 minutes); the reference does not give it: 15, as Outlook.
    # A connector that knows a mailbox's own default may declare it with dataclasses.replace.
    reminders=None,
    reminder_default=15,
    # body{contentType: text|html, content}.
    body_html=True,
    attendees=True,
    # An exception is a full event (type "exception"); whether its sensitivity can differ
    # from the series' is not in the reference (Outlook sets privacy on the series): not
    # compared per occurrence.
    exception_fields=EXCEPTION_FIELDS - {"private"},
)

EWS_APPOINTMENT = Capabilities(
    fields=APPOINTMENT_FIELDS - _CRM_ONLY,
    # LegacyFreeBusyStatus Free|Tentative|Busy|OOF|WorkingElsewhere|NoData (WorkingElsewhere
    # from Exchange 2013, so on every server we support; NoData is read as busy).
    show_as=ALL_SHOW_AS,
    # Sensitivity Normal|Personal|Private|Confidential.
    private=True,
    # ReminderIsSet + ReminderMinutesBeforeStart (any minutes; Exchange's default is 15,
    # not stated in the reference).
    reminders=None,
    reminder_default=15,
    # Body with BodyType HTML or Text.
    body_html=True,
    attendees=True,
    # ModifiedOccurrences are full calendar items; privacy per occurrence as for Graph.
    exception_fields=EXCEPTION_FIELDS - {"private"},
)

GOOGLE_EVENT = Capabilities(
    # No categories (only a colorId) and no CRM links.
    fields=APPOINTMENT_FIELDS - _CRM_ONLY - {"categories"},
    # transparency opaque|transparent: "Show me as Busy / Available".
    show_as=BUSY_FREE,
    # visibility default|public|private|confidential.
    private=True,
    # reminders.overrides[].minutes 0..40320 (any minutes). Google says whether the
    # calendar's default applies (reminders.useDefault) instead of writing a number, and the
    # reference gives no default: none declared; the connector writes "no reminder" as
    # useDefault=false without overrides.
    reminders=None,
    reminder_default=None,
    # The description "can contain HTML", but Google shows only a small subset (the
    # reference calls it plain-ish); Outlook's HTML documents are not written there: text.
    body_html=False,
    attendees=True,
    # An instance is a full event (recurringEventId + originalStartTime), but "changing the
    # visibility of a single instance ... can affect all instances" (discovery document):
    # privacy is not compared per occurrence.
    exception_fields=EXCEPTION_FIELDS - {"private"},
)

# Contacts. A person in SuperOffice keeps every canonical field (Firstname, MiddleName,
# Lastname, the company's Name, a position/title, Emails[], the phone lists, an Address).
SUPEROFFICE_PERSON = Capabilities(fields=CONTACT_FIELDS)
# Outlook contacts (Graph and EWS) have three e-mail slots (EmailAddress1..3); the reference
# does not list them, exchangelib's EmailAddressKey does. The CRM id is not a contact field
# there (our stamp is an extended property).
GRAPH_CONTACT = Capabilities(fields=CONTACT_FIELDS - {"crm_person_id"}, max_emails=3)
EWS_CONTACT = Capabilities(fields=CONTACT_FIELDS - {"crm_person_id"}, max_emails=3)
# People API: names, organizations, emailAddresses, phoneNumbers, addresses (no limit given).
GOOGLE_CONTACT = Capabilities(fields=CONTACT_FIELDS - {"crm_person_id"})


# --- values ----------------------------------------------------------------------------------------


def nearest_show_as(value: ShowAs, held: frozenset[ShowAs]) -> ShowAs:
    """The show-as a side with `held` values shows for `value`: itself, else busy."""
    return value if value in held else ShowAs.BUSY


def nearest_reminder(minutes: int, steps: tuple[int, ...]) -> int:
    """The step nearest `minutes`; between two, the larger (the reminder comes no later)."""
    return min(steps, key=lambda step: (abs(step - minutes), -step))


def _reminder(minutes: int | None, caps: Capabilities, *, series: bool = True) -> int | None:
    if minutes is None and series:
        minutes = caps.reminder_default
    if minutes is not None and caps.reminders is not None:
        minutes = nearest_reminder(minutes, caps.reminders)
    return minutes


def _project_exception(exc: RecurrenceException, caps: Capabilities) -> RecurrenceException:
    changes: dict[str, Any] = {}
    for name in EXCEPTION_FIELDS:
        value = getattr(exc, name)
        if value is None:
            continue
        if name not in caps.exception_fields:
            held: Any = None
        elif name == "show_as":
            held = nearest_show_as(ShowAs(value), caps.show_as)
        elif name == "reminder_minutes":
            held = _reminder(value, caps, series=False)
        elif name == "body" and not caps.body_html and is_html(value):
            held = text_of(value)
        else:
            held = value
        if held != value:
            changes[name] = held
    return dataclasses.replace(exc, **changes) if changes else exc


def _project_recurrence(rec: Recurrence, caps: Capabilities) -> Recurrence:
    exceptions = tuple(_project_exception(e, caps) for e in rec.exceptions)
    return rec if exceptions == rec.exceptions else dataclasses.replace(rec, exceptions=exceptions)


def _project_appointment(item: Appointment, caps: Capabilities) -> Appointment:
    held = caps.fields
    changes: dict[str, Any] = {}
    if "show_as" in held:
        shown = nearest_show_as(item.show_as, caps.show_as)
        if shown != item.show_as:
            changes["show_as"] = shown
    if not caps.private and item.private:
        changes["private"] = False
    if "reminder_minutes" in held:
        reminder = _reminder(item.reminder_minutes, caps)
        if reminder != item.reminder_minutes:
            changes["reminder_minutes"] = reminder
    if "body" in held and not caps.body_html and is_html(item.body):
        changes["body"] = text_of(item.body)
    if not caps.attendees and item.attendees:
        changes["attendees"] = ()
    if "recurrence" in held and item.recurrence is not None:
        rec = _project_recurrence(item.recurrence, caps)
        if rec is not item.recurrence:
            changes["recurrence"] = rec
    return dataclasses.replace(item, **changes) if changes else item


def _project_contact(item: Contact, caps: Capabilities) -> Contact:
    limit = caps.max_emails
    if limit is not None and "emails" in caps.fields and len(item.emails) > limit:
        return dataclasses.replace(item, emails=item.emails[:limit])
    return item


def project(item: ItemT, caps: Capabilities) -> ItemT:
    """What a side with `caps` would hold of `item`: each value it cannot express as the
    nearest one it has. Fields it does not keep are left as they are (no comparison with it
    looks at them)."""
    if isinstance(item, Appointment):
        return cast(ItemT, _project_appointment(item, caps))
    return cast(ItemT, _project_contact(item, caps))


# --- the common view ---------------------------------------------------------------------------


def common_fields(a: Capabilities, b: Capabilities) -> frozenset[str]:
    """The fields both sides keep."""
    return a.fields & b.fields


def common_view(item: ItemT, a: Capabilities, b: Capabilities) -> ItemT:
    """The item as both sides can hold it.

    A reminder that is either side's default counts as no reminder (and no reminder as the
    default): a side that puts its default on an item written without one has made no edit.
    (So on such a side, switching a reminder off, or setting exactly the default, is not seen
    either: the two cannot be told apart.)"""
    view = project(project(item, a), b)
    if not isinstance(view, Appointment) or "reminder_minutes" not in common_fields(a, b):
        return view
    # What each side makes of "no reminder", as the other holds it, in either order.
    defaults = {
        _reminder(_reminder(d, first), second)
        for d in (None, a.reminder_default, b.reminder_default)
        for first, second in ((a, b), (b, a))
    } - {None}
    if view.reminder_minutes is not None and view.reminder_minutes in defaults:
        view = dataclasses.replace(view, reminder_minutes=None)
    if view.reminder_minutes is None and view.recurrence is not None and defaults:
        rec = view.recurrence
        exceptions = tuple(
            dataclasses.replace(e, reminder_minutes=None) if e.reminder_minutes in defaults else e
            for e in rec.exceptions
        )
        if exceptions != rec.exceptions:
            view = dataclasses.replace(
                view, recurrence=dataclasses.replace(rec, exceptions=exceptions)
            )
    return cast(ItemT, view)


def agreed_hash(item: ItemT, a: Capabilities, b: Capabilities) -> str:
    """The content hash over what both sides keep and can express."""
    return content_hash(common_view(item, a, b), common_fields(a, b))


def agree(x: ItemT, y: ItemT, a: Capabilities, b: Capabilities) -> bool:
    """Whether two items (one from each side, or two versions) are the same in the common
    view of sides `a` and `b`."""
    return agreed_hash(x, a, b) == agreed_hash(y, a, b)


# --- merge ----------------------------------------------------------------------------------------


def merge(
    current_target: ItemT, source: ItemT, source_caps: Capabilities, target_caps: Capabilities
) -> ItemT:
    """What to write to the target to carry the source's change.

    For each field both sides keep: where the two items already agree in the common view,
    the target keeps its own value (so what the source could not express is never lost on
    the target: its show-as "elsewhere" against a CRM's busy, its HTML body against the same
    text, its default reminder); where they differ, the source's value is taken, as the
    target holds it. Fields the source side does not keep stay as the target has them.
    Timing (start, end, timezone) is taken together; a series is merged occurrence by
    occurrence, so an occurrence's values the source cannot express are kept too.
    """
    shared = common_fields(source_caps, target_caps)
    target_view = content_view(common_view(current_target, source_caps, target_caps), shared)
    source_view = content_view(common_view(source, source_caps, target_caps), shared)
    written = project(source, target_caps)
    changes: dict[str, Any] = {}
    for name in sorted(shared - TIMING_FIELDS - {"recurrence"}):
        if target_view[name] != source_view[name]:
            changes[name] = getattr(written, name)
    if any(target_view[name] != source_view[name] for name in shared & TIMING_FIELDS):
        changes.update({name: getattr(written, name) for name in TIMING_FIELDS})
    # A series is merged when it differs, and also when the series' own values or timing
    # change: an occurrence that showed the old value must follow (or keep its own).
    series_changed = bool(changes.keys() & (EXCEPTION_FIELDS | TIMING_FIELDS))
    if "recurrence" in shared and (
        target_view["recurrence"] != source_view["recurrence"] or series_changed
    ):
        assert isinstance(current_target, Appointment) and isinstance(written, Appointment)
        assert isinstance(source, Appointment)
        timed = dataclasses.replace(current_target, **changes)
        changes["recurrence"] = _merge_recurrence(
            timed, current_target, source, written, source_caps, target_caps
        )
    if not changes:
        return current_target
    return dataclasses.replace(current_target, **changes)


def _merge_recurrence(
    timed: Appointment,
    target: Appointment,
    source: Appointment,
    written: Appointment,
    source_caps: Capabilities,
    target_caps: Capabilities,
) -> Recurrence | None:
    """The series to write: rule and deletions as the source has them where they differ,
    each occurrence merged field by field like an item. `timed` is the target with the
    series' fields already merged.

    An occurrence's value is compared as it shows (its own, else the series'), so a series
    edit reaches the occurrences that followed the series, and an occurrence value the source
    cannot express is kept while it shows the same there."""
    t_rec, w_rec = target.recurrence, written.recurrence
    if t_rec is None or w_rec is None:
        return w_rec
    t_full = content_view(common_view(target, source_caps, target_caps))
    s_full = content_view(common_view(source, source_caps, target_caps))
    t_view, s_view = t_full["recurrence"], s_full["recurrence"]
    rule = t_rec.rule if t_view["rule"] == s_view["rule"] else w_rec.rule
    # The target's own deletions are kept where they agree, unless the series moved (one
    # that deleted no occurrence before might delete one now).
    moved = any(getattr(timed, name) != getattr(target, name) for name in TIMING_FIELDS)
    exclusions = w_rec.exclusions
    if t_view["exclusions"] == s_view["exclusions"] and not moved:
        shown = set(t_view["exclusions"])  # a stale one (of no occurrence) is dropped
        exclusions = frozenset(w for w in t_rec.exclusions if occurrence_key(w) in shown)
    # An exception of an occurrence the target deleted shows nowhere: it is not revived.
    t_exc = {
        occurrence_key(e.original_start): e
        for e in t_rec.exceptions
        if e.original_start not in t_rec.exclusions
    }
    w_exc = {occurrence_key(e.original_start): e for e in w_rec.exceptions}
    t_views: dict[str, dict[str, Any]] = t_view["exceptions"]
    s_views: dict[str, dict[str, Any]] = s_view["exceptions"]
    shared = source_caps.exception_fields & target_caps.exception_fields
    duration = _duration(timed)

    def shows(views: dict[str, Any] | None, full: dict[str, Any], name: str) -> Any:
        own = None if views is None else views[name]
        return full[name] if own is None else own

    merged: list[tuple[RecurrenceException, bool]] = []  # (exception, the source has it)
    for key in set(t_exc) | set(s_views):
        s_v, t_v, mine, theirs = s_views.get(key), t_views.get(key), t_exc.get(key), w_exc.get(key)
        if mine is None:
            if theirs is not None:
                merged.append((theirs, True))
            continue
        changes: dict[str, Any] = {}
        s_timing = None if s_v is None else (s_v["start"], s_v["end"])
        t_timing = None if t_v is None else (t_v["start"], t_v["end"])
        if s_timing != t_timing:
            if theirs is not None and s_v is not None:
                changes.update(start=theirs.start, end=theirs.end)
            else:  # moved here, not (any more) at the source: back to its place
                changes.update(start=mine.original_start, end=_end(mine.original_start, duration))
        for name in EXCEPTION_FIELDS:
            series_moves = getattr(timed, name) != getattr(target, name)
            if name in shared:
                if shows(s_v, s_full, name) != shows(t_v, t_full, name):
                    changes[name] = None if theirs is None else getattr(theirs, name)
                elif getattr(mine, name) is None and series_moves:
                    # It shows the same on both sides, the series' old value: keep it so.
                    changes[name] = getattr(target, name)
            elif series_moves and getattr(mine, name) == getattr(target, name):
                # The occurrence only repeated the series (Graph and EWS fill in every field
                # of an exception); it follows the series' new value.
                changes[name] = None
        merged.append((dataclasses.replace(mine, **changes) if changes else mine, s_v is not None))

    result = dataclasses.replace(timed, recurrence=Recurrence(rule, exclusions, ()))
    excluded = set(exclusions)
    kept = tuple(
        sorted(
            (
                exc
                for exc, sourced in merged
                if exc.original_start not in excluded
                and (sourced or is_occurrence(result, exc.original_start))
            ),
            key=lambda e: occurrence_key(e.original_start),
        )
    )
    return Recurrence(rule, exclusions, kept)


def _duration(item: Appointment) -> timedelta:
    if isinstance(item.start, datetime) and isinstance(item.end, datetime):
        return item.end - item.start
    return _as_date(item.end) - _as_date(item.start)


def _as_date(value: When) -> date:
    return value.date() if isinstance(value, datetime) else value


def _end(original: When, duration: timedelta) -> When:
    return original + duration
