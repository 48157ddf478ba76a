"""The applier's store: the same contract in memory and on SQLite, and a run with a crash
against the database."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import NoResultFound

from common.items import Appointment, Recurrence
from common.kinds import ItemKind, LinkSnapshot, LinkState, RunStatus, Side
from common.models import AuditEntry, SyncRun
from daemon.policies import Policy
from daemon.store import AuditRecord, AuditState, LinkConflict, RunOutcome, SqlStore, SyncStore
from daemon.sync import sync
from tests.fixtures.engine import (
    NOW,
    Crash,
    Faults,
    MemoryConnector,
    MemoryStore,
    another_user,
    appointment,
    make_sql_store,
)

APPT = ItemKind.APPOINTMENT
GW = Side.GROUPWARE


@pytest.fixture(params=["memory", "sql"])
def store(request: pytest.FixtureRequest) -> SyncStore:
    if request.param == "memory":
        return MemoryStore()
    return request.getfixturevalue("sql_store")  # type: ignore[no-any-return]


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def every_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SyncStore]:
    """The store in memory, on SQLite and on a real PostgreSQL server."""
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "sqlite":
        store = make_sql_store(f"sqlite:///{tmp_path / 'store.db'}")
    else:
        store = make_sql_store(request.getfixturevalue("postgres_server").create_database())
    yield store
    store.db.dispose()


def link(cid: str, crm: str | None, gw: str | None, **more: object) -> LinkSnapshot:
    fields: dict[str, object] = {"crm_hash": "h", "groupware_hash": "h", **more}
    return LinkSnapshot(cid, crm, gw, "v1", "v1", **fields)  # type: ignore[arg-type]


def intent(cid: str, state: AuditState = AuditState.PENDING, kind: ItemKind = APPT) -> AuditRecord:
    """The audit row of creating `cid`'s groupware item."""
    return AuditRecord(kind, GW, "create", cid, "crm-1", None, None, {"id": "gw"}, state=state)


def test_links_are_found_by_either_id_or_stamp_plus_all_pending(store: SyncStore) -> None:
    store.put_link(APPT, link("a", "crm-1", "gw-1"))
    store.put_link(APPT, link("b", "crm-2", "gw-2"))
    store.put_link(
        APPT, link("c", "crm-3", None, state=LinkState.PENDING, pending_action="create_groupware")
    )
    store.put_link(ItemKind.CONTACT, link("d", "crm-1", "gw-1"))
    found = {x.correlation_id for x in store.links_for(APPT, ["crm-1"], [], [])}
    assert found == {"a", "c"}
    assert {x.correlation_id for x in store.links_for(APPT, [], ["gw-2"], [])} == {"b", "c"}
    assert {x.correlation_id for x in store.links_for(APPT, [], [], ["b"])} == {"b", "c"}
    assert store.linked_counts(APPT) == {Side.CRM: 3, Side.GROUPWARE: 2}
    assert len(store.all_links(APPT)) == 3


def test_put_link_updates_by_correlation_id_and_keeps_audits(store: SyncStore) -> None:
    store.put_link(APPT, link("a", "crm-1", None, state=LinkState.PENDING))
    record = AuditRecord(APPT, Side.GROUPWARE, "create", "a", "crm-1", "gw-1", None, {"id": "gw-1"})
    saved = store.put_link(APPT, link("a", "crm-1", "gw-1"), [record])
    assert saved.groupware_id == "gw-1" and saved.state is LinkState.LINKED
    (only,) = store.all_links(APPT)
    assert only.groupware_id == "gw-1"


def test_tombstones_give_way_to_new_pairs_and_replaced_links_go(store: SyncStore) -> None:
    store.put_link(APPT, link("old", "crm-1@@2026-03-23T08:00Z", "gw-1", state=LinkState.TOMBSTONE))
    store.put_link(APPT, link("new", "crm-1@@2026-03-23T08:00Z", "gw-9"))
    assert [x.correlation_id for x in store.all_links(APPT)] == ["new"]
    assert store.linked_counts(APPT)[Side.CRM] == 1
    (series,) = store.links_with_prefix(APPT, Side.CRM, "crm-1@@")
    assert series.correlation_id == "new"
    assert store.links_with_prefix(APPT, Side.CRM, "crm-1_") == []  # LIKE wildcards escaped
    store.put_link(APPT, link("newer", None, "gw-9"), replaces="new")
    assert [x.correlation_id for x in store.all_links(APPT)] == ["newer"]
    store.drop_link(APPT, "newer")
    assert store.all_links(APPT) == []


def test_cursors_per_kind_and_side(store: SyncStore) -> None:
    assert store.load_cursor(APPT, Side.CRM) is None
    store.save_cursor(APPT, Side.CRM, "c1")
    store.save_cursor(APPT, Side.CRM, "c2")
    store.save_cursor(APPT, Side.GROUPWARE, "g1")
    assert store.load_cursor(APPT, Side.CRM) == "c2"
    assert store.load_cursor(ItemKind.CONTACT, Side.CRM) is None


def test_sql_run_with_a_crash_between_call_and_link_recovers(sql_store: SqlStore) -> None:
    crm: MemoryConnector[Appointment] = MemoryConnector("crm")
    gw: MemoryConnector[Appointment] = MemoryConnector("gw")
    both = {Side.CRM: crm, Side.GROUPWARE: gw}
    crm.user_create(appointment("Demo"))
    faults = Faults(on="after gw.create").attach(crm, gw)  # before the link is written
    with pytest.raises(Crash):
        sync(APPT, both, sql_store, _policy(), NOW)
    faults.detach(crm, gw)
    (pending,) = sql_store.all_links(APPT)
    assert pending.state is LinkState.PENDING and pending.pending_action == "create_groupware"
    outcome = sync(APPT, both, sql_store, _policy(), NOW)
    assert outcome.status is RunStatus.SUCCEEDED
    assert len(gw.items) == 1  # found by its stamp, not created twice
    (linked,) = sql_store.all_links(APPT)
    assert linked.state is LinkState.LINKED and linked.groupware_id in gw.items
    with sql_store.db.session() as session:
        runs = session.query(SyncRun).order_by(SyncRun.id).all()
        assert [r.status for r in runs] == [RunStatus.RUNNING, RunStatus.SUCCEEDED]
        assert runs[1].counts["link_crm"] == 1
    # The create's audit entry, written with the intent, was confirmed by the recovery.
    (created,) = sql_store.audit_records()
    assert created.action == "create" and created.state is AuditState.APPLIED
    assert created.after is not None and created.after["id"] == linked.groupware_id
    assert created.groupware_id is None  # named by the intent; the service's id is in `after`
    crm.user_edit(next(iter(crm.items)), subject="Demo day")
    sync(APPT, both, sql_store, _policy(), NOW)
    (entry,) = [a for a in sql_store.audit_entries() if a.action == "update"]
    assert isinstance(entry, AuditEntry) and entry.before and entry.after
    assert (
        entry.before["item"]["subject"] == "Demo" and entry.after["item"]["subject"] == "Demo day"
    )
    assert entry.sync_run_id is not None and entry.item_link_id is not None


def test_the_journal_commits_once_per_batch_not_once_per_write(sql_store: SqlStore) -> None:
    """45 creates in batches of 20: one commit before each batch's call (its intents) and
    one at the end (the last confirmations), besides the run's own records (start, two
    cursors, finish). Mistake: a transaction per link write, two commits and fsyncs per item
    copied (93 % of an initial sync's time in bench/sync_m365.py)."""
    written: list[bool] = []

    def flushed(session: Any, context: Any) -> None:
        session.info["wrote"] = True

    def committed(session: Any) -> None:
        written.append(session.info.pop("wrote", False))

    event.listen(sql_store.db.sessions, "after_flush", flushed)
    event.listen(sql_store.db.sessions, "after_commit", committed)
    crm: MemoryConnector[Appointment] = MemoryConnector("crm")
    gw: MemoryConnector[Appointment] = MemoryConnector("gw", batch_size=20)
    for n in range(45):
        crm.user_create(appointment(f"M{n}", hour=8 + n % 8, day=21 + n % 5))
    outcome = sync(APPT, {Side.CRM: crm, GW: gw}, sql_store, _policy(), NOW)
    assert outcome.status is RunStatus.SUCCEEDED and len(gw.items) == 45
    assert gw.calls["batches"] == 3
    assert written.count(True) == 3 + 1 + 4
    assert all(x.state is LinkState.LINKED for x in sql_store.all_links(APPT))


@pytest.mark.parametrize("crash_at", [1, 3, 5])
def test_a_crash_among_a_batchs_confirmations_doubles_nothing(
    store: SyncStore, crash_at: int
) -> None:
    """The confirmations of a batch share one transaction: a crash among them loses all of
    them, not only the later ones (the window batching opens). The intents were committed
    before the call, so the next run finds each copy by its stamp (the service's create is
    not idempotent, its listing shows no stamp) and makes none twice."""
    crm: MemoryConnector[Appointment] = MemoryConnector("crm")
    gw: MemoryConnector[Appointment] = MemoryConnector(
        "gw", batch_size=5, idempotent_create=False, stamps_in_listing=False
    )
    for n in range(7):
        crm.user_create(appointment(f"M{n}", hour=8 + n))
    made = 0
    confirmed = 0

    def crash(phase: str, op: str, item_id: str | None) -> None:
        nonlocal made, confirmed
        if phase == "after" and op == "gw.create":
            made += 1
        elif op == "store.put_link" and made == 5:  # the first batch's confirmations
            confirmed += 1
            if confirmed == crash_at:
                raise Crash(f"crash at confirmation {crash_at}")

    gw.hooks.append(crash)
    store.hooks.append(crash)  # type: ignore[attr-defined]
    with pytest.raises(Crash):
        sync(APPT, {Side.CRM: crm, GW: gw}, store, _policy(), NOW)
    gw.hooks.remove(crash)
    store.hooks.remove(crash)  # type: ignore[attr-defined]
    pending = [x for x in store.all_links(APPT) if x.state is LinkState.PENDING]
    assert len(pending) == 5 and len(gw.items) == 5  # none of the batch's links confirmed
    outcome = sync(APPT, {Side.CRM: crm, GW: gw}, store, _policy(), NOW)
    assert outcome.status is RunStatus.SUCCEEDED
    assert sorted(i.subject for _, i, _ in gw.items.values()) == [f"M{n}" for n in range(7)]
    assert gw.calls["create"] == 7 and gw.calls["find"] >= 5
    assert all(x.state is LinkState.LINKED for x in store.all_links(APPT))
    assert sync(APPT, {Side.CRM: crm, GW: gw}, store, _policy(), NOW).writes() == 0


def test_a_link_write_finds_its_rows_by_index_never_by_the_users_links(
    sql_store: SqlStore,
) -> None:
    """Every statement of a link write reaches its rows through an index on the id it looks
    for (a correlation id, a CRM id, a groupware id, an audit entry waiting for its change).
    Mistake: a lookup SQLite answers by walking all of the user's links (an OR of the ids
    under the user's condition), one scan per write: quadratic in an initial sync of
    50,000 items."""
    seen: list[tuple[str, Any]] = []

    def note(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "DELETE", "UPDATE")):
            seen.append((statement, parameters))

    for n in range(50):
        sql_store.put_link(APPT, link(f"old{n}", f"crm-{n}", f"gw-{n}"))
    sql_store.put_link(APPT, link("dead", "crm-x", "gw-x", state=LinkState.TOMBSTONE))
    event.listen(sql_store.db.engine, "before_cursor_execute", note)
    with sql_store.batch():
        sql_store.put_link(APPT, link("new", "crm-x", None), [intent("new")])
        sql_store.put_link(
            APPT, link("new", "crm-x", "gw-new"), [intent("new", AuditState.APPLIED)]
        )
    sql_store.put_link(APPT, link("old1", "crm-1", "gw-1b"))
    event.remove(sql_store.db.engine, "before_cursor_execute", note)
    assert seen
    user_wide = "USING INDEX ix_item_link_user_kind_state (sync_user_id=? AND kind=?)"
    with sql_store.db.engine.connect() as conn:
        for statement, parameters in seen:
            plan = [
                row[-1]
                for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            ]
            if statement.startswith("DELETE"):
                # Deleting a link checks audit_entry's foreign key: no index holds
                # item_link_id (a tombstone giving way is rare; noted in BENCHMARKS.md).
                plan = [step for step in plan if step != "SCAN audit_entry"]
            assert not [step for step in plan if step.startswith("SCAN") or user_wide in step], (
                statement,
                plan,
            )


def test_finish_run_records_the_outcome(sql_store: SqlStore) -> None:
    run_id = sql_store.start_run(dry_run=True)
    sql_store.finish_run(
        run_id, RunOutcome(RunStatus.HELD, {"delete_crm": 9}, {}, {"plan": 0.1}, {"reason": "x"})
    )
    with sql_store.db.session() as session:
        run = session.get_one(SyncRun, run_id)
        assert run.dry_run and run.status is RunStatus.HELD and run.held_plan == {"reason": "x"}
        assert run.finished_at is not None and run.counts == {"delete_crm": 9}


@pytest.mark.parametrize("crash_at", [0, 1, 2])  # before the call, after it, at the link
@pytest.mark.parametrize("op", ["create", "update", "delete"])
def test_a_crash_anywhere_in_a_write_keeps_exactly_one_audit_row_per_change(
    store: SyncStore, op: str, crash_at: int
) -> None:
    crm: MemoryConnector[Appointment] = MemoryConnector("crm")
    gw: MemoryConnector[Appointment] = MemoryConnector("gw")
    both = {Side.CRM: crm, Side.GROUPWARE: gw}
    crm_id = crm.user_create(appointment("Demo"))
    if op != "create":
        sync(APPT, both, store, _policy(), NOW)
        if op == "update":
            crm.user_edit(crm_id, subject="Demo day")
        else:
            crm.user_delete(crm_id)
    before = len(_audits(store))
    # Steps: put_link (intent), gw.<op> before, gw.<op> after, put_link (done).
    faults = Faults(at=crash_at + 1).attach(gw, store)  # type: ignore[arg-type]
    with pytest.raises(Crash):
        sync(APPT, both, store, _policy(), NOW)
    faults.detach(gw, store)  # type: ignore[arg-type]
    (pending,) = _audits(store)[before:]
    assert pending.action == op and pending.state is AuditState.PENDING
    sync(APPT, both, store, _policy(), NOW)
    mine = [a.state for a in _audits(store)[before:] if a.action == op]
    assert mine == EXPECTED_AFTER_CRASH[op, crash_at]
    if op != "delete":  # a confirmed row says what the service holds
        (gw_id,) = gw.items
        (confirmed,) = [a for a in _audits(store)[before:] if a.state is AuditState.APPLIED]
        assert confirmed.after is not None and confirmed.after["id"] == gw_id
        assert confirmed.after["version"] == gw.get(gw_id).version
    else:
        assert gw.items == {}


A, N, U = AuditState.APPLIED, AuditState.NOT_APPLIED, AuditState.UNCERTAIN
# Before the call, the retry is applied and the interrupted attempt closed (a create that
# cannot be found may also have been made and deleted since: uncertain); after the call, the
# row is confirmed, except a delete: an item gone may have been deleted by someone else.
EXPECTED_AFTER_CRASH = {
    ("create", 0): [U, A],
    ("update", 0): [N, A],
    ("delete", 0): [N, A],
    ("create", 1): [A],
    ("update", 1): [A],
    ("delete", 1): [U],
    ("create", 2): [A],
    ("update", 2): [A],
    ("delete", 2): [U],
}


def test_expansion_notes_go_to_the_run_notes(sql_store: SqlStore) -> None:
    crm: MemoryConnector[Appointment] = MemoryConnector("crm")
    gw: MemoryConnector[Appointment] = MemoryConnector("gw", can_express=lambda rule: False)
    crm.user_create(appointment("Weekly", recurrence=Recurrence("FREQ=WEEKLY;COUNT=3")))
    sync(APPT, {Side.CRM: crm, Side.GROUPWARE: gw}, sql_store, _policy(), NOW)
    with sql_store.db.session() as session:
        (run,) = session.query(SyncRun).all()
        assert any("expanded to 3 occurrences" in note for note in run.notes), run.notes
        assert "notes" not in run.errors
    assert len(gw.items) == 3


def test_a_dry_run_stores_its_plan_with_the_run_and_writes_nothing(sql_store: SqlStore) -> None:
    crm: MemoryConnector[Appointment] = MemoryConnector("crm")
    gw: MemoryConnector[Appointment] = MemoryConnector("gw")
    crm.user_create(appointment("Kick-off"))
    sync(APPT, {Side.CRM: crm, Side.GROUPWARE: gw}, sql_store, _policy(), NOW, dry_run=True)
    assert gw.items == {} and sql_store.all_links(APPT) == []
    with sql_store.db.session() as session:
        (run,) = session.query(SyncRun).all()
        assert run.dry_run and run.notes[0] == "appointments: create groupware 1"
        assert "create on groupware: 'Kick-off'" in run.notes[1]


def _audits(store: SyncStore) -> list[AuditRecord]:
    if isinstance(store, SqlStore):
        return store.audit_records()
    assert isinstance(store, MemoryStore)
    return store.audits


def _policy() -> Policy:
    return Policy()


def test_per_side_hashes_and_the_span_end_are_kept(every_store: SyncStore) -> None:
    end = datetime(2026, 3, 21, 10, 0, tzinfo=UTC)
    every_store.put_link(APPT, link("a", "crm-1", "gw-1", crm_hash="hc", groupware_hash="hg"))
    every_store.put_link(APPT, link("b", "crm-2", "gw-2", span_end=end, groupware_hash=None))
    a, b = sorted(every_store.all_links(APPT), key=lambda x: x.correlation_id)
    assert (a.crm_hash, a.groupware_hash, a.span_end) == ("hc", "hg", None)
    assert (b.crm_hash, b.groupware_hash, b.span_end) == ("h", None, end)
    assert (a.hash(Side.CRM), a.hash(GW)) == ("hc", "hg")


def test_links_belong_to_one_user(database_url: str) -> None:
    """Two users of one profile hold the same stamp (a meeting delivered to both): each keeps
    its own link, and nothing one user's store does reads, rewrites or settles the other's."""
    ann = make_sql_store(database_url)  # on SQLite, then on PostgreSQL
    bob = another_user(ann)
    ann.put_link(APPT, link("shared", "crm-1", "gw-ann"))
    bob.put_link(APPT, link("shared", "crm-1", "gw-bob", state=LinkState.PENDING))
    ann.put_link(APPT, link("shared", "crm-1", "gw-ann", groupware_hash="h2"))

    def mine(store: SqlStore) -> list[tuple[str, str | None, str | None, LinkState]]:
        return [
            (x.correlation_id, x.groupware_id, x.groupware_hash, x.state)
            for x in store.all_links(APPT)
        ]

    assert mine(ann) == [("shared", "gw-ann", "h2", LinkState.LINKED)]
    assert mine(bob) == [("shared", "gw-bob", "h", LinkState.PENDING)]
    found = ann.links_for(APPT, ["crm-1"], ["gw-bob"], ["shared"])
    assert [x.groupware_id for x in found] == ["gw-ann"]
    assert ann.links_for(APPT, [], ["gw-bob"], []) == []  # bob's pending link is not ann's
    assert [x.groupware_id for x in ann.links_with_prefix(APPT, Side.CRM, "crm-")] == ["gw-ann"]
    assert ann.linked_counts(APPT) == {Side.CRM: 1, Side.GROUPWARE: 1}
    # A pair re-created by bob replaces only bob's link.
    bob.put_link(APPT, link("bob-2", "crm-1", "gw-bob"), replaces="shared")
    assert mine(ann) == [("shared", "gw-ann", "h2", LinkState.LINKED)]
    bob.drop_link(APPT, "bob-2")
    assert bob.all_links(APPT) == [] and len(ann.all_links(APPT)) == 1

    # Audits: bob's confirmation of the same change never confirms ann's pending intent.
    ann.put_link(APPT, link("shared", "crm-1", "gw-ann"), [intent("shared")])
    bob.put_link(APPT, link("shared", "crm-1", "gw-bob"), [intent("shared", AuditState.APPLIED)])
    bob.put_link(APPT, link("shared", "crm-1", "gw-bob"), [intent("shared")])
    (waiting,) = ann.unconfirmed_audits(APPT)
    assert waiting.state is AuditState.PENDING and waiting.id is not None
    assert [a.state for a in bob.audit_records()] == [AuditState.APPLIED, AuditState.PENDING]
    assert bob.audit_entry(waiting.id) is None
    with pytest.raises(NoResultFound):
        bob.settle_audit(waiting.id, AuditState.NOT_APPLIED, None)
    with pytest.raises(NoResultFound):
        bob.mark_undone(waiting.id, NOW)
    assert ann.unconfirmed_audits(APPT) == [waiting]
    ann.db.dispose()


def test_links_and_audits_are_scoped_by_kind(every_store: SyncStore) -> None:
    """One correlation id in two kinds is two links; dropping or confirming one leaves the
    other."""
    contact = ItemKind.CONTACT
    every_store.put_link(APPT, link("a", "crm-1", "gw-1"), [intent("a")])
    every_store.put_link(contact, link("a", "crm-7", "gw-7"))
    every_store.put_link(
        contact, link("a", "crm-7", "gw-8"), [intent("a", AuditState.APPLIED, contact)]
    )
    assert [x.groupware_id for x in every_store.all_links(APPT)] == ["gw-1"]
    assert [x.groupware_id for x in every_store.all_links(contact)] == ["gw-8"]
    assert [x.groupware_id for x in every_store.links_for(APPT, [], [], ["a"])] == ["gw-1"]
    (waiting,) = every_store.unconfirmed_audits(APPT)
    assert waiting.kind is APPT and waiting.state is AuditState.PENDING
    every_store.put_link(contact, link("b", "crm-7", "gw-8"), replaces="a")
    assert [x.correlation_id for x in every_store.all_links(contact)] == ["b"]
    every_store.drop_link(contact, "b")
    every_store.drop_link(contact, "a")
    assert [x.groupware_id for x in every_store.all_links(APPT)] == ["gw-1"]
    assert every_store.all_links(contact) == []


def _state(store: SyncStore) -> tuple[list[LinkSnapshot], list[AuditRecord]]:
    links = sorted(store.all_links(APPT), key=lambda x: x.correlation_id)
    return links, _audits(store)


@pytest.mark.parametrize("batched", [False, True], ids=["alone", "in-a-batch"])
def test_a_conflicting_link_is_refused_whole_and_the_user_goes_on(
    every_store: SyncStore, batched: bool
) -> None:
    """A link that would give an item a second live link raises `LinkConflict` naming both;
    the removals the call would have made (the replaced link, a tombstone) and its audits are
    not written, and the store takes the next call as usual. Inside a batch too, where the
    other writes of the transaction stand (mistake: letting the database refuse it there,
    which rolls back the whole transaction, every other intent of the batch with it)."""
    with every_store.batch() if batched else contextlib.nullcontext():
        _conflicts_refused_whole(every_store)
    assert {x.correlation_id for x in every_store.all_links(APPT)} == {"a", "b", "new"}
    assert [a.correlation_id for a in every_store.unconfirmed_audits(APPT)] == ["b", "new"]


def _conflicts_refused_whole(store: SyncStore) -> None:
    store.put_link(APPT, link("a", "crm-1", "gw-1"))
    store.put_link(APPT, link("old", "crm-9", "gw-9"))
    store.put_link(APPT, link("dead", "crm-5", "gw-5", state=LinkState.TOMBSTONE))
    store.put_link(APPT, link("b", "crm-2", "gw-2"), [intent("b")])
    before = _state(store)

    with pytest.raises(LinkConflict) as refused:
        store.put_link(
            APPT,
            link("new", "crm-5", "gw-1"),
            [intent("old", AuditState.APPLIED), intent("new")],
            replaces="old",
        )
    assert [x.correlation_id for x in refused.value.others] == ["a"]
    message = str(refused.value)
    assert "'new'" in message and "'a'" in message and "groupware id 'gw-1'" in message
    assert _state(store) == before

    with pytest.raises(LinkConflict, match="'a'.*'crm-1'"):  # an update of a link, refused
        store.put_link(APPT, link("b", "crm-1", "gw-2"), [intent("b", AuditState.APPLIED)])
    assert _state(store) == before

    # A tombstone gives way only to a live link: a second tombstone with its id is refused.
    with pytest.raises(LinkConflict, match="'dead'"):
        store.put_link(APPT, link("dead-2", "crm-5", None, state=LinkState.TOMBSTONE))
    assert _state(store) == before

    # Not wedged: the same call without the taken id goes through whole.
    store.put_link(APPT, link("new", "crm-5", "gw-6"), [intent("new")], replaces="old")
    assert [x.correlation_id for x in store.all_links(APPT) if x.crm_id == "crm-5"] == ["new"]
    assert {x.correlation_id for x in store.all_links(APPT)} == {"a", "b", "new"}
    assert [a.correlation_id for a in store.unconfirmed_audits(APPT)] == ["b", "new"]
