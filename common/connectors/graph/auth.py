"""A user's delegated Graph tokens, through msal, kept in an encrypted store.

Each user consents for their own mailbox (DESIGN.md, "Permissions and privacy"); the sign-in
(the portal's) leaves msal's token cache in the user's store. From then on the connector asks
msal for a token silently: an access token from the cache, else the refresh token is redeemed
and Entra answers with a new refresh token too, which msal puts in the cache; the cache is
saved (encrypted: `SyncUser.tokens` is an `EncryptedJSON` column) every time it changed, so
the rotated refresh token is never lost.

A grant that no longer works (revoked, expired, consent withdrawn: Entra's `invalid_grant`)
raises `AuthExpired` with Entra's reason, and the store remembers that the user needs to
authorise again: the next run fails at once, without asking Entra with a dead token, until a
new sign-in replaces the state.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import msal
import requests

from common.connectors.base import AuthExpired, Permanent, Transient
from common.db import Database
from common.kinds import Side
from common.models import SyncUser

# Delegated scopes by the short names Entra lists them under in its token response (msal
# caches the access token under exactly that list, so silent calls hit the cache).
CALENDAR_SCOPES = ("Calendars.ReadWrite",)
CONTACT_SCOPES = ("Contacts.ReadWrite",)
SYNC_SCOPES = CALENDAR_SCOPES + CONTACT_SCOPES
# Errors after which only the user can help: sign in (and consent) again.
_REAUTHORISE = frozenset(
    {"invalid_grant", "interaction_required", "consent_required", "login_required"}
)
# How `SyncUser.last_error` asks the user to sign in again (the portal shows it).
REAUTHORISE_PREFIX = "needs re-authorisation: "
_AADSTS = re.compile(r"(AADSTS\d+:[^\r\n]*?)(?:\s+Trace ID:|\r|\n|$)")


class TokenStore(Protocol):
    """Where one user's token state lives: `{"cache": msal's serialized cache,
    "needs_reauthorisation": None | {"reason", "at"}}`."""

    def load(self) -> dict[str, Any] | None: ...

    def save(self, state: dict[str, Any]) -> None: ...


class MemoryTokenStore:
    """A token store in memory (the demo, tests)."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.state = state

    def load(self) -> dict[str, Any] | None:
        return None if self.state is None else dict(self.state)

    def save(self, state: dict[str, Any]) -> None:
        self.state = dict(state)


class SyncUserTokens:
    """The token state of a linked user, in `SyncUser.tokens` (encrypted at rest)."""

    def __init__(self, db: Database, sync_user_id: int) -> None:
        self.db = db
        self.sync_user_id = sync_user_id

    def load(self) -> dict[str, Any] | None:
        with self.db.session() as session:
            user = session.get(SyncUser, self.sync_user_id)
            return None if user is None or user.tokens is None else dict(user.tokens)

    def save(self, state: dict[str, Any]) -> None:
        with self.db.session() as session:
            user = session.get(SyncUser, self.sync_user_id)
            if user is None:
                raise Permanent(f"sync user {self.sync_user_id} is gone")
            user.tokens = dict(state)
            reason = (state.get("needs_reauthorisation") or {}).get("reason")
            if reason:
                user.last_error = f"{REAUTHORISE_PREFIX}{reason}"
            elif (user.last_error or "").startswith(REAUTHORISE_PREFIX):
                user.last_error = None  # signed in again: the request to do so is answered


def token_state(cache: msal.SerializableTokenCache) -> dict[str, Any]:
    """The state a sign-in leaves in a user's store (what `DelegatedTokens` reads)."""
    return {"cache": cache.serialize(), "needs_reauthorisation": None}


@dataclass(frozen=True, slots=True)
class GraphApp:
    """Our multi-tenant app registration, and how msal reaches the authority."""

    client_id: str
    client_secret: str
    authority: str  # e.g. https://login.microsoftonline.com/organizations or /{tenant id}
    session: requests.Session  # trust_env off where a demo CA must win over REQUESTS_CA_BUNDLE

    def client(self, cache: msal.TokenCache) -> msal.ConfidentialClientApplication:
        return msal.ConfidentialClientApplication(
            self.client_id,
            client_credential=self.client_secret,
            authority=self.authority,
            token_cache=cache,
            http_client=self.session,
            instance_discovery=False,
        )


class DelegatedTokens:
    """Access tokens for one user's mailbox, refreshed through msal and saved on change."""

    def __init__(
        self,
        app: GraphApp,
        store: TokenStore,
        username: str,
        scopes: tuple[str, ...] = SYNC_SCOPES,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.app = app
        self.store = store
        self.username = username
        self.scopes = list(scopes)
        self.now = now
        self._lock = threading.Lock()
        self._cache: msal.SerializableTokenCache | None = None
        self._client: msal.ConfidentialClientApplication | None = None

    def access_token(self, *, force_refresh: bool = False) -> str:
        """A valid access token; `force_refresh` redeems the refresh token even when the
        cache holds an access token (Graph refused it)."""
        with self._lock:
            client, cache = self._load()
            accounts = client.get_accounts(username=self.username)
            if not accounts:
                raise self._expired("no signed-in account for this mailbox: sign in again")
            try:
                result = client.acquire_token_silent_with_error(
                    self.scopes, accounts[0], force_refresh=force_refresh
                )
            except requests.RequestException as exc:
                raise Transient(f"the identity platform cannot be reached: {exc}") from exc
            if cache.has_state_changed:  # a new refresh token came with it: keep it now
                self._save(cache, None)
                cache.has_state_changed = False
            if result is None:
                raise self._expired("the token cache holds no refresh token: sign in again")
            if "access_token" in result:
                return str(result["access_token"])
            error = str(result.get("error") or "")
            reason = _reason(result)
            if error in _REAUTHORISE:
                raise self._expired(reason)
            if error in ("invalid_client", "unauthorized_client"):
                raise Permanent(f"the app registration is refused: {reason}")
            raise Transient(f"the identity platform answered {error}: {reason}")

    def _load(self) -> tuple[msal.ConfidentialClientApplication, msal.SerializableTokenCache]:
        if self._client is not None and self._cache is not None:
            return self._client, self._cache
        state = self.store.load() or {}
        flagged = state.get("needs_reauthorisation")
        if flagged:
            # Known dead: the user must sign in again; Entra is not asked with it again.
            raise AuthExpired(
                str(flagged.get("reason") or "needs re-authorisation"), Side.GROUPWARE
            )
        cache = msal.SerializableTokenCache()
        if state.get("cache"):
            cache.deserialize(state["cache"])
        self._cache, self._client = cache, self.app.client(cache)
        return self._client, cache

    def _save(self, cache: msal.SerializableTokenCache, flag: dict[str, str] | None) -> None:
        self.store.save({"cache": cache.serialize(), "needs_reauthorisation": flag})

    def _expired(self, reason: str) -> AuthExpired:
        """The user must authorise again: remembered in the store, with the reason."""
        flag = {"reason": reason, "at": self.now().isoformat()}
        cache = self._cache if self._cache is not None else msal.SerializableTokenCache()
        self._save(cache, flag)
        self._client = self._cache = None
        return AuthExpired(reason, Side.GROUPWARE)


def _reason(result: dict[str, Any]) -> str:
    """Entra's reason without its trace and correlation ids."""
    text = str(result.get("error_description") or result.get("error") or "refused")
    match = _AADSTS.search(text)
    return match.group(1).strip() if match else text.split(" Trace ID:")[0].strip()
