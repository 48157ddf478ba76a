"""Graph change notifications delivered to subscribers' webhooks.

Each change of an event or contact in a mailbox goes to the active subscriptions on that
resource: a POST of a changeNotificationCollection to the subscription's notificationUrl (with
its query string), carrying `clientState`, `subscriptionId`, `tenantId`, `resource` and a basic
`resourceData` (id, etag, type). A 2xx answer within 3 seconds counts as delivered; otherwise
the notification is tried again (after `retry_delays`) and finally discarded, which a
subscription with a lifecycleNotificationUrl hears of as a `missed` lifecycle notification.
Lifecycle notifications (`reauthorizationRequired`, `subscriptionRemoved`, `missed`) go to the
lifecycleNotificationUrl. While a subscription waits for reauthorization, its change
notifications are not sent (they are lost, as Graph documents).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import requests

from simulators.microsoft import ids
from simulators.microsoft.timezones import odata_timestamp

TIMEOUT = 3.0  # Graph publishes with a 3-second timeout
VALIDATION_TIMEOUT = 10.0  # the validation handshake must answer within 10 seconds


@dataclass
class Subscription:
    id: str
    resource: str  # as the client gave it
    kind: str  # "events" | "contacts"
    user_id: str  # the mailbox watched
    tenant_id: str
    app_id: str
    creator_id: str  # the signed-in user, or the app's service principal
    change_types: tuple[str, ...]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expiration: datetime
    immutable_ids: bool = False
    needs_reauthorization: bool = False

    def active(self, now: datetime | None = None) -> bool:
        return self.expiration > (now or datetime.now(UTC))

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": ",".join(self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": odata_timestamp(self.expiration),
            "creatorId": self.creator_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


_ODATA = {"events": ("Events", "#Microsoft.Graph.Event"), "contacts": ("Contacts", "#Microsoft.Graph.Contact")}  # fmt: skip


def change_notification(sub: Subscription, change_type: str, item_id: str, etag: str) -> dict:
    shown = ids.immutable(item_id) if sub.immutable_ids else item_id
    segment, odata_type = _ODATA[sub.kind]
    path = f"Users/{sub.user_id}/{segment}/{shown}"
    return {
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": odata_timestamp(sub.expiration),
        "changeType": change_type,
        "resource": path,
        "resourceData": {
            "@odata.type": odata_type,
            "@odata.id": path,
            "@odata.etag": f'W/"{etag}"',
            "id": shown,
        },
        "clientState": sub.client_state,
        "tenantId": sub.tenant_id,
    }


def lifecycle_notification(sub: Subscription, event: str) -> dict:
    return {
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": odata_timestamp(sub.expiration),
        "tenantId": sub.tenant_id,
        "clientState": sub.client_state,
        "lifecycleEvent": event,
    }


@dataclass
class _Delivery:
    subscription: Subscription
    url: str
    item: dict
    lifecycle: bool
    attempt: int = 0


@dataclass
class Notifier:
    """Subscriptions and the queue that delivers their notifications."""

    retry_delays: tuple[float, ...] = (5.0, 30.0, 300.0, 1800.0, 3600.0)
    verify: str | bool = True
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    session: requests.Session = field(default_factory=requests.Session)
    log: list[dict] = field(default_factory=list)  # every delivery attempt (for /_sim/state)
    _queue: deque = field(default_factory=deque)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _busy: bool = False
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE must not override `verify`
        self.session.verify = self.verify

    # --- subscriptions ---------------------------------------------------------------------

    def add(self, sub: Subscription) -> None:
        with self.lock:
            self.subscriptions[sub.id] = sub

    def get(self, sub_id: str) -> Subscription | None:
        """An active subscription; expired ones are gone, as Graph deletes them."""
        with self.lock:
            sub = self.subscriptions.get(sub_id)
            if sub is not None and not sub.active():
                del self.subscriptions[sub_id]
                return None
            return sub

    def remove(self, sub_id: str) -> Subscription | None:
        with self.lock:
            return self.subscriptions.pop(sub_id, None)

    def of_app(self, app_id: str, tenant_id: str, creator_id: str | None) -> list[Subscription]:
        with self.lock:
            found = [s for s in self.subscriptions.values() if s.active()]
        return [
            s
            for s in found
            if s.app_id == app_id
            and s.tenant_id == tenant_id
            and (creator_id is None or s.creator_id == creator_id)
        ]

    # --- producing -------------------------------------------------------------------------

    def changed(self, user_id: str, kind: str, change_type: str, item_id: str, etag: str) -> None:
        """A mailbox item changed: queue a notification for every subscription that wants it."""
        with self.lock:
            wanted = [
                s
                for s in self.subscriptions.values()
                if s.user_id == user_id and s.kind == kind and change_type in s.change_types
            ]
        for sub in wanted:
            if sub.active() and not sub.needs_reauthorization:
                item = change_notification(sub, change_type, item_id, etag)
                self._put(_Delivery(sub, sub.notification_url, item, lifecycle=False))

    def lifecycle(self, sub: Subscription, event: str) -> bool:
        """Send a lifecycle event; False when the subscription has no lifecycle URL."""
        if event == "reauthorizationRequired":
            sub.needs_reauthorization = True
        if not sub.lifecycle_url:
            return False
        item = lifecycle_notification(sub, event)
        self._put(_Delivery(sub, sub.lifecycle_url, item, lifecycle=True))
        return True

    def remove_for_user(self, user_id: str) -> None:
        """The user's grant is gone: Graph removes the subscriptions made with it."""
        with self.lock:
            gone = [s for s in self.subscriptions.values() if s.creator_id == user_id]
            for sub in gone:
                del self.subscriptions[sub.id]
        for sub in gone:
            self.lifecycle(sub, "subscriptionRemoved")

    # --- the validation handshake ------------------------------------------------------------

    def validate_endpoint(self, url: str) -> str | None:
        """POST `url?validationToken=…`; None when the endpoint echoed the token as plain text
        with 200 within 10 seconds, else why not."""
        token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
        try:
            answer = self.session.post(
                url,
                params={"validationToken": token},
                headers={"Content-Type": "text/plain; charset=utf-8"},
                timeout=VALIDATION_TIMEOUT,
            )
        except requests.RequestException as exc:
            return f"{type(exc).__name__}: {exc}"
        if answer.status_code != 200:
            return f"the endpoint answered {answer.status_code}"
        if not answer.headers.get("Content-Type", "").lower().startswith("text/plain"):
            return "the answer is not text/plain"
        if answer.text != token:
            return "the answer must be exactly the validationToken, decoded, in plain text"
        return None

    # --- delivering --------------------------------------------------------------------------

    def _put(self, delivery: _Delivery) -> None:
        with self._cond:
            self._queue.append(delivery)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="graph-notifications", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """For tests and the demo: wait until every queued notification is delivered or given up."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _post(self, delivery: _Delivery) -> int | None:
        body = json.dumps({"value": [delivery.item]}).encode()
        try:
            answer = self.session.post(
                delivery.url,
                data=body,
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=TIMEOUT,
            )
        except requests.RequestException:
            return None
        return answer.status_code

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._busy = False
                    self._cond.notify_all()
                    self._cond.wait()
                delivery = self._queue.popleft()
                self._busy = True
            self._deliver(delivery, self._sleep)

    @staticmethod
    def _sleep(seconds: float) -> None:
        time.sleep(seconds)

    def _deliver(self, delivery: _Delivery, sleep: Callable[[float], None]) -> None:
        while True:
            status = self._post(delivery)
            with self.lock:
                self.log.append(
                    {
                        "url": delivery.url,
                        "status": status,
                        "attempt": delivery.attempt,
                        "lifecycle": delivery.lifecycle,
                        "item": delivery.item,
                    }
                )
            if status is not None and 200 <= status < 300:
                return
            if delivery.attempt >= len(self.retry_delays):
                if not delivery.lifecycle:  # discarded: the subscriber hears it missed some
                    self.lifecycle(delivery.subscription, "missed")
                return
            sleep(self.retry_delays[delivery.attempt])
            delivery.attempt += 1
