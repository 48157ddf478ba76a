"""EWS notifications: pull subscriptions (Subscribe + GetEvents), streaming subscriptions
(Subscribe + GetStreamingEvents) and Unsubscribe, read from the store's mailbox events table.

Pull: the subscription dies after `Timeout` minutes without a GetEvents; GetEvents takes a
watermark this subscription handed out (Subscribe's, or an event's), answers the next events of
the subscription's queue, at most 50 (`MoreEvents` says whether more wait; returned events leave
the queue, as the GetEvents remarks describe), and a StatusEvent when nothing happened. Streaming: the
connection stays open `ConnectionTimeout` minutes (1..30), events are sent as they happen, the
last message says `ConnectionStatus Closed`; events that happen while no connection is open
wait for the next one.
"""

from __future__ import annotations

import base64
import binascii
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from lxml import etree

from .access import Caller, MailboxAccess
from .recurrence import format_utc
from .schema import bounded_int, enumerated_text
from .soap import SchemaViolation, error, response_root, success
from .store import MailboxEvent, Store, StoreError
from .xmlns import MSGS, m, sub, t

EVENT_TYPES = {
    "CopiedEvent",
    "CreatedEvent",
    "DeletedEvent",
    "ModifiedEvent",
    "MovedEvent",
    "NewMailEvent",
    "FreeBusyChangedEvent",
}
PULL_TIMEOUT_MINUTES = (1, 1440)  # the Timeout element
CONNECTION_TIMEOUT_MINUTES = (1, 30)  # the ConnectionTimeout element
EVENTS_PER_NOTIFICATION = 50  # GetEvents remarks: "the first 50 events from the queue"
PULL, STREAMING = "pull", "streaming"


@dataclass
class Subscription:
    id: str
    kind: str  # pull | streaming
    owner: str  # the account that created it; nobody else may use it
    mailbox: str
    folder_ids: frozenset[str] | None  # None: every folder of the mailbox
    event_types: frozenset[str]
    position: int  # the last event delivered (the subscription's queue starts after it)
    timeout_seconds: float | None  # pull: idle time before the server deletes it
    last_active: float
    issued: set[int] = field(default_factory=set)  # pull: watermarks handed out

    def wants(self, event: MailboxEvent) -> bool:
        return (
            event.mailbox == self.mailbox
            and event.kind in self.event_types
            and (self.folder_ids is None or event.folder_id in self.folder_ids)
        )


def _watermark(mailbox: str, seq: int) -> str:
    raw = b"WM" + zlib.crc32(mailbox.encode()).to_bytes(4, "big") + seq.to_bytes(8, "big")
    return base64.b64encode(raw).decode()


def _invalid_watermark() -> StoreError:
    return StoreError("ErrorInvalidWatermark", "The watermark is invalid.")


def _read_watermark(text: str | None, mailbox: str, store: Store) -> int:
    try:
        raw = base64.b64decode(text or "", validate=True)
    except (ValueError, binascii.Error):
        raise _invalid_watermark() from None
    if len(raw) != 14 or raw[:2] != b"WM":
        raise _invalid_watermark()
    seq = int.from_bytes(raw[6:], "big")
    if raw[2:6] != zlib.crc32(mailbox.encode()).to_bytes(4, "big") or seq > len(store.events):
        raise _invalid_watermark()  # never in this mailbox's events table
    return seq


def _not_found() -> StoreError:
    return StoreError("ErrorSubscriptionNotFound", "The specified subscription was not found.")


class NotificationOperations(MailboxAccess):
    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.subscriptions: dict[str, Subscription] = {}

    # --- Subscribe --------------------------------------------------------------------------
    def subscribe(self, op: etree._Element, caller: Caller) -> etree._Element:
        root, messages = response_root("Subscribe")
        request = op[0]
        kind = {"PullSubscriptionRequest": PULL, "StreamingSubscriptionRequest": STREAMING}.get(
            etree.QName(request).localname
        )
        types_elem = request.find(t("EventTypes"))
        event_types = frozenset(
            enumerated_text(e, EVENT_TYPES) for e in (types_elem if types_elem is not None else ())
        )
        if request.find(m("Watermark")) is not None:
            # The watermark of BaseSubscriptionRequestType is in the types namespace (the Managed
            # API writes it there); exchangelib 5.6 sends m:Watermark, which the schema refuses.
            raise SchemaViolation(
                request,
                f"The element '{etree.QName(request).localname}' in namespace '{MSGS}' has "
                f"invalid child element 'Watermark' in namespace '{MSGS}'.",
            )
        timeout = None
        if kind == PULL:
            timeout = 60 * bounded_int(request, t("Timeout"), PULL_TIMEOUT_MINUTES, "int")
        try:
            if kind is None:
                raise StoreError(
                    "ErrorInvalidRequest", "Push subscriptions are not supported by this server."
                )
            if not event_types:
                raise StoreError("ErrorInvalidSubscriptionRequest", "No event types were given.")
            mailbox, folder_ids = self._subscribed_folders(request, caller)
            position = len(self.store.events)
            given = request.findtext(t("Watermark"))
            if kind == PULL and given is not None:
                position = _read_watermark(given, mailbox, self.store)
            subscription = Subscription(
                id=str(uuid.uuid4()),
                kind=kind,
                owner=caller.user,
                mailbox=mailbox,
                folder_ids=folder_ids,
                event_types=event_types,
                position=position,
                timeout_seconds=timeout,
                last_active=self.store.now(),
                issued={position},
            )
        except StoreError as exc:
            error(messages, "Subscribe", exc.code, exc.text)
            return root
        self.subscriptions[subscription.id] = subscription
        msg = success(messages, "Subscribe")
        sub(msg, m("SubscriptionId"), subscription.id)
        if kind == PULL:
            sub(msg, m("Watermark"), _watermark(mailbox, position))
        return root

    def _subscribed_folders(
        self, request: etree._Element, caller: Caller
    ) -> tuple[str, frozenset[str] | None]:
        ids = request.find(t("FolderIds"))
        folders = [self._folder(elem, caller) for elem in (ids if ids is not None else ())]
        mailboxes = {f.mailbox for f in folders}
        if len(mailboxes) > 1:
            raise StoreError(
                "ErrorInvalidSubscriptionRequest",
                "A subscription can include folders of one mailbox only.",
            )
        if request.get("SubscribeToAllFolders") in ("true", "1"):
            mailbox = mailboxes.pop() if mailboxes else caller.mailbox
            self.store.mailbox_of(mailbox)
            return mailbox, None
        if not folders:
            raise StoreError("ErrorInvalidSubscriptionRequest", "No folders were given.")
        return folders[0].mailbox, frozenset(f.id for f in folders)

    def _subscription(self, subscription_id: str | None, caller: Caller) -> Subscription:
        found = self.subscriptions.get((subscription_id or "").strip())
        if found is None:
            raise _not_found()
        timeout = found.timeout_seconds
        if timeout is not None and self.store.now() - found.last_active > timeout:
            del self.subscriptions[found.id]  # expired: the server deleted it
            raise _not_found()
        if found.owner != caller.user:
            raise StoreError(
                "ErrorSubscriptionAccessDenied",
                "The subscription can only be accessed by the account that created it.",
            )
        return found

    # --- GetEvents --------------------------------------------------------------------------
    def get_events(self, op: etree._Element, caller: Caller) -> etree._Element:
        root, messages = response_root("GetEvents")
        try:
            subscription = self._subscription(op.findtext(m("SubscriptionId")), caller)
            if subscription.kind != PULL:
                raise StoreError(
                    "ErrorInvalidPullSubscriptionId", "The subscription is not a pull subscription."
                )
            given = op.findtext(m("Watermark"))
            since = _read_watermark(given, subscription.mailbox, self.store)
            if since not in subscription.issued:
                raise _invalid_watermark()  # not a watermark this subscription handed out
        except StoreError as exc:
            error(messages, "GetEvents", exc.code, exc.text)
            return root
        # The subscription's queue: events since the last GetEvents, the first 50 of them.
        pending = [e for e in self.store.events[subscription.position :] if subscription.wants(e)]
        batch = pending[:EVENTS_PER_NOTIFICATION]
        if len(batch) < len(pending):
            subscription.position = batch[-1].seq
        else:
            subscription.position = len(self.store.events)
        notification = sub(success(messages, "GetEvents"), m("Notification"))
        sub(notification, t("SubscriptionId"), subscription.id)
        sub(notification, t("PreviousWatermark"), given)
        sub(notification, t("MoreEvents"), str(len(pending) > len(batch)).lower())
        for event in batch:
            notification.append(self._event(event, with_watermark=True))
            subscription.issued.add(event.seq)
        if not batch:
            status = sub(notification, t("StatusEvent"))
            sub(status, t("Watermark"), _watermark(subscription.mailbox, subscription.position))
            subscription.issued.add(subscription.position)
        subscription.last_active = self.store.now()
        return root

    def _event(self, event: MailboxEvent, with_watermark: bool) -> etree._Element:
        elem = etree.Element(t(event.kind))
        if with_watermark:
            sub(elem, t("Watermark"), _watermark(event.mailbox, event.seq))
        sub(elem, t("TimeStamp"), format_utc(event.at))
        folder = self.store.folders[event.folder_id]
        if event.item_id is not None:
            sub(elem, t("ItemId"), Id=event.item_id, ChangeKey=event.change_key)
            sub(elem, t("ParentFolderId"), Id=folder.id, ChangeKey=folder.change_key)
        else:
            sub(elem, t("FolderId"), Id=folder.id, ChangeKey=folder.change_key)
            sub(elem, t("ParentFolderId"), Id=folder.parent_id or folder.id)
        return elem

    # --- Unsubscribe ------------------------------------------------------------------------
    def unsubscribe(self, op: etree._Element, caller: Caller) -> etree._Element:
        root, messages = response_root("Unsubscribe")
        try:
            subscription = self._subscription(op.findtext(m("SubscriptionId")), caller)
        except StoreError as exc:
            error(messages, "Unsubscribe", exc.code, exc.text)
            return root
        del self.subscriptions[subscription.id]
        with self.store.changed:
            self.store.changed.notify_all()  # an open stream of it closes
        success(messages, "Unsubscribe")
        return root

    # --- GetStreamingEvents -----------------------------------------------------------------
    def open_stream(
        self, op: etree._Element, caller: Caller
    ) -> etree._Element | Iterator[etree._Element]:
        """The error response, or the responses of the open connection, one per message (the
        endpoint sends each in an envelope of its own, without holding the lock)."""
        minutes = bounded_int(op, m("ConnectionTimeout"), CONNECTION_TIMEOUT_MINUTES, "int")
        ids_elem = op.find(m("SubscriptionIds"))
        ids = [e.text or "" for e in (ids_elem if ids_elem is not None else ())]
        try:
            if not ids:
                raise _not_found()
            subscriptions = [self._subscription(i, caller) for i in ids]
        except StoreError as exc:
            root, messages = response_root("GetStreamingEvents")
            msg = error(messages, "GetStreamingEvents", exc.code, exc.text)
            failed = sub(msg, m("ErrorSubscriptionIds"))
            for subscription_id in ids:
                sub(failed, m("SubscriptionId"), subscription_id)
            return root
        deadline = self.store.now() + 60 * minutes
        return self._messages(subscriptions, deadline)

    def _messages(
        self, subscriptions: list[Subscription], deadline: float
    ) -> Iterator[etree._Element]:
        yield self._stream_message({}, "OK")
        while True:
            with self.store.changed:
                alive = all(s.id in self.subscriptions for s in subscriptions)
                batch = self._take(subscriptions) if alive else {}
                remaining = deadline - self.store.now()
                if not batch and alive and remaining > 0:
                    self.store.changed.wait(timeout=min(1.0, remaining))
                    continue
                message = self._stream_message(batch, "OK") if batch else None
            if message is not None:
                yield message
            if not alive or remaining <= 0:
                yield self._stream_message({}, "Closed")
                return

    def _take(self, subscriptions: list[Subscription]) -> dict[str, list[MailboxEvent]]:
        batch: dict[str, list[MailboxEvent]] = {}
        for subscription in subscriptions:
            events = [
                e for e in self.store.events[subscription.position :] if subscription.wants(e)
            ]
            subscription.position = len(self.store.events)
            if events:
                batch[subscription.id] = events
        return batch

    def _stream_message(self, batch: dict[str, list[MailboxEvent]], status: str) -> etree._Element:
        root, messages = response_root("GetStreamingEvents")
        msg = success(messages, "GetStreamingEvents")
        if batch:
            notifications = sub(msg, m("Notifications"))
            for subscription_id, events in batch.items():
                notification = sub(notifications, m("Notification"))
                sub(notification, t("SubscriptionId"), subscription_id)
                for event in events:
                    notification.append(self._event(event, with_watermark=False))
        sub(msg, m("ConnectionStatus"), status)
        return root
