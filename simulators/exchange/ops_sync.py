"""EWS SyncFolderItems: changes since a sync state, in pages."""

from __future__ import annotations

import base64
import binascii
import json

from lxml import etree

from .access import Caller, MailboxAccess
from .render import Shape
from .schema import bounded_int
from .soap import error, response_root, success
from .store import Folder, StoreError
from .xmlns import m, sub, t

MAX_CHANGES = (1, 512)  # MaxSyncChangesReturnedType in types.xsd


def max_changes_returned(op: etree._Element) -> int:
    """MaxChangesReturned is required and must be 1..512 (the MaxChangesReturned reference page);
    Exchange validates the schema first, so anything else is an ErrorSchemaValidation fault."""
    return bounded_int(op, m("MaxChangesReturned"), MAX_CHANGES, "MaxSyncChangesReturnedType")


class SyncOperations(MailboxAccess):
    # --- SyncFolderItems --------------------------------------------------------------------
    def sync_folder_items(self, op: etree._Element, caller: Caller) -> etree._Element:
        limit = max_changes_returned(op)
        root, messages = response_root("SyncFolderItems")
        shape = Shape.summary_of(op.find(m("ItemShape")))
        try:
            folder = self._folder(op.find(m("SyncFolderId"))[0], caller)
            since = self._read_sync_state(op.findtext(m("SyncState")), folder)
        except StoreError as exc:
            error(messages, "SyncFolderItems", exc.code, exc.text)
            return root
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
