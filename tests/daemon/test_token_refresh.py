"""Housekeeping renews tokens before they expire, with the real clients against the
simulators: msal against the simulated Entra for each Microsoft 365 user (signed in for
real), SuperID's token endpoint for a SuperOffice Online profile."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from common.config import Settings
from common.models import (
    CrmKind,
    GroupwareKind,
    InvitationState,
    Organisation,
    Profile,
    SyncUser,
    utcnow,
)
from daemon.housekeeping import access_token_expiry, refresh_due_tokens
from daemon.leases import take, user_slot
from simulators.runner import SimulatorStack
from simulators.world.superoffice import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from tests.daemon.deployment import Deployment
from tests.simulators.test_superoffice_online import code_flow


@pytest.fixture
def deployment(tmp_path: Path, fresh_sims: SimulatorStack) -> Iterator[Deployment]:
    made = Deployment(
        tmp_path, f"sqlite:///{tmp_path / 'app.db'}", f"sqlite:///{tmp_path / 'q.db'}", fresh_sims
    )
    yield made
    made.db.dispose()


@pytest.fixture
def settings(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Settings:
    summary = deployment.sims.summary()
    for key, value in deployment.env.items():
        if key.startswith("SYNCHRONIZER_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("SYNCHRONIZER_SUPEROFFICE_ONLINE_URL", summary["superoffice"])
    monkeypatch.setenv("SYNCHRONIZER_SUPEROFFICE_CLIENT_ID", DEMO_CLIENT_ID)
    monkeypatch.setenv("SYNCHRONIZER_SUPEROFFICE_CLIENT_SECRET", DEMO_CLIENT_SECRET)
    return Settings.load()


def user(deployment: Deployment, user_id: int) -> SyncUser:
    with deployment.db.session() as session:
        found = session.get(SyncUser, user_id)
        assert found is not None
        found.tokens  # noqa: B018 (deferred: read while the session is open)
        return found


def expire_soon(deployment: Deployment, user_id: int, seconds: int) -> None:
    """The user's cached access tokens expire in `seconds` (as if signed in an hour ago)."""
    with deployment.db.session() as session:
        row = session.get(SyncUser, user_id)
        assert row is not None and row.tokens is not None
        state = dict(row.tokens)
        cache = json.loads(state["cache"])
        for entry in cache["AccessToken"].values():
            entry["expires_on"] = str(int(time.time()) + seconds)
        state["cache"] = json.dumps(cache)
        row.tokens = state


def refresh_token_of(state: dict[str, Any]) -> str:
    (entry,) = json.loads(state["cache"])["RefreshToken"].values()
    return str(entry["secret"])


def test_microsoft_365_tokens_about_to_expire_are_renewed_and_a_dead_grant_asks_a_person(
    deployment: Deployment, settings: Settings
) -> None:
    """Mistakes caught: nothing renewed before expiry; every user's token renewed each
    round (a call to Entra per user every few minutes); the rotated refresh token not
    saved; a revoked grant found only by the next sync; a user renewed under a running
    sync's feet."""
    adele, megan, admin = deployment.link_users()
    expire_soon(deployment, adele, 120)
    expire_soon(deployment, megan, 120)
    expire_soon(deployment, admin, 120)
    before = refresh_token_of(user(deployment, adele).tokens or {})
    revoked = deployment.http.post(
        deployment.sims.summary()["login"] + "/_sim/state",
        json={"revoke_refresh_tokens": ["megan@contoso.example"]},
    )
    assert revoked.status_code == 200, revoked.text
    assert take(deployment.db, user_slot(admin), "a-worker") is not None

    report = refresh_due_tokens(deployment.db, settings)
    assert report.renewed == ["adele@contoso.example"]
    assert list(report.refused) == ["megan@contoso.example"]
    assert "AADSTS50173" in report.refused["megan@contoso.example"]
    assert report.failed == {}
    renewed = user(deployment, adele)
    expiry = access_token_expiry(renewed.tokens)
    assert expiry is not None and expiry > utcnow() + timedelta(minutes=50)
    assert refresh_token_of(renewed.tokens or {}) != before  # Entra rotated it: kept
    dead = user(deployment, megan)
    assert dead.needs_attention is not None and "AADSTS50173" in dead.needs_attention
    assert dead.next_sync_at is None
    skipped = access_token_expiry(user(deployment, admin).tokens)
    assert skipped is not None and skipped < utcnow() + timedelta(minutes=3)

    again = refresh_due_tokens(deployment.db, settings)
    assert again.renewed == [] and again.refused == {}  # fresh ones wait; megan needs a person


def test_a_superoffice_online_profiles_tokens_are_renewed_before_they_expire(
    deployment: Deployment, settings: Settings
) -> None:
    """Mistakes caught: SuperID tokens left to lapse; the new ones not stored (the next run
    would present the old access token); a profile whose tokens are fresh renewed anyway."""
    base = deployment.sims.summary()["superoffice"]
    http = requests.Session()
    http.trust_env = False
    http.verify = deployment.sims.summary()["ca_file"]
    tokens = code_flow(http, base, "megan@contoso.example")
    with deployment.db.session() as session:
        org = Organisation(name="Contoso", slug="contoso")
        soon = Profile(
            organisation=org,
            name="Contoso",
            crm_kind=CrmKind.SUPEROFFICE_ONLINE,
            crm_url=base,
            crm_tenant="Cust12345",
            crm_credentials={
                "access_token": tokens["access_token"],
                "refresh_token": tokens["refresh_token"],
                "expires_at": (utcnow() + timedelta(minutes=3)).isoformat(),
            },
            groupware_kind=GroupwareKind.GOOGLE,
        )
        fresh = Profile(
            organisation=org,
            name="Contoso later",
            crm_kind=CrmKind.SUPEROFFICE_ONLINE,
            crm_url=base,
            crm_tenant="Cust12345",
            crm_credentials={
                **soon.crm_credentials,
                "expires_at": (utcnow() + timedelta(hours=1)).isoformat(),
            },  # type: ignore[dict-item]
            groupware_kind=GroupwareKind.GOOGLE,
        )
        session.add_all(
            [
                org,
                soon,
                fresh,
                SyncUser(
                    profile=soon,
                    crm_associate_id=101,
                    mailbox="megan@contoso.example",
                    invitation_state=InvitationState.ACTIVE,
                ),
                SyncUser(
                    profile=fresh,
                    crm_associate_id=101,
                    mailbox="megan@contoso.example",
                    invitation_state=InvitationState.ACTIVE,
                ),
            ]
        )
        session.flush()
        soon_id = soon.id

    report = refresh_due_tokens(deployment.db, settings)
    assert report.renewed == [f"profile {soon_id}"], report
    with deployment.db.session() as session:
        stored = {p.id: p.crm_credentials for p in session.scalars(select(Profile))}
    renewed = stored[soon_id] or {}
    assert renewed["access_token"] != tokens["access_token"]
    assert renewed["expires_at"] > (utcnow() + timedelta(minutes=30)).isoformat()
    answer = http.get(
        f"{base}/Cust12345/api/v1/User/currentPrincipal",
        headers={
            "Authorization": f"Bearer {renewed['access_token']}",
            "Accept": "application/json",
        },
    )
    assert answer.status_code == 200, answer.text  # the new access token works
