"""The mailbox store of one simulated Exchange server: folders, items, ids, change keys, change log.

Item properties are kept as the XML elements the client sent (keyed by element name), so whatever
a client writes is echoed back exactly; the server adds the properties Exchange computes itself.
"""

from __future__ import annotations

import base64
import copy
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree

from simulators.world.exchange import ImpersonationRole

from .xmlns import local, t

FOLDER_CLASSES = {
    "root": ("Folder", None, "Root"),
    "msgfolderroot": ("Folder", "IPF.Note", "Top of Information Store"),
    "inbox": ("Folder", "IPF.Note", "Inbox"),
    "calendar": ("CalendarFolder", "IPF.Appointment", "Calendar"),
    "contacts": ("ContactsFolder", "IPF.Contact", "Contacts"),
}
NO_MAILBOX = "The SMTP address has no mailbox associated with it."
ITEM_CLASSES = {"CalendarItem": "IPM.Appointment", "Contact": "IPM.Contact"}


class StoreError(Exception):
    """An EWS response code with its message text."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def new_id(prefix: bytes = b"\x00\x00\x00\x00") -> str:
    # Real EWS ids are long opaque base64 strings starting with "AAMkA"; keep that look.
    return base64.b64encode(b"\x00\x03\x24\x00" + prefix + secrets.token_bytes(36)).decode()


def ext_key(uri: etree._Element) -> tuple[tuple[str, str], ...]:
    """Identity of an extended property: the attributes of its ExtendedFieldURI."""
    attrs = {k: v for k, v in uri.attrib.items() if k != "PropertyType"}
    if "PropertySetId" in attrs:
        attrs["PropertySetId"] = attrs["PropertySetId"].lower()
    return tuple(sorted(attrs.items()))


@dataclass
class Item:
    id: str
    mailbox: str
    folder_id: str
    kind: str  # element name: CalendarItem | Contact
    props: dict[str, etree._Element] = field(default_factory=dict)
    extended: dict[tuple, etree._Element] = field(default_factory=dict)
    version: int = 1
    field_versions: dict[str, int] = field(default_factory=dict)
    created: datetime = field(default_factory=now_utc)
    modified: datetime = field(default_factory=now_utc)
    # Recurring series: original start (ISO, UTC) -> exception item id, and deleted original starts.
    exceptions: dict[str, str] = field(default_factory=dict)
    deleted_occurrences: set[str] = field(default_factory=set)
    master_id: str | None = None  # set on an exception
    original_start: str | None = None  # set on an exception

    @property
    def change_key(self) -> str:
        raw = b"CK" + self.version.to_bytes(4, "big") + self.id.encode()[-8:]
        return base64.b64encode(raw).decode()

    def text(self, name: str) -> str | None:
        elem = self.props.get(name)
        return elem.text if elem is not None else None

    def set_prop(self, elem: etree._Element) -> None:
        stored = copy.deepcopy(elem)
        name = local(elem.tag)
        if is_boolean(name) and stored.text in ("1", "0"):
            # xs:boolean accepts 1/0 (exchangelib sends them); Exchange answers true/false.
            stored.text = "true" if stored.text == "1" else "false"
        self.props[name] = stored
        self.field_versions[name] = self.version + 1

    def touch(self) -> None:
        self.version += 1
        self.modified = now_utc()


BOOLEAN_FIELDS = {"ReminderIsSet", "AllowNewTimeProposal", "MeetingRequestWasSent"}


def is_boolean(name: str) -> bool:
    return name in BOOLEAN_FIELDS or (name[:2] == "Is" and name[2:3].isupper()) or name[:3] == "Has"


def change_key_version(change_key: str) -> int:
    """Decode the version a change key was issued for; ErrorInvalidChangeKey if it is not ours."""
    try:
        raw = base64.b64decode(change_key, validate=True)
    except (ValueError, TypeError) as exc:
        raise StoreError("ErrorInvalidChangeKey", "The change key is invalid.") from exc
    if len(raw) < 6 or not raw.startswith(b"CK"):
        raise StoreError("ErrorInvalidChangeKey", "The change key is invalid.")
    return int.from_bytes(raw[2:6], "big")


@dataclass
class Folder:
    id: str
    mailbox: str
    distinguished: str
    element: str
    folder_class: str | None
    display_name: str
    parent_id: str | None = None
    # (sequence number, item id) for every create/update/delete, oldest first.
    log: list[tuple[int, str]] = field(default_factory=list)
    created_seq: dict[str, int] = field(default_factory=dict)

    @property
    def change_key(self) -> str:
        return base64.b64encode(b"FK" + len(self.log).to_bytes(4, "big")).decode()


@dataclass
class MailboxUser:
    address: str
    password: str
    display_name: str
    impersonation: ImpersonationRole | None = None  # the ApplicationImpersonation role, if any
    has_mailbox: bool = True  # False: an account that signs in but has no mailbox here


@dataclass(frozen=True)
class MailboxEvent:
    """One row of the mailbox events table that notifications are read from."""

    seq: int
    mailbox: str
    kind: str  # CreatedEvent | ModifiedEvent | DeletedEvent
    folder_id: str
    item_id: str | None  # None: an event of the folder itself
    change_key: str | None
    at: datetime


class Store:
    """All mailboxes of one server. One lock: EWS calls are short and tests need determinism."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        # Streaming notifications wait on this; every logged change wakes them.
        self.changed = threading.Condition(self.lock)
        self.events: list[MailboxEvent] = []
        self.clock_offset = 0.0
        self.users: dict[str, MailboxUser] = {}
        self.folders: dict[str, Folder] = {}
        self.items: dict[str, Item] = {}
        self.seq = 0
        # Meeting messages sent (meetings.py): kind, from, to, internal, subject, uid.
        self.sent_mail: list[dict[str, object]] = []

    # --- mailboxes and folders -------------------------------------------------------------
    def add_mailbox(self, user: MailboxUser) -> None:
        with self.lock:
            self.users[user.address.lower()] = user
            if not user.has_mailbox:
                return
            root_id = None
            for name, (element, folder_class, display) in FOLDER_CLASSES.items():
                folder = Folder(
                    new_id(b"\x00\x01\x00\x00"),
                    user.address.lower(),
                    name,
                    element,
                    folder_class,
                    display,
                )
                folder.parent_id = root_id
                root_id = root_id or folder.id
                self.folders[folder.id] = folder

    def user(self, address: str) -> MailboxUser:
        found = self.users.get(address.lower())
        if found is None:
            raise StoreError("ErrorNonExistentMailbox", f"No mailbox with such guid. ({address})")
        return found

    def mailbox_of(self, address: str) -> MailboxUser:
        """The owner of a mailbox; ErrorNonExistentMailbox also for an account without one."""
        found = self.user(address)
        if not found.has_mailbox:
            raise StoreError("ErrorNonExistentMailbox", NO_MAILBOX)
        return found

    def distinguished(self, mailbox: str, name: str) -> Folder:
        self.mailbox_of(mailbox)
        for folder in self.folders.values():
            if folder.mailbox == mailbox.lower() and folder.distinguished == name:
                return folder
        raise StoreError(
            "ErrorFolderNotFound", "The specified folder could not be found in the store."
        )

    def folder(self, folder_id: str) -> Folder:
        found = self.folders.get(folder_id)
        if found is None:
            raise StoreError(
                "ErrorFolderNotFound", "The specified folder could not be found in the store."
            )
        return found

    def folder_items(self, folder: Folder) -> list[Item]:
        return [i for i in self.items.values() if i.folder_id == folder.id and i.master_id is None]

    # --- items ------------------------------------------------------------------------------
    def now(self) -> float:
        """The server's clock (seconds since the epoch), movable by tests (`advance_clock`)."""
        return time.time() + self.clock_offset

    def log_change(self, folder_id: str, item_id: str) -> None:
        self.seq += 1
        folder = self.folders[folder_id]
        folder.log.append((self.seq, item_id))
        item = self.items.get(item_id)
        if item_id not in folder.created_seq:
            kind = "CreatedEvent"
        elif item is None:
            kind = "DeletedEvent"
        else:
            kind = "ModifiedEvent"
        folder.created_seq.setdefault(item_id, self.seq)
        at = datetime.fromtimestamp(self.now(), UTC).replace(microsecond=0)
        change_key = item.change_key if item is not None else None
        # The item's event, then the folder's (its content changed), as Exchange reports them.
        for item_or_none, what, key in ((item_id, kind, change_key), (None, "ModifiedEvent", None)):
            seq = len(self.events) + 1
            self.events.append(
                MailboxEvent(seq, folder.mailbox, what, folder_id, item_or_none, key, at)
            )
        with self.changed:
            self.changed.notify_all()

    def item(self, item_id: str) -> Item:
        found = self.items.get(item_id)
        if found is None:
            raise StoreError(
                "ErrorItemNotFound", "The specified object was not found in the store."
            )
        return found

    def create(self, folder: Folder, element: etree._Element, item_id: str | None = None) -> Item:
        kind = local(element.tag)
        item = Item(id=item_id or new_id(), mailbox=folder.mailbox, folder_id=folder.id, kind=kind)
        for child in element:
            if local(child.tag) == "ExtendedProperty":
                item.extended[ext_key(child.find(t("ExtendedFieldURI")))] = copy.deepcopy(child)
            elif local(child.tag) not in {"ItemId", "ParentFolderId"}:
                item.set_prop(child)
        item.field_versions = dict.fromkeys(item.props, 1)
        if kind == "CalendarItem" and "UID" not in item.props:
            uid = etree.Element(t("UID"))
            uid.text = secrets.token_hex(56).upper()
            item.props["UID"] = uid
        self.items[item.id] = item
        if item.master_id is None:
            self.log_change(folder.id, item.id)
        return item

    def delete(self, item: Item) -> None:
        self.items.pop(item.id, None)
        for exception_id in item.exceptions.values():
            self.items.pop(exception_id, None)
        self.log_change(item.folder_id, item.id)
