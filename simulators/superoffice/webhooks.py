"""Webhook delivery as NetServer does it: POST the event JSON to each active subscription whose
Events match, signed with `X-SuperOffice-Signature` = base64(HMAC-SHA256(Secret, raw body)).

Only a 200 answer counts as received. Each delivery cycle makes 3 tries with the same EventId
(the retries after 1 s and 4 s); when all three fail that event is discarded and the payload goes
to the back of the queue, to be tried again as a new event (a new EventId, so a new signature);
after 9 consecutive failed tries the webhook's State becomes `TooManyErrors` and nothing more is
sent until someone sets it back to Active.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

import requests

from simulators.superoffice.model import TenantData, WebhookRecord, utcnow

MAX_CONSECUTIVE_ERRORS = 9
TRIES_PER_CYCLE = 3
USER_AGENT = "NetServer-Webhook/11.10.721"


def signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def matches(webhook: WebhookRecord, event: str) -> bool:
    entity = event.split(".")[0]
    return any(e in (event, f"{entity}.*", "*") for e in webhook.events)


@dataclass
class Delivery:
    tenant: TenantData
    webhook_id: int
    event: str
    payload: dict[str, Any]

    @property
    def body(self) -> bytes:
        return json.dumps(self.payload).encode()

    def as_new_event(self) -> Delivery:
        """The same change as a new event: what follows a discarded one."""
        return Delivery(
            self.tenant, self.webhook_id, self.event, {**self.payload, "EventId": _event_id()}
        )


def _event_id() -> str:
    return str(uuid.uuid4())


class WebhookDispatcher:
    def __init__(
        self,
        *,
        retry_delays: tuple[float, float] = (1.0, 4.0),
        verify: str | bool = True,
        timeout: float = 5.0,
    ) -> None:
        self.retry_delays = retry_delays
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE must not override `verify`
        self.session.verify = verify
        self._queue: deque[Delivery] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._thread: threading.Thread | None = None

    # --- producing ------------------------------------------------------------------------------

    def emit(
        self,
        tenant: TenantData,
        event: str,
        primary_key: int,
        *,
        associate_id: int,
        values: dict[str, Any],
        changes: list[str] | None = None,
    ) -> None:
        """Queue `event` for every active subscription of `tenant` that wants it."""
        with tenant.lock:
            hooks = [
                w for w in tenant.webhooks.values() if w.state == "Active" and matches(w, event)
            ]
        for hook in hooks:
            payload = {
                "EventId": _event_id(),
                "Timestamp": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
                "Changes": changes or [],
                "Event": event,
                "PrimaryKey": primary_key,
                "Entity": event.split(".")[0],
                "ContextIdentifier": tenant.context_id if tenant.config.kind == "online" else "",
                "ChangedByAssociateId": associate_id,
                "WebhookName": hook.name,
                ("Values" if event.endswith(".deleted") else "FieldValues"): values,
            }
            self._put(Delivery(tenant, hook.webhook_id, event, payload))

    def _put(self, delivery: Delivery) -> None:
        with self._cond:
            self._queue.append(delivery)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="so-webhooks", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """For tests and the demo: wait until every queued event was delivered or gave up."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    # --- delivering -----------------------------------------------------------------------------

    def post(self, hook: WebhookRecord, event: str, body: bytes, retry: int = 0) -> str | None:
        """One POST; returns None on success, else the error text."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-SuperOffice-Event": event,
            "X-SuperOffice-EventId": json.loads(body).get("EventId", ""),
            "X-SuperOffice-Retry": str(retry),
            **hook.headers,
        }
        if hook.secret:
            headers["X-SuperOffice-Signature"] = signature(hook.secret, body)
        try:
            response = self.session.post(
                hook.target_url, data=body, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            return f"{type(exc).__name__}: {exc}"
        if response.status_code == 200:  # "must respond ... with a 200 OK response"
            return None
        return f"HTTP {response.status_code} {response.reason}"

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._busy = False
                    self._cond.notify_all()
                    self._cond.wait()
                delivery = self._queue.popleft()
                self._busy = True
            if not self._cycle(delivery):
                with self._cond:  # discarded; the change goes to the back as a new event
                    self._queue.append(delivery.as_new_event())

    def _cycle(self, delivery: Delivery) -> bool:
        """Up to three tries; True when delivered or when the webhook no longer takes events."""
        tenant = delivery.tenant
        for attempt in range(TRIES_PER_CYCLE):
            with tenant.lock:
                hook = tenant.webhooks.get(delivery.webhook_id)
                if hook is None or hook.state != "Active":
                    return True  # deleted, stopped or disabled: the event is dropped
            error = self.post(hook, delivery.event, delivery.body, retry=attempt)
            with tenant.lock:
                hook.total_calls += 1
                hook.updated = utcnow()
                if error is None:
                    hook.consecutive_errors = 0
                    return True
                hook.total_errors += 1
                hook.consecutive_errors += 1
                hook.last_error = error
                if hook.consecutive_errors >= MAX_CONSECUTIVE_ERRORS:
                    hook.state = "TooManyErrors"
                    return True
            if attempt < TRIES_PER_CYCLE - 1:
                time.sleep(self.retry_delays[attempt])
        return False
