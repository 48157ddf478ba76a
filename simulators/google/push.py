"""Calendar push notifications: events.watch opens a channel, channels.stop closes it, and every
change of the watched calendar's events is POSTed to the channel's address.

A notification carries no body, only headers (Google's push guide): `X-Goog-Channel-ID`,
`X-Goog-Channel-Token` (when the channel has one), `X-Goog-Channel-Expiration`,
`X-Goog-Message-Number`, `X-Goog-Resource-ID`, `X-Goog-Resource-URI` and
`X-Goog-Resource-State` (`sync` for the first message of a channel, `exists` after a change).
The receiver must answer 200, 201, 202, 204 or 102; a 500, 502, 503 or 504 is retried with
exponential backoff, anything else is a failed message. Past its expiration a channel is silent.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import requests

from simulators.google.errors import bad_request, not_found

DEFAULT_TTL_SECONDS = 604800  # "params.ttl … Default is 604800 seconds" (events.watch)
SUCCESS = {200, 201, 202, 204, 102}
RETRIED = {500, 502, 503, 504}
TIMEOUT = 10.0


@dataclass
class Channel:
    id: str
    resource_id: str
    resource_uri: str
    calendar_id: str
    address: str
    token: str | None
    expiration_ms: int
    client_id: str  # channels belong to the project that opened them
    messages: int = 0

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "api#channel",
            "id": self.id,
            "resourceId": self.resource_id,
            "resourceUri": self.resource_uri,
            "expiration": str(self.expiration_ms),
        }
        if self.token is not None:
            body["token"] = self.token
        return body


@dataclass
class _Message:
    channel: Channel
    state: str
    number: int
    attempt: int = 0


def resource_id(calendar_id: str) -> str:
    """Opaque and stable for one watched resource (a calendar's events)."""
    return hashlib.sha1(f"events:{calendar_id}".encode()).hexdigest()[:27]  # noqa: S324


@dataclass
class PushChannels:
    """Open channels and the queue that delivers their messages (one thread, in order)."""

    now: Callable[[], float]
    retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    channels: dict[str, Channel] = field(default_factory=dict)
    session: requests.Session = field(default_factory=requests.Session)
    log: list[dict[str, Any]] = field(default_factory=list)  # every delivery attempt
    _queue: deque[_Message] = field(default_factory=deque)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _busy: bool = False
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE must not override `verify`

    # --- events.watch / channels.stop ------------------------------------------------------
    def watch(self, calendar_id: str, client_id: str, body: dict[str, Any]) -> Channel:
        channel_id = body.get("id")
        if not isinstance(channel_id, str) or not channel_id:
            raise bad_request("Required channel id.", "required")
        if len(channel_id) > 64:
            raise bad_request("Channel id is too long (at most 64 characters).")
        if body.get("type") not in ("web_hook", "webhook"):
            raise bad_request(f"Invalid value for channel type: {body.get('type')!r}.")
        address = body.get("address")
        if not isinstance(address, str) or not address:
            raise bad_request("Required channel address.", "required")
        if not address.lower().startswith("https://"):
            raise bad_request(
                f"WebHook callback must be HTTPS: {address}", "push.webhookUrlNotHttps"
            )
        token = body.get("token")
        if token is not None and (not isinstance(token, str) or len(token) > 256):
            raise bad_request("Channel token is too long (at most 256 characters).")
        now_ms = int(self.now() * 1000)
        with self._cond:
            if channel_id in self.channels:
                raise bad_request(f"Channel id {channel_id} not unique", "channelIdNotUnique")
            channel = Channel(
                id=channel_id,
                resource_id=resource_id(calendar_id),
                resource_uri=(
                    f"https://www.googleapis.com/calendar/v3/calendars/{calendar_id}/events"
                    "?alt=json"
                ),
                calendar_id=calendar_id,
                address=address,
                token=token,
                expiration_ms=self._expiration(body, now_ms),
                client_id=client_id,
            )
            self.channels[channel_id] = channel
            self._send(channel, "sync")
        return channel

    @staticmethod
    def _expiration(body: dict[str, Any], now_ms: int) -> int:
        """params.ttl or expiration, never past the default lifetime of a week (Google
        documents the default, not a longer maximum; clients renew by the answered expiry)."""
        longest = now_ms + DEFAULT_TTL_SECONDS * 1000
        ttl = (body.get("params") or {}).get("ttl")
        try:
            if ttl is not None:
                wanted = now_ms + int(ttl) * 1000
            elif body.get("expiration") is not None:
                wanted = int(body["expiration"])
            else:
                return longest
        except (TypeError, ValueError):
            raise bad_request("Invalid channel expiration or ttl.") from None
        if wanted <= now_ms:
            raise bad_request("Channel expiration is in the past.")
        return min(wanted, longest)

    def stop(self, client_id: str, body: dict[str, Any]) -> None:
        channel_id, resource = body.get("id"), body.get("resourceId")
        if not channel_id or not resource:
            raise bad_request("Required channel id and resourceId.", "required")
        with self._cond:
            channel = self.channels.get(channel_id)
            if channel is None or channel.resource_id != resource or channel.client_id != client_id:
                raise not_found(f"Channel '{channel_id}' not found for project")
            del self.channels[channel_id]

    # --- changes ---------------------------------------------------------------------------
    def changed(self, calendar_id: str) -> None:
        """An event of `calendar_id` was created, changed or deleted."""
        now_ms = int(self.now() * 1000)
        with self._cond:
            for channel in self.channels.values():
                if channel.calendar_id == calendar_id and channel.expiration_ms > now_ms:
                    self._send(channel, "exists")

    def _send(self, channel: Channel, state: str) -> None:
        channel.messages += 1
        self._queue.append(_Message(channel, state, channel.messages))
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="google-push")
            self._thread.start()
        self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """For tests: wait until every queued message is delivered or given up."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    # --- delivery --------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._busy = False
                    self._cond.notify_all()
                    self._cond.wait()
                message = self._queue.popleft()
                self._busy = True
            self._deliver(message)

    def _deliver(self, message: _Message) -> None:
        while True:
            status = self._post(message)
            with self._cond:
                self.log.append(
                    {
                        "channel": message.channel.id,
                        "state": message.state,
                        "number": message.number,
                        "attempt": message.attempt,
                        "status": status,
                    }
                )
            retry = status is None or status in RETRIED
            if status in SUCCESS or not retry or message.attempt >= len(self.retry_delays):
                return
            time.sleep(self.retry_delays[message.attempt])
            message.attempt += 1

    def _post(self, message: _Message) -> int | None:
        channel = message.channel
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Channel-Expiration": formatdate(channel.expiration_ms / 1000, usegmt=True),
            "X-Goog-Message-Number": str(message.number),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": channel.resource_uri,
            "X-Goog-Resource-State": message.state,
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        try:
            answer = self.session.post(channel.address, data=b"", headers=headers, timeout=TIMEOUT)
        except requests.RequestException:
            return None  # unreachable, or a certificate the sender does not trust
        return answer.status_code
