"""Sync one SuperOffice user with one Microsoft 365 mailbox through the engine: requests to
each simulator against the minimum, and wall time with 50 ms latency against the bound.

One user's SuperOffice diary holds 5,000 appointments and their companies 1,000 persons;
their mailbox starts empty. The daemon's `daemon.sync.sync()` runs for appointments, then
for contacts, between two simulators on https (demo CA): SuperOffice Online through the
product's SuperOffice connector (`SuperOfficeAppointments`, `SuperOfficePersons`, signed in
through SuperID's code flow) and Microsoft 365 through the Graph connector (`GraphEvents`,
`GraphContacts`, `GraphClient`, msal unchanged, a real sign-in). The store is the real
`SqlStore` on a SQLite file. Each simulator runs in a process of its own, as a service runs
apart from its clients. Every request after the sign-ins waits `--latency-ms` in its
simulator (the network latency setting, `PUT /_sim/latency`: once per HTTP request, a Graph
`$batch` once, not per part).

Three runs, each both kinds: the initial sync; an incremental sync right after it (nothing
changed by anyone, but Graph's delta reports our own 6,000 creates as changes: the "echo");
another incremental sync (nothing changed at all). Requests are counted on the wire (a
response hook on each side's requests session: HTTP requests to Graph's `/v1.0/` and to the
tenant's `/api/v1/`, sign-in and token requests apart); parts are the Graph simulator's own
count of requests it ran (a batch's parts each).

- Graph minimum: the writes in batches of 20 (ceil(writes / 20)) plus the delta pages the
  listing needs (ceil(listed / page size), at least one per kind), plus finding and making
  our contact folder (2); one per item: a request per item written, plus the same pages.
- SuperOffice minimum: its REST API has no batch and no bulk read, so each appointment or
  person is read once (the archive lists do not carry whole items), its stamp looked up once
  (the foreign key is a read of its own; a stamp left by a lost link table pairs the item
  instead of copying it) and each source stamped once (a write each), plus the archive
  pages the listing made.
- bound: each side's requests x latency / the requests it takes at once (Graph: four per
  mailbox, Outlook's limit; SuperOffice: `SO_CONCURRENCY`, the connector's own limit, as
  SuperOffice publishes none), added up (the engine talks to one side at a time).

Targets (issue 11): initial sync >= 15x fewer Graph requests than one per item; an
incremental sync with nothing changed <= 2 requests per side per kind (checked on both
incremental runs); the initial sync's wall time <= 1.5 x the bound. Verdict on the last
line, exit 1 on a miss.

Run: .venv/bin/python bench/sync_m365.py [--appointments 5000] [--persons 1000] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402

from common.connectors.base import ItemConnector  # noqa: E402
from common.connectors.graph.auth import DelegatedTokens, GraphApp, MemoryTokenStore  # noqa: E402
from common.connectors.graph.client import MAILBOX_CONCURRENCY, MAX_BATCH, GraphClient  # noqa: E402
from common.connectors.graph.contacts import GraphContacts  # noqa: E402
from common.connectors.graph.events import GraphEvents  # noqa: E402
from common.connectors.superoffice import (  # noqa: E402
    SuperOfficeAppointments,
    SuperOfficePersons,
    Tenant,
)
from common.connectors.superoffice.client import SO_CONCURRENCY  # noqa: E402
from common.kinds import ItemKind, RunStatus, Side  # noqa: E402
from common.kinds import Window as Range  # noqa: E402
from daemon.policies import DeletionGuard, Direction, Policy, Window  # noqa: E402
from daemon.sync import SyncOutcome, sync  # noqa: E402
from simulators.microsoft import create_app  # noqa: E402
from simulators.platform.ca import DemoCA  # noqa: E402
from simulators.platform.server import SimServer  # noqa: E402
from simulators.superoffice import create_app as create_so_app  # noqa: E402
from simulators.world.microsoft import (  # noqa: E402
    SYNCHRONIZER_APP_ID,
    SYNCHRONIZER_SECRET,
    demo_world,
)
from simulators.world.superoffice import demo as so_demo  # noqa: E402
from tests.fixtures.engine import make_sql_store  # noqa: E402
from tests.fixtures.graph_connector import signed_in_state  # noqa: E402
from tests.fixtures.superoffice_connector import online_client  # noqa: E402

ADELE = "adele@contoso.example"
TENANT = "contoso.example"
SO_TENANT = "Cust12345"  # Contoso in SuperOffice Online; Adele is its associate 100
SO_ADELE = 100
SO_ZONE = "Europe/Oslo"
NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)
POLICY = Policy(
    appointments=Direction.TWO_WAY,
    contacts=Direction.TWO_WAY,
    window=Window(days_back=7, days_ahead=120),
    guard=DeletionGuard(),
)
KINDS = (ItemKind.APPOINTMENT, ItemKind.CONTACT)
GRAPH_PAGE = 100  # the connectors' default delta page size
FOLDER_SETUP = 2  # find our contact folder, make it
TARGET_RATIO = 15.0
TARGET_IDLE = 2
TARGET_WALL = 1.5


@dataclass
class Wire:
    """Every HTTP request a session sent to one service's API, and how long each took."""

    api: str  # the API's path prefix: "/v1.0/", "/Cust12345/api/v1/"
    requests: Counter[str] = field(default_factory=Counter)  # "METHOD /path" -> count
    other: int = 0  # sign-in, tokens, tenant lookups
    waited_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        path = urlsplit(str(response.request.url)).path
        with self.lock:
            self.waited_s += response.elapsed.total_seconds()
            if path.startswith(self.api):
                self.requests[f"{response.request.method} {_shape(path[len(self.api) :])}"] += 1
            else:
                self.other += 1

    def total(self) -> int:
        return sum(self.requests.values())

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.other, self.waited_s = 0, 0.0


def _shape(path: str) -> str:
    """`me/contactFolders/<id>/contacts/delta`, `Appointment/<n>`: ids left out."""
    parts = path.split("/")
    return "/".join("<id>" if len(p) > 40 or p.isdigit() else p for p in parts)


class Remote:
    """A simulator on https in a process of its own, as a service runs apart from its
    clients: its work does not queue behind the engine's for this interpreter's lock."""

    def __init__(self, make_app: Callable[[], Any], ca: DemoCA) -> None:
        forked = multiprocessing.get_context("fork")  # the child inherits `make_app` as is
        self._pipe, theirs = forked.Pipe()
        self.process = forked.Process(target=_serve, args=(make_app, ca, theirs), daemon=True)
        self.process.start()
        self.url = f"https://127.0.0.1:{self._pipe.recv()}"

    def stop(self) -> None:
        self._pipe.send("stop")
        self.process.join(timeout=10)


def _serve(make_app: Callable[[], Any], ca: DemoCA, pipe: Any) -> None:
    context = ca.server_context(["127.0.0.1", "localhost"])
    server = SimServer(make_app(), "127.0.0.1", 0, ssl_context=context).start()
    pipe.send(server.port)
    pipe.recv()  # until the bench is done
    server.stop()


def _session(ca: DemoCA, in_flight: int) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = ca.ca_file
    session.mount("https://", requests.adapters.HTTPAdapter(pool_maxsize=in_flight * 2))
    return session


def _latency(session: requests.Session, server: Remote, latency_ms: float) -> None:
    answer = session.put(f"{server.url}/_sim/latency", json={"latency_ms": latency_ms})
    assert answer.status_code == 200, answer.text


def _visit(n: int) -> tuple[datetime, datetime]:
    start = NOW + timedelta(days=1 + n % 110, hours=7 + n % 10, minutes=(n // 1100) * 5)
    return start, start + timedelta(minutes=45)


# --- the CRM ---------------------------------------------------------------------------------


class Crm:
    """SuperOffice Online on https: Adele's diary and the persons of her companies, read and
    written through the product's connectors, signed in through SuperID."""

    def __init__(self, tmp: Path, ca: DemoCA, appointments: int, persons: int) -> None:
        self.server = Remote(lambda: create_so_app(so_demo(anchor=NOW.date())), ca)
        self.session = _session(ca, SO_CONCURRENCY)
        self._seed(appointments, persons)
        self.client = online_client(self.session, self.server.url, ADELE, SO_TENANT)
        self.tenant = Tenant(SO_ZONE, context=SO_TENANT)
        self.wire = Wire(f"/{SO_TENANT}/api/v1/")
        self.session.hooks["response"].append(self.wire.hook)

    def _seed(self, appointments: int, persons: int) -> None:
        """Adele's diary and companies hold only the bench's items (the demo's are gone)."""
        url = f"{self.server.url}/_sim/state"
        state = self.session.get(url).json()["tenants"][SO_TENANT]
        when = NOW.replace(tzinfo=None).isoformat()
        made = {"created": when, "updated": when, "created_by": SO_ADELE, "updated_by": SO_ADELE}
        diary = []
        for n in range(appointments):
            start, end = _visit(n)
            diary.append({"appointment_id": 20000 + n, "associate_id": SO_ADELE,
                          "title": f"Visit {n}", "description": "", "location": f"Room {n % 9}",
                          "start": start.isoformat(), "end": end.isoformat(), **made})  # fmt: skip
        for company in state["contacts"]:
            if company["associate_id"] == SO_ADELE:
                company["associate_id"] = 0  # the demo's companies are no longer Adele's
        companies = [{"contact_id": 5000 + n, "name": f"Company {n}", "department": "",
                      "domains": [], "phones": [], "emails": [], "city": "", "country": "Norway",
                      "associate_id": SO_ADELE, **made} for n in range(max(1, persons // 20))]  # fmt: skip
        people = [p for p in state["persons"] if p["associate_id"]]  # the users' own
        for n in range(persons):
            people.append({"person_id": 50000 + n, "contact_id": 5000 + n % len(companies),
                           "firstname": f"Given{n}", "lastname": f"Family{n}",
                           "emails": [f"person{n}@example.com"], "phones": [], "mobiles": [],
                           "position": "", "title": "", **made})  # fmt: skip
        tables = {"appointments": diary, "rules": [], "persons": people,
                  "contacts": state["contacts"] + companies}  # fmt: skip
        answer = self.session.post(url, json={"tenants": {SO_TENANT: tables}})
        assert answer.status_code == 204, answer.text

    def connector(self, kind: ItemKind) -> ItemConnector[Any]:
        """A fresh connector per run, as the daemon builds them."""
        if kind is ItemKind.APPOINTMENT:
            return SuperOfficeAppointments(self.client, SO_ADELE, self.tenant)
        return SuperOfficePersons(self.client, SO_ADELE, context=SO_TENANT)

    def close(self) -> None:
        self.session.close()
        self.server.stop()


# --- the mailbox -----------------------------------------------------------------------------


class Mailbox:
    """The Microsoft simulator on https, Adele's empty mailbox, and msal's signed-in tokens."""

    def __init__(self, ca: DemoCA) -> None:
        world = demo_world(anchor=date(2026, 3, 23))
        tenant = world.tenant(TENANT)
        assert tenant is not None
        for user in tenant.users:
            user.events, user.contacts = [], []
        self.server = Remote(lambda: create_app(world), ca)
        self.session = _session(ca, MAILBOX_CONCURRENCY)
        state = signed_in_state(self.server, self.session, ADELE)
        app = GraphApp(
            SYNCHRONIZER_APP_ID, SYNCHRONIZER_SECRET, f"{self.server.url}/{TENANT}", self.session
        )
        self.tokens = DelegatedTokens(app, MemoryTokenStore(state), ADELE)
        self.tokens.access_token()
        self.wire = Wire("/v1.0/")
        self.session.hooks["response"].append(self.wire.hook)
        self.sleeps: list[float] = []

    def client(self) -> GraphClient:
        def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)
            time.sleep(seconds)

        return GraphClient(
            self.tokens, ADELE, root=self.server.url, session=self.session, sleep=sleep
        )

    def connector(self, kind: ItemKind, window: Range) -> ItemConnector[Any]:
        """A fresh connector per run, as the daemon builds them."""
        if kind is ItemKind.APPOINTMENT:
            return GraphEvents(self.client(), page_size=GRAPH_PAGE, window=window)
        return GraphContacts(self.client(), page_size=GRAPH_PAGE)

    def parts(self) -> int:
        """Requests the simulator ran (each part of a batch, each plain request), since the
        last reset."""
        stats = self.session.get(f"{self.server.url}/_sim/stats").json()
        return int(stats["total"]) - sum(
            v for k, v in stats["endpoints"].items() if k.startswith("POST /v1.0/$batch")
        )

    def reset_stats(self) -> None:
        self.session.delete(f"{self.server.url}/_sim/stats")

    def held(self) -> dict[str, int]:
        state = self.session.get(f"{self.server.url}/_sim/state").json()
        for tenant in state["tenants"]:
            for user in tenant["users"]:
                if user["userPrincipalName"] == ADELE:
                    return {
                        "events": len(user["events"]),
                        "contacts": len(user["contacts"]),
                        "sent_mail": len(state.get("sentMail") or []),
                        "peak_in_flight": int(user.get("throttling", {}).get("peakInFlight", 0)),
                    }
        raise AssertionError("no Adele in the simulator")

    def close(self) -> None:
        self.session.close()
        self.server.stop()


# --- one run -----------------------------------------------------------------------------


@dataclass
class KindRun:
    kind: ItemKind
    outcome: SyncOutcome[Any]
    wall_s: float
    graph: Counter[str]
    graph_waited_s: float
    parts: int
    crm: Counter[str]
    crm_waited_s: float
    sleeps: list[float]

    @property
    def graph_requests(self) -> int:
        return sum(self.graph.values())

    @property
    def crm_requests(self) -> int:
        return sum(self.crm.values())

    @property
    def batches(self) -> int:
        return self.graph["POST $batch"]

    @property
    def listing(self) -> int:
        return sum(v for k, v in self.graph.items() if k.endswith("/delta"))

    def written(self, side: Side) -> int:
        counts = self.outcome.report.counts if self.outcome.report else {}
        return sum(v for k, v in counts.items() if k.endswith(f"_{side.value}"))

    def stamped(self) -> int:
        """CRM items given our stamp (the sources of the pairs made)."""
        return self.written(Side.GROUPWARE) if self.outcome.status is RunStatus.SUCCEEDED else 0


@contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    started = time.perf_counter()
    yield box
    box.append(time.perf_counter() - started)


def run_both(mailbox: Mailbox, crm: Crm, store: Any) -> dict[ItemKind, KindRun]:
    window = Range(*POLICY.window.bounds(NOW))
    runs = {}
    for kind in KINDS:
        mailbox.reset_stats()
        mailbox.wire.reset()
        crm.wire.reset()
        mailbox.sleeps.clear()
        connectors = {
            Side.CRM: crm.connector(kind),
            Side.GROUPWARE: mailbox.connector(kind, window),
        }
        with timed() as wall:
            outcome = sync(kind, connectors, store, POLICY, NOW, me=ADELE)
        runs[kind] = KindRun(
            kind,
            outcome,
            wall[0],
            Counter(mailbox.wire.requests),
            mailbox.wire.waited_s,
            mailbox.parts(),
            Counter(crm.wire.requests),
            crm.wire.waited_s,
            list(mailbox.sleeps),
        )
    return runs


def graph_minimum(run: KindRun, listed: int) -> int:
    pages = max(1, math.ceil(listed / GRAPH_PAGE))
    setup = FOLDER_SETUP if run.kind is ItemKind.CONTACT else 0
    return math.ceil(run.written(Side.GROUPWARE) / MAX_BATCH) + pages + setup


def graph_per_item(run: KindRun, listed: int) -> int:
    setup = FOLDER_SETUP if run.kind is ItemKind.CONTACT else 0
    return run.written(Side.GROUPWARE) + max(1, math.ceil(listed / GRAPH_PAGE)) + setup


def crm_minimum(run: KindRun, held: int) -> int:
    """Each item read once and its stamp looked up once, each source stamped once, and the
    archive pages that list them."""
    pages = sum(v for k, v in run.crm.items() if k.startswith("GET ") and k.count("/") == 0)
    return 2 * held + run.stamped() + max(1, pages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appointments", type=int, default=5000)
    parser.add_argument("--persons", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    held_in_crm = {ItemKind.APPOINTMENT: args.appointments, ItemKind.CONTACT: args.persons}

    with tempfile.TemporaryDirectory(prefix="bench-m365-") as tmp:
        started = time.perf_counter()
        ca = DemoCA(Path(tmp) / "ca")
        crm = Crm(Path(tmp), ca, args.appointments, args.persons)
        mailbox = Mailbox(ca)
        store = make_sql_store(f"sqlite:///{Path(tmp) / 'engine.db'}")
        _latency(crm.session, crm.server, args.latency_ms)
        _latency(mailbox.session, mailbox.server, args.latency_ms)
        setup_s = time.perf_counter() - started
        try:
            phases = {
                "initial": run_both(mailbox, crm, store),
                "incremental (echo)": run_both(mailbox, crm, store),
                "incremental (idle)": run_both(mailbox, crm, store),
            }
            held = mailbox.held()
        finally:
            store.db.dispose()
            mailbox.close()
            crm.close()

    print(
        f"one user: {args.appointments} appointments and {args.persons} persons in SuperOffice, "
        f"mailbox empty; latency {args.latency_ms:.0f} ms per request on both simulators; "
        f"in flight: Graph {MAILBOX_CONCURRENCY} per mailbox, SuperOffice {SO_CONCURRENCY} "
        f"(setup {setup_s:.1f} s)"
    )
    print(
        f"{'run':<20} {'kind':<12} {'status':<10} {'to gw':>6} {'to crm':>6} {'graph':>6} "
        f"{'batches':>7} {'delta':>6} {'parts':>6} {'crm':>6} {'wall s':>7} {'bound s':>8}"
    )
    for name, runs in phases.items():
        for kind, r in runs.items():
            bound = (
                r.graph_requests / MAILBOX_CONCURRENCY + r.crm_requests / SO_CONCURRENCY
            ) * latency
            print(
                f"{name:<20} {kind.value:<12} {r.outcome.status.value:<10} "
                f"{r.written(Side.GROUPWARE):>6} {r.written(Side.CRM):>6} {r.graph_requests:>6} "
                f"{r.batches:>7} {r.listing:>6} {r.parts:>6} {r.crm_requests:>6} "
                f"{r.wall_s:>7.1f} {bound:>8.1f}"
            )
    print(
        "(to gw / to crm: items the run wrote to each side; graph: HTTP requests to Graph, a "
        "$batch as one; delta: of them, delta pages; parts: requests the Graph simulator ran, "
        "each part of a batch; crm: HTTP requests to SuperOffice's API; sign-ins apart; "
        "bound: graph x latency / 4 + crm x latency / SuperOffice's in flight)"
    )
    for name, runs in phases.items():
        for kind, r in runs.items():
            print(f"{name} {kind.value}: graph {dict(sorted(r.graph.items()))}")
            print(f"{name} {kind.value}: crm {dict(sorted(r.crm.items()))}")
            print(f"  counts {r.outcome.counts}; waiting for Graph {r.graph_waited_s:.1f} s, "
                  f"for SuperOffice {r.crm_waited_s:.1f} s (summed over requests in flight)")  # fmt: skip
            if r.outcome.error or r.sleeps:
                print(f"  error {r.outcome.error!r}, Retry-After waits {r.sleeps}")
    print(f"mailbox afterwards: {held}")

    initial = phases["initial"]
    listed = {ItemKind.APPOINTMENT: 0, ItemKind.CONTACT: 0}  # the mailbox started empty
    graph_total = sum(r.graph_requests for r in initial.values())
    crm_total = sum(r.crm_requests for r in initial.values())
    graph_least = sum(graph_minimum(r, listed[k]) for k, r in initial.items())
    crm_least = sum(crm_minimum(r, held_in_crm[k]) for k, r in initial.items())
    one_each = sum(graph_per_item(r, listed[k]) for k, r in initial.items())
    ratio = one_each / graph_total if graph_total else 0.0
    wall = sum(r.wall_s for r in initial.values())
    graph_bound = graph_total * latency / MAILBOX_CONCURRENCY
    crm_bound = crm_total * latency / SO_CONCURRENCY
    bound = graph_bound + crm_bound
    print(
        f"initial sync, Graph requests: {graph_total} made; minimum {graph_least} "
        f"(x{graph_total / graph_least:.2f} of it); one per item {one_each} "
        f"({ratio:.1f}x fewer than one per item, target >= {TARGET_RATIO:.0f}x)"
    )
    print(
        f"initial sync, SuperOffice requests: {crm_total} made; minimum {crm_least} "
        f"(x{crm_total / crm_least:.2f} of it: each item read once, its stamp looked up once, "
        f"each source stamped once, the archive pages)"
    )
    print(
        f"initial sync, wall time: {wall:.1f} s; bound {bound:.1f} s (Graph {graph_total} x "
        f"{args.latency_ms:.0f} ms / {MAILBOX_CONCURRENCY} = {graph_bound:.1f} s, SuperOffice "
        f"{crm_total} x {args.latency_ms:.0f} ms / {SO_CONCURRENCY} = {crm_bound:.1f} s); "
        f"x{wall / bound:.2f} of the bound (target <= {TARGET_WALL}x); one request at a time "
        f"would wait {(graph_total + crm_total) * latency:.1f} s"
    )
    problems = []
    if ratio < TARGET_RATIO:
        problems.append(f"initial sync only {ratio:.1f}x fewer requests than one per item")
    for name in ("incremental (echo)", "incremental (idle)"):
        for kind, r in phases[name].items():
            for side, count in (("graph", r.graph_requests), ("crm", r.crm_requests)):
                if count > TARGET_IDLE:
                    problems.append(
                        f"{name} {kind.value}: {count} {side} requests (> {TARGET_IDLE})"
                    )
    if wall > TARGET_WALL * bound:
        problems.append(f"initial wall {wall:.1f} s > {TARGET_WALL} x bound {bound:.1f} s")
    expected = {"events": args.appointments, "contacts": args.persons, "sent_mail": 0}
    got = {k: held[k] for k in expected}
    if got != expected:
        problems.append(f"mailbox holds {got}, expected {expected}")
    bad = [
        f"{n} {k.value} {r.outcome.status.value}"
        for n, runs in phases.items()
        for k, r in runs.items()
        if r.outcome.status is not RunStatus.SUCCEEDED
    ]
    if bad:
        problems.append(f"runs not succeeded: {bad}")
    summary = (
        f"{ratio:.1f}x fewer Graph requests than one per item; idle sync "
        + ", ".join(
            f"{k.value} {r.graph_requests}+{r.crm_requests}"
            for k, r in phases["incremental (idle)"].items()
        )
        + f" (graph+crm); wall {wall:.1f} s = x{wall / bound:.2f} of the bound {bound:.1f} s"
    )
    if problems:
        print(f"FAIL: {'; '.join(problems)} ({summary})")
        sys.exit(1)
    print(f"PASS: {summary}")


if __name__ == "__main__":
    main()
