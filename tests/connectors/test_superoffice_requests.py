"""What a sync costs SuperOffice, counted on the wire against the simulator (its REST API has
no batch): an initial sync reads each item once, looks its stamp up once and stamps it once,
four requests at a time, and none started after a throttle; a sync with nothing changed
lists with two requests."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from common.connectors.base import Throttled, Write
from common.connectors.memory import MemoryConnector
from common.connectors.superoffice import SuperOfficeAppointments, SuperOfficePersons, Tenant
from common.items import CONTACT_FIELDS
from common.kinds import ItemKind, RunStatus, Side, Stored
from daemon.policies import Direction, Policy, Window
from daemon.sync import SyncOutcome, sync
from tests.fixtures.memory_store import MemoryStore
from tests.fixtures.superoffice_connector import ADELE, CONTOSO_ZONE, online_client

NOW = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)  # the demo world's anchor Monday
POLICY = Policy(appointments=Direction.TWO_WAY, contacts=Direction.TWO_WAY, window=Window(3, 60))
ME = "adele@contoso.example"
API = "/Cust12345/api/v1/"
VISITS = 40


class Wire:
    """Each request to the tenant's API (`METHOD path`, ids as `<id>`) and when it was in
    flight."""

    def __init__(self, session: requests.Session) -> None:
        self.requests: Counter[str] = Counter()
        self.spans: list[tuple[float, float]] = []
        session.hooks["response"].append(self.hook)

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        path = urlsplit(str(response.request.url)).path
        if path.startswith(API):
            shape = "/".join("<id>" if p.isdigit() else p for p in path[len(API) :].split("/"))
            self.requests[f"{response.request.method} {shape}"] += 1
            answered = time.monotonic()
            self.spans.append((answered - response.elapsed.total_seconds(), answered))

    def most_at_once(self) -> int:
        edges = sorted([(s, 1) for s, _ in self.spans] + [(e, -1) for _, e in self.spans])
        now = peak = 0
        for _, step in edges:
            now += step
            peak = max(peak, now)
        return peak

    def clear(self) -> None:
        self.requests.clear()
        self.spans.clear()


def seed_visits(http: requests.Session, base: str) -> None:
    """Adele's diary holds only `VISITS` single appointments."""
    made = {"created": "2026-03-01T09:00:00", "updated": "2026-03-01T09:00:00",
            "created_by": ADELE, "updated_by": ADELE}  # fmt: skip
    diary = []
    for n in range(VISITS):
        start = NOW + dt.timedelta(days=1 + n % 20, hours=n % 8)
        diary.append({"appointment_id": 30000 + n, "associate_id": ADELE, "title": f"Visit {n}",
                      "description": "", "start": start.isoformat(),
                      "end": (start + dt.timedelta(minutes=30)).isoformat(), **made})  # fmt: skip
    body = {"tenants": {"Cust12345": {"appointments": diary, "rules": []}}}
    assert http.post(f"{base}/_sim/state", json=body).status_code == 204


def latency(http: requests.Session, base: str, ms: float) -> None:
    assert http.put(f"{base}/_sim/latency", json={"latency_ms": ms}).status_code == 200


def run(kind: ItemKind, crm: Any, gw: Any, store: MemoryStore) -> SyncOutcome[Any]:
    outcome = sync(kind, {Side.CRM: crm, Side.GROUPWARE: gw}, store, POLICY, NOW, me=ME)
    assert outcome.status is RunStatus.SUCCEEDED, (outcome.error, outcome.notes)
    return outcome


def test_an_initial_sync_reads_looks_up_and_stamps_each_appointment_once_four_at_a_time(
    so_http: requests.Session, so_base: str
) -> None:
    """40 appointments copied to an empty mailbox, with 100 ms of latency: each is read once
    (by the listing), its foreign key looked up once (a stamp left by an earlier link
    table pairs it instead of copying it) and written once, four requests in flight.
    Mistakes caught: reading each appointment again to learn its stamp and again to stamp
    it (five requests per item instead of three), one request at a time, more than four."""
    seed_visits(so_http, so_base)
    session = requests.Session()
    session.trust_env = False
    session.verify = so_http.verify
    wire = Wire(session)
    client = online_client(session, so_base, ME)
    crm = SuperOfficeAppointments(client, ADELE, Tenant(CONTOSO_ZONE, context="Cust12345"))
    gw: MemoryConnector[Any] = MemoryConnector("gw", owner=ME, batch_size=20)
    wire.clear()
    latency(so_http, so_base, 100)
    try:
        outcome = run(ItemKind.APPOINTMENT, crm, gw, MemoryStore())
    finally:
        latency(so_http, so_base, 0)
    assert outcome.counts.get("create_groupware") == VISITS and len(gw.items) == VISITS
    key = "ForeignApp/Synchronizer/Sync/default/Key"
    assert wire.requests["GET Appointment/<id>"] == VISITS
    assert wire.requests[f"GET {key}/CorrelationId/appointment/<id>"] == VISITS
    assert wire.requests[f"PUT {key}"] == VISITS
    assert wire.most_at_once() == 4


def test_an_initial_sync_of_persons_costs_three_requests_a_person(
    so_http: requests.Session, so_base: str
) -> None:
    """The same for contacts: each person read once, its stamp looked up once, stamped
    once (mistake: reading each person again to stamp it)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = so_http.verify
    wire = Wire(session)
    crm = SuperOfficePersons(online_client(session, so_base, ME), ADELE, context="Cust12345")
    gw: MemoryConnector[Any] = MemoryConnector("gw", fields=CONTACT_FIELDS, batch_size=20)
    wire.clear()
    outcome = run(ItemKind.CONTACT, crm, gw, MemoryStore())
    persons = outcome.counts.get("create_groupware", 0)
    assert persons >= 8 and len(gw.items) == persons
    key = "ForeignApp/Synchronizer/Sync/default/Key"
    assert wire.requests["GET Person/<id>"] == persons
    assert wire.requests[f"GET {key}/CorrelationId/person/<id>"] == persons
    assert wire.requests[f"PUT {key}"] == persons


@pytest.mark.parametrize("page", [VISITS, VISITS + 1])
def test_a_sync_with_nothing_changed_lists_the_diary_with_two_requests(
    so_http: requests.Session, so_base: str, page: int
) -> None:
    """After the first sync: the rows changed since (none) and the ids of the diary, one
    archive request each, also when the ids exactly fill a page (mistake: a full last page
    taken for "more may follow", and one more request that comes back empty)."""
    seed_visits(so_http, so_base)
    session = requests.Session()
    session.trust_env = False
    session.verify = so_http.verify
    wire = Wire(session)
    client = online_client(session, so_base, ME)
    tenant = Tenant(CONTOSO_ZONE, context="Cust12345")
    gw: MemoryConnector[Any] = MemoryConnector("gw", owner=ME, batch_size=20)
    store = MemoryStore()

    def diary() -> SuperOfficeAppointments:
        return SuperOfficeAppointments(client, ADELE, tenant, page_size=page, id_page_size=page)

    run(ItemKind.APPOINTMENT, diary(), gw, store)
    wire.clear()
    idle = run(ItemKind.APPOINTMENT, diary(), gw, store)
    assert idle.writes() == 0
    assert dict(wire.requests) == {"GET Appointment": 2}


def test_after_a_throttle_no_further_write_is_started_and_none_is_made_twice(
    so_http: requests.Session, so_base: str
) -> None:
    """20 stamps handed over at once, four in flight; SuperOffice answers one 429 with a
    minute to wait. What was written stays written, what was not started is reported
    throttled (for the engine to reschedule), and nothing is sent twice. Mistake: the
    writes of a batch all started regardless (twenty requests into a throttle)."""
    seed_visits(so_http, so_base)
    client = online_client(so_http, so_base, ME)
    crm = SuperOfficeAppointments(client, ADELE, Tenant(CONTOSO_ZONE, context="Cust12345"))
    visits = [crm.get(str(30000 + n)) for n in range(20)]
    session_wire = Wire(so_http)
    latency(so_http, so_base, 100)
    rule = {"kind": "status", "status": 429, "retry_after": 60, "count": 1, "path": "/Key$"}
    assert so_http.post(f"{so_base}/_sim/faults", json=rule).status_code == 201
    try:
        results = crm.apply_many(
            [
                Write(
                    "stamp", item_id=v.id, item=v.item, if_match=v.version, correlation_id=f"c{n}"
                )
                for n, v in enumerate(visits)
            ]
        )
    finally:
        so_http.delete(f"{so_base}/_sim/faults")
        latency(so_http, so_base, 0)
    done = [r for r in results if isinstance(r, Stored)]
    throttled = [r for r in results if isinstance(r, Throttled)]
    assert len(done) + len(throttled) == 20 and throttled and done
    puts = session_wire.requests["PUT ForeignApp/Synchronizer/Sync/default/Key"]
    assert puts == len(done) + 1 and puts <= 8
    held = {crm.stamps.read("appointment", int(v.id)) for v in visits} - {None}
    assert held == {r.correlation_id for r in done}
