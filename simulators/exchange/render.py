"""Turning stored items into the t:CalendarItem / t:Contact elements a response shape asks for."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from lxml import etree

from .recurrence import Occurrence, expand, format_utc, occurrence_id, parse_utc
from .store import ITEM_CLASSES, Item, Store, ext_key
from .xmlns import local, sub, t


def _names(text: str) -> list[str]:
    return text.split()


# Schema order (types.xsd): ItemType, then CalendarItemType / ContactItemType.
ITEM_ORDER = _names(
    "ItemId ParentFolderId ItemClass Subject Sensitivity Body Attachments DateTimeReceived Size "
    "Categories Importance InReplyTo IsSubmitted IsDraft IsFromMe IsResend IsUnmodified "
    "InternetMessageHeaders DateTimeSent DateTimeCreated ResponseObjects ReminderDueBy "
    "ReminderIsSet ReminderNextTime ReminderMinutesBeforeStart DisplayCc DisplayTo "
    "HasAttachments ExtendedProperty Culture EffectiveRights LastModifiedName LastModifiedTime "
    "IsAssociated WebClientReadFormQueryString WebClientEditFormQueryString ConversationId "
    "UniqueBody"
)
CALENDAR_ORDER = _names(
    "UID RecurrenceId DateTimeStamp Start End OriginalStart IsAllDayEvent LegacyFreeBusyStatus "
    "Location When IsMeeting IsCancelled IsRecurring MeetingRequestWasSent IsResponseRequested "
    "CalendarItemType MyResponseType Organizer RequiredAttendees OptionalAttendees Resources "
    "ConflictingMeetingCount AdjacentMeetingCount ConflictingMeetings AdjacentMeetings Duration "
    "TimeZone AppointmentReplyTime AppointmentSequenceNumber AppointmentState Recurrence "
    "FirstOccurrence LastOccurrence ModifiedOccurrences DeletedOccurrences MeetingTimeZone "
    "StartTimeZone EndTimeZone ConferenceType AllowNewTimeProposal IsOnlineMeeting "
    "MeetingWorkspaceUrl NetShowUrl EnhancedLocation StartWallClock EndWallClock "
    "StartTimeZoneId EndTimeZoneId IntendedFreeBusyStatus JoinOnlineMeetingUrl IsOrganizer"
)
CONTACT_ORDER = _names(
    "FileAs FileAsMapping DisplayName GivenName Initials MiddleName Nickname CompleteName "
    "CompanyName EmailAddresses AbchEmailAddresses PhysicalAddresses PhoneNumbers AssistantName "
    "Birthday BusinessHomePage Children Companies ContactSource Department Generation ImAddresses "
    "JobTitle Manager Mileage OfficeLocation PostalAddressIndex Profession SpouseName Surname "
    "WeddingAnniversary HasPicture PhoneticFullName PhoneticFirstName PhoneticLastName Alias "
    "Notes Photo UserSMIMECertificate MSExchangeCertificate DirectoryId ManagerMailbox "
    "DirectReports"
)
ORDER = {
    "CalendarItem": {n: i for i, n in enumerate(ITEM_ORDER + CALENDAR_ORDER)},
    "Contact": {n: i for i, n in enumerate(ITEM_ORDER + CONTACT_ORDER)},
}
# Indexed field URIs name one entry; the response carries the whole collection element.
INDEXED_CONTAINERS = {
    "EmailAddress": "EmailAddresses",
    "PhoneNumber": "PhoneNumbers",
    "ImAddress": "ImAddresses",
    "PhysicalAddress": "PhysicalAddresses",
}


def element_name(uri: etree._Element) -> str:
    """Element name a FieldURI / IndexedFieldURI refers to ("calendar:Start" -> "Start")."""
    parts = uri.get("FieldURI", "").split(":")
    if local(uri.tag) == "IndexedFieldURI":
        return INDEXED_CONTAINERS.get(parts[1], parts[1])
    return parts[-1]


# What FindItem and SyncFolderItems cannot return, whatever the shape asks: "SyncFolderItems is
# similar to the FindItem operation in that it cannot return properties like Body or
# Attachments" (the SyncFolderItems operation page), and FindItem "does not return a message
# body, attachments, or recipient lists" (Microsoft's EWS support blog, "How to retrieve email
# address from the From and To field of mail item using EWS Managed API"). GetItem returns them.
GET_ITEM_ONLY = frozenset(
    {"Body", "UniqueBody", "Attachments", "RequiredAttendees", "OptionalAttendees", "Resources"}
)


@dataclass
class Shape:
    base: str = "AllProperties"
    names: set[str] = field(default_factory=set)
    extended: list[tuple] = field(default_factory=list)
    summary: bool = False  # FindItem or SyncFolderItems: GetItem-only properties left out

    @classmethod
    def from_xml(cls, elem: etree._Element | None) -> Shape:
        if elem is None:
            return cls()
        shape = cls(base=elem.findtext(t("BaseShape")) or "Default")
        props = elem.find(t("AdditionalProperties"))
        for uri in props if props is not None else ():
            if local(uri.tag) == "ExtendedFieldURI":
                shape.extended.append(ext_key(uri))
            else:
                shape.names.add(element_name(uri))
        return shape

    def wants(self, name: str) -> bool:
        if self.summary and name in GET_ITEM_ONLY:
            return False
        return name == "ItemId" or self.base != "IdOnly" or name in self.names

    @classmethod
    def summary_of(cls, elem: etree._Element | None) -> Shape:
        """The shape of a FindItem or SyncFolderItems answer."""
        shape = cls.from_xml(elem)
        shape.summary = True
        return shape


def _el(name: str, text: str | None = None, **attrs: str) -> etree._Element:
    elem = etree.Element(t(name), attrs)
    if text is not None:
        elem.text = text
    return elem


def _occurrence_element(name: str, item_id: str, occ: Occurrence) -> etree._Element:
    elem = _el(name)
    sub(elem, t("ItemId"), Id=item_id, ChangeKey="")
    sub(elem, t("Start"), format_utc(occ.start))
    sub(elem, t("End"), format_utc(occ.end))
    sub(elem, t("OriginalStart"), format_utc(occ.original_start))
    return elem


class Renderer:
    """Renders items of one store; knows about series and their occurrences."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def occurrences(self, master: Item) -> list[Occurrence]:
        recurrence = master.props.get("Recurrence")
        if recurrence is None or master.text("Start") is None:
            return []
        tz = master.props.get("StartTimeZone")
        tz_id = tz.get("Id") if tz is not None else None
        return expand(
            recurrence, parse_utc(master.text("Start")), parse_utc(master.text("End")), tz_id
        )

    def live_occurrences(self, master: Item) -> list[tuple[Occurrence, Item | None]]:
        """The series as it stands: deleted ones left out, modified ones paired with their exception."""
        result = []
        for occ in self.occurrences(master):
            key = format_utc(occ.original_start)
            if key in master.deleted_occurrences:
                continue
            exception_id = master.exceptions.get(key)
            exception = self.store.items.get(exception_id) if exception_id else None
            if exception is not None:
                occ = Occurrence(
                    occ.index,
                    occ.original_start,
                    parse_utc(exception.text("Start")),
                    parse_utc(exception.text("End")),
                )
            result.append((occ, exception))
        return result

    def _computed(self, item: Item) -> dict[str, etree._Element]:
        user = self.store.users.get(item.mailbox)
        folder = self.store.folders[item.folder_id]
        props = {
            "ItemId": _el("ItemId", Id=item.id, ChangeKey=item.change_key),
            "ParentFolderId": _el("ParentFolderId", Id=folder.id, ChangeKey=folder.change_key),
            "ItemClass": _el("ItemClass", ITEM_CLASSES[item.kind]),
            "Sensitivity": _el("Sensitivity", "Normal"),
            "DateTimeReceived": _el("DateTimeReceived", format_utc(item.created)),
            "Size": _el("Size", str(1024 + 64 * len(item.props))),
            "Importance": _el("Importance", "Normal"),
            "DateTimeCreated": _el("DateTimeCreated", format_utc(item.created)),
            "HasAttachments": _el("HasAttachments", "false"),
            "Culture": _el("Culture", "en-US"),
            "LastModifiedName": _el("LastModifiedName", user.display_name if user else ""),
            "LastModifiedTime": _el("LastModifiedTime", format_utc(item.modified)),
            "IsAssociated": _el("IsAssociated", "false"),
        }
        if item.kind == "CalendarItem":
            props.update(self._calendar_computed(item, user.display_name if user else ""))
        elif item.kind == "Contact":
            given, surname = item.text("GivenName") or "", item.text("Surname") or ""
            display = item.text("DisplayName") or f"{given} {surname}".strip()
            props["DisplayName"] = _el("DisplayName", display)
            props["FileAs"] = _el("FileAs", f"{surname}, {given}" if surname and given else display)
        return props

    def _calendar_computed(self, item: Item, owner_name: str) -> dict[str, etree._Element]:
        is_meeting = any(k in item.props for k in ("RequiredAttendees", "OptionalAttendees"))
        if item.master_id:
            kind = "Exception"
        elif "Recurrence" in item.props:
            kind = "RecurringMaster"
        else:
            kind = "Single"
        props = {
            "IsAllDayEvent": _el("IsAllDayEvent", "false"),
            "LegacyFreeBusyStatus": _el("LegacyFreeBusyStatus", "Busy"),
            "IsMeeting": _el("IsMeeting", str(is_meeting).lower()),
            "IsCancelled": _el("IsCancelled", "false"),
            "IsRecurring": _el("IsRecurring", str(kind != "Single").lower()),
            "MeetingRequestWasSent": _el("MeetingRequestWasSent", "false"),
            "IsResponseRequested": _el("IsResponseRequested", "true"),
            "CalendarItemType": _el("CalendarItemType", kind),
            "MyResponseType": _el("MyResponseType", "Organizer"),
            "AppointmentSequenceNumber": _el("AppointmentSequenceNumber", "0"),
            "AppointmentState": _el("AppointmentState", "1" if is_meeting else "0"),
            "ConflictingMeetingCount": _el("ConflictingMeetingCount", "0"),
            "AdjacentMeetingCount": _el("AdjacentMeetingCount", "0"),
        }
        organizer = _el("Organizer")
        box = sub(organizer, t("Mailbox"))
        sub(box, t("Name"), owner_name)
        sub(box, t("EmailAddress"), item.mailbox)
        sub(box, t("RoutingType"), "SMTP")
        props["Organizer"] = organizer
        if item.text("Start") and item.text("End"):
            seconds = int(
                (parse_utc(item.text("End")) - parse_utc(item.text("Start"))).total_seconds()
            )
            props["Duration"] = _el("Duration", f"PT{seconds // 3600}H{seconds % 3600 // 60}M")
        if item.original_start:
            props["OriginalStart"] = _el("OriginalStart", item.original_start)
        if kind == "RecurringMaster":
            props.update(self._series_computed(item))
        return props

    def _series_computed(self, master: Item) -> dict[str, etree._Element]:
        props: dict[str, etree._Element] = {}
        live = self.live_occurrences(master)
        recurrence = master.props["Recurrence"]
        # A series without an end has no last occurrence to report.
        endless = len(recurrence) > 1 and local(recurrence[1].tag) == "NoEndRecurrence"
        ends = {"FirstOccurrence": 0} if endless else {"FirstOccurrence": 0, "LastOccurrence": -1}
        for name, position in ends.items() if live else ():
            occ, exc = live[position]
            item_id = exc.id if exc else occurrence_id(master.id, occ.original_start)
            props[name] = _occurrence_element(name, item_id, occ)
        modified = [(occ, exc) for occ, exc in live if exc is not None]
        if modified:
            container = _el("ModifiedOccurrences")
            for occ, exc in modified:
                container.append(_occurrence_element("Occurrence", exc.id, occ))
            props["ModifiedOccurrences"] = container
        if master.deleted_occurrences:
            container = _el("DeletedOccurrences")
            for start in sorted(master.deleted_occurrences):
                sub(sub(container, t("DeletedOccurrence")), t("Start"), start)
            props["DeletedOccurrences"] = container
        return props

    def render(
        self, item: Item, shape: Shape, occurrence: Occurrence | None = None
    ) -> etree._Element:
        props = self._computed(item)
        props.update({k: v for k, v in item.props.items()})
        if occurrence is not None:
            # An unmodified occurrence is the master seen at one point of the series.
            oid = occurrence_id(item.id, occurrence.original_start)
            props["ItemId"] = _el("ItemId", Id=oid, ChangeKey=item.change_key)
            props["Start"] = _el("Start", format_utc(occurrence.start))
            props["End"] = _el("End", format_utc(occurrence.end))
            props["OriginalStart"] = _el("OriginalStart", format_utc(occurrence.original_start))
            props["CalendarItemType"] = _el("CalendarItemType", "Occurrence")
            for name in ("Recurrence", "FirstOccurrence", "LastOccurrence", "ModifiedOccurrences"):
                props.pop(name, None)
            props.pop("DeletedOccurrences", None)
        order = ORDER[item.kind]
        chosen = [(order.get(n, len(order)), v) for n, v in props.items() if shape.wants(n)]
        position = order["ExtendedProperty"]
        chosen += [(position, item.extended[k]) for k in shape.extended if k in item.extended]
        elem = etree.Element(t(item.kind))
        for _, child in sorted(chosen, key=lambda pair: pair[0]):
            elem.append(copy.deepcopy(child))
        return elem
