"""Who the SuperOffice client is, and how it proves it.

Onsite: a user name and password sent as Basic (the dedicated system user the product asks
for, or an administrator's credentials; the server needs `AuthorizeWithUsername`). Online:
the user's SuperID tokens (OAuth 2.0; Basic is refused there): the access token is used as
`Bearer` until it expires, then the refresh token buys a new one, and every new set is handed
to `on_refresh` so the caller stores it (encrypted) at once.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

import requests

from common.connectors.base import AuthExpired, Transient
from common.kinds import Side

# A token is renewed this long before it says it expires (clocks differ; a request takes time).
EARLY = timedelta(minutes=2)


class Credentials(Protocol):
    def headers(self, http: requests.Session, timeout: float) -> dict[str, str]:
        """The headers that authenticate one request (renewing first if due)."""
        ...

    def renew(self, http: requests.Session, timeout: float) -> bool:
        """After a 401: get fresh credentials; False when there is nothing to renew."""
        ...


@dataclass
class Basic:
    """Onsite: a user name and password (Basic, as the WebAPI takes with AuthorizeWithUsername)."""

    username: str
    password: str = field(repr=False)

    def headers(self, http: requests.Session, timeout: float) -> dict[str, str]:
        raw = f"{self.username}:{self.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    def renew(self, http: requests.Session, timeout: float) -> bool:
        return False  # a refused password stays refused


@dataclass
class OAuthTokens:
    """Online: one user's SuperID tokens, refreshed through `token_url`
    (`https://online.superoffice.com/login/common/oauth/tokens` in production)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime | None
    client_id: str
    client_secret: str = field(repr=False)
    token_url: str
    # Called with the new tokens after every refresh: the caller stores them (encrypted).
    on_refresh: Callable[[OAuthTokens], None] | None = field(default=None, repr=False)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC), repr=False)

    def headers(self, http: requests.Session, timeout: float) -> dict[str, str]:
        if self.expires_at is not None and self.clock() >= self.expires_at - EARLY:
            self.refresh(http, timeout)
        return {"Authorization": f"Bearer {self.access_token}"}

    def renew(self, http: requests.Session, timeout: float) -> bool:
        self.refresh(http, timeout)
        return True

    def refresh(self, http: requests.Session, timeout: float) -> None:
        """Redeem the refresh token (client_secret_post, as SuperID takes it)."""
        try:
            answer = http.post(
                self.token_url,
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": self.refresh_token,
                    "client_id": self.client_id,
                    "client_secret": self.client_secret,
                },
                headers={"Accept": "application/json"},
                timeout=timeout,
            )
        except requests.RequestException as exc:
            raise Transient(f"SuperID token endpoint unreachable: {exc}") from exc
        try:
            body = answer.json()
        except ValueError:
            body = {}
        if answer.status_code in (400, 401):
            # invalid_grant: consent withdrawn, password changed, token revoked. The user
            # must sign in again; nothing else we can do fixes it.
            reason = body.get("error_description") or body.get("error") or answer.reason
            raise AuthExpired(f"SuperOffice sign-in needs renewing: {reason}", Side.CRM)
        if answer.status_code != 200 or "access_token" not in body:
            raise Transient(f"SuperID token endpoint answered {answer.status_code}")
        expires_in = body.get("expires_in")
        self.access_token = str(body["access_token"])
        # SuperID keeps the refresh token; if it ever sends a new one, the new one counts.
        self.refresh_token = str(body.get("refresh_token") or self.refresh_token)
        self.expires_at = (
            self.clock() + timedelta(seconds=int(expires_in)) if expires_in is not None else None
        )
        if self.on_refresh is not None:
            self.on_refresh(replace(self))
