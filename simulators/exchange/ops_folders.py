"""EWS folder operations: FindFolder (a folder's sub-folders) and CreateFolder."""

from __future__ import annotations

from lxml import etree

from .access import Caller
from .ops_read import ReadOperations
from .soap import error, response_root, success
from .store import Folder, StoreError, new_id
from .xmlns import local, m, sub, t

# The folder elements CreateFolder takes and the class each gets without a FolderClass.
FOLDER_ELEMENTS = {
    "Folder": "IPF.Note",
    "ContactsFolder": "IPF.Contact",
    "CalendarFolder": "IPF.Appointment",
}
TYPED_ELEMENTS = {cls: element for element, cls in FOLDER_ELEMENTS.items() if element != "Folder"}


class FolderOperations(ReadOperations):
    # --- FindFolder -------------------------------------------------------------------------
    def find_folder(self, op: etree._Element, caller: Caller) -> etree._Element:
        """Sub-folders of each parent (`Traversal` Shallow: children; Deep: all below), in
        pages of `IndexedPageFolderView`, restricted by display name where asked."""
        root, messages = response_root("FindFolder")
        deep = op.get("Traversal", "Shallow") == "Deep"
        paging = op.find(m("IndexedPageFolderView"))
        for elem in op.find(m("ParentFolderIds")):
            try:
                parent = self._folder(elem, caller)
                wanted = _display_name_wanted(op.find(m("Restriction")))
            except StoreError as exc:
                error(messages, "FindFolder", exc.code, exc.text)
                continue
            found = self._below(parent, deep)
            if wanted is not None:
                found = [f for f in found if f.display_name.casefold() == wanted.casefold()]
            start = int(paging.get("Offset", "0")) if paging is not None else 0
            size = int(paging.get("MaxEntriesReturned", "1000")) if paging is not None else 1000
            page = found[start : start + size]
            msg = success(messages, "FindFolder")
            folder_elem = sub(
                msg,
                m("RootFolder"),
                IndexedPagingOffset=str(start + len(page)),
                TotalItemsInView=str(len(found)),
                IncludesLastItemInRange=str(start + len(page) >= len(found)).lower(),
            )
            container = sub(folder_elem, t("Folders"))
            for folder in page:
                self._render_folder(sub(container, t(folder.element)), folder)
        return root

    def _below(self, parent: Folder, deep: bool) -> list[Folder]:
        children = [f for f in self.store.folders.values() if f.parent_id == parent.id]
        if not deep:
            return children
        return [g for c in children for g in (c, *self._below(c, True))]

    # --- CreateFolder -----------------------------------------------------------------------
    def create_folder(self, op: etree._Element, caller: Caller) -> etree._Element:
        """New folders under `ParentFolderId`; a sibling of the same display name is
        ErrorFolderExists, as Exchange answers it."""
        root, messages = response_root("CreateFolder")
        try:
            parent = self._folder(op.find(m("ParentFolderId"))[0], caller)
        except StoreError as exc:
            for _ in op.find(m("Folders")):
                error(messages, "CreateFolder", exc.code, exc.text)
            return root
        for elem in op.find(m("Folders")):
            kind = local(elem.tag)
            name = (elem.findtext(t("DisplayName")) or "").strip()
            try:
                if kind not in FOLDER_ELEMENTS or not name:
                    raise StoreError(
                        "ErrorInvalidFolderTypeForOperation" if name else "ErrorInvalidRequest",
                        "The folder type or its display name is not valid for this operation.",
                    )
                if any(
                    f.parent_id == parent.id and f.display_name.casefold() == name.casefold()
                    for f in self.store.folders.values()
                ):
                    raise StoreError(
                        "ErrorFolderExists", "A folder with the specified name already exists."
                    )
            except StoreError as exc:
                error(messages, "CreateFolder", exc.code, exc.text)
                continue
            folder_class = elem.findtext(t("FolderClass")) or FOLDER_ELEMENTS[kind]
            # A t:Folder of class IPF.Contact is a contacts folder, and answered as one.
            element = TYPED_ELEMENTS.get(folder_class, kind)
            folder = Folder(
                new_id(b"\x00\x01\x00\x00"),
                parent.mailbox,
                "",
                element,
                folder_class,
                name,
                parent_id=parent.id,
            )
            self.store.folders[folder.id] = folder
            folders = sub(success(messages, "CreateFolder"), m("Folders"))
            sub(sub(folders, t(element)), t("FolderId"), Id=folder.id, ChangeKey=folder.change_key)
        return root


def _display_name_wanted(restriction: etree._Element | None) -> str | None:
    """The display name an `IsEqualTo` restriction on folder:DisplayName asks for (the one
    folder restriction clients send to find a folder by name)."""
    if restriction is None:
        return None
    node = restriction[0]
    uri = node.find(t("FieldURI"))
    constant = node.find(f".//{t('Constant')}")
    if local(node.tag) != "IsEqualTo" or uri is None or uri.get("FieldURI") != "folder:DisplayName":
        raise StoreError("ErrorUnsupportedPathForQuery", "The property path is not supported.")
    return constant.get("Value", "") if constant is not None else ""
