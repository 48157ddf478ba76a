"""The EWS operations exchangelib 5.x sends, answered from a `Store`.

Every handler takes the operation element of the request body and returns the `m:{Op}Response`
element, with one response message per requested id (clients count them).
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from .recurrence import Occurrence, format_utc, occurrence_id, parse_occurrence_id, parse_utc
from .render import INDEXED_CONTAINERS, Renderer, Shape, element_name
from .restriction import matches
from .soap import error, response_root, success
from .store import Folder, Item, Store, StoreError, change_key_version, ext_key
from .xmlns import XSI, local, m, sub, t

# Changing any of these on a series master redefines the series.
SERIES_SHAPE = {"Recurrence", "Start", "End", "StartTimeZone", "EndTimeZone"}
NOT_FOUND = ("ErrorItemNotFound", "The specified object was not found in the store.")


@dataclass
class Caller:
    """Who is calling and on whose mailbox (exchangelib names it in every folder id)."""

    user: str
    can_impersonate: bool = False
    impersonated: str | None = None

    @property
    def mailbox(self) -> str:
        return self.impersonated or self.user


@dataclass
class Target:
    """What an item id in a request points to: a stored item or an occurrence of a series."""

    item: Item
    occurrence: Occurrence | None = None


class Operations:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.renderer = Renderer(store)
        self.handlers: dict[str, Callable[[etree._Element, Caller], etree._Element]] = {
            "GetFolder": self.get_folder,
            "FindItem": self.find_item,
            "GetItem": self.get_item,
            "CreateItem": self.create_item,
            "UpdateItem": self.update_item,
            "DeleteItem": self.delete_item,
            "SyncFolderItems": self.sync_folder_items,
            "ConvertId": self.convert_id,
        }

    # --- access -----------------------------------------------------------------------------
    def _check_access(self, mailbox: str, caller: Caller) -> None:
        if mailbox.lower() != caller.user and not caller.can_impersonate:
            raise StoreError(
                "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )

    def _folder(self, elem: etree._Element, caller: Caller) -> Folder:
        if local(elem.tag) == "DistinguishedFolderId":
            address = elem.findtext(f"{t('Mailbox')}/{t('EmailAddress')}") or caller.mailbox
            folder = self.store.distinguished(address, elem.get("Id", ""))
        else:
            folder = self.store.folder(elem.get("Id", ""))
        self._check_access(folder.mailbox, caller)
        return folder

    def _target(self, elem: etree._Element, caller: Caller) -> Target:
        kind = local(elem.tag)
        if kind == "OccurrenceItemId":
            master = self.store.item(elem.get("RecurringMasterId", ""))
            occurrences = self.renderer.occurrences(master)
            index = int(elem.get("InstanceIndex", "0"))
            if not 1 <= index <= len(occurrences):
                raise StoreError(
                    "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
                    "The occurrence index is out of recurrence range.",
                )
            target = self._occurrence(master, occurrences[index - 1].original_start)
        elif kind == "RecurringMasterItemId":
            inner = self._target(
                etree.Element(t("ItemId"), Id=elem.get("OccurrenceId", "")), caller
            )
            master_id = inner.item.master_id or inner.item.id
            target = Target(self.store.item(master_id))
        else:
            item_id = elem.get("Id", "")
            parsed = parse_occurrence_id(item_id) if item_id not in self.store.items else None
            if parsed is not None:
                target = self._occurrence(self.store.item(parsed[0]), parsed[1])
            else:
                target = Target(self.store.item(item_id))
        self._check_access(target.item.mailbox, caller)
        return target

    def _occurrence(self, master: Item, original_start: datetime) -> Target:
        key = format_utc(original_start)
        if key in master.deleted_occurrences:
            raise StoreError(
                "ErrorCalendarOccurrenceIsDeletedFromRecurrence",
                "Occurrence was deleted from the recurrence.",
            )
        if key in master.exceptions:
            return Target(self.store.item(master.exceptions[key]))
        for occ in self.renderer.occurrences(master):
            if occ.original_start == original_start:
                return Target(master, occ)
        raise StoreError(*NOT_FOUND)

    # --- GetFolder --------------------------------------------------------------------------
    def get_folder(self, op: etree._Element, caller: Caller) -> etree._Element:
        root, messages = response_root("GetFolder")
        for elem in op.find(m("FolderIds")):
            try:
                folder = self._folder(elem, caller)
            except StoreError as exc:
                error(messages, "GetFolder", exc.code, exc.text)
                continue
            folders = sub(success(messages, "GetFolder"), m("Folders"))
            self._render_folder(sub(folders, t(folder.element)), folder)
        return root

    def _render_folder(self, elem: etree._Element, folder: Folder) -> None:
        sub(elem, t("FolderId"), Id=folder.id, ChangeKey=folder.change_key)
        if folder.parent_id:
            parent = self.store.folders[folder.parent_id]
            sub(elem, t("ParentFolderId"), Id=parent.id, ChangeKey=parent.change_key)
        if folder.folder_class:
            sub(elem, t("FolderClass"), folder.folder_class)
        sub(elem, t("DisplayName"), folder.display_name)
        sub(elem, t("TotalCount"), str(len(self.store.folder_items(folder))))
        children = sum(1 for f in self.store.folders.values() if f.parent_id == folder.id)
        sub(elem, t("ChildFolderCount"), str(children))
        rights = sub(elem, t("EffectiveRights"))
        for right in ("CreateAssociated", "CreateContents", "CreateHierarchy", "Delete"):
            sub(rights, t(right), "true")
        for right in ("Modify", "Read", "ViewPrivateItems"):
            sub(rights, t(right), "true")
        if folder.element == "Folder" and folder.distinguished != "root":
            sub(elem, t("UnreadCount"), "0")

    # --- FindItem ---------------------------------------------------------------------------
    def find_item(self, op: etree._Element, caller: Caller) -> etree._Element:
        root, messages = response_root("FindItem")
        shape = Shape.from_xml(op.find(m("ItemShape")))
        restriction = op.find(m("Restriction"))
        calendar_view = op.find(m("CalendarView"))
        paging = op.find(m("IndexedPageItemView"))
        for elem in op.find(m("ParentFolderIds")):
            try:
                folder = self._folder(elem, caller)
            except StoreError as exc:
                error(messages, "FindItem", exc.code, exc.text)
                continue
            if calendar_view is not None:
                rendered, last = self._calendar_view(folder, calendar_view, shape)
                offset, total = len(rendered), len(rendered)
            else:
                items = [i for i in self.store.folder_items(folder)]
                if restriction is not None:
                    items = [i for i in items if matches(i, restriction)]
                items = self._sorted(items, op.find(m("SortOrder")))
                start = int(paging.get("Offset", "0")) if paging is not None else 0
                size = int(paging.get("MaxEntriesReturned", "1000")) if paging is not None else 1000
                page = items[start : start + size]
                rendered = [self.renderer.render(i, shape) for i in page]
                offset, total = start + len(page), len(items)
                last = offset >= total
            msg = success(messages, "FindItem")
            folder_elem = sub(
                msg,
                m("RootFolder"),
                IndexedPagingOffset=str(offset),
                TotalItemsInView=str(total),
                IncludesLastItemInRange=str(last).lower(),
            )
            container = sub(folder_elem, t("Items"))
            for item_elem in rendered:
                container.append(item_elem)
        return root

    def _sorted(self, items: list[Item], order: etree._Element | None) -> list[Item]:
        if order is None:
            return sorted(items, key=lambda i: i.created)
        for field_order in reversed(list(order)):
            name = element_name(field_order[0])
            items.sort(
                key=lambda i, n=name: i.text(n) or "",
                reverse=field_order.get("Order") == "Descending",
            )
        return items

    def _calendar_view(
        self, folder: Folder, view: etree._Element, shape: Shape
    ) -> tuple[list[etree._Element], bool]:
        begin, end = parse_utc(view.get("StartDate", "")), parse_utc(view.get("EndDate", ""))
        found: list[tuple[datetime, etree._Element]] = []
        for item in self.store.folder_items(folder):
            if "Recurrence" in item.props:
                for occ, exception in self.renderer.live_occurrences(item):
                    if occ.start < end and occ.end > begin:
                        rendered = (
                            self.renderer.render(exception, shape)
                            if exception
                            else self.renderer.render(item, shape, occ)
                        )
                        found.append((occ.start, rendered))
            elif item.text("Start") and item.text("End"):
                start, stop = parse_utc(item.text("Start")), parse_utc(item.text("End"))
                if start < end and stop > begin:
                    found.append((start, self.renderer.render(item, shape)))
        found.sort(key=lambda pair: pair[0])
        limit = int(view.get("MaxEntriesReturned", "0") or 0)
        complete = not limit or len(found) <= limit
        return [elem for _, elem in found[: limit or None]], complete

    # --- GetItem ----------------------------------------------------------------------------
    def get_item(self, op: etree._Element, caller: Caller) -> etree._Element:
        root, messages = response_root("GetItem")
        shape = Shape.from_xml(op.find(m("ItemShape")))
        for elem in op.find(m("ItemIds")):
            try:
                target = self._target(elem, caller)
            except StoreError as exc:
                error(messages, "GetItem", exc.code, exc.text)
                continue
            items = sub(success(messages, "GetItem"), m("Items"))
            items.append(self.renderer.render(target.item, shape, target.occurrence))
        return root

    # --- CreateItem -------------------------------------------------------------------------
    def create_item(self, op: etree._Element, caller: Caller) -> etree._Element:
        root, messages = response_root("CreateItem")
        saved = op.find(m("SavedItemFolderId"))
        for element in op.find(m("Items")):
            try:
                kind = local(element.tag)
                default = "calendar" if kind == "CalendarItem" else "contacts"
                if saved is not None:
                    folder = self._folder(saved[0], caller)
                else:
                    folder = self.store.distinguished(caller.mailbox, default)
                self._validate(element)
                item = self.store.create(folder, element)
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
        root, messages = response_root("UpdateItem")
        resolution = op.get("ConflictResolution", "AutoResolve")
        for change in op.find(m("ItemChanges")):
            try:
                item, conflicts = self._apply_change(change, resolution, caller)
            except StoreError as exc:
                error(messages, "UpdateItem", exc.code, exc.text)
                continue
            msg = success(messages, "UpdateItem")
            items = sub(msg, m("Items"))
            sub(sub(items, t(item.kind)), t("ItemId"), Id=item.id, ChangeKey=item.change_key)
            sub(sub(msg, m("ConflictResults")), t("Count"), str(conflicts))
        return root

    def _apply_change(
        self, change: etree._Element, resolution: str, caller: Caller
    ) -> tuple[Item, int]:
        id_elem = change[0]
        target = self._target(id_elem, caller)
        given_key = id_elem.get("ChangeKey")
        updates = change.find(t("Updates"))
        names = [self._update_name(u) for u in updates]
        conflicts = 0
        if given_key and target.occurrence is None:
            seen = change_key_version(given_key)
            if seen != target.item.version:
                changed_since = [n for n in names if target.item.field_versions.get(n, 0) > seen]
                if resolution == "NeverOverwrite":
                    raise StoreError(
                        "ErrorIrresolvableConflict",
                        "The send or update operation could not be performed because the change "
                        "key passed in the request does not match the current change key for the "
                        "item.",
                    )
                conflicts = len(changed_since)
        item = target.item
        if target.occurrence is not None:
            item = self.make_exception(target.item, target.occurrence)
        for update in updates:
            self._apply_update(item, update)
        self._validate_item(item)
        if item.master_id is None and SERIES_SHAPE.intersection(names):
            self._drop_exceptions(item)
        item.touch()
        self._log_item_change(item)
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
        root, messages = response_root("DeleteItem")
        for elem in op.find(m("ItemIds")):
            try:
                target = self._target(elem, caller)
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
            master.deleted_occurrences.add(original)
            exception_id = master.exceptions.pop(original, None)
            if exception_id:
                self.store.items.pop(exception_id, None)
            master.touch()
            self.store.log_change(master.folder_id, master.id)
            return
        self.store.delete(item)

    # --- SyncFolderItems --------------------------------------------------------------------
    def sync_folder_items(self, op: etree._Element, caller: Caller) -> etree._Element:
        root, messages = response_root("SyncFolderItems")
        shape = Shape.from_xml(op.find(m("ItemShape")))
        try:
            folder = self._folder(op.find(m("SyncFolderId"))[0], caller)
            since = self._read_sync_state(op.findtext(m("SyncState")), folder)
        except StoreError as exc:
            error(messages, "SyncFolderItems", exc.code, exc.text)
            return root
        limit = int(op.findtext(m("MaxChangesReturned")) or 100)
        ignore_elem = op.find(m("Ignore"))
        ignored = {e.get("Id") for e in ignore_elem} if ignore_elem is not None else set()
        changes, new_seq, last = self._changes_since(folder, since, limit, ignored)
        msg = success(messages, "SyncFolderItems")
        sub(msg, m("SyncState"), self._sync_state(folder, new_seq))
        sub(msg, m("IncludesLastItemInRange"), str(last).lower())
        container = sub(msg, m("Changes"))
        for change_kind, item_id in changes:
            change = sub(container, t(change_kind))
            if change_kind == "Delete":
                sub(change, t("ItemId"), Id=item_id, ChangeKey="")
            else:
                change.append(self.renderer.render(self.store.items[item_id], shape))
        return root

    def _changes_since(
        self, folder: Folder, since: int, limit: int, ignored: set[str | None]
    ) -> tuple[list[tuple[str, str]], int, bool]:
        last_seq: dict[str, int] = {}
        for seq, item_id in folder.log:
            if seq > since:
                last_seq[item_id] = seq
        changes: list[tuple[str, str]] = []
        new_seq = since
        for item_id, seq in sorted(last_seq.items(), key=lambda pair: pair[1]):
            created_after = folder.created_seq[item_id] > since
            exists = item_id in self.store.items
            if len(changes) == limit:
                return changes, new_seq, False
            new_seq = seq
            if item_id in ignored or (created_after and not exists):
                continue
            if not exists:
                changes.append(("Delete", item_id))
            else:
                changes.append(("Create" if created_after else "Update", item_id))
        return changes, folder.log[-1][0] if folder.log else since, True

    @staticmethod
    def _sync_state(folder: Folder, seq: int) -> str:
        return base64.b64encode(json.dumps({"f": folder.id, "s": seq}).encode()).decode()

    def _read_sync_state(self, state: str | None, folder: Folder) -> int:
        if not state:
            return 0
        try:
            decoded = json.loads(base64.b64decode(state, validate=True))
            if decoded["f"] != folder.id:
                raise ValueError("state of another folder")
            return int(decoded["s"])
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise StoreError(
                "ErrorInvalidSyncStateData",
                "Synchronization state data is corrupt or otherwise invalid.",
            ) from exc

    # --- ConvertId --------------------------------------------------------------------------
    def convert_id(self, op: etree._Element, caller: Caller) -> etree._Element:
        root, messages = response_root("ConvertId")
        destination = op.get("DestinationFormat", "EwsId")
        for source in op.find(m("SourceIds")):
            raw = self._id_bytes(source.get("Format", "EwsId"), source.get("Id", ""))
            if raw is None:
                error(messages, "ConvertId", "ErrorInvalidIdMalformed", "Id is malformed.")
                continue
            msg = success(messages, "ConvertId")
            alternate = sub(
                msg,
                m("AlternateId"),
                Format=destination,
                Id=self._id_text(destination, raw),
                Mailbox=source.get("Mailbox", caller.mailbox),
            )
            alternate.set(f"{{{XSI}}}type", "t:AlternateIdType")
        return root

    @staticmethod
    def _id_bytes(id_format: str, value: str) -> bytes | None:
        try:
            if id_format == "HexEntryId":
                raw = bytes.fromhex(value)
            elif id_format == "OwaId":
                raw = base64.urlsafe_b64decode(value)
            else:
                raw = base64.b64decode(value, validate=True)
        except ValueError:
            return None
        return raw if len(raw) >= 8 else None

    @staticmethod
    def _id_text(id_format: str, raw: bytes) -> str:
        if id_format == "HexEntryId":
            return raw.hex().upper()
        if id_format == "OwaId":
            return base64.urlsafe_b64encode(raw).decode()
        return base64.b64encode(raw).decode()


__all__ = ["Caller", "Operations", "INDEXED_CONTAINERS"]
