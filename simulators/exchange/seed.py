"""Loading the demo world's mailboxes into a store, as EWS CreateItem elements a client would send."""

from __future__ import annotations

from lxml import etree

from simulators.world.exchange import Appointment, ContactCard, Organisation, RecurrenceRule

from .operations import Operations
from .recurrence import format_utc
from .store import MailboxUser, Store
from .timezones import windows_id_for
from .xmlns import sub, t


def _recurrence(rule: RecurrenceRule, appointment: Appointment) -> etree._Element:
    local_start = appointment.start
    recurrence = etree.Element(t("Recurrence"))
    if rule.pattern == "daily":
        pattern = sub(recurrence, t("DailyRecurrence"))
        sub(pattern, t("Interval"), str(rule.interval))
    elif rule.pattern == "weekly":
        pattern = sub(recurrence, t("WeeklyRecurrence"))
        sub(pattern, t("Interval"), str(rule.interval))
        sub(pattern, t("DaysOfWeek"), " ".join(rule.days or (local_start.strftime("%A"),)))
        sub(pattern, t("FirstDayOfWeek"), "Monday")
    elif rule.pattern == "monthly":
        pattern = sub(recurrence, t("AbsoluteMonthlyRecurrence"))
        sub(pattern, t("Interval"), str(rule.interval))
        sub(pattern, t("DayOfMonth"), str(local_start.day))
    else:
        pattern = sub(recurrence, t("AbsoluteYearlyRecurrence"))
        sub(pattern, t("DayOfMonth"), str(local_start.day))
        sub(pattern, t("Month"), local_start.strftime("%B"))
    if rule.count:
        series = sub(recurrence, t("NumberedRecurrence"))
        sub(series, t("StartDate"), local_start.date().isoformat())
        sub(series, t("NumberOfOccurrences"), str(rule.count))
    elif rule.until:
        series = sub(recurrence, t("EndDateRecurrence"))
        sub(series, t("StartDate"), local_start.date().isoformat())
        sub(series, t("EndDate"), rule.until.isoformat())
    else:
        series = sub(recurrence, t("NoEndRecurrence"))
        sub(series, t("StartDate"), local_start.date().isoformat())
    return recurrence


def appointment_element(appointment: Appointment) -> etree._Element:
    elem = etree.Element(t("CalendarItem"))
    sub(elem, t("Subject"), appointment.subject)
    sub(elem, t("Sensitivity"), "Private" if appointment.private else "Normal")
    if appointment.body:
        sub(elem, t("Body"), appointment.body, BodyType="Text")
    if appointment.categories:
        categories = sub(elem, t("Categories"))
        for category in appointment.categories:
            sub(categories, t("String"), category)
    sub(elem, t("Importance"), "Normal")
    sub(elem, t("ReminderIsSet"), "true")
    sub(elem, t("ReminderMinutesBeforeStart"), "15")
    sub(elem, t("Start"), format_utc(appointment.start))
    sub(elem, t("End"), format_utc(appointment.end))
    sub(elem, t("IsAllDayEvent"), str(appointment.all_day).lower())
    sub(elem, t("LegacyFreeBusyStatus"), "Free" if appointment.all_day else "Busy")
    if appointment.location:
        sub(elem, t("Location"), appointment.location)
    if appointment.recurrence:
        elem.append(_recurrence(appointment.recurrence, appointment))
    tz_id = windows_id_for(appointment.tz)
    sub(elem, t("StartTimeZone"), Id=tz_id)
    sub(elem, t("EndTimeZone"), Id=tz_id)
    return elem


def contact_element(card: ContactCard) -> etree._Element:
    elem = etree.Element(t("Contact"))
    sub(elem, t("GivenName"), card.given_name)
    if card.company:
        sub(elem, t("CompanyName"), card.company)
    if card.email:
        sub(sub(elem, t("EmailAddresses")), t("Entry"), card.email, Key="EmailAddress1")
    if card.city:
        entry = sub(sub(elem, t("PhysicalAddresses")), t("Entry"), Key="Business")
        sub(entry, t("City"), card.city)
    phones = [
        (k, v)
        for k, v in (("BusinessPhone", card.business_phone), ("MobilePhone", card.mobile_phone))
        if v
    ]
    if phones:
        container = sub(elem, t("PhoneNumbers"))
        for key, number in phones:
            sub(container, t("Entry"), number, Key=key)
    if card.job_title:
        sub(elem, t("JobTitle"), card.job_title)
    sub(elem, t("Surname"), card.surname)
    return elem


def add_items(
    store: Store,
    operations: Operations,
    address: str,
    appointments: list[Appointment],
    contacts: list[ContactCard],
) -> None:
    """Create appointments (series with their exceptions and deletions) and contacts."""
    calendar = store.distinguished(address, "calendar")
    for appointment in appointments:
        master = store.create(calendar, appointment_element(appointment))
        occurrences = operations.renderer.occurrences(master)
        for edit in appointment.edits:
            occ = occurrences[edit.index - 1]
            exception = operations.make_exception(master, occ)
            if edit.subject:
                exception.props["Subject"].text = edit.subject
            exception.props["Start"].text = format_utc(occ.start + edit.shift)
            exception.props["End"].text = format_utc(occ.end + edit.shift)
        for index in appointment.deleted:
            master.deleted_occurrences.add(format_utc(occurrences[index - 1].original_start))
    folder = store.distinguished(address, "contacts")
    for card in contacts:
        store.create(folder, contact_element(card))


def seed(store: Store, operations: Operations, organisation: Organisation) -> None:
    """Create the organisation's mailboxes with their calendars and contacts."""
    with store.lock:
        for mailbox in organisation.mailboxes:
            user = MailboxUser(
                mailbox.address,
                mailbox.password,
                mailbox.display_name,
                mailbox.impersonation,
                mailbox.has_mailbox,
            )
            store.add_mailbox(user)
            if mailbox.has_mailbox:
                add_items(
                    store, operations, mailbox.address, mailbox.appointments, mailbox.contacts
                )
