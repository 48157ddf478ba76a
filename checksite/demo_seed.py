"""The demo's organisations: profiles with linked users who sync for real against the
simulators, made afresh at each start (the simulated world is new each time: its data, its
addresses, the tokens it issued).

What a person does in the portal is done here by a robot at the simulated sign-in pages
(`browse`, handed in by the demo: the web app never imports the simulators): the profile's
SuperOffice administrator signs in to SuperID (the profile's system-user tokens) and each
linked user signs in to Microsoft 365 and consents (their delegated tokens, through msal as
the product always gets them).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msal
import requests
from sqlalchemy import delete

from checksite.check.superid import Flow, authorize_url
from common.config import Settings
from common.connectors.graph.auth import token_state
from common.db import Database
from common.models import CrmKind, GroupwareKind, InvitationState, Organisation, Profile, SyncUser

# browse(http, authorize URL, username, password) -> the parameters the redirect carried
Browse = Callable[[requests.Session, str, str, str], dict[str, str]]
SCOPES = ["Calendars.ReadWrite", "Contacts.ReadWrite"]  # msal adds openid, profile, offline_access


class SeedFailed(Exception):
    pass


@dataclass(frozen=True)
class DemoUser:
    associate_id: int
    mailbox: str


@dataclass(frozen=True)
class DemoProfile:
    organisation: str
    slug: str
    superoffice_context: str  # its SuperOffice Online tenant
    superoffice_admin: str  # who signs the profile in to SuperID
    superoffice_password: str
    microsoft_tenant: str
    time_zone: str  # the SuperOffice tenant's
    users: tuple[DemoUser, ...]


def seed(
    db: Database, settings: Settings, profiles: list[DemoProfile], browse: Browse
) -> list[int]:
    """Make each demo profile again, its users signed in; the sync users' ids."""
    http = requests.Session()
    http.trust_env = False
    http.verify = str(settings.sync_ca_bundle) if settings.sync_ca_bundle else True
    made: list[int] = []
    try:
        for spec in profiles:
            crm = _superid_tokens(http, settings, spec, browse)
            tokens = {
                u.mailbox: _microsoft_tokens(http, settings, spec, u, browse) for u in spec.users
            }
            with db.session() as session:
                # everything of the last run goes with its organisation (links, runs, cursors)
                session.execute(delete(Organisation).where(Organisation.slug == spec.slug))
                org = Organisation(name=spec.organisation, slug=spec.slug)
                profile = Profile(
                    organisation=org,
                    name=f"{spec.organisation}: SuperOffice and Microsoft 365",
                    crm_kind=CrmKind.SUPEROFFICE_ONLINE,
                    crm_url=settings.superoffice_online_url,
                    crm_tenant=spec.superoffice_context,
                    crm_credentials=crm,
                    groupware_kind=GroupwareKind.MICROSOFT_365,
                    groupware_settings={"tenant_id": spec.microsoft_tenant},
                    settings={
                        "crm_time_zone": spec.time_zone,
                        "appointments": "two_way",
                        "contacts": "two_way",
                    },
                )
                users = [
                    SyncUser(
                        profile=profile,
                        crm_associate_id=u.associate_id,
                        mailbox=u.mailbox,
                        invitation_state=InvitationState.ACTIVE,
                        tokens=tokens[u.mailbox],
                    )
                    for u in spec.users
                ]
                session.add_all([org, profile, *users])
                session.flush()
                made += [u.id for u in users]
    finally:
        http.close()
    return made


def _superid_tokens(
    http: requests.Session, settings: Settings, spec: DemoProfile, browse: Browse
) -> dict[str, Any]:
    if not settings.superoffice_client_id or not settings.superoffice_client_secret:
        raise SeedFailed("the demo needs our SuperOffice application's id and secret")
    redirect = f"{settings.public_url.rstrip('/')}/auth/superoffice/callback"
    flow = Flow.new()
    url = authorize_url(
        settings.superoffice_online_url,
        settings.superoffice_client_id,
        redirect,
        flow,
        spec.superoffice_context,
    )
    back = browse(http, url, spec.superoffice_admin, spec.superoffice_password)
    if "code" not in back:
        raise SeedFailed(f"SuperID sign-in of {spec.superoffice_admin}: {back}")
    answer = http.post(
        f"{settings.superoffice_online_url.rstrip('/')}/login/common/oauth/tokens",
        data={
            "grant_type": "authorization_code",
            "code": back["code"],
            "redirect_uri": redirect,
            "client_id": settings.superoffice_client_id,
            "client_secret": settings.superoffice_client_secret,
            "code_verifier": flow.verifier,
        },
        timeout=30,
    )
    body = answer.json()
    if answer.status_code != 200 or "refresh_token" not in body:
        raise SeedFailed(f"SuperID would not redeem {spec.superoffice_admin}'s code: {body}")
    expires = datetime.now(UTC) + timedelta(seconds=int(body.get("expires_in", 3600)))
    return {
        "access_token": body["access_token"],
        "refresh_token": body["refresh_token"],
        "expires_at": expires.isoformat(),
    }


def _microsoft_tokens(
    http: requests.Session, settings: Settings, spec: DemoProfile, user: DemoUser, browse: Browse
) -> dict[str, Any]:
    if not settings.microsoft_client_id or not settings.microsoft_client_secret:
        raise SeedFailed("the demo needs our Microsoft application's id and secret")
    cache = msal.SerializableTokenCache()
    app = msal.ConfidentialClientApplication(
        settings.microsoft_client_id,
        client_credential=settings.microsoft_client_secret,
        authority=f"{settings.microsoft_authority_host.rstrip('/')}/{spec.microsoft_tenant}",
        instance_discovery=False,
        http_client=http,
        token_cache=cache,
    )
    flow = app.initiate_auth_code_flow(
        SCOPES,
        redirect_uri=f"{settings.public_url.rstrip('/')}/auth/microsoft/callback",
        login_hint=user.mailbox,
        state=secrets.token_urlsafe(12),
        response_mode="form_post",
    )
    back = browse(http, flow["auth_uri"], user.mailbox, "")
    result = app.acquire_token_by_auth_code_flow(flow, back)
    if "refresh_token" not in result:
        raise SeedFailed(f"Microsoft 365 sign-in of {user.mailbox}: {result}")
    return token_state(cache)
