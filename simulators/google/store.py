"""In-memory state of the Google simulator: directory, calendars, contacts, grants and tokens.

One ``GoogleStore`` per app, guarded by one lock (the werkzeug server is threaded). Every change
to an event or contact takes the next value of a global sequence; sync tokens remember the
sequence they were issued at, so "changed since" is a simple comparison.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from simulators.world.google import GoogleDomain, GoogleUser, GoogleWorld, OAuthClient, Role

ACCESS_TOKEN_LIFETIME = 3599
# People API sync tokens expire seven days after the full sync that issued them.
PEOPLE_SYNC_TOKEN_LIFETIME = 7 * 24 * 3600


@dataclass
class Calendar:
    id: str
    owner: str
    summary: str
    time_zone: str
    primary: bool = True
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    seqs: dict[str, int] = field(default_factory=dict)  # event id -> sequence of last change
    epoch: int = 0  # bumped to invalidate every sync token of this calendar


@dataclass
class ContactVersion:
    """A contact as one write left it, and when sync listings start to show it."""

    seq: int
    visible_at: float
    person: dict[str, Any]
    etag: str
    updated: str
    deleted: bool


@dataclass
class Contact:
    resource_name: str
    person: dict[str, Any]  # client-writable fields only
    seq: int
    etag: str
    updated: str
    deleted: bool = False
    # Every write, oldest first (empty for contacts placed by /_sim/state: always visible).
    versions: list[ContactVersion] = field(default_factory=list)


@dataclass
class AccessToken:
    token: str
    client_id: str
    email: str  # the user acted for (the subject), or the service account itself
    scopes: list[str]
    expires_at: float
    refresh_token: str | None = None
    access_type: str = "online"


@dataclass
class RefreshGrant:
    token: str
    client_id: str
    email: str
    scopes: list[str]
    revoked: bool = False


@dataclass
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    email: str
    scopes: list[str]
    offline: bool
    expires_at: float
    nonce: str | None = None
    used: bool = False


@dataclass
class ContactBook:
    contacts: dict[str, Contact] = field(default_factory=dict)
    epoch: int = 0


class GoogleStore:
    def __init__(self, world: GoogleWorld) -> None:
        self.world = world
        self.lock = threading.RLock()
        self.clock_offset = 0.0
        self._seq = 0
        self.calendars: dict[str, Calendar] = {}
        self.books: dict[str, ContactBook] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_grants: dict[str, RefreshGrant] = {}
        self.codes: dict[str, AuthCode] = {}
        self.consent_tickets: dict[str, dict[str, str]] = {}  # consent screens awaiting a click
        # Per-user quota (requests per window in seconds), off unless set; Google answers 403
        # userRateLimitExceeded past it.
        self.user_quota: tuple[int, float] | None = None
        # People API: "Writes may have a propagation delay of several minutes for sync
        # requests" (connections.list); seconds before a write shows in listings, 0 = at once.
        self.people_propagation_seconds = 0.0
        self._calls: dict[str, deque[float]] = {}
        # Told the calendar id whenever one of its events changes (push notifications).
        self.calendar_listeners: list[Callable[[str], None]] = []
        for user in world.accounts():  # a personal account has its calendar and contacts too
            self.calendars[user.email] = Calendar(
                user.email, user.email, user.email, user.time_zone
            )
            self.books[user.email] = ContactBook()

    # -- time and sequence -------------------------------------------------------------
    def now(self) -> float:
        return time.time() + self.clock_offset

    def now_dt(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)

    def next_seq(self) -> int:
        with self.lock:
            self._seq += 1
            return self._seq

    @property
    def seq(self) -> int:
        return self._seq

    def spend_quota(self, email: str) -> bool:
        """Count one API call of `email`; False when the user's quota is used up."""
        if self.user_quota is None:
            return True
        limit, window = self.user_quota
        now = self.now()
        with self.lock:
            calls = self._calls.setdefault(email, deque())
            while calls and calls[0] <= now - window:
                calls.popleft()
            if len(calls) >= limit:
                return False
            calls.append(now)
            return True

    # -- directory ----------------------------------------------------------------------
    def find_client(self, client_id: str) -> OAuthClient | None:
        return next((c for c in self.world.oauth_clients if c.client_id == client_id), None)

    def find_user(self, key: str) -> GoogleUser | None:
        """A Google account (a Workspace's user or a personal account) by primary email or
        numeric id (``userKey`` in the Directory API)."""
        key = key.lower()
        return next((u for u in self.world.accounts() if key in (u.email, u.user_id)), None)

    def domain_of(self, email: str) -> GoogleDomain | None:
        """The Workspace whose user `email` is: by membership, not by the address's domain (a
        personal account on a Workspace's domain belongs to none)."""
        user = self.find_user(email)
        return self.world.workspace_of(user) if user is not None else None

    def hosted_domain(self, user: GoogleUser) -> str | None:
        """`hd` of the id_token, userinfo and the sign-in redirect: the domain of the user's
        Workspace, absent for a personal Google account (see the README)."""
        workspace = self.world.workspace_of(user)
        return workspace.name if workspace is not None else None

    def find_domain(self, name: str) -> GoogleDomain | None:
        return next((d for d in self.world.domains if d.name == name.lower()), None)

    def roles_of(self, user: GoogleUser) -> list[Role]:
        return [r for r in self.world.roles if r.name in user.roles]

    def has_privilege(self, user: GoogleUser, privilege: str) -> bool:
        return any(r.is_super_admin or privilege in r.privileges for r in self.roles_of(user))

    # -- tokens -------------------------------------------------------------------------
    def issue_access_token(
        self,
        token: str,
        client_id: str,
        email: str,
        scopes: list[str],
        refresh_token: str | None = None,
    ) -> AccessToken:
        record = AccessToken(
            token=token,
            client_id=client_id,
            email=email,
            scopes=scopes,
            expires_at=self.now() + ACCESS_TOKEN_LIFETIME,
            refresh_token=refresh_token,
            access_type="offline" if refresh_token else "online",
        )
        with self.lock:
            self.access_tokens[token] = record
        return record

    def valid_access_token(self, token: str) -> AccessToken | None:
        record = self.access_tokens.get(token)
        if record is None or record.expires_at <= self.now():
            return None
        if record.refresh_token:
            grant = self.refresh_grants.get(record.refresh_token)
            if grant is None or grant.revoked:
                return None
        return record

    def revoke_user(self, email: str) -> int:
        """Revoke every grant and token of a user (what "remove access" does at Google)."""
        count = 0
        with self.lock:
            for grant in self.refresh_grants.values():
                if grant.email == email and not grant.revoked:
                    grant.revoked = True
                    count += 1
            for token in [t for t, r in self.access_tokens.items() if r.email == email]:
                del self.access_tokens[token]
        return count
