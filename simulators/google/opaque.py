"""Opaque tokens, identifiers and timestamps in the shapes Google uses."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime
from typing import Any

_BASE32HEX = "0123456789abcdefghijklmnopqrstuv"


def encode_token(payload: dict[str, Any]) -> str:
    """A page or sync token: opaque to clients, readable by the simulator."""
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any] | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except (ValueError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def event_id() -> str:
    """Server-chosen event id: base32hex characters, as Calendar generates them."""
    return "".join(secrets.choice(_BASE32HEX) for _ in range(26))


def is_valid_event_id(value: str) -> bool:
    # Calendar: characters a-v and 0-9 only, length 5 to 1024.
    return 5 <= len(value) <= 1024 and all(c in _BASE32HEX for c in value)


def contact_id() -> str:
    return "c" + str(secrets.randbelow(9 * 10**18) + 10**18)


def person_etag(seq: int) -> str:
    return "%" + base64.b64encode(seq.to_bytes(8, "big") + secrets.token_bytes(8)).decode()


def calendar_etag(seq: int) -> str:
    # Calendar etags are quoted decimal strings.
    return f'"{3_500_000_000_000_000 + seq}"'


def rfc3339(moment: datetime) -> str:
    """UTC timestamp with milliseconds, as in ``updated`` / ``created``."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def access_token() -> str:
    return "ya29.sim-" + secrets.token_urlsafe(48)


def refresh_token() -> str:
    return "1//0sim-" + secrets.token_urlsafe(40)


def auth_code() -> str:
    return "4/0sim-" + secrets.token_urlsafe(32)
