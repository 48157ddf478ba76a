"""SuperOffice credentials refused, through the daemon: `sync_user` in huey's immediate mode
with the product's own connectors (`daemon.connections.Connections`) against both simulators
over https, as a worker runs it.

A profile keeps one SuperOffice connection for all its users (an Online grant, renewed and
saved on the profile; an Onsite system user's password): when SuperOffice refuses it, every
user of the profile waits for a person, with the reason, and none of them asks SuperOffice
with the dead credentials again until an administrator has connected it anew.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from common.config import Settings
from common.models import CrmKind, InvitationState, Profile, SyncRun, SyncUser, utcnow
from daemon import queue, tasks
from daemon.connections import Connections
from simulators.platform.ca import DemoCA
from simulators.world.microsoft import SYNCHRONIZER_APP_ID, SYNCHRONIZER_SECRET
from simulators.world.superoffice import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from tests.fixtures.graph_connector import signed_in_state
from tests.fixtures.superoffice_connector import sign_in
from tests.fixtures.superoffice_m365 import ADELE, DOMAIN, MEGAN, ZONE, Scene

ONSITE = "SuperOffice"  # the Onsite installation's tenant (Adatum)
# Associates of each SuperOffice whose diaries Adele's and Megan's mailboxes are linked to.
ASSOCIATES = {"online": {ADELE: 100, MEGAN: 101}, "onsite": {ADELE: 700, MEGAN: 701}}
TOKENS = "POST /login/common/oauth/tokens"


@dataclass
class Daemon:
    """The profile as an administrator set it up, its users, and the daemon's runtime."""

    scene: Scene
    site: str  # online | onsite
    users: dict[str, int]  # mailbox -> SyncUser id

    def user(self, address: str) -> SyncUser:
        with self.scene.db.session() as session:
            found = session.get(SyncUser, self.users[address])
            assert found is not None
            return found

    def runs(self, address: str) -> list[SyncRun]:
        with self.scene.db.session() as session:
            query = select(SyncRun).where(SyncRun.sync_user_id == self.users[address])
            return list(session.scalars(query.order_by(SyncRun.id)))

    def connect_superoffice(self) -> None:
        """What an administrator does in the portal: the profile's SuperOffice connection
        (Online: a sign-in to SuperID; Onsite: the system user's current password)."""
        if self.site == "online":
            tokens = sign_in(self.scene.so_http, self.scene.so_base, ADELE)
            secrets: dict[str, Any] = {
                "access_token": tokens.access_token,
                "refresh_token": tokens.refresh_token,
                "expires_at": tokens.expires_at.isoformat() if tokens.expires_at else None,
            }
        else:
            secrets = {"username": "ALICE", "password": self.onsite_password()}
        with self.scene.db.session() as session:
            profile = session.get(Profile, self.scene.profile_id)
            assert profile is not None
            profile.crm_credentials = secrets

    def onsite_password(self) -> str:
        return str(self.alice()["password"])

    def alice(self) -> dict[str, Any]:
        state = self.scene.so_http.get(
            f"{self.scene.so_base}/_sim/state", params={"tenant": ONSITE}
        ).json()["tenants"][ONSITE]
        return dict(next(a for a in state["associates"] if a["associate_id"] == 700))

    def change_onsite_password(self, password: str) -> None:
        """ALICE's password changed in SuperOffice (the profile still holds the old one)."""
        state = self.scene.so_http.get(
            f"{self.scene.so_base}/_sim/state", params={"tenant": ONSITE}
        ).json()["tenants"][ONSITE]
        for associate in state["associates"]:
            if associate["associate_id"] == 700:
                associate["password"] = password
        answer = self.scene.so_http.post(
            f"{self.scene.so_base}/_sim/state",
            json={"tenants": {ONSITE: {"associates": state["associates"]}}},
        )
        assert answer.status_code == 204, answer.text


@pytest.fixture(params=["online", "onsite"])
def daemon(
    request: pytest.FixtureRequest, scene: Scene, demo_ca: DemoCA, tmp_path: Path
) -> Iterator[Daemon]:
    site = str(request.param)
    settings = Settings.load(
        environ={},
        instance_path=tmp_path,
        superoffice_online_url=scene.so_base,
        superoffice_client_id=DEMO_CLIENT_ID,
        superoffice_client_secret=DEMO_CLIENT_SECRET,
        microsoft_client_id=SYNCHRONIZER_APP_ID,
        microsoft_client_secret=SYNCHRONIZER_SECRET,
        microsoft_authority_host=scene.ms.url,
        microsoft_graph_url=scene.ms.url,
        sync_ca_bundle=demo_ca.ca_file,
    )
    with scene.db.session() as session:
        profile = session.get(Profile, scene.profile_id)
        assert profile is not None
        if site == "onsite":
            profile.crm_kind, profile.crm_url = (
                CrmKind.SUPEROFFICE_ONSITE,
                f"{scene.so_base}/{ONSITE}",
            )
            profile.crm_tenant = None
        profile.groupware_settings = {"tenant_id": DOMAIN}
        profile.settings = {**(profile.settings or {}), "crm_time_zone": ZONE}
        users = {}
        for address, associate in ASSOCIATES[site].items():
            user = SyncUser(
                profile_id=profile.id,
                crm_associate_id=associate,
                mailbox=address,
                invitation_state=InvitationState.ACTIVE,
                tokens=signed_in_state(scene.ms, scene.ms_http, address),
            )
            session.add(user)
            session.flush()
            users[address] = user.id
    made = Daemon(scene, site, users)
    made.connect_superoffice()
    queue.configure("memory://", immediate=True)
    tasks.use(tasks.Runtime(scene.db, lambda: Connections(settings, scene.db)))
    yield made
    queue.unconfigure()


def test_refused_superoffice_credentials_mark_every_user_of_the_profile(daemon: Daemon) -> None:
    """Both users sync. Then SuperOffice refuses the profile's connection (Online: the
    grant revoked, seen when the access token runs out; Onsite: the system user's password
    changed). Adele's next run fails with SuperOffice's reason and both she and Megan wait
    for a person ("needs re-authorisation", the reason, what to do); Megan's turn, a push
    for her, neither runs nor asks SuperOffice again. Once an administrator connects
    SuperOffice anew, one checked run clears both marks and both sync again.

    Mistakes caught: the refusal marking only the user whose run met it (each other user
    fails in turn and asks SuperID with the dead grant), the reason lost or not naming
    SuperOffice, a refused password taken for a passing error and retried with backoff, the
    marks never cleared once the connection works again."""
    scene = daemon.scene
    assert sorted(tasks.dispatch()) == sorted(daemon.users.values())
    for address in (ADELE, MEGAN):
        user = daemon.user(address)
        assert user.needs_attention is None and user.last_sync_at is not None, user.last_error

    if daemon.site == "online":
        scene.so_fault(kind="token_expired", count=1)  # the access token has run out
        scene.so_fault(kind="token_revoked", count=1)  # and the grant was withdrawn
    else:
        daemon.change_onsite_password("a new password")
    tasks.sync_user(daemon.users[ADELE])

    why = {
        "online": "The refresh token is invalid or was revoked",
        "onsite": "Unknown user name or wrong password",
    }[daemon.site]
    for address in (ADELE, MEGAN):
        mark = daemon.user(address).needs_attention
        assert mark is not None and mark.startswith("needs re-authorisation: "), (address, mark)
        assert "SuperOffice" in mark and why in mark, mark
        assert "connect SuperOffice again in the profile" in mark, mark
    asked = scene.so_stats().get(TOKENS, 0), len(daemon.runs(MEGAN))
    later = utcnow() + timedelta(hours=2)
    assert tasks.dispatch(later) == []
    tasks.enqueue_sync(daemon.users[MEGAN])  # a push for her
    assert (scene.so_stats().get(TOKENS, 0), len(daemon.runs(MEGAN))) == asked

    if daemon.site == "onsite":
        with scene.db.session() as session:  # the administrator types the new password
            profile = session.get(Profile, scene.profile_id)
            assert profile is not None
            profile.crm_credentials = {"username": "ALICE", "password": "a new password"}
    else:
        daemon.connect_superoffice()
    assert tasks.run_user(daemon.users[ADELE], operator=True).state == "done"
    for address in (ADELE, MEGAN):
        assert daemon.user(address).needs_attention is None, address
    assert daemon.users[MEGAN] in tasks.dispatch(later)
    assert daemon.runs(MEGAN)[-1].status.value == "succeeded"
