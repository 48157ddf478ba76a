"""Sync one Microsoft 365 mailbox through the engine: Graph requests against the minimum and
against one per item, and wall time with 50 ms latency against the bound.

One user's CRM holds 5,000 appointments and 1,000 persons; their mailbox starts empty. The
daemon's `daemon.sync.sync()` runs for appointments, then for contacts, against the Microsoft
simulator on https (demo CA) through the product's Graph connector (`GraphEvents`,
`GraphContacts`, `GraphClient`) with msal and requests unchanged: a real sign-in
(authorization code flow) gives the delegated tokens. The store is the real `SqlStore` on a
SQLite file. Every Graph request after the sign-in waits `--latency-ms` in the simulator (its
network latency setting, `PUT /_sim/latency`: once per request, a `$batch` once, not per part).

CRM side: in-memory until the SuperOffice connector lands. `CRM_SIDE` below names the class
that builds the CRM side's two connectors and counts their requests; the SuperOffice connector
and simulator are one line away: a class with the same three methods (`connector`,
`requests`, `reset`) that starts the SuperOffice simulator and builds
`common.connectors.superoffice` connectors, then `CRM_SIDE = SuperOfficeCrm`. Until then the
CRM columns count calls into `MemoryConnector` (a batch as one), not HTTP requests.

Three runs, each both kinds: the initial sync; an incremental sync right after it (nothing
changed by anyone, but Graph's delta reports our own 6,000 creates as changes: the "echo");
another incremental sync (nothing changed at all). Graph requests are counted on the wire
(a response hook on the requests session: every HTTP request to `/v1.0/`, token requests
apart); parts are the simulator's own count of requests it ran (a batch's parts each).

- minimum: the writes in batches of 20 (ceil(writes / 20)) plus the delta pages the listing
  needs (ceil(listed / page size), at least one per kind), plus finding and making our
  contact folder (2);
- one per item: a request per item written, plus the same listing pages;
- bound: requests x latency / 4 (Outlook's four requests in flight per mailbox).

Targets (issue 11): initial sync >= 15x fewer Graph requests than one per item; an
incremental sync with nothing changed <= 2 requests per side per kind (checked on both
incremental runs); the initial sync's wall time <= 1.5 x the bound. Verdict on the last line,
exit 1 on a miss.

Run: .venv/bin/python bench/sync_m365.py [--appointments 5000] [--persons 1000] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402

from common.connectors.base import ItemConnector  # noqa: E402
from common.connectors.graph.auth import DelegatedTokens, GraphApp, MemoryTokenStore  # noqa: E402
from common.connectors.graph.client import MAILBOX_CONCURRENCY, MAX_BATCH, GraphClient  # noqa: E402
from common.connectors.graph.contacts import GraphContacts  # noqa: E402
from common.connectors.graph.events import GraphEvents  # noqa: E402
from common.connectors.memory import MemoryConnector  # noqa: E402
from common.items import CONTACT_FIELDS, Appointment, Contact  # noqa: E402
from common.kinds import ItemKind, RunStatus, Side  # noqa: E402
from common.kinds import Window as Range  # noqa: E402
from daemon.policies import DeletionGuard, Direction, Policy, Window  # noqa: E402
from daemon.sync import SyncOutcome, sync  # noqa: E402
from simulators.microsoft import create_app  # noqa: E402
from simulators.platform.ca import DemoCA  # noqa: E402
from simulators.platform.server import SimServer  # noqa: E402
from simulators.world.microsoft import (  # noqa: E402
    SYNCHRONIZER_APP_ID,
    SYNCHRONIZER_SECRET,
    demo_world,
)
from tests.fixtures.engine import make_sql_store  # noqa: E402
from tests.fixtures.graph_connector import signed_in_state  # noqa: E402

ADELE = "adele@contoso.example"
TENANT = "contoso.example"
NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)
POLICY = Policy(
    appointments=Direction.TWO_WAY,
    contacts=Direction.TWO_WAY,
    window=Window(days_back=7, days_ahead=120),
    guard=DeletionGuard(),
)
KINDS = (ItemKind.APPOINTMENT, ItemKind.CONTACT)
GRAPH_PAGE = 100  # the connectors' default delta page size
CRM_PAGE = 100
FOLDER_SETUP = 2  # find our contact folder, make it
TARGET_RATIO = 15.0
TARGET_IDLE = 2
TARGET_WALL = 1.5


# --- the CRM side ----------------------------------------------------------------------------


class CrmSide(Protocol):
    def connector(self, kind: ItemKind) -> ItemConnector[Any]: ...
    def requests(self, kind: ItemKind) -> int: ...
    def reset(self) -> None: ...


class MemoryCrm:
    """The CRM as `MemoryConnector`s (pages of 100, no batches: one call per write, as
    SuperOffice's REST API has no batch). `requests` counts calls."""

    def __init__(self, appointments: int, persons: int) -> None:
        self.sides: dict[ItemKind, MemoryConnector[Any]] = {
            ItemKind.APPOINTMENT: MemoryConnector("crm", page_size=CRM_PAGE),
            ItemKind.CONTACT: MemoryConnector("crm", fields=CONTACT_FIELDS, page_size=CRM_PAGE),
        }
        for n in range(appointments):
            start = NOW + timedelta(days=1 + n % 110, hours=7 + n % 10, minutes=(n // 1100) * 5)
            end = start + timedelta(minutes=45)
            item = Appointment(f"Visit {n}", start, end, location=f"Room {n % 9}")
            self.sides[ItemKind.APPOINTMENT].user_create(item)
        for n in range(persons):
            person = Contact(f"Given{n}", f"Family{n}", emails=(f"person{n}@example.com",))
            self.sides[ItemKind.CONTACT].user_create(person)
        self.reset()

    def connector(self, kind: ItemKind) -> ItemConnector[Any]:
        return self.sides[kind]

    def requests(self, kind: ItemKind) -> int:
        side = self.sides[kind]
        return sum(side.calls.values()) - self._before[kind]

    def reset(self) -> None:
        self._before = {k: sum(s.calls.values()) for k, s in self.sides.items()}


CRM_SIDE = MemoryCrm  # CRM side: in-memory until the SuperOffice connector lands


# --- the mailbox -----------------------------------------------------------------------------


@dataclass
class Wire:
    """Every HTTP request the Graph session sent, and how long each took to be answered."""

    graph: Counter[str] = field(default_factory=Counter)  # "METHOD /v1.0/path" -> count
    tokens: int = 0
    waited_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        path = urlsplit(str(response.request.url)).path
        with self.lock:
            self.waited_s += response.elapsed.total_seconds()
            if path.startswith("/v1.0/"):
                key = "/v1.0/$batch" if path.endswith("/$batch") else _shape(path)
                self.graph[f"{response.request.method} {key}"] += 1
            else:
                self.tokens += 1

    def reset(self) -> None:
        with self.lock:
            self.graph.clear()
            self.tokens, self.waited_s = 0, 0.0


def _shape(path: str) -> str:
    """`/v1.0/me/contactFolders/<id>/contacts/delta` with the id left out."""
    parts = path.split("/")
    return "/".join("<id>" if len(p) > 40 else p for p in parts)


class Mailbox:
    """The simulator on https, Adele's empty mailbox, and the connector's signed-in client."""

    def __init__(self, tmp: Path, latency_ms: float) -> None:
        world = demo_world(anchor=date(2026, 3, 23))
        tenant = world.tenant(TENANT)
        assert tenant is not None
        for user in tenant.users:
            user.events, user.contacts = [], []
        self.app = create_app(world)
        ca = DemoCA(tmp / "ca")
        context = ca.server_context(["127.0.0.1", "localhost"])
        self.server = SimServer(self.app, "127.0.0.1", 0, ssl_context=context).start()
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = ca.ca_file
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=MAILBOX_CONCURRENCY * 2)
        self.session.mount("https://", adapter)
        state = signed_in_state(self.server, self.session, ADELE)
        app = GraphApp(
            SYNCHRONIZER_APP_ID, SYNCHRONIZER_SECRET, f"{self.server.url}/{TENANT}", self.session
        )
        self.tokens = DelegatedTokens(app, MemoryTokenStore(state), ADELE)
        self.tokens.access_token()
        self.wire = Wire()
        self.session.hooks["response"].append(self.wire.hook)
        self.sleeps: list[float] = []
        answer = self.session.put(
            f"{self.server.url}/_sim/latency", json={"latency_ms": latency_ms}
        )
        assert answer.status_code == 200, answer.text

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
        """Requests the simulator ran (each part of a batch, each plain request, the outer
        batches; token requests too), since the last reset."""
        stats = self.session.get(f"{self.server.url}/_sim/stats").json()
        return int(stats["total"]) - sum(
            v for k, v in stats["endpoints"].items() if k.startswith("POST /v1.0/$batch")
        )

    def reset(self) -> None:
        self.session.delete(f"{self.server.url}/_sim/stats")
        self.wire.reset()

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
    crm: int
    sleeps: list[float]

    @property
    def graph_requests(self) -> int:
        return sum(self.graph.values())

    @property
    def batches(self) -> int:
        return self.graph["POST /v1.0/$batch"]

    @property
    def listing(self) -> int:
        return sum(v for k, v in self.graph.items() if k.endswith("/delta"))

    def written_to_graph(self) -> int:
        counts = self.outcome.report.counts if self.outcome.report else {}
        return sum(v for k, v in counts.items() if k.endswith("_groupware"))


@contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    started = time.perf_counter()
    yield box
    box.append(time.perf_counter() - started)


def run_both(mailbox: Mailbox, crm: CrmSide, store: Any) -> dict[ItemKind, KindRun]:
    window = Range(*POLICY.window.bounds(NOW))
    runs = {}
    for kind in KINDS:
        mailbox.reset()
        crm.reset()
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
            Counter(mailbox.wire.graph),
            mailbox.wire.waited_s,
            mailbox.parts(),
            crm.requests(kind),
            list(mailbox.sleeps),
        )
    return runs


def minimum(run: KindRun, listed: int) -> int:
    pages = max(1, math.ceil(listed / GRAPH_PAGE))
    setup = FOLDER_SETUP if run.kind is ItemKind.CONTACT else 0
    return math.ceil(run.written_to_graph() / MAX_BATCH) + pages + setup


def per_item(run: KindRun, listed: int) -> int:
    setup = FOLDER_SETUP if run.kind is ItemKind.CONTACT else 0
    return run.written_to_graph() + max(1, math.ceil(listed / GRAPH_PAGE)) + setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appointments", type=int, default=5000)
    parser.add_argument("--persons", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    latency = args.latency_ms / 1000

    with tempfile.TemporaryDirectory(prefix="bench-m365-") as tmp:
        started = time.perf_counter()
        crm = CRM_SIDE(args.appointments, args.persons)
        mailbox = Mailbox(Path(tmp), args.latency_ms)
        store = make_sql_store(f"sqlite:///{Path(tmp) / 'engine.db'}")
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

    print(
        f"one mailbox, {args.appointments} appointments and {args.persons} persons in the CRM, "
        f"mailbox empty; Graph latency {args.latency_ms:.0f} ms per request, "
        f"{MAILBOX_CONCURRENCY} in flight per mailbox; CRM side: {CRM_SIDE.__name__} "
        f"(setup {setup_s:.1f} s)"
    )
    print(
        f"{'run':<20} {'kind':<12} {'status':<10} {'written':>7} {'graph':>6} {'batches':>7} "
        f"{'delta':>6} {'parts':>6} {'crm':>6} {'wall s':>7} {'in graph s':>10} {'bound s':>8}"
    )
    for name, runs in phases.items():
        for kind, r in runs.items():
            print(
                f"{name:<20} {kind.value:<12} {r.outcome.status.value:<10} "
                f"{r.written_to_graph():>7} {r.graph_requests:>6} {r.batches:>7} {r.listing:>6} "
                f"{r.parts:>6} {r.crm:>6} {r.wall_s:>7.1f} {r.graph_waited_s:>10.1f} "
                f"{r.graph_requests * latency / MAILBOX_CONCURRENCY:>8.1f}"
            )
    print(
        "(written: items the run wrote to the mailbox; graph: HTTP requests to Graph, a $batch "
        "as one, token requests apart; delta: of them, delta pages; parts: requests the "
        "simulator ran, each part of a batch; crm: calls into the CRM side; in graph s: time "
        "spent waiting for Graph's answers; bound: graph x latency / 4)"
    )
    for name, runs in phases.items():
        for kind, r in runs.items():
            detail = dict(sorted(r.graph.items()))
            print(f"{name} {kind.value}: {detail}; counts {r.outcome.counts}")
            if r.outcome.error or r.sleeps:
                print(f"  error {r.outcome.error!r}, Retry-After waits {r.sleeps}")
    print(f"mailbox afterwards: {held}")

    initial = phases["initial"]
    listed = {ItemKind.APPOINTMENT: 0, ItemKind.CONTACT: 0}  # the mailbox started empty
    graph_total = sum(r.graph_requests for r in initial.values())
    least = sum(minimum(r, listed[k]) for k, r in initial.items())
    one_each = sum(per_item(r, listed[k]) for k, r in initial.items())
    ratio = one_each / graph_total if graph_total else 0.0
    wall = sum(r.wall_s for r in initial.values())
    in_graph = sum(r.graph_waited_s for r in initial.values())
    bound = graph_total * latency / MAILBOX_CONCURRENCY
    serial = graph_total * latency
    print(
        f"initial sync, Graph requests: {graph_total} made; minimum {least} "
        f"(x{graph_total / least:.2f} of it); one per item {one_each} "
        f"({ratio:.1f}x fewer than one per item, target >= {TARGET_RATIO:.0f}x)"
    )
    print(
        f"initial sync, wall time: {wall:.1f} s; bound {bound:.1f} s "
        f"({graph_total} x {args.latency_ms:.0f} ms / {MAILBOX_CONCURRENCY}); x{wall / bound:.1f} "
        f"of the bound (target <= {TARGET_WALL}x); one request at a time would wait "
        f"{serial:.1f} s; waiting for Graph {in_graph:.1f} s, the rest (engine, store, CRM, "
        f"client) {wall - in_graph:.1f} s"
    )
    problems = []
    if ratio < TARGET_RATIO:
        problems.append(f"initial sync only {ratio:.1f}x fewer requests than one per item")
    for name in ("incremental (echo)", "incremental (idle)"):
        for kind, r in phases[name].items():
            for side, count in (("graph", r.graph_requests), ("crm", r.crm)):
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
            f"{k.value} {r.graph_requests}+{r.crm}" for k, r in phases["incremental (idle)"].items()
        )
        + f" (graph+crm); wall {wall:.1f} s = x{wall / bound:.1f} of the bound {bound:.1f} s"
    )
    if problems:
        print(f"FAIL: {'; '.join(problems)} ({summary})")
        sys.exit(1)
    print(f"PASS: {summary}")


if __name__ == "__main__":
    main()
