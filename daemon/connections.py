"""The connectors of one user's sync, composed from the profile, the user and the settings.

What a profile must hold for it:
- CRM, SuperOffice Onsite (`crm_kind` superoffice_onsite): `crm_url` the WebAPI's site
  (`https://crm.example.com/SuperOffice`), `crm_credentials` {"username", "password"} of the
  system user the product asks for (Basic).
- CRM, SuperOffice Online (superoffice_online): `crm_tenant` the context id (Cust12345),
  `crm_credentials` {"access_token", "refresh_token", "expires_at"} SuperID tokens, renewed
  with our SuperOffice application (settings) and saved back, encrypted, on every renewal.
- Both: `settings["crm_time_zone"]`, the tenant's IANA zone (all-day items live in it).
- Groupware, Microsoft 365 (m365): `groupware_settings["tenant_id"]`, our Microsoft
  application (settings), and the user's delegated tokens from their sign-in in
  `SyncUser.tokens` (msal's cache, renewed and saved by `SyncUserTokens`).
Exchange and Google are not composed yet: such a profile is `ProfileIncomplete`.

The user's SuperOffice associate is `SyncUser.crm_associate_id`, the mailbox `SyncUser.mailbox`.
Connections verify TLS with the system's CAs, or with `sync_ca_bundle` (the simulators').
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests

from common.config import Settings
from common.connectors.base import ItemConnector
from common.connectors.graph.auth import DelegatedTokens, GraphApp, SyncUserTokens
from common.connectors.graph.client import GraphClient
from common.connectors.graph.contacts import GraphContacts
from common.connectors.graph.events import GraphEvents
from common.connectors.superoffice import (
    Basic,
    OAuthTokens,
    Online,
    Onsite,
    SuperOfficeAppointments,
    SuperOfficeClient,
    SuperOfficePersons,
    Tenant,
)
from common.db import Database
from common.kinds import ItemKind, Side, Window
from common.models import CrmKind, GroupwareKind, Profile, SyncUser
from daemon.policies import Policy

Connectors = Mapping[Side, ItemConnector[Any]]


def shared_connections(profile: Profile) -> dict[Side, str]:
    """The sides whose credentials the profile keeps for all its users, so that a refusal
    of them concerns every user, named as a person knows them. SuperOffice's are the
    profile's (`crm_credentials`: an Online grant, an Onsite system user's password);
    Microsoft 365's are each user's own (`SyncUser.tokens`)."""
    shared = {}
    if profile.crm_kind in (CrmKind.SUPEROFFICE_ONLINE, CrmKind.SUPEROFFICE_ONSITE):
        shared[Side.CRM] = "SuperOffice"
    return shared


class ProfileIncomplete(Exception):
    """The profile lacks what the connectors need: a person must complete it."""


class ConnectorFactory(Protocol):
    def __call__(
        self, profile: Profile, user: SyncUser, kind: ItemKind, now: datetime
    ) -> Connectors: ...


class Connections:
    """Builds each run's connectors; one HTTP session per run (closed by `close`)."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.http = requests.Session()
        self.http.trust_env = False  # REQUESTS_CA_BUNDLE must not override the configured CA
        self.http.verify = str(settings.sync_ca_bundle) if settings.sync_ca_bundle else True

    def __call__(
        self, profile: Profile, user: SyncUser, kind: ItemKind, now: datetime
    ) -> Connectors:
        return {
            Side.CRM: self.crm(profile, user, kind),
            Side.GROUPWARE: self.groupware(profile, user, kind, now),
        }

    def close(self) -> None:
        self.http.close()

    # --- SuperOffice ------------------------------------------------------------------------

    def crm(self, profile: Profile, user: SyncUser, kind: ItemKind) -> ItemConnector[Any]:
        client = self.crm_client(profile)
        context = profile.crm_tenant or "SuperOffice"
        if kind is ItemKind.CONTACT:
            return SuperOfficePersons(client, user.crm_associate_id, context=context)
        zone = _required(profile.settings or {}, "crm_time_zone", profile)
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ProfileIncomplete(
                f"profile {profile.name!r}: crm_time_zone {zone!r} is not an IANA time zone"
            ) from None
        tenant = Tenant(zone, context=context)
        return SuperOfficeAppointments(client, user.crm_associate_id, tenant)

    def crm_client(self, profile: Profile) -> SuperOfficeClient:
        """SuperOffice with the profile's credentials (its system user's)."""
        return SuperOfficeClient(self._site(profile), self._crm_auth(profile), http=self.http)

    def _site(self, profile: Profile) -> Onsite | Online:
        if profile.crm_kind is CrmKind.SUPEROFFICE_ONSITE:
            return Onsite(profile.crm_url)
        if not profile.crm_tenant:
            raise ProfileIncomplete(f"profile {profile.name!r}: no SuperOffice Online tenant")
        return Online(profile.crm_tenant, superid_url=self.settings.superoffice_online_url)

    def superid_tokens(self, profile: Profile) -> OAuthTokens:
        """An Online profile's SuperID tokens (housekeeping renews them before they expire)."""
        auth = self._crm_auth(profile)
        if not isinstance(auth, OAuthTokens):
            raise ProfileIncomplete(f"profile {profile.name!r} signs in to SuperOffice with Basic")
        return auth

    def _crm_auth(self, profile: Profile) -> Basic | OAuthTokens:
        secrets = profile.crm_credentials or {}
        if profile.crm_kind is CrmKind.SUPEROFFICE_ONSITE:
            return Basic(
                _required(secrets, "username", profile), _required(secrets, "password", profile)
            )
        app_id, app_secret = (
            self.settings.superoffice_client_id,
            self.settings.superoffice_client_secret,
        )
        if not app_id or not app_secret:
            raise ProfileIncomplete(
                "SUPEROFFICE_CLIENT_ID and SUPEROFFICE_CLIENT_SECRET are not set"
            )
        expires = secrets.get("expires_at")
        return OAuthTokens(
            access_token=_required(secrets, "access_token", profile),
            refresh_token=_required(secrets, "refresh_token", profile),
            expires_at=datetime.fromisoformat(expires) if expires else None,
            client_id=app_id,
            client_secret=app_secret,
            token_url=f"{self.settings.superoffice_online_url.rstrip('/')}/login/common/oauth/tokens",
            on_refresh=self._saver(profile.id),
        )

    def _saver(self, profile_id: int) -> Callable[[OAuthTokens], None]:
        def save(tokens: OAuthTokens) -> None:
            with self.db.session() as session:
                row = session.get(Profile, profile_id)
                if row is not None:
                    row.crm_credentials = {
                        **(row.crm_credentials or {}),
                        "access_token": tokens.access_token,
                        "refresh_token": tokens.refresh_token,
                        "expires_at": tokens.expires_at.isoformat() if tokens.expires_at else None,
                    }

        return save

    # --- the groupware ----------------------------------------------------------------------

    def groupware(
        self, profile: Profile, user: SyncUser, kind: ItemKind, now: datetime
    ) -> ItemConnector[Any]:
        if profile.groupware_kind is not GroupwareKind.MICROSOFT_365:
            raise ProfileIncomplete(
                f"profile {profile.name!r}: {profile.groupware_kind.value} is not synced yet"
            )
        client = self.graph_client(profile, user)
        if kind is ItemKind.CONTACT:
            return GraphContacts(client)
        start, end = Policy.from_settings(profile.settings or {}).window.bounds(now.astimezone(UTC))
        return GraphEvents(client, window=Window(start, end))

    def graph_client(self, profile: Profile, user: SyncUser) -> GraphClient:
        """Graph for the user's mailbox, with their delegated tokens (Microsoft 365 only)."""
        return GraphClient(
            self.graph_tokens(profile, user),
            user.mailbox,
            root=self.settings.microsoft_graph_url,
            session=self.http,
        )

    def graph_tokens(self, profile: Profile, user: SyncUser) -> DelegatedTokens:
        """The user's delegated Microsoft 365 tokens (msal's cache in `SyncUser.tokens`)."""
        settings = self.settings
        if not settings.microsoft_client_id or not settings.microsoft_client_secret:
            raise ProfileIncomplete("MICROSOFT_CLIENT_ID and MICROSOFT_CLIENT_SECRET are not set")
        tenant = _required(profile.groupware_settings or {}, "tenant_id", profile)
        authority = f"{settings.microsoft_authority_host.rstrip('/')}/{tenant}"
        app = GraphApp(
            settings.microsoft_client_id, settings.microsoft_client_secret, authority, self.http
        )
        return DelegatedTokens(app, SyncUserTokens(self.db, user.id), user.mailbox)


def _required(values: Mapping[str, Any], key: str, profile: Profile) -> str:
    value = values.get(key)
    if not value:
        raise ProfileIncomplete(f"profile {profile.name!r}: {key} is not set")
    return str(value)
