"""EWS writes: CreateItem, UpdateItem (change keys, occurrences and exceptions), DeleteItem."""

from __future__ import annotations

import copy

from lxml import etree

from .access import Caller, MailboxAccess, Target
from .meetings import (
    SEND_CANCELLATIONS,
    SEND_INVITATIONS,
    SEND_UPDATES,
    MeetingTransport,
    attendees,
    required,
)
from .recurrence import Occurrence, format_utc, occurrence_id, parse_utc
from .render import element_name
from .schema import enumerated
from .soap import error, response_root, success
from .store import Item, Store, StoreError, change_key_version, ext_key
from .xmlns import local, m, sub, t

# Changing any of these on a series master redefines the series.
SERIES_SHAPE = {"Recurrence", "Start", "End", "StartTimeZone", "EndTimeZone"}


RESOLUTIONS = {"NeverOverwrite", "AutoResolve", "AlwaysOverwrite"}


class WriteOperations(MailboxAccess):
    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.transport = MeetingTransport(store)

    # --- CreateItem -------------------------------------------------------------------------
    def create_item(self, op: etree._Element, caller: Caller) -> etree._Element:
        invitations = enumerated(op, "SendMeetingInvitations", SEND_INVITATIONS)
        root, messages = response_root("CreateItem")
        saved = op.find(m("SavedItemFolderId"))
        for element in op.find(m("Items")):
            try:
                kind = local(element.tag)
                default = "calendar" if kind == "CalendarItem" else "contacts"
                if kind == "CalendarItem":
                    required(
                        invitations,
                        "ErrorSendMeetingInvitationsRequired",
                        "SendMeetingInvitations",
                        "CreateItem",
                    )
                if saved is not None:
                    folder = self._folder(saved[0], caller)
                else:
                    folder = self.store.distinguished(caller.mailbox, default)
                self._validate(element)
                item = self.store.create(folder, element)
                if invitations is not None:
                    self.transport.invite(item, invitations)
            except StoreError as exc:
                error(messages, "CreateItem", exc.code, exc.text)
                continue
            items = sub(success(messages, "CreateItem"), m("Items"))
            sub(sub(items, t(item.kind)), t("ItemId"), Id=item.id, ChangeKey=item.change_key)
        return root

    @staticmethod
    def _validate(element: etree._Element) -> None:
        start, end = element.findtext(t("Start")), element.findtext(t("End"))
        if start and end and parse_utc(end) < parse_utc(start):
            raise StoreError(
                "ErrorCalendarEndDateIsEarlierThanStartDate",
                "EndDate is earlier than StartDate",
            )

    # --- UpdateItem -------------------------------------------------------------------------
    def update_item(self, op: etree._Element, caller: Caller) -> etree._Element:
        resolution = enumerated(op, "ConflictResolution", RESOLUTIONS) or "AutoResolve"
        sending = enumerated(op, "SendMeetingInvitationsOrCancellations", SEND_UPDATES)
        root, messages = response_root("UpdateItem")
        for change in op.find(m("ItemChanges")):
            try:
                item, conflicts = self._apply_change(change, resolution, sending, caller)
            except StoreError as exc:
                error(messages, "UpdateItem", exc.code, exc.text)
                continue
            msg = success(messages, "UpdateItem")
            items = sub(msg, m("Items"))
            sub(sub(items, t(item.kind)), t("ItemId"), Id=item.id, ChangeKey=item.change_key)
            sub(sub(msg, m("ConflictResults")), t("Count"), str(conflicts))
        return root

    def _apply_change(
        self, change: etree._Element, resolution: str, sending: str | None, caller: Caller
    ) -> tuple[Item, int]:
        id_elem = change[0]
        target = self._target(id_elem, caller)
        given_key = id_elem.get("ChangeKey")
        if given_key is None:
            # "For SendItem, UpdateItem, and UpdateFolder operations, the caller must pass in a
            # correct and current change key … even when conflict resolution is set to always
            # overwrite" (ResponseCode reference); the ItemId page says the same for AutoResolve.
            raise StoreError(
                "ErrorChangeKeyRequiredForWriteOperations",
                "The change key is required for this operation.",
            )
        if target.item.kind == "CalendarItem":
            required(
                sending,
                "ErrorSendMeetingInvitationsOrCancellationsRequired",
                "SendMeetingInvitationsOrCancellations",
                "UpdateItem",
            )
        updates = change.find(t("Updates"))
        names = [self._update_name(u) for u in updates]
        # An occurrence carries its series' change key.
        seen = change_key_version(given_key)
        changed_since: set[str] = set()
        if seen != target.item.version:
            if resolution == "NeverOverwrite":
                raise StoreError(
                    "ErrorIrresolvableConflict",
                    "The send or update operation could not be performed because the change "
                    "key passed in the request does not match the current change key for the "
                    "item.",
                )
            changed_since = {n for n in names if target.item.field_versions.get(n, 0) > seen}
        item = target.item
        if target.occurrence is not None:
            item = self.make_exception(target.item, target.occurrence)
        before = attendees(item)
        for update, name in zip(updates, names, strict=True):
            if resolution == "AutoResolve" and name in changed_since:
                continue  # AutoResolve: the server's newer value of this property stays
            self._apply_update(item, update)
        conflicts = len(changed_since)
        self._validate_item(item)
        if item.master_id is None and SERIES_SHAPE.intersection(names):
            self._drop_exceptions(item)
        item.touch()
        self._log_item_change(item)
        if sending is not None and item.master_id is None:
            self.transport.update(item, before, sending)
        return item, conflicts

    @staticmethod
    def _update_name(update: etree._Element) -> str:
        uri = update[0]
        if local(uri.tag) == "ExtendedFieldURI":
            return "ExtendedProperty"
        return element_name(uri)

    def _validate_item(self, item: Item) -> None:
        elem = etree.Element(t(item.kind))
        for name in ("Start", "End"):
            if name in item.props:
                elem.append(copy.deepcopy(item.props[name]))
        self._validate(elem)

    def _apply_update(self, item: Item, update: etree._Element) -> None:
        uri = update[0]
        kind = local(update.tag)
        if local(uri.tag) == "ExtendedFieldURI":
            item.field_versions["ExtendedProperty"] = item.version + 1
            if kind == "DeleteItemField":
                item.extended.pop(ext_key(uri), None)
            else:
                prop = update[1].find(t("ExtendedProperty"))
                item.extended[ext_key(uri)] = copy.deepcopy(prop)
            return
        name = element_name(uri)
        if local(uri.tag) == "IndexedFieldURI":
            self._apply_indexed(item, uri, update, kind)
            return
        if kind == "DeleteItemField":
            item.props.pop(name, None)
            item.field_versions[name] = item.version + 1
            return
        value = update[1].find(t(name))
        if value is None:
            raise StoreError("ErrorInvalidPropertyRequest", "One or more properties are invalid.")
        if kind == "AppendToItemField" and name in item.props:
            item.props[name].text = (item.props[name].text or "") + (value.text or "")
            item.field_versions[name] = item.version + 1
        else:
            item.set_prop(value)

    def _apply_indexed(
        self, item: Item, uri: etree._Element, update: etree._Element, kind: str
    ) -> None:
        container_name = element_name(uri)
        key = uri.get("FieldIndex")
        container = item.props.get(container_name)
        if container is None:
            container = etree.Element(t(container_name))
            item.props[container_name] = container
        existing = next((e for e in container if e.get("Key") == key), None)
        item.field_versions[container_name] = item.version + 1
        subfield = uri.get("FieldURI", "").split(":")[-1]
        is_address_part = container_name == "PhysicalAddresses"
        if kind == "DeleteItemField":
            if existing is not None and is_address_part:
                for part in existing.findall(t(subfield)):
                    existing.remove(part)
            elif existing is not None:
                container.remove(existing)
            return
        new_entry = update[1].find(f"{t(container_name)}/{t('Entry')}")
        if new_entry is None:
            raise StoreError("ErrorInvalidPropertyRequest", "One or more properties are invalid.")
        if existing is None:
            container.append(copy.deepcopy(new_entry))
        elif is_address_part:
            for part in new_entry:
                for old in existing.findall(part.tag):
                    existing.remove(old)
                existing.append(copy.deepcopy(part))
        else:
            container.replace(existing, copy.deepcopy(new_entry))

    def _drop_exceptions(self, master: Item) -> None:
        """A new pattern or time for a series loses its exceptions, as Outlook warns."""
        for exception_id in master.exceptions.values():
            self.store.items.pop(exception_id, None)
        master.exceptions.clear()
        master.deleted_occurrences.clear()

    def make_exception(self, master: Item, occ: Occurrence) -> Item:
        """Editing one occurrence turns it into an exception with its own stored properties."""
        element = etree.Element(t(master.kind))
        for name, prop in master.props.items():
            if name not in {"Recurrence", "Start", "End"}:
                element.append(copy.deepcopy(prop))
        sub(element, t("Start"), format_utc(occ.start))
        sub(element, t("End"), format_utc(occ.end))
        folder = self.store.folders[master.folder_id]
        oid = occurrence_id(master.id, occ.original_start)
        exception = Item(id=oid, mailbox=master.mailbox, folder_id=folder.id, kind=master.kind)
        for child in element:
            exception.set_prop(child)
        exception.extended = copy.deepcopy(master.extended)
        exception.master_id = master.id
        exception.original_start = format_utc(occ.original_start)
        self.store.items[oid] = exception
        master.exceptions[format_utc(occ.original_start)] = oid
        return exception

    def _log_item_change(self, item: Item) -> None:
        # A change to an exception is a change of its series, as SyncFolderItems reports it.
        if item.master_id:
            master = self.store.item(item.master_id)
            master.touch()
            self.store.log_change(master.folder_id, master.id)
        else:
            self.store.log_change(item.folder_id, item.id)

    # --- DeleteItem -------------------------------------------------------------------------
    def delete_item(self, op: etree._Element, caller: Caller) -> etree._Element:
        cancellations = enumerated(op, "SendMeetingCancellations", SEND_CANCELLATIONS)
        root, messages = response_root("DeleteItem")
        for elem in op.find(m("ItemIds")):
            try:
                target = self._target(elem, caller)
                if target.item.kind == "CalendarItem":
                    required(
                        cancellations,
                        "ErrorSendMeetingCancellationsRequired",
                        "SendMeetingCancellations",
                        "DeleteItem",
                    )
                whole = target.occurrence is None and target.item.master_id is None
                if cancellations is not None and whole:
                    self.transport.cancel(target.item, cancellations)
                self._delete(target)
            except StoreError as exc:
                error(messages, "DeleteItem", exc.code, exc.text)
                continue
            success(messages, "DeleteItem")
        return root

    def _delete(self, target: Target) -> None:
        item = target.item
        if target.occurrence is not None or item.master_id:
            master = self.store.item(item.master_id) if item.master_id else item
            original = (
                format_utc(target.occurrence.original_start)
                if target.occurrence
                else item.original_start
            )
            if original is not None:
                master.deleted_occurrences.add(original)
                exception_id = master.exceptions.pop(original, None)
                if exception_id:
                    self.store.items.pop(exception_id, None)
            master.touch()
            self.store.log_change(master.folder_id, master.id)
            return
        self.store.delete(item)
