"""Everything the simulator hands out to callers: authorization codes, access and refresh tokens,
and `7T:` tickets, with SuperOffice's lifetimes (code 10 min, access token 1 h, ticket 6 h sliding)."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import threading
import uuid
from dataclasses import dataclass

CODE_LIFETIME = dt.timedelta(minutes=10)
ACCESS_LIFETIME = dt.timedelta(hours=1)
TICKET_LIFETIME = dt.timedelta(hours=6)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Grant:
    """Who a code, token or ticket stands for."""

    context_id: str
    associate_id: int
    client_id: str = ""
    expires: dt.datetime | None = None
    # authorization codes only
    redirect_uri: str = ""
    code_challenge: str = ""
    code_challenge_method: str = ""
    nonce: str = ""

    def expired(self) -> bool:
        return self.expires is not None and _now() >= self.expires


class CredentialStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.codes: dict[str, Grant] = {}
        self.access_tokens: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        self.tickets: dict[str, Grant] = {}

    def issue_code(self, grant: Grant) -> str:
        code = secrets.token_urlsafe(24)
        grant.expires = _now() + CODE_LIFETIME
        with self._lock:
            self.codes[code] = grant
        return code

    def take_code(self, code: str) -> Grant | None:
        """Codes are single use."""
        with self._lock:
            grant = self.codes.pop(code, None)
        return None if grant is None or grant.expired() else grant

    def issue_tokens(self, grant: Grant, *, refresh_token: str | None = None) -> tuple[str, str]:
        """An `8A:` access token (not a JWT, like SuperID's) and a long-lived refresh token."""
        access = f"8A:{grant.context_id}.{secrets.token_urlsafe(32)}"
        refresh = refresh_token or secrets.token_urlsafe(32)
        with self._lock:
            self.access_tokens[access] = Grant(
                grant.context_id, grant.associate_id, grant.client_id, _now() + ACCESS_LIFETIME
            )
            self.refresh_tokens[refresh] = Grant(
                grant.context_id, grant.associate_id, grant.client_id
            )
        return access, refresh

    def access(self, token: str) -> Grant | None:
        grant = self.access_tokens.get(token)
        return None if grant is None or grant.expired() else grant

    def refresh(self, token: str) -> Grant | None:
        return self.refresh_tokens.get(token)

    def revoke_user(self, context_id: str, associate_id: int) -> None:
        """Consent withdrawn or password changed: every token of that user stops working."""
        with self._lock:
            for table in (self.access_tokens, self.refresh_tokens, self.tickets):
                for key in [
                    k
                    for k, g in table.items()
                    if (g.context_id, g.associate_id) == (context_id, associate_id)
                ]:
                    del table[key]

    def issue_ticket(self, context_id: str, associate_id: int, client_id: str = "") -> str:
        raw = f"{uuid.uuid4()};{secrets.randbelow(10**6)}".encode()
        ticket = "7T:" + base64.b64encode(raw).decode()
        with self._lock:
            self.tickets[ticket] = Grant(
                context_id, associate_id, client_id, _now() + TICKET_LIFETIME
            )
        return ticket

    def ticket(self, ticket: str) -> Grant | None:
        """A valid ticket's expiry slides forward on every use."""
        with self._lock:
            grant = self.tickets.get(ticket)
            if grant is None or grant.expired():
                return None
            grant.expires = _now() + TICKET_LIFETIME
            return grant
