"""Who may touch which folder and item, and what an id in a request points to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from .recurrence import Occurrence, format_utc, parse_occurrence_id
from .render import Renderer
from .store import Folder, Item, Store, StoreError
from .xmlns import local, t

NOT_FOUND = ("ErrorItemNotFound", "The specified object was not found in the store.")


@dataclass
class Caller:
    """Who is calling, and whom it acts as: with ExchangeImpersonation the impersonated
    account's rights replace the caller's (exchangelib names the mailbox in every folder id)."""

    user: str
    impersonated: str | None = None

    @property
    def mailbox(self) -> str:
        return self.impersonated or self.user


@dataclass
class Target:
    """What an item id in a request points to: a stored item or an occurrence of a series."""

    item: Item
    occurrence: Occurrence | None = None


class MailboxAccess:
    """Resolves folder and item ids of a request against the store, checking access."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.renderer = Renderer(store)

    def _check_access(self, mailbox: str, caller: Caller) -> None:
        if mailbox.lower() != caller.mailbox:
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
