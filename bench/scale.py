"""The daemon at scale: one full no-change cycle over 1,000 mailboxes with 100 appointments
each, on the simulators with 20 ms of latency, with one and with two worker processes on
Redis and PostgreSQL.

Set-up (not timed): PostgreSQL and redis-server started here; the simulators in this process,
their world grown by `--mailboxes` Microsoft 365 users in Contoso and as many associates in
the SuperOffice Onsite installation, each associate's diary holding `--appointments`
appointments in the sync window; one profile linking them, each user signed in through msal
(the authorization code flow against the simulated Entra). A first sync by two worker
processes at no latency carries every appointment to its mailbox and links it.

Then, with `--latency-ms` on every request to SuperOffice and Graph, twice: every user is
made due, `--processes` (1, then 2) `synchronizer worker` processes of `--threads` threads
each are started, and the dispatcher queues every user at once (as the scheduler's tick
would). The cycle is the time from the dispatch until the last run has ended; throughput is
mailboxes per second; the peak memory is the largest worker's (VmHWM). Every run of the
cycle must have written nothing (nothing changed).

Targets: the cycle under 60 s (the better of the two), a worker's peak memory under 400 MB,
two processes faster than one. The verdict is on the last line; the exit status is 1 on a miss.

Run: .venv/bin/python bench/scale.py [--mailboxes 1000] [--appointments 100] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msal  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402
from sqlalchemy import func, select, update  # noqa: E402

from common.config import Settings  # noqa: E402
from common.connectors.graph.auth import token_state  # noqa: E402
from common.db import Database  # noqa: E402
from common.models import (  # noqa: E402
    CrmKind,
    GroupwareKind,
    InvitationState,
    Organisation,
    Profile,
    SyncRun,
    SyncUser,
    utcnow,
)
from common.schema import upgrade  # noqa: E402
from common.secrets import configure_keys, generate_key  # noqa: E402
from daemon import queue, tasks  # noqa: E402
from simulators.runner import start_all  # noqa: E402
from simulators.world import load_world  # noqa: E402
from simulators.world import microsoft as ms_world  # noqa: E402
from simulators.world import superoffice as so_world  # noqa: E402
from tests.fixtures.microsoft import sign_in  # noqa: E402
from tests.fixtures.postgres import PostgresServer  # noqa: E402

SYNCHRONIZER = str(Path(sys.executable).with_name("synchronizer"))
FIRST_ASSOCIATE = 700  # ALICE, the installation's administrator; 701 the synced user
CYCLE_TARGET_S, MEMORY_TARGET_MB = 60.0, 400.0
STARTED: list[subprocess.Popen[str]] = []  # every worker, killed on the way out whatever happens


# --- the world and the services ----------------------------------------------------------------


def grown_world(mailboxes: int, appointments: int) -> tuple[object, list[tuple[str, str]]]:
    """The demo world with `mailboxes` more Microsoft 365 users in Contoso, each linked to an
    associate of a SuperOffice Onsite installation of their own (a customer each, as a
    hosting provider runs them) whose diary holds `appointments` appointments in the window.
    The (installation, mailbox) pairs."""
    world = load_world()
    contoso = world.part("microsoft").tenant("contoso.example")
    superoffice = world.part("superoffice")
    start = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    pairs = []
    for n in range(mailboxes):
        login = f"bench{n:04d}"
        contoso.users.append(
            ms_world.User(
                id=ms_world.stable_id("contoso", "user", login),
                user_principal_name=f"{login}@contoso.example",
                display_name=f"Bench {n}",
                given_name="Bench",
                surname=str(n),
                licenses=["O365_BUSINESS_PREMIUM"],
            )
        )
        context = f"Bench{n:04d}"
        installation = so_world._tenant(  # noqa: SLF001 (the world's own builder)
            context, f"Bench customer {n}", "onsite", "contoso.example", FIRST_ASSOCIATE,
            [("alice", "Alice", "Admin"), (login, "Bench", str(n))],
            base_time_zone="Europe/Amsterdam", version="10.3.5",
        )  # fmt: skip
        for k in range(appointments):
            begins = start + dt.timedelta(days=1 + k % 60, hours=k % 8)
            installation.appointments.append(
                so_world.Appointment(
                    login.upper(),
                    f"Customer visit {k} of {login}",
                    begins,
                    begins + dt.timedelta(minutes=45),
                    location=f"Room {k % 12}",
                )
            )
        superoffice.tenants.append(installation)
        pairs.append((context, f"{login}@contoso.example"))
    return world, pairs


def serve_simulators(mailboxes: int, appointments: int, ca_dir: str, pipe: Connection) -> None:
    """The simulators in a process of their own (their Python does not share the bench's or
    a worker's lock); the summary goes back through `pipe`, which later says stop."""
    world, pairs = grown_world(mailboxes, appointments)
    with start_all(world=world, ca_dir=ca_dir) as stack:  # type: ignore[arg-type]
        pipe.send((stack.summary(), pairs))
        pipe.recv()


@contextmanager
def redis_server() -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="bench-redis-")
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", folder, "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield url
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Bench:
    root: Path
    env: dict[str, str]
    db: Database
    summary: dict[str, object]
    user_ids: list[int]

    def http(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.verify = str(self.summary["ca_file"])
        return session

    def workers(self, count: int, threads: int, name: str) -> list[subprocess.Popen[str]]:
        started = []
        for n in range(count):
            log = (self.root / f"{name}-{n}.log").open("w")
            started.append(
                subprocess.Popen(  # noqa: SIM115 (stopped by `stop`, or at exit)
                    [SYNCHRONIZER, "worker", "--workers", str(threads)],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        STARTED.extend(started)
        for n in range(count):  # ready: the consumer is about to take tasks
            path = self.root / f"{name}-{n}.log"
            deadline = time.monotonic() + 60
            while "worker:" not in path.read_text():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker {n} did not start: {path.read_text()[-2000:]}")
                time.sleep(0.1)
        time.sleep(1.0)
        return started

    def make_all_due(self) -> None:
        with self.db.session() as session:
            session.execute(update(SyncUser).values(next_sync_at=None, queued_at=None))

    def synced_since(self, moment: dt.datetime) -> int:
        with self.db.session() as session:
            return int(
                session.scalar(select(func.count()).where(SyncUser.last_sync_at >= moment)) or 0
            )

    def wait_all(self, moment: dt.datetime, limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        while self.synced_since(moment) < len(self.user_ids):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"only {self.synced_since(moment)} of {len(self.user_ids)} synced in {limit_s} s"
                )
            time.sleep(0.2)


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def stop(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def link_users(bench: Bench, pairs: list[tuple[str, str]], so_url: str) -> list[int]:
    """A profile per installation, its user signed in to Microsoft 365 through msal."""
    http = bench.http()
    with bench.db.session() as session:
        org = Organisation(name="Hosting provider", slug="hosting")
        session.add(org)
        session.flush()
        org_id = org.id
    ids = []
    for context, mailbox in pairs:
        cache = msal.SerializableTokenCache()
        app = msal.ConfidentialClientApplication(
            ms_world.SYNCHRONIZER_APP_ID,
            client_credential=ms_world.SYNCHRONIZER_SECRET,
            authority=f"{bench.summary['login']}/contoso.example",
            instance_discovery=False,
            http_client=http,
            token_cache=cache,
        )
        result = sign_in(
            app, http, mailbox, ["Calendars.ReadWrite", "Contacts.ReadWrite"], consent="accept"
        )
        if "refresh_token" not in result:
            raise RuntimeError(f"{mailbox} could not sign in: {result}")
        with bench.db.session() as session:
            profile = Profile(
                organisation_id=org_id,
                name=context,
                crm_kind=CrmKind.SUPEROFFICE_ONSITE,
                crm_url=f"{so_url}/{context}",
                crm_credentials={"username": "ALICE", "password": so_world.DEMO_PASSWORD},
                groupware_kind=GroupwareKind.MICROSOFT_365,
                groupware_settings={"tenant_id": "contoso.example"},
                settings={"crm_time_zone": "Europe/Amsterdam", "sync_interval_minutes": 600},
            )
            user = SyncUser(
                profile=profile,
                crm_associate_id=FIRST_ASSOCIATE + 1,
                mailbox=mailbox,
                invitation_state=InvitationState.ACTIVE,
                tokens=token_state(cache),
            )
            session.add_all([profile, user])
            session.flush()
            ids.append(user.id)
    return ids


def requests_served(bench: Bench, reset: bool = False) -> dict[str, int]:
    http = bench.http()
    counts = {}
    for name in ("superoffice", "graph"):
        url = f"{bench.summary[name]}/_sim/stats"
        if reset:
            http.delete(url).raise_for_status()
        else:
            stats = http.get(url).json()
            counts[name] = int(stats.get("total", 0))
            if os.environ.get("BENCH_ENDPOINTS"):
                print(f"  {name}: {stats.get('endpoints')}")
    return counts


def cycle(bench: Bench, processes: int, threads: int) -> tuple[float, float, int]:
    """One no-change cycle: seconds, the largest worker's peak MB, runs that wrote."""
    bench.make_all_due()
    requests_served(bench, reset=True)
    workers = bench.workers(processes, threads, f"cycle{processes}")
    began = utcnow()
    tasks.dispatch()
    bench.wait_all(began, 1800)
    with bench.db.session() as session:
        ended = session.scalar(
            select(func.max(SyncRun.finished_at)).where(SyncRun.started_at >= began)
        )
        runs = list(session.scalars(select(SyncRun).where(SyncRun.started_at >= began)))
    peak = max(peak_mb(w.pid) for w in workers)
    stop(workers)
    assert ended is not None
    served = requests_served(bench)
    took = sorted((r.finished_at - r.started_at).total_seconds() for r in runs if r.finished_at)
    print(
        f"  {processes} process(es): requests per mailbox "
        + ", ".join(f"{k} {v / len(bench.user_ids):.1f}" for k, v in served.items())
        + f"; run time median {took[len(took) // 2]:.2f} s, max {took[-1]:.2f} s"
    )
    wrote = [
        r.id
        for r in runs
        if r.status.value != "succeeded"
        or any(
            v
            for k, v in r.counts.items()
            if k.startswith(("applied_create", "applied_update", "applied_delete"))
        )
    ]
    return (ended - began).total_seconds(), peak, len(wrote)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--appointments", type=int, default=100)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process")
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores"
    )

    root = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    postgres = PostgresServer()
    postgres.start()
    try:
        with redis_server() as redis_url:
            ours, theirs = multiprocessing.get_context("fork").Pipe()
            sims = multiprocessing.get_context("fork").Process(
                target=serve_simulators,
                args=(args.mailboxes, args.appointments, str(root / "ca"), theirs),
            )
            sims.start()
            summary, pairs = ours.recv()
            try:
                key = generate_key()
                env = {
                    **{k: v for k, v in os.environ.items() if not k.startswith("SYNCHRONIZER_")},
                    "SYNCHRONIZER_INSTANCE_PATH": str(root / "instance"),
                    "SYNCHRONIZER_DATABASE_URL": postgres.create_database(),
                    "SYNCHRONIZER_QUEUE_URL": redis_url,
                    "SYNCHRONIZER_ENCRYPTION_KEYS": key,
                    "SYNCHRONIZER_SECRET_KEY": "a bench secret key of some length",
                    "SYNCHRONIZER_MICROSOFT_CLIENT_ID": ms_world.SYNCHRONIZER_APP_ID,
                    "SYNCHRONIZER_MICROSOFT_CLIENT_SECRET": ms_world.SYNCHRONIZER_SECRET,
                    "SYNCHRONIZER_MICROSOFT_AUTHORITY_HOST": summary["login"],
                    "SYNCHRONIZER_MICROSOFT_GRAPH_URL": summary["graph"],
                    "SYNCHRONIZER_SYNC_CA_BUNDLE": summary["ca_file"],
                    "SYNCHRONIZER_LOG_LEVEL": "INFO",
                }
                configure_keys([key])
                db = Database(env["SYNCHRONIZER_DATABASE_URL"])
                upgrade(db)
                bench = Bench(root, env, db, summary, [])
                began = time.monotonic()
                bench.user_ids = link_users(bench, pairs, summary["superoffice"])
                print(f"set-up: {len(pairs)} users signed in in {time.monotonic() - began:.0f} s")
                queue.configure(redis_url)
                tasks.configure(Settings.load(environ=env))
                began = time.monotonic()
                requests_served(bench, reset=True)
                first = bench.workers(2, args.threads, "initial")
                moment = utcnow()
                tasks.dispatch()
                bench.wait_all(moment, 3 * 3600)
                stop(first)
                setup_requests = requests_served(bench)
                print(
                    f"set-up: first sync of {len(pairs) * args.appointments} appointments in "
                    f"{time.monotonic() - began:.0f} s; requests per mailbox "
                    + ", ".join(f"{k} {v / len(pairs):.0f}" for k, v in setup_requests.items())
                )
                http = bench.http()
                for name in ("superoffice", "graph"):
                    answer = http.put(
                        f"{summary[name]}/_sim/latency", json={"latency_ms": args.latency_ms}
                    )
                    answer.raise_for_status()
                results = {n: cycle(bench, n, args.threads) for n in (1, 2)}
            finally:
                ours.send("stop")
                sims.join(timeout=60)
                if sims.is_alive():
                    sims.kill()
    finally:
        for process in STARTED:
            if process.poll() is None:
                process.kill()
                process.wait()
        queue.unconfigure()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)
    load = os.getloadavg()
    return report(args, results, load)


def report(
    args: argparse.Namespace,
    results: dict[int, tuple[float, float, int]],
    load: tuple[float, float, float],
) -> int:
    print(
        f"\n{args.mailboxes} mailboxes x {args.appointments} appointments, {args.latency_ms} ms "
        f"latency, {args.threads} threads per worker process, Redis + PostgreSQL"
    )
    print(
        f"{'processes':>9} {'cycle s':>9} {'mailboxes/s':>12} {'peak MB':>9} {'runs that wrote':>16}"
    )
    for processes, (seconds, peak, wrote) in results.items():
        print(
            f"{processes:>9} {seconds:>9.1f} {args.mailboxes / seconds:>12.1f} {peak:>9.0f} {wrote:>16}"
        )
    one, two = results[1][0], results[2][0]
    ratio = one / two
    print(f"two processes / one (throughput): {ratio:.2f}x")
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    best = min(one, two)
    peak = max(r[1] for r in results.values())
    wrote = sum(r[2] for r in results.values())
    misses = []
    if best >= CYCLE_TARGET_S:
        misses.append(f"cycle {best:.1f} s >= {CYCLE_TARGET_S:.0f} s")
    if peak >= MEMORY_TARGET_MB:
        misses.append(f"peak {peak:.0f} MB >= {MEMORY_TARGET_MB:.0f} MB")
    if ratio <= 1.0:
        misses.append(f"two processes not faster ({ratio:.2f}x)")
    if wrote:
        misses.append(f"{wrote} runs of a no-change cycle wrote or failed")
    summary = (
        f"cycle {best:.1f} s (target < {CYCLE_TARGET_S:.0f}), peak {peak:.0f} MB "
        f"(< {MEMORY_TARGET_MB:.0f}), two/one {ratio:.2f}x (> 1)"
    )
    if misses:
        print(f"FAIL: {summary}: " + "; ".join(misses))
        return 1
    print(f"PASS: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
