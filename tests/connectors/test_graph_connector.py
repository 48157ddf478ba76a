"""The Microsoft 365 connector's own behaviours against the Graph simulator, most of them
through the engine (`daemon.sync.sync`) with an in-memory CRM on the other side, as a sync
runs: throttling, expired delta tokens, revoked grants, batching and request counts, the
mailbox's concurrency limit, meetings that must not mail anyone outside, series with
exceptions, private items, all-day items across a DST change, time zones, our own contact
folder. Each test names the mistake it catches."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import text

from common.capabilities import GRAPH_EVENT, project
from common.connectors.base import (
    AuthExpired,
    CursorExpired,
    NotFound,
    PreconditionFailed,
    Stored,
    WouldMail,
    Write,
)
from common.connectors.graph.auth import DelegatedTokens, GraphApp, SyncUserTokens
from common.connectors.graph.client import GraphClient
from common.connectors.graph.contacts import GraphContacts
from common.connectors.graph.events import GraphEvents
from common.connectors.memory import MemoryConnector
from common.items import (
    CONTACT_FIELDS,
    Appointment,
    Attendee,
    Contact,
    Recurrence,
    RecurrenceException,
    content_hash,
)
from common.kinds import ItemKind, RunStatus, Side, new_correlation_id
from common.models import SyncUser
from common.secrets import configure_keys, generate_key
from daemon.policies import (
    AppointmentFilter,
    Direction,
    Invitations,
    InviteMode,
    Policy,
    PrivatePolicy,
)
from daemon.sync import SyncOutcome, sync
from simulators.world.microsoft import SYNCHRONIZER_APP_ID, SYNCHRONIZER_SECRET
from tests.connectors.contract import read_all
from tests.fixtures.engine import MemoryStore, make_sql_store
from tests.fixtures.graph_connector import (
    ADELE,
    NOW,
    TENANT,
    WINDOW,
    GraphAppointments,
    Mailbox,
    signed_in_state,
)

MEGAN = "megan@contoso.example"  # a colleague with a mailbox in the tenant
CUSTOMER = "pat@fabrikam.example"  # outside the organisation
OSLO = "Europe/Oslo"


def same(a: Appointment, b: Appointment) -> bool:
    return content_hash(project(a, GRAPH_EVENT)) == content_hash(project(b, GRAPH_EVENT))


def run(
    crm: MemoryConnector[Any],
    graph: Any,
    store: Any,
    policy: Policy | None = None,
    kind: ItemKind = ItemKind.APPOINTMENT,
) -> SyncOutcome[Any]:
    return sync(
        kind,
        {Side.CRM: crm, Side.GROUPWARE: graph},
        store,
        policy or Policy(),
        NOW,
        me=ADELE,
        colleagues=frozenset({ADELE, MEGAN}),
        sleep=lambda seconds: None,
    )


def crm_side(n: int = 0) -> MemoryConnector[Appointment]:
    crm: MemoryConnector[Appointment] = MemoryConnector("crm")
    for i in range(n):
        start = NOW + timedelta(days=1 + i % 10, hours=i % 7)
        crm.user_create(Appointment(f"Visit {i}", start, start + timedelta(minutes=45)))
    return crm


def graph_events(mailbox: Mailbox) -> list[dict[str, Any]]:
    return list(mailbox.adele()["events"])


def wire_counter(session: requests.Session) -> list[tuple[str, str]]:
    """Every HTTP request the session sends, as (method, path): the wire, not the code."""
    seen: list[tuple[str, str]] = []

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        request = response.request
        path = requests.utils.urlparse(str(request.url)).path
        seen.append((str(request.method), path))

    session.hooks["response"].append(hook)
    return seen


def own_session(mailbox: Mailbox) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = mailbox.session.verify
    return session


def client_on(mailbox: Mailbox, session: requests.Session, **options: Any) -> GraphClient:
    return GraphClient(mailbox.tokens, ADELE, root=mailbox.server.url, session=session, **options)


# --- batching and request counts ----------------------------------------------------------


def test_writes_of_100_items_take_5_batches_and_reads_only_what_delta_cannot_say(
    mailbox: Mailbox,
) -> None:
    """Mistakes caught: one request per write (no `$batch`), more than 20 parts in a batch
    (Graph refuses it), a GET of each item the delta already returned, a delta pass that
    asks again for what did not change."""
    session = own_session(mailbox)
    wire = wire_counter(session)
    events = GraphEvents(client_on(mailbox, session), page_size=50, window=WINDOW)
    events.client.tokens.access_token()  # the token is not what is counted here
    mailbox.reset_stats()
    made = []
    for batch in range(5):
        writes: list[Write[Appointment]] = []
        for i in range(20):
            start = NOW + timedelta(days=1 + i % 9, hours=batch)
            item = Appointment(f"Batch {batch}.{i}", start, start + timedelta(minutes=30))
            writes.append(Write("create", item=item, correlation_id=new_correlation_id()))
        results = events.apply_many(writes)
        assert all(not isinstance(r, Exception) for r in results), results
        made += [r for r in results if r is not None]
    assert wire == [("POST", "/v1.0/$batch")] * 5
    assert mailbox.stats().get("POST /v1.0/me/events") == 100  # the parts, each once
    assert len(graph_events(mailbox)) == 100

    wire.clear()
    pages, cursor = read_all(events, None, WINDOW)
    assert len(wire) == 2 and all(path.endswith("/calendarView/delta") for _, path in wire)
    assert {s.id for p in pages for s in p.upserts} == {s.id for s in made}

    wire.clear()
    nothing, cursor = read_all(events, cursor, WINDOW)
    assert wire == [("GET", "/v1.0/me/calendarView/delta")]
    assert not any(p.upserts or p.removals for p in nothing)

    edited = made[7].id
    answer = mailbox.user.patch(f"/users/{ADELE}/events/{edited}", {"subject": "Moved"})
    assert answer.status_code == 200
    wire.clear()
    changed, _ = read_all(events, cursor, WINDOW)
    assert wire == [("GET", "/v1.0/me/calendarView/delta")]  # no GET of the edited event
    assert [(s.id, s.item.subject) for p in changed for s in p.upserts] == [(edited, "Moved")]

    wire.clear()
    read = events.get_many([s.id for s in made])
    assert wire == [("POST", "/v1.0/$batch")] * 5
    assert all(read[s.id] is not None and read[s.id].correlation_id for s in made)


def test_an_unchanged_mailbox_costs_one_request_per_kind_per_sync(mailbox: Mailbox) -> None:
    """Through the engine: after the first sync, a sync with nothing changed reads one delta
    page and writes nothing (mistake: reading items again to learn their stamps)."""
    session = own_session(mailbox)
    wire = wire_counter(session)
    events = GraphEvents(client_on(mailbox, session), page_size=50)
    crm, store = crm_side(12), MemoryStore()
    assert run(crm, events, store).status is RunStatus.SUCCEEDED
    assert len(graph_events(mailbox)) == 12
    wire.clear()
    outcome = run(crm, events, store)
    assert outcome.status is RunStatus.SUCCEEDED and outcome.writes() == 0
    assert wire == [("GET", "/v1.0/me/calendarView/delta")]


def test_a_mailbox_holding_hand_made_twins_is_paired_not_doubled(mailbox: Mailbox) -> None:
    """The user had typed some CRM appointments into Outlook by hand before the first sync.
    Mistakes caught: twins copied again (a duplicate in each calendar), or paired without
    being stamped, so a re-link cannot find them."""
    events = GraphEvents(mailbox.client, page_size=4)
    crm, store = crm_side(5), MemoryStore()
    for _, item, _ in list(crm.items.values())[:3]:
        assert isinstance(item.start, datetime) and isinstance(item.end, datetime)
        body = {
            "subject": item.subject,
            "start": {"dateTime": item.start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "end": {"dateTime": item.end.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        }
        assert mailbox.user.post(f"/users/{ADELE}/events", body).status_code == 201
    outcome = run(crm, events, store)
    assert outcome.status is RunStatus.SUCCEEDED, outcome.error
    held = graph_events(mailbox)
    assert sorted(e["subject"] for e in held) == sorted(f"Visit {i}" for i in range(5))
    assert len(crm.items) == 5
    stamps = {events.get(e["id"]).correlation_id for e in held}
    assert None not in stamps and len(stamps) == 5
    assert run(crm, events, store).writes() == 0


def test_edits_and_deletions_on_each_side_reach_the_other(mailbox: Mailbox) -> None:
    """Through the engine, both ways. Mistakes caught: an update sent without the change key
    or to the wrong id, an Outlook edit not seen in the delta, a deletion on either side
    lost or taken for an edit."""
    events = GraphEvents(mailbox.client, page_size=4)
    crm, store = crm_side(4), MemoryStore()
    assert run(crm, events, store).status is RunStatus.SUCCEEDED
    by_subject = {e["subject"]: e["id"] for e in graph_events(mailbox)}
    crm_ids = {item.subject: i for i, (_, item, _) in crm.items.items()}
    crm.user_edit(crm_ids["Visit 0"], subject="Visit 0 (CRM)", location="Oslo")
    crm.user_delete(crm_ids["Visit 1"])
    mailbox.user.patch(f"/users/{ADELE}/events/{by_subject['Visit 2']}", {"subject": "Visit 2 (O)"})
    mailbox.user.delete(f"/users/{ADELE}/events/{by_subject['Visit 3']}")
    outcome = run(crm, events, store)
    assert outcome.status is RunStatus.SUCCEEDED, outcome.error
    assert sorted(e["subject"] for e in graph_events(mailbox)) == ["Visit 0 (CRM)", "Visit 2 (O)"]
    assert sorted(i.subject for _, i, _ in crm.items.values()) == ["Visit 0 (CRM)", "Visit 2 (O)"]
    moved = mailbox.user.get(f"/users/{ADELE}/events/{by_subject['Visit 0']}").json()
    assert moved["location"]["displayName"] == "Oslo"
    assert run(crm, events, store).writes() == 0


# --- throttling and concurrency -------------------------------------------------------------


def test_a_429_storm_on_30_percent_of_requests_converges_with_no_duplicate(
    mailbox: Mailbox,
) -> None:
    """A third of Graph's answers (batches and their parts alike) are 429 with Retry-After.
    Mistakes caught: a throttled part taken for a failure (items lost) or for a success;
    the throttled parts retried before Retry-After; a batch sent again whole, so that parts
    that had run are made twice."""
    events = GraphEvents(mailbox.client, page_size=25)
    crm, store = crm_side(60), MemoryStore()
    mailbox.fault(kind="status", status=429, retry_after=1, fraction=0.3, path="^/v1.0/", seed=7)
    statuses = []
    for _ in range(6):
        outcome = run(crm, events, store)
        statuses.append(outcome.status)
        if outcome.status is RunStatus.SUCCEEDED and outcome.writes() == 0:
            break
    assert statuses[-1] is RunStatus.SUCCEEDED, statuses
    mailbox.clear_faults()
    held = graph_events(mailbox)
    assert sorted(e["subject"] for e in held) == sorted(f"Visit {i}" for i in range(60))
    assert len(crm.items) == 60
    assert mailbox.sleeps and min(mailbox.sleeps) >= 1.0  # Retry-After, never sooner
    # Each Graph event is linked to its own CRM appointment, by the stamp it carries.
    stamps = [events.get(e["id"]).correlation_id for e in held[:10]]
    assert None not in stamps and len(set(stamps)) == 10


def test_a_throttled_part_alone_is_sent_again_after_its_retry_after(mailbox: Mailbox) -> None:
    """One part of a batch is answered 429 with `Retry-After: 2`. Mistakes caught: the
    whole batch sent again (the other parts run twice), the part sent again at once, or the
    part's error taken for the batch's."""
    session = own_session(mailbox)
    wire = wire_counter(session)
    events = GraphEvents(client_on(mailbox, session, sleep=mailbox.sleeps.append))
    events.client.tokens.access_token()
    mailbox.reset_stats()
    mailbox.fault(kind="status", status=429, retry_after=2, count=1, path="/me/events$")
    writes: list[Write[Appointment]] = [
        Write("create", item=crm_side(3).items[f"crm-{n}"][1], correlation_id=new_correlation_id())
        for n in (1, 2, 3)
    ]
    results = events.apply_many(writes)
    assert all(not isinstance(r, Exception) for r in results), results
    assert mailbox.sleeps == [2.0]
    assert wire == [("POST", "/v1.0/$batch"), ("POST", "/v1.0/me/events")]
    assert mailbox.stats()["POST /v1.0/me/events"] == 4  # three parts, one of them twice
    assert len(graph_events(mailbox)) == 3


def test_at_most_four_requests_are_in_flight_per_mailbox(mailbox: Mailbox) -> None:
    """The calendar's and the contacts' connectors of one mailbox write in parallel
    threads; Outlook refuses a fifth concurrent request (MailboxConcurrency). Mistakes
    caught: a limit per client instead of per mailbox, a batch counted as one request
    although Outlook runs four of its parts at once."""
    mailbox.fault(kind="mailbox_hold", latency_ms=150, count=80, path="/me/")
    calendar = GraphEvents(client_on(mailbox, own_session(mailbox)), window=WINDOW)
    people = GraphContacts(client_on(mailbox, own_session(mailbox)))
    people.folder_id  # noqa: B018 (made before the race)
    errors: list[BaseException] = []

    def write_events(batch: int) -> None:
        writes: list[Write[Appointment]] = []
        for i in range(20):
            start = NOW + timedelta(days=1, hours=i)
            item = Appointment(f"E{batch}.{i}", start, start + timedelta(minutes=30))
            writes.append(Write("create", item=item, correlation_id=new_correlation_id()))
        results = calendar.apply_many(writes)
        errors.extend(r for r in results if isinstance(r, BaseException))

    def write_contacts(batch: int) -> None:
        writes: list[Write[Contact]] = [
            Write("create", item=Contact(f"C{batch}", str(i)), correlation_id=new_correlation_id())
            for i in range(20)
        ]
        results = people.apply_many(writes)
        errors.extend(r for r in results if isinstance(r, BaseException))

    threads = [threading.Thread(target=write_events, args=(n,)) for n in range(3)]
    threads += [threading.Thread(target=write_contacts, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    adele = mailbox.adele()
    assert adele["throttling"]["concurrencyRefusals"] == 0
    assert adele["throttling"]["peakInFlight"] == 4  # the limit was reached, never passed
    assert len(adele["events"]) == 60 and len(adele["contacts"]) == 40


def in_flight_counter(session: requests.Session) -> list[tuple[float, float]]:
    """When each `$batch` the session sent was in flight: (sent, answered), on the wire."""
    spans: list[tuple[float, float]] = []

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if str(response.request.url).endswith("/$batch"):
            answered = time.monotonic()
            spans.append((answered - response.elapsed.total_seconds(), answered))

    session.hooks["response"].append(hook)
    return spans


def most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def test_eighty_writes_go_as_four_batches_in_flight_at_once(mailbox: Mailbox) -> None:
    """80 writes (the connector's batch) with 300 ms of network latency: four `$batch`
    requests of 20, in flight together, each a `dependsOn` chain that Outlook runs on one of
    the mailbox's four connections, so it refuses none of their parts. Mistakes caught:
    batches sent one after another (four round trips instead of one), or four batches of
    independent parts at once (Outlook runs four parts of each: sixteen requests for four
    slots, and the parts over the limit are refused)."""
    session = own_session(mailbox)
    spans = in_flight_counter(session)
    events = GraphEvents(client_on(mailbox, session), window=WINDOW)
    assert events.batch_size == 80
    events.client.tokens.access_token()
    mailbox.session.put(f"{mailbox.server.url}/_sim/latency", json={"latency_ms": 300})
    writes: list[Write[Appointment]] = []
    for i in range(80):
        start = NOW + timedelta(days=1 + i % 9, hours=i % 8)
        item = Appointment(f"Visit {i}", start, start + timedelta(minutes=30))
        writes.append(Write("create", item=item, correlation_id=new_correlation_id()))
    results = events.apply_many(writes)
    mailbox.session.put(f"{mailbox.server.url}/_sim/latency", json={"latency_ms": 0})
    assert all(not isinstance(r, Exception) for r in results), results
    assert len(spans) == 4 and most_at_once(spans) == 4
    adele = mailbox.adele()
    assert adele["throttling"]["concurrencyRefusals"] == 0 and mailbox.sleeps == []
    assert sorted(e["subject"] for e in adele["events"]) == sorted(f"Visit {i}" for i in range(80))


def test_a_throttled_part_of_a_chain_waits_its_retry_after_with_those_after_it(
    mailbox: Mailbox,
) -> None:
    """40 creates in two chains; Outlook answers one part 429 with `Retry-After: 2`, and the
    parts after it in its chain are not run (424). They are sent again, once, after two
    seconds; the other chain goes on. Mistakes caught: the whole chain sent again (its parts
    that ran are made twice), the wait not honoured, the unrun parts taken for failures."""
    session = own_session(mailbox)
    wire = wire_counter(session)
    events = GraphEvents(client_on(mailbox, session, sleep=mailbox.sleeps.append))
    events.client.tokens.access_token()
    mailbox.reset_stats()
    mailbox.fault(kind="status", status=429, retry_after=2, count=1, path="/me/events$")
    writes: list[Write[Appointment]] = []
    for i in range(40):
        start = NOW + timedelta(days=1 + i % 9, hours=i % 8)
        item = Appointment(f"Visit {i}", start, start + timedelta(minutes=30))
        writes.append(Write("create", item=item, correlation_id=new_correlation_id()))
    results = events.apply_many(writes)
    assert all(not isinstance(r, Exception) for r in results), results
    assert mailbox.sleeps == [2.0]
    assert wire == [("POST", "/v1.0/$batch")] * 3
    assert mailbox.stats()["POST /v1.0/me/events"] == 41  # forty parts, one of them twice
    assert len(graph_events(mailbox)) == 40


def test_a_chain_runs_on_past_its_failed_parts_at_no_cost_in_attempts(mailbox: Mailbox) -> None:
    """26 deletes in two chains of 13; eight events of one chain are already gone. Each 404
    makes the parts after it in its chain unrun (424), which are sent again in the next
    chain. Mistakes caught: an unrun part taken for a failure (its event is never deleted),
    or each resend counted as an attempt (after six the rest would be given up)."""
    events = GraphEvents(mailbox.client, window=WINDOW)
    appointments = GraphAppointments(mailbox, events)
    ids = [appointments.user_create(appointments.sample(n)) for n in range(26)]
    gone = set(ids[1:9])  # in the first chain, one after another: nine rounds for it
    for item_id in gone:
        appointments.user_delete(item_id)
    results = events.apply_many([Write("delete", item_id=i) for i in ids])
    for item_id, result in zip(ids, results, strict=True):
        if item_id in gone:
            assert isinstance(result, NotFound), (item_id, result)
        else:
            assert result is None, (item_id, result)
    assert graph_events(mailbox) == [] and mailbox.sleeps == []


# --- delta tokens and grants ------------------------------------------------------------------


def test_an_expired_delta_token_lists_the_calendar_afresh_without_duplicates(
    mailbox: Mailbox,
) -> None:
    """Graph forgets the delta token (410 syncStateNotFound). Mistakes caught: the 410
    taken for an empty delta (an edit lost), or the fresh listing taken as new items
    (everything copied again) or its absences as deletions."""
    events = GraphEvents(mailbox.client, page_size=4)
    crm, store = crm_side(6), MemoryStore()
    assert run(crm, events, store).status is RunStatus.SUCCEEDED
    held = graph_events(mailbox)
    target = next(e for e in held if e["subject"] == "Visit 2")
    mailbox.user.patch(f"/users/{ADELE}/events/{target['id']}", {"subject": "Visit 2 (moved)"})
    mailbox.fault(kind="delta_expired", path="calendarView/delta")
    outcome = run(crm, events, store)
    assert outcome.status is RunStatus.SUCCEEDED, outcome.error
    assert sorted(i.subject for _, i, _ in crm.items.values()) == sorted(
        ["Visit 0", "Visit 1", "Visit 2 (moved)", "Visit 3", "Visit 4", "Visit 5"]
    )
    assert len(graph_events(mailbox)) == 6
    # The connector says so itself when asked with a dead token.
    _, cursor = read_all(events, None, WINDOW)
    mailbox.sim(reset_sync_states=True)
    with pytest.raises(CursorExpired):
        events.changes(cursor, WINDOW)


@pytest.fixture
def sql_tokens(mailbox: Mailbox) -> Iterator[SyncUserTokens]:
    configure_keys([generate_key()])
    store = make_sql_store()
    tokens = SyncUserTokens(store.db, store.sync_user_id)
    tokens.save(signed_in_state(mailbox.server, mailbox.session, ADELE))
    yield tokens
    store.db.dispose()


def raw_tokens(tokens: SyncUserTokens) -> str:
    with tokens.db.engine.connect() as connection:
        return str(
            connection.execute(
                text("SELECT tokens FROM sync_user WHERE id = :id"), {"id": tokens.sync_user_id}
            ).scalar_one()
        )


def refresh_token_in(state: dict[str, Any]) -> str:
    import json

    cache = json.loads(state["cache"])
    (entry,) = cache["RefreshToken"].values()
    return str(entry["secret"])


def test_refresh_tokens_are_rotated_into_the_encrypted_store_and_a_revoked_grant_asks_for_reauthorisation(
    mailbox: Mailbox, sql_tokens: SyncUserTokens
) -> None:
    """Mistakes caught: the new refresh token Entra returns not saved (the next run uses a
    stale one), tokens stored in clear, a revoked grant retried on every run (or failing
    everyone's run) instead of marking the user for re-authorisation with Entra's reason."""
    app = GraphApp(
        SYNCHRONIZER_APP_ID, SYNCHRONIZER_SECRET, f"{mailbox.server.url}/{TENANT}", mailbox.session
    )
    first = sql_tokens.load()
    assert first is not None
    first_refresh = refresh_token_in(first)
    assert first_refresh not in raw_tokens(sql_tokens)  # encrypted at rest
    tokens = DelegatedTokens(app, sql_tokens, ADELE)
    client = GraphClient(tokens, ADELE, root=mailbox.server.url, session=mailbox.session)
    events = GraphEvents(client)
    # Graph refuses the cached access token once: the refresh token is redeemed.
    mailbox.fault(kind="token_expired", path="calendarView/delta")
    events.changes(None, WINDOW)
    rotated = sql_tokens.load()
    assert rotated is not None and rotated["needs_reauthorisation"] is None
    assert refresh_token_in(rotated) != first_refresh
    assert refresh_token_in(rotated) not in raw_tokens(sql_tokens)

    # The administrator revokes Adele's sessions: the next refresh is refused.
    mailbox.sim(revoke_refresh_tokens=[ADELE])
    mailbox.fault(kind="token_expired", path="calendarView/delta")
    with pytest.raises(AuthExpired, match="AADSTS50173"):
        events.changes(None, WINDOW)
    state = sql_tokens.load()
    assert state is not None and "AADSTS50173" in state["needs_reauthorisation"]["reason"]
    with sql_tokens.db.session() as session:
        user = session.get(SyncUser, sql_tokens.sync_user_id)
        assert user is not None and "needs re-authorisation: AADSTS50173" in str(user.last_error)

    # The next run does not ask Entra (or Graph) again with the dead grant.
    mailbox.reset_stats()
    later = GraphEvents(
        GraphClient(
            DelegatedTokens(app, sql_tokens, ADELE),
            ADELE,
            root=mailbox.server.url,
            session=mailbox.session,
        )
    )
    outcome = run(crm_side(1), later, MemoryStore())
    assert outcome.status is RunStatus.FAILED and "AADSTS50173" in str(outcome.error)
    assert mailbox.stats() == {}


# --- meetings: nobody outside gets mail ---------------------------------------------------------


def crm_meeting() -> Appointment:
    start = NOW + timedelta(days=3)
    return Appointment(
        "Contract review",
        start,
        start + timedelta(hours=1),
        body="Bring the draft.",
        attendees=(
            Attendee(ADELE, "Adele Vance"),
            Attendee(MEGAN, "Megan Bowen"),
            Attendee(CUSTOMER, "Pat Buyer"),
        ),
    )


def test_a_meeting_invites_nobody_by_default_and_lists_its_participants_in_the_body(
    mailbox: Mailbox,
) -> None:
    """Mistakes caught: the CRM's participants written as attendees (Outlook mails each an
    invitation, the customer included), the participants note read back as a body edit
    (carried into the CRM, or rewritten on every run)."""
    events = GraphEvents(mailbox.client, window=WINDOW)
    crm, store = crm_side(), MemoryStore()
    crm.user_create(crm_meeting())
    assert run(crm, events, store).status is RunStatus.SUCCEEDED
    (held,) = graph_events(mailbox)
    raw = mailbox.user.get(f"/users/{ADELE}/events/{held['id']}").json()
    assert raw["attendees"] == []
    assert "Megan Bowen <megan@contoso.example>" in raw["body"]["content"]
    assert "Pat Buyer <pat@fabrikam.example>" in raw["body"]["content"]
    assert "adele" not in raw["body"]["content"].lower()  # the mailbox's owner is not listed
    assert mailbox.sent_mail() == []
    read = events.get(held["id"]).item
    assert read.body == "Bring the draft." and read.attendees == ()
    again = run(crm, events, store)
    assert again.writes() == 0 and mailbox.sent_mail() == []
    (crm_item,) = [i for _, i, _ in crm.items.values()]
    assert crm_item.body == "Bring the draft."


def test_a_profile_inviting_colleagues_mails_only_colleagues(mailbox: Mailbox) -> None:
    """Mistake caught: the invitation policy inverted or applied to the wrong addresses, so
    a customer is mailed when only colleagues may be."""
    events = GraphEvents(mailbox.client, window=WINDOW)
    crm, store = crm_side(), MemoryStore()
    crm.user_create(crm_meeting())
    policy = Policy(invitations=Invitations(InviteMode.INTERNAL))
    assert run(crm, events, store, policy).status is RunStatus.SUCCEEDED
    sent = mailbox.sent_mail()
    assert [(m["to"], m["internal"]) for m in sent] == [(MEGAN, True)]
    (held,) = graph_events(mailbox)
    raw = mailbox.user.get(f"/users/{ADELE}/events/{held['id']}").json()
    assert [a["emailAddress"]["address"] for a in raw["attendees"]] == [MEGAN]
    assert "Pat Buyer <pat@fabrikam.example>" in raw["body"]["content"]
    assert "megan@contoso.example>" not in raw["body"]["content"]  # invited, not listed


def test_a_write_to_a_meeting_the_mailbox_organises_mails_only_whom_it_may(
    mailbox: Mailbox,
) -> None:
    """Adele organised a meeting in Outlook with Megan and a customer. Outlook mails every
    attendee an update when her event changes and a cancellation when it goes, so the
    connector refuses (`WouldMail`, naming who would be mailed) every write whose
    `may_mail` does not cover them all, before sending anything, and makes the write (the
    mail going out) when it does. The connector has not read the event before: it reads it
    to know.

    Mistakes caught: a write sent and the refusal left to Outlook's answer (the mail is out
    by then), `may_mail` ignored or read the wrong way round, an event never read counted
    as mailing nobody, a deletion's cancellations forgotten, the refusal not naming who."""
    body = {
        "subject": "Pricing workshop",
        "start": {"dateTime": "2026-03-23T13:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-03-23T14:00:00", "timeZone": "UTC"},
        "attendees": [
            {"emailAddress": {"address": a}, "type": "required"} for a in (MEGAN, CUSTOMER)
        ],
    }
    made = mailbox.user.post(f"/users/{ADELE}/events", body)
    assert made.status_code == 201, made.text
    event_id, sent = made.json()["id"], len(mailbox.sent_mail())
    events = GraphEvents(mailbox.client, window=WINDOW)
    version = made.json()["changeKey"]
    item = GraphEvents(mailbox.client, window=WINDOW).get(event_id).item
    moved = replace(item, start=item.start + timedelta(hours=1), end=item.end + timedelta(hours=1))

    def colleagues(address: str) -> bool:
        return address.endswith("@contoso.example")

    refused = events.apply_many([
        Write("update", item_id=event_id, item=moved, if_match=version),
        Write("update", item_id=event_id, item=moved, if_match=version, may_mail=colleagues),
        Write("delete", item_id=event_id, if_match=version, may_mail=colleagues),
    ])  # fmt: skip
    assert [type(r) for r in refused] == [WouldMail] * 3
    assert [r.recipients for r in refused if isinstance(r, WouldMail)] == [
        (MEGAN, CUSTOMER),
        (CUSTOMER,),
        (CUSTOMER,),
    ]
    assert mailbox.sent_mail()[sent:] == []
    assert mailbox.user.get(f"/users/{ADELE}/events/{event_id}").json()["changeKey"] == version

    (written,) = events.apply_many(
        [Write("update", item_id=event_id, item=moved, if_match=version, may_mail=lambda a: True)]
    )
    assert isinstance(written, Stored) and written.item.start == moved.start
    assert sorted((m["to"], m["kind"]) for m in mailbox.sent_mail()[sent:]) == [
        (MEGAN, "meetingUpdate"),
        (CUSTOMER, "meetingUpdate"),
    ]


# --- series, privacy, all-day, time zones -----------------------------------------------------


def weekly_series() -> Appointment:
    """Mondays at 09:00 in Oslo, across the DST change of 29 March, one occurrence moved and
    renamed, one deleted."""
    zone = ZoneInfo(OSLO)
    start = datetime(2026, 3, 16, 9, tzinfo=zone)
    moved_from = datetime(2026, 3, 30, 9, tzinfo=zone)
    return Appointment(
        "Weekly review",
        start,
        start + timedelta(hours=1),
        timezone=OSLO,
        location="Room 4",
        recurrence=Recurrence(
            "FREQ=WEEKLY;BYDAY=MO;COUNT=6",
            exclusions=frozenset({datetime(2026, 4, 6, 9, tzinfo=zone)}),
            exceptions=(
                RecurrenceException(
                    moved_from,
                    moved_from + timedelta(hours=2),
                    moved_from + timedelta(hours=3),
                    subject="Weekly review (long)",
                ),
            ),
        ),
    )


def instances(mailbox: Mailbox, master_id: str) -> list[dict[str, Any]]:
    window = {"startDateTime": "2026-03-01T00:00:00Z", "endDateTime": "2026-05-01T00:00:00Z"}
    answer = mailbox.user.get(f"/users/{ADELE}/events/{master_id}/instances", params=window)
    return list(answer.json()["value"])


def test_a_series_with_an_exception_and_a_deleted_occurrence(
    appointments: GraphAppointments, mailbox: Mailbox
) -> None:
    """Mistakes caught: a series written as single events or without its exceptions, wall
    time lost across DST (UTC kept instead of 09:00 Oslo), an occurrence edited in Outlook
    not moving the series' version (the engine would skip the edit), a series listed once
    per occurrence."""
    events = appointments.connector
    series = weekly_series()
    made = events.create(series, new_correlation_id())
    listed = instances(mailbox, made.id)
    assert [i["type"] for i in listed] == ["occurrence"] * 2 + ["exception"] + ["occurrence"] * 2
    starts = [i["start"]["dateTime"][:16] for i in listed]  # UTC
    assert starts[:2] == ["2026-03-16T08:00", "2026-03-23T08:00"]  # CET
    assert starts[2:] == ["2026-03-30T09:00", "2026-04-13T07:00", "2026-04-20T07:00"]  # CEST
    assert listed[2]["subject"] == "Weekly review (long)"
    read = events.get(made.id)
    assert same(read.item, series), read.item
    assert read.version == made.version

    paged = GraphEvents(mailbox.client, page_size=2, window=WINDOW)
    pages, cursor = read_all(paged, None, WINDOW)
    assert len(pages) >= 2  # its occurrences come on several pages
    assert [s.id for p in pages for s in p.upserts] == [made.id]  # one item, listed once

    # In Outlook, the user moves the occurrence of 13 April to the afternoon.
    occurrence = next(i for i in listed if i["start"]["dateTime"].startswith("2026-04-13"))
    moved = {"dateTime": "2026-04-13T13:00:00", "timeZone": "W. Europe Standard Time"}
    ends = {"dateTime": "2026-04-13T14:00:00", "timeZone": "W. Europe Standard Time"}
    mailbox.user.patch(f"/users/{ADELE}/events/{occurrence['id']}", {"start": moved, "end": ends})
    changed, _ = read_all(events, cursor, WINDOW)
    (now,) = [s for p in changed for s in p.upserts]
    assert now.id == made.id and now.version != made.version
    assert now.item.recurrence is not None and len(now.item.recurrence.exceptions) == 2
    with pytest.raises(PreconditionFailed):
        events.update(made.id, series, made.version)
    with pytest.raises(PreconditionFailed):
        events.delete(made.id, made.version)
    # With the version read now, the series is written back as the CRM has it.
    updated = events.update(made.id, series, now.version)
    assert same(updated.item, series)
    restamped = events.stamp(made.id, "a-new-pair", updated.version)
    assert restamped.correlation_id == "a-new-pair" and restamped.version != updated.version
    assert events.get(made.id).correlation_id == "a-new-pair"
    events.delete(made.id, restamped.version)
    assert graph_events(mailbox) == []


def test_a_crm_series_with_an_exception_syncs_once_and_outlook_deleting_it_reaches_the_crm(
    mailbox: Mailbox,
) -> None:
    """Through the engine. Mistakes caught: a series that reads back differently from what
    was written (rewritten on every run), stamped twice, or whose deletion in Outlook (Graph
    reports its instances' ids, and the master's) never reaches the CRM."""
    events = GraphEvents(mailbox.client, page_size=3)
    crm, store = crm_side(), MemoryStore()
    crm.user_create(weekly_series())
    first = run(crm, events, store)
    assert first.status is RunStatus.SUCCEEDED, first.error
    (held,) = graph_events(mailbox)
    assert held["type"] == "seriesMaster"
    again = run(crm, events, store)
    assert again.status is RunStatus.SUCCEEDED and again.writes() == 0, again.plans
    assert mailbox.user.delete(f"/users/{ADELE}/events/{held['id']}").status_code == 204
    gone = run(crm, events, store)
    assert gone.status is RunStatus.SUCCEEDED, gone.error
    assert crm.items == {} and graph_events(mailbox) == []


def test_a_private_item_is_private_in_outlook_and_back(
    appointments: GraphAppointments, mailbox: Mailbox
) -> None:
    """Mistakes caught: privacy dropped (a private CRM item shown to delegates in Outlook),
    or Outlook's "confidential" read as public."""
    events = appointments.connector
    start = NOW + timedelta(days=2)
    private = Appointment("Doctor", start, start + timedelta(hours=1), private=True)
    made = events.create(private, new_correlation_id())
    raw = mailbox.user.get(f"/users/{ADELE}/events/{made.id}").json()
    assert raw["sensitivity"] == "private"
    assert events.get(made.id).item.private
    mailbox.user.patch(f"/users/{ADELE}/events/{made.id}", {"sensitivity": "confidential"})
    assert events.get(made.id).item.private
    mailbox.user.patch(f"/users/{ADELE}/events/{made.id}", {"sensitivity": "normal"})
    assert not events.get(made.id).item.private


def test_a_private_crm_item_reaches_outlook_private_when_the_profile_syncs_it(
    mailbox: Mailbox,
) -> None:
    events = GraphEvents(mailbox.client, window=WINDOW)
    crm, store = crm_side(), MemoryStore()
    start = NOW + timedelta(days=2)
    crm.user_create(Appointment("Doctor", start, start + timedelta(hours=1), private=True))
    policy = Policy(appointment_filter=AppointmentFilter(private=PrivatePolicy.SYNC_AS_PRIVATE))
    assert run(crm, events, store, policy).status is RunStatus.SUCCEEDED
    (held,) = graph_events(mailbox)
    raw = mailbox.user.get(f"/users/{ADELE}/events/{held['id']}").json()
    assert raw["sensitivity"] == "private"
    assert run(crm, events, store, policy).writes() == 0


def test_all_day_items_across_a_dst_change_keep_their_dates(
    appointments: GraphAppointments, mailbox: Mailbox
) -> None:
    """Mistakes caught: an all-day item written as a timed one at midnight UTC (shown on
    the day before in Oslo), or its dates shifted by the hour DST takes away."""
    events = appointments.connector
    three_days = Appointment("Trade fair", date(2026, 3, 28), date(2026, 3, 31), timezone=OSLO)
    made = events.create(three_days, new_correlation_id())
    raw = mailbox.user.get(f"/users/{ADELE}/events/{made.id}").json()
    assert raw["isAllDay"] is True
    assert raw["start"]["dateTime"].startswith("2026-03-28T00:00:00")
    assert raw["end"]["dateTime"].startswith("2026-03-31T00:00:00")
    assert events.get(made.id).item.start == date(2026, 3, 28)
    saturdays = Appointment(
        "Market day",
        date(2026, 3, 21),
        date(2026, 3, 22),
        timezone=OSLO,
        recurrence=Recurrence("FREQ=WEEKLY;BYDAY=SA;COUNT=3"),
    )
    series = events.create(saturdays, new_correlation_id())
    dates = [i["start"]["dateTime"][:10] for i in instances(mailbox, series.id)]
    assert dates == ["2026-03-21", "2026-03-28", "2026-04-04"]
    pages, _ = read_all(events, None, WINDOW)
    listed = {s.id: s.item for p in pages for s in p.upserts}
    assert listed[made.id].start == date(2026, 3, 28) and listed[made.id].end == date(2026, 3, 31)
    assert same(listed[series.id], saturdays)


def test_a_time_zone_is_written_as_outlook_names_it_and_read_back(
    appointments: GraphAppointments, mailbox: Mailbox
) -> None:
    """Mistake caught: times written in UTC with the zone lost (a series then drifts by an
    hour at DST), or a Windows zone name not read back as its IANA zone."""
    events = appointments.connector
    zone = ZoneInfo("America/New_York")
    start = datetime(2026, 3, 24, 9, tzinfo=zone)
    item = Appointment("Call NY", start, start + timedelta(minutes=30), timezone="America/New_York")
    made = events.create(item, new_correlation_id())
    raw = mailbox.user.get(f"/users/{ADELE}/events/{made.id}").json()
    assert raw["originalStartTimeZone"] == "Eastern Standard Time"
    read = events.get(made.id).item
    assert read.timezone == "America/New_York" and read.start == start


# --- contacts ---------------------------------------------------------------------------------


def test_contacts_live_in_a_folder_of_our_own(mailbox: Mailbox) -> None:
    """Mistakes caught: writing into (or listing) the user's own Contacts folder, or making
    a second folder on every run."""
    own = {"givenName": "Own", "surname": "Friend", "displayName": "Own Friend"}
    mine = mailbox.user.post(f"/users/{ADELE}/contacts", own)
    assert mine.status_code == 201
    people = GraphContacts(mailbox.client, page_size=10)
    crm: MemoryConnector[Contact] = MemoryConnector("crm", fields=CONTACT_FIELDS)
    crm.user_create(Contact("Pat", "Buyer", company="Fabrikam", emails=("pat@fabrikam.example",)))
    policy = Policy(contacts=Direction.TWO_WAY)
    store = MemoryStore()
    assert run(crm, people, store, policy, ItemKind.CONTACT).status is RunStatus.SUCCEEDED
    adele = mailbox.adele()
    (folder,) = adele["contactFolders"]
    assert folder["displayName"] == "Synchronizer"
    by_folder = {c["displayName"]: c["parentFolderId"] for c in adele["contacts"]}
    assert by_folder["Pat Buyer"] == folder["id"] and by_folder["Own Friend"] != folder["id"]
    assert len(crm.items) == 1  # the user's own contact did not come into the CRM
    # A later run (a new connector) writes to the same folder, found by its name.
    (pat,) = crm.items
    crm.user_edit(pat, job_title="Buyer")
    again = GraphContacts(mailbox.client)
    later = run(crm, again, store, policy, ItemKind.CONTACT)
    assert later.status is RunStatus.SUCCEEDED and later.writes() == 1, later.error
    assert mailbox.adele()["contactFolders"] == [folder]
