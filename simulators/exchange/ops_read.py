"""EWS reads: GetFolder, FindItem (paging, restrictions, calendar views) and GetItem."""

from __future__ import annotations

import functools
from datetime import datetime

from lxml import etree

from .access import Caller, MailboxAccess
from .recurrence import parse_utc
from .render import Shape, element_name
from .restriction import matches
from .soap import error, response_root, success
from .store import Folder, Item, StoreError
from .xmlns import m, sub, t


class ReadOperations(MailboxAccess):
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
        shape = Shape.summary_of(op.find(m("ItemShape")))
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
                key=functools.partial(_text_or_empty, name=name),
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


def _text_or_empty(item: Item, name: str) -> str:
    return item.text(name) or ""
