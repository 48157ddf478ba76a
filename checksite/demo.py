"""`synchronizer demo` and `synchronizer demo-edit`: the product on embedded defaults beside
the simulated world, syncing for real while a person watches.

The demo is a composition root (like the CLI it belongs to): it starts the web app, a
`synchronizer worker` and a `synchronizer scheduler` (processes, as in production, with the
demo's settings in their environment), and makes the demo organisations' profiles afresh:
SuperOffice Online tenants and Microsoft 365 tenants of the same companies, their users
linked and signed in (`checksite.demo_seed`). The scheduler's first tick syncs everyone and
makes the push subscriptions; from then on a change travels by push in seconds.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select

from checksite.demo_seed import DemoProfile, DemoUser, seed
from common.config import Settings
from common.db import Database
from common.kinds import ItemKind
from common.models import Profile, PushState, PushSubscription, SyncUser
from common.secrets import configure_keys

Echo = Callable[[str], None]
# The demo's organisations: (name, SuperOffice tenant, Microsoft 365 domain, mailboxes linked).
ORGANISATIONS = [
    ("Contoso", "Cust12345", "contoso.example", ("adele", "megan")),
    ("Humongous Insurance", "Cust64567", "humongousinsurance.example", ("dan",)),
]
READY_TIMEOUT_S = 180.0


def demo_profiles(world: Any) -> list[DemoProfile]:
    """The organisations above as the simulated world has them (associates by e-mail)."""
    from simulators.world.superoffice import DEMO_PASSWORD

    tenants = {t.context_id: t for t in world.part("superoffice").tenants}
    made = []
    for name, context, domain, logins in ORGANISATIONS:
        tenant = tenants[context]
        by_mail = {a.email: a for a in tenant.associates}
        users = tuple(
            DemoUser(by_mail[f"{login}@{domain}"].associate_id, f"{login}@{domain}")
            for login in logins
        )
        made.append(
            DemoProfile(
                organisation=name,
                slug=f"demo-{domain.split('.')[0]}",
                superoffice_context=context,
                superoffice_admin=tenant.associates[0].email,
                superoffice_password=DEMO_PASSWORD,
                microsoft_tenant=domain,
                time_zone=tenant.base_time_zone,
                users=users,
            )
        )
    return made


def settings_env(settings: Settings) -> dict[str, str]:
    """`settings` as SYNCHRONIZER_* variables, for the processes the demo starts."""
    env: dict[str, str] = {}
    for field in dataclasses.fields(Settings):
        value = getattr(settings, field.name)
        if field.name == "generated" or value is None:
            continue
        if isinstance(value, tuple):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[f"SYNCHRONIZER_{field.name.upper()}"] = str(value)
    return env


def _command() -> list[str]:
    script = Path(sys.executable).with_name("synchronizer")
    return [str(script)] if script.exists() else [sys.executable, "-m", "checksite.cli"]


class Daemon:
    """The worker and the scheduler, their output on ours with a prefix."""

    def __init__(self, settings: Settings, echo: Echo) -> None:
        import os

        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCHRONIZER_")}
        env |= settings_env(settings)
        self.echo = echo
        self.processes: list[subprocess.Popen[str]] = []
        for name, args in (
            ("worker", ["worker", "--workers", "4", "--shutdown-timeout", "10"]),
            ("scheduler", ["scheduler"]),
        ):
            process = subprocess.Popen(
                [*_command(), *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            self.processes.append(process)
            assert process.stdout is not None
            threading.Thread(target=self._pump, args=(name, process.stdout), daemon=True).start()

    def _pump(self, name: str, stream: IO[str]) -> None:
        for line in stream:
            if " INFO huey" not in line and not line.startswith("+ "):  # the consumer's chatter
                self.echo(f"[{name}] {line.rstrip()}")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run(settings: Settings, world: Any, host: str, port: int, echo: Echo) -> None:
    """Seed, serve, start the daemon, say what to try; until SIGINT or SIGTERM."""
    from werkzeug.serving import make_server

    from checksite import create_app
    from daemon import push, queue
    from simulators.world.sign_in import authorize

    configure_keys(list(settings.encryption_keys))
    db = Database(settings.database_url)
    queue.configure(settings.queue_url).flush()  # tasks of the last run name users now gone
    user_ids = seed(
        db,
        settings,
        demo_profiles(world),
        lambda http, url, username, password: authorize(
            http, url, username=username, password=password
        ),
    )
    app = create_app(settings, push=push.triggers(settings))
    # Our request log already writes one line per request; werkzeug's would be a second.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(host, port, app, threaded=True)
    threading.Thread(target=server.serve_forever, name="web", daemon=True).start()
    daemon = Daemon(settings, echo)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        _what_to_try(db, user_ids, echo)
        threading.Thread(
            target=_say_when_ready, args=(db, user_ids, echo, stop), daemon=True
        ).start()
        stop.wait()
    finally:
        daemon.stop()
        server.shutdown()
        db.dispose()


def _what_to_try(db: Database, user_ids: list[int], echo: Echo) -> None:
    with db.session() as session:
        users = session.scalars(select(SyncUser).where(SyncUser.id.in_(user_ids))).all()
        mailboxes = [u.mailbox for u in users]
    echo(f"  linked users, syncing for real (a worker and the scheduler run beside the app): "
         f"{', '.join(mailboxes)}")  # fmt: skip
    echo("  what to try, in another terminal, once it says ready:")
    echo(f"    .venv/bin/synchronizer demo-edit outlook --user {mailboxes[0]} 'Lunch with Ingrid'")
    echo("      (an appointment made in the simulated Outlook; watch it appear in the CRM)")
    echo(f"    .venv/bin/synchronizer demo-edit superoffice --user {mailboxes[-1]} 'Call Bergen'")
    echo("      (made in SuperOffice; watch it appear in Outlook)")
    echo("    .venv/bin/synchronizer status   (each user's last and next sync)")


def ready(db: Database, user_ids: list[int]) -> bool:
    """Every demo user synced once, with push subscriptions for both kinds, and every
    profile's SuperOffice webhook secret made (the upkeep makes it just before it registers
    the webhook)."""
    with db.session() as session:
        users = session.scalars(select(SyncUser).where(SyncUser.id.in_(user_ids))).all()
        if not users or any(u.last_sync_at is None for u in users):
            return False
        active = session.scalars(
            select(PushSubscription).where(
                PushSubscription.sync_user_id.in_(user_ids),
                PushSubscription.state == PushState.ACTIVE,
            )
        ).all()
        if len(active) < len(users) * len(ItemKind):
            return False
        for profile_id in {u.profile_id for u in users}:
            profile = session.get(Profile, profile_id)
            if profile is None or not (profile.crm_credentials or {}).get("webhook_secret"):
                return False
    return True


def _say_when_ready(db: Database, user_ids: list[int], echo: Echo, stop: threading.Event) -> None:
    started = time.monotonic()
    while not stop.wait(0.5):
        if ready(db, user_ids):
            echo(f"ready: first sync done and push on after {time.monotonic() - started:.0f} s")
            return
        if time.monotonic() - started > READY_TIMEOUT_S:
            echo("not ready after 3 minutes: see the worker's lines above, or synchronizer status")
            return


# --- synchronizer demo-edit --------------------------------------------------------------------


def edit_and_watch(
    settings: Settings, summary: dict[str, Any], side: str, mailbox: str, subject: str, echo: Echo
) -> float | None:
    """Make an appointment tomorrow 10:00 UTC on `side` as the user, then wait until the other
    side shows it; the seconds it took (None: not within a minute)."""
    import requests

    from simulators.world.people import Outlook, SuperOfficeDiary

    db = Database(settings.database_url)
    with db.session() as session:
        user = session.scalar(select(SyncUser).where(SyncUser.mailbox == mailbox.lower()))
        if user is None:
            raise LookupError(f"{mailbox} is not a linked user of the demo")
        profile = session.get(Profile, user.profile_id)
        assert profile is not None
        tenant = str((profile.groupware_settings or {}).get("tenant_id"))
        context, associate = str(profile.crm_tenant), user.crm_associate_id
    db.dispose()
    http = requests.Session()
    http.trust_env = False
    http.verify = summary["ca_file"]
    outlook = Outlook(http, summary["login"], summary["graph"], tenant)
    diary = SuperOfficeDiary(http, summary["superoffice"], context, mailbox)
    start = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    start += timedelta(days=1)
    end = start + timedelta(hours=1)
    began = time.monotonic()
    if side == "outlook":
        outlook.create(mailbox, subject, start, end)
        echo(f"made in Outlook ({mailbox}): {subject!r}; waiting for SuperOffice …")
        found: Any = _wait(lambda: diary.find(associate, subject))
        where = f"SuperOffice (appointment {found})"
    else:
        diary.create(subject, start, end)
        echo(f"made in SuperOffice ({mailbox}): {subject!r}; waiting for Outlook …")
        found = _wait(lambda: outlook.find(mailbox, subject, start, end))
        where = "Outlook"
    if found is None:
        echo("not there after a minute: is `synchronizer demo` running, and ready?")
        return None
    took = time.monotonic() - began
    echo(f"appeared in {where} after {took:.1f} s")
    return took


def _wait(look: Callable[[], Any], seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = look()
        if found is not None:
            return found
        time.sleep(0.2)
    return None
