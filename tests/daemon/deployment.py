"""A deployment of the daemon for tests: the simulators (SuperOffice Onsite, Microsoft 365)
in this process, a database with a profile whose users signed in for real (msal against the
simulated Entra, tokens encrypted in `SyncUser.tokens`), and `synchronizer worker` and
`synchronizer scheduler` processes started with the deployment's environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msal
import requests
from sqlalchemy import select

from common.connectors.graph.auth import token_state
from common.db import Database
from common.models import (
    CrmKind,
    GroupwareKind,
    InvitationState,
    Organisation,
    Profile,
    SyncRun,
    SyncUser,
)
from common.schema import upgrade
from common.secrets import configure_keys, generate_key
from simulators.runner import SimulatorStack
from simulators.world.microsoft import SYNCHRONIZER_APP_ID, SYNCHRONIZER_SECRET
from simulators.world.superoffice import DEMO_PASSWORD
from tests.fixtures.microsoft import sign_in

SYNCHRONIZER = str(Path(sys.executable).with_name("synchronizer"))
# CRM associates of the simulated Onsite installation and the Microsoft 365 mailboxes linked
# to them.
PAIRS = [
    (700, "adele@contoso.example"),
    (701, "megan@contoso.example"),
    (702, "admin@contoso.example"),
]
INTERVAL_S = 2.0


@dataclass
class Deployment:
    root: Path
    database_url: str
    queue_url: str
    sims: SimulatorStack
    env: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    user_ids: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        summary = self.sims.summary()
        key = generate_key()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SYNCHRONIZER_")},
            "SYNCHRONIZER_INSTANCE_PATH": str(self.root / "instance"),
            "SYNCHRONIZER_DATABASE_URL": self.database_url,
            "SYNCHRONIZER_QUEUE_URL": self.queue_url,
            "SYNCHRONIZER_ENCRYPTION_KEYS": key,
            "SYNCHRONIZER_SECRET_KEY": "a test secret key of some length",
            "SYNCHRONIZER_MICROSOFT_CLIENT_ID": SYNCHRONIZER_APP_ID,
            "SYNCHRONIZER_MICROSOFT_CLIENT_SECRET": SYNCHRONIZER_SECRET,
            "SYNCHRONIZER_MICROSOFT_AUTHORITY_HOST": summary["login"],
            "SYNCHRONIZER_MICROSOFT_GRAPH_URL": summary["graph"],
            "SYNCHRONIZER_SYNC_CA_BUNDLE": summary["ca_file"],
        }
        configure_keys([key])
        self.db = Database(self.database_url)
        upgrade(self.db)

    @property
    def http(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.verify = self.sims.summary()["ca_file"]
        return session

    def link_users(self, interval_s: float = INTERVAL_S) -> list[int]:
        """The profile, and each pair's user signed in to Microsoft 365."""
        summary = self.sims.summary()
        with self.db.session() as session:
            org = Organisation(name="Adatum", slug="adatum")
            profile = Profile(
                organisation=org,
                name="Adatum",
                crm_kind=CrmKind.SUPEROFFICE_ONSITE,
                crm_url=f"{summary['superoffice']}/SuperOffice",
                crm_credentials={"username": "ALICE", "password": DEMO_PASSWORD},
                groupware_kind=GroupwareKind.MICROSOFT_365,
                groupware_settings={"tenant_id": "contoso.example"},
                settings={
                    "crm_time_zone": "Europe/Amsterdam",
                    "sync_interval_minutes": interval_s / 60,
                },
            )
            users = [
                SyncUser(
                    profile=profile,
                    crm_associate_id=associate,
                    mailbox=mailbox,
                    invitation_state=InvitationState.ACTIVE,
                    tokens=self.sign_in(mailbox),
                )
                for associate, mailbox in PAIRS
            ]
            session.add_all([org, profile, *users])
            session.flush()
            self.user_ids = [u.id for u in users]
        return self.user_ids

    def sign_in(self, mailbox: str) -> dict[str, Any]:
        cache = msal.SerializableTokenCache()
        app = msal.ConfidentialClientApplication(
            SYNCHRONIZER_APP_ID,
            client_credential=SYNCHRONIZER_SECRET,
            authority=f"{self.sims.summary()['login']}/contoso.example",
            instance_discovery=False,
            http_client=self.http,
            token_cache=cache,
        )
        scopes = ["Calendars.ReadWrite", "Contacts.ReadWrite"]
        result = sign_in(app, app.http_client, mailbox, scopes, consent="accept")
        assert "refresh_token" in result, result
        return token_state(cache)

    def start(self, *args: str, name: str) -> subprocess.Popen[str]:
        log = (self.root / f"{name}.log").open("w")
        process = subprocess.Popen(
            [SYNCHRONIZER, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text()

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def runs(self) -> dict[int, list[SyncRun]]:
        with self.db.session() as session:
            rows = session.scalars(select(SyncRun).order_by(SyncRun.started_at)).all()
        found: dict[int, list[SyncRun]] = {user: [] for user in self.user_ids}
        for run in rows:
            assert run.sync_user_id is not None
            found[run.sync_user_id].append(run)
        return found

    def users(self) -> list[SyncUser]:
        with self.db.session() as session:
            return list(session.scalars(select(SyncUser).order_by(SyncUser.id)))

    def wait_for(self, condition: Callable[[], bool], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                logs = {p.name: p.read_text()[-3000:] for p in self.root.glob("*.log")}
                raise AssertionError(f"timed out waiting for {what}; logs: {logs}")
            time.sleep(0.1)
