"""Random sequences of edits on both sides, sync runs, crashes, throttling and stale etags.

In the spirit of vdirsyncer's `SyncMachine`. After a quiet sync (no faults) both sides must
agree per direction and policy, no item may be doubled, no user edit may vanish unless the
audit records it as the losing side of a conflict, no run may delete beyond the guard, and a
further run must find nothing to do (no ping-pong), and every write the sync made must have
exactly one audit row (confirmed, or uncertain when a crash hid its outcome). The same rules
run on appointments (also on the SQL store) and on contacts.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from common.items import CONTACT_FIELDS, Appointment, Contact, Phone, content_hash
from common.models import ItemKind, LinkState, RunStatus, Side
from daemon.policies import ConflictPolicy, DeletionGuard, Direction, Policy
from daemon.store import AuditRecord, AuditState
from daemon.sync import SyncOutcome, sync
from tests.engine.conftest import engine_profile
from tests.fixtures.engine import (
    CRM_FIELDS,
    NOW,
    Clock,
    Crash,
    Faults,
    MemoryConnector,
    MemoryStore,
    appointment,
    contact,
    contact_rewriting,
    html_wrapping,
    make_sql_store,
)

SIDES = st.sampled_from([Side.CRM, Side.GROUPWARE])
PICK = st.integers(min_value=0, max_value=7)
GUARD = DeletionGuard(max_deletes=3, max_percent=50.0, min_for_percent=2)


class SyncMachine(RuleBasedStateMachine):
    """Appointments; `ContactSyncMachine` runs the same rules on contacts."""

    KIND = ItemKind.APPOINTMENT
    TOKEN = "subject"  # the field that carries each user edit's unique token

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.crm, self.gw = self.make_connectors()
        self.connectors = {Side.CRM: self.crm, Side.GROUPWARE: self.gw}
        self.store = MemoryStore()
        self.policy = Policy(guard=GUARD)
        self.fields = self.crm.fields & self.gw.fields  # what both fakes keep
        self.counter = 0
        self.tokens: set[str] = set()
        self.superseded: set[str] = set()
        self.slept: list[float] = []

    @initialize(
        conflict=st.sampled_from(list(ConflictPolicy)),
        direction=st.sampled_from(
            [
                Direction.TWO_WAY,
                Direction.TWO_WAY,
                Direction.CRM_TO_GROUPWARE,
                Direction.GROUPWARE_TO_CRM,
            ]
        ),
    )
    def configure(self, conflict: ConflictPolicy, direction: Direction) -> None:
        if self.KIND is ItemKind.APPOINTMENT:
            self.policy = Policy(appointments=direction, conflict=conflict, guard=GUARD)
        else:
            self.policy = Policy(contacts=direction, conflict=conflict, guard=GUARD)

    def make_connectors(self) -> tuple[MemoryConnector[Any], MemoryConnector[Any]]:
        crm: MemoryConnector[Appointment] = MemoryConnector(
            "crm", fields=CRM_FIELDS, clock=self.clock
        )
        gw: MemoryConnector[Appointment] = MemoryConnector(
            "gw", rewrite=html_wrapping, clock=self.clock
        )
        return crm, gw

    def make_item(self, token: str, hour: int, body: str) -> Any:
        return appointment(token, hour=hour, body=body)

    def token_of(self, item: Any) -> str:
        return str(getattr(item, self.TOKEN))

    # --- what users and servers do -----------------------------------------------------------

    def token(self) -> str:
        self.counter += 1
        token = f"t{self.counter}"
        self.tokens.add(token)
        return token

    def pick(self, side: Side, pick: int) -> str | None:
        ids = sorted(self.connectors[side].items)
        return ids[pick % len(ids)] if ids else None

    @rule(
        side=SIDES,
        body=st.sampled_from(["", "notes", "two  words\n"]),
        hour=st.integers(8, 17),
        count=st.integers(1, 3),
    )
    def create(self, side: Side, body: str, hour: int, count: int) -> None:
        for _ in range(count):
            self.connectors[side].user_create(self.make_item(self.token(), hour, body))

    @rule(pick=PICK)
    def edit_on_both_sides(self, pick: int) -> None:
        """The same pair edited on both sides before a sync: a conflict."""
        links = [
            link
            for link in self.store.all_links(self.KIND)
            if link.crm_id in self.crm.items and link.groupware_id in self.gw.items
        ]
        if links:
            link = links[pick % len(links)]
            assert link.crm_id is not None and link.groupware_id is not None
            self.edit_item(Side.CRM, link.crm_id)
            self.edit_item(Side.GROUPWARE, link.groupware_id)

    @rule(side=SIDES, pick=PICK)
    def edit(self, side: Side, pick: int) -> None:
        item_id = self.pick(side, pick)
        if item_id is not None:
            self.edit_item(side, item_id)

    def edit_item(self, side: Side, item_id: str) -> None:
        connector = self.connectors[side]
        self.superseded.add(self.token_of(connector.item(item_id)))
        connector.user_edit(item_id, **{self.TOKEN: self.token()})

    @rule(side=SIDES, pick=PICK)
    def delete(self, side: Side, pick: int) -> None:
        item_id = self.pick(side, pick)
        if item_id is not None:
            self.superseded.add(self.token_of(self.connectors[side].item(item_id)))
            self.connectors[side].user_delete(item_id)

    @rule(side=SIDES)
    def delete_everything(self, side: Side) -> None:
        for item_id in sorted(self.connectors[side].items):
            self.superseded.add(self.token_of(self.connectors[side].item(item_id)))
            self.connectors[side].user_delete(item_id)

    @rule(side=SIDES, pick=PICK)
    def server_rewrite(self, side: Side, pick: int) -> None:
        item_id = self.pick(side, pick)
        if item_id is not None:
            self.connectors[side].server_touch(item_id)

    @rule(side=SIDES, pick=PICK)
    def copy_with_stamp(self, side: Side, pick: int) -> None:
        item_id = self.pick(side, pick)
        if item_id is not None:
            self.connectors[side].user_copy(item_id)

    @rule(side=SIDES)
    def expire_cursor(self, side: Side) -> None:
        self.connectors[side].expire_cursors()

    # --- sync runs -----------------------------------------------------------------------------

    def run(self, approve: bool = False) -> SyncOutcome[Any]:
        sizes = self.store.linked_counts(self.KIND)
        outcome = sync(
            self.KIND,
            self.connectors,
            self.store,
            self.policy,
            NOW,
            approve_deletions=approve,
            sleep=self.slept.append,
        )
        if outcome.report is not None:
            for name in ("replanned", "resumed", "linked", "forgotten"):
                if outcome.report.counts[name]:
                    event(f"a run {name} items")
            if outcome.plan is not None and outcome.plan.conflicts:
                event("a run settled a conflict")
        if not approve and outcome.report is not None:
            for side in (Side.CRM, Side.GROUPWARE):
                deleted = outcome.report.counts[f"delete_{side.value}"]
                assert not GUARD.exceeded(deleted, sizes[side]), (deleted, sizes)
        return outcome

    @rule(
        fault=st.sampled_from(["crash", "crash", "throttle", "stale"]),
        at=st.integers(min_value=0, max_value=9),
    )
    def sync_with_another_fault(self, fault: str, at: int) -> None:
        self.sync_with_fault(fault, at)

    @rule()
    def sync_once(self) -> None:
        self.run()

    @rule(
        fault=st.sampled_from(["crash", "crash", "throttle", "stale"]),
        at=st.integers(min_value=0, max_value=9),
    )
    def sync_with_fault(self, fault: str, at: int) -> None:
        def concurrent_edit(phase: str, op: str, item_id: str | None) -> None:
            side = Side.CRM if op.startswith("crm.") else Side.GROUPWARE
            if item_id is not None and item_id in self.connectors[side].items:
                self.edit_item(side, item_id)

        faults = Faults(at, fault, concurrent_edit)
        faults.attach(self.crm, self.gw, self.store)
        slept_before = len(self.slept)
        try:
            self.run()
        except Crash:
            pass
        finally:
            faults.detach(self.crm, self.gw, self.store)
        event(f"{fault} {'fired' if faults.fired else 'not reached'}")
        if fault == "throttle" and faults.fired:
            assert 7.0 in self.slept[slept_before:], "Throttled must wait as told"

    @rule()
    def quiet_sync(self) -> None:
        self.settle_and_check()

    def teardown(self) -> None:
        self.settle_and_check()

    # --- the invariants ----------------------------------------------------------------------

    def settle_and_check(self) -> None:
        for _ in range(4):
            outcome = self.run()
            if outcome.status is RunStatus.HELD:
                event(
                    f"held: {outcome.plan.hold.reason.split(' ', 2)[1] if outcome.plan and outcome.plan.hold else ''}"
                )
                assert outcome.report is not None
                assert not any(k.startswith("delete_") for k in outcome.report.counts)
                outcome = self.run(approve=True)
            assert outcome.status is RunStatus.SUCCEEDED, outcome
            assert outcome.plan is not None
            if not outcome.plan.writes():
                break
        else:
            raise AssertionError("no quiet state after four runs (ping-pong)")
        self.check_agreement()
        self.check_no_lost_edit()
        self.check_every_write_audited_once()

    def check_agreement(self) -> None:
        links = [
            link
            for link in self.store.all_links(self.KIND)
            if link.state is not LinkState.TOMBSTONE
        ]
        assert all(link.state is LinkState.LINKED for link in links), links
        direction = self.policy.direction(self.KIND)
        for link in links:
            assert link.crm_id in self.crm.items and link.groupware_id in self.gw.items, link
            crm_item, gw_item = self.crm.item(link.crm_id), self.gw.item(link.groupware_id)
            assert content_hash(crm_item, self.fields) == content_hash(gw_item, self.fields)
        linked = {
            Side.CRM: {link.crm_id for link in links},
            Side.GROUPWARE: {link.groupware_id for link in links},
        }
        for side in (Side.CRM, Side.GROUPWARE):
            if direction.leads(side):  # everything a leading side holds has exactly one copy
                assert set(self.connectors[side].items) == linked[side]
        # No duplicates: one groupware item per CRM item and vice versa.
        assert len(linked[Side.CRM]) == len(links) == len(linked[Side.GROUPWARE])

    def check_no_lost_edit(self) -> None:
        present = {
            self.token_of(i) for c in self.connectors.values() for _, i, _ in c.items.values()
        }
        recorded = {
            record.before["item"][self.TOKEN]
            for record in self.store.audits
            if record.action == "conflict" and record.before is not None
        }
        lost = self.tokens - self.superseded - present - recorded
        assert not lost, f"edits lost without a conflict record: {sorted(lost)}"

    def check_every_write_audited_once(self) -> None:
        """Every change the sync applied has exactly one audit row: confirmed, or, when a
        crash hid the outcome (the item vanished or changed before anyone looked), uncertain."""
        audits = self.store.audits
        assert not [a for a in audits if a.state is AuditState.PENDING], "unsettled audit rows"

        def changes(state: AuditState) -> Counter[tuple[str, Side, str | None]]:
            return Counter(
                (a.action, a.side, _written_id(a))
                for a in audits
                if a.state is state and a.action in ("create", "update", "delete")
            )

        written = Counter(
            (op, side, item_id)
            for side, connector in self.connectors.items()
            for op, item_id in connector.writes
        )
        applied, uncertain = changes(AuditState.APPLIED), changes(AuditState.UNCERTAIN)
        assert not applied - written, f"audited but never written: {applied - written}"
        # An uncertain create does not know the id the service gave: count those per side.
        for (op, side, item_id), n in (written - applied).items():
            key = (op, side, None if op == "create" else item_id)
            assert uncertain[key] >= n, f"{op} of {item_id} on {side} has no audit row"
            uncertain[key] -= n

    @invariant()
    def links_are_unique(self) -> None:
        seen: dict[Side, set[str]] = {Side.CRM: set(), Side.GROUPWARE: set()}
        for link in self.store.all_links(self.KIND):
            if link.state is LinkState.TOMBSTONE:
                continue
            for side in (Side.CRM, Side.GROUPWARE):
                item_id = link.item_id(side)
                if item_id is not None:
                    assert item_id not in seen[side]
                    seen[side].add(item_id)


def _written_id(record: AuditRecord) -> str | None:
    snapshot = record.before if record.action == "delete" else record.after
    return (snapshot["id"] or None) if snapshot else None


SyncMachine.TestCase.settings = engine_profile()
TestSync = SyncMachine.TestCase


class SqlSyncMachine(SyncMachine):
    """The same machine on the SQL store (SQLite in memory): the real unique constraints,
    tombstones and transactions under the same crashes. Fewer examples: a database per case."""

    def __init__(self) -> None:
        super().__init__()
        self.store = make_sql_store()  # type: ignore[assignment]

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            self.store.db.dispose()


SqlSyncMachine.TestCase.settings = engine_profile(sql=True)
TestSyncOnSql = SqlSyncMachine.TestCase


class ContactSyncMachine(SyncMachine):
    """The same rules on contacts: a CRM without middle names, a groupware server that
    rewrites e-mail addresses (case, order) and phone numbers (formatting)."""

    KIND = ItemKind.CONTACT
    TOKEN = "given_name"

    def make_connectors(self) -> tuple[MemoryConnector[Any], MemoryConnector[Any]]:
        crm: MemoryConnector[Contact] = MemoryConnector(
            "crm", fields=CONTACT_FIELDS - {"middle_name"}, clock=self.clock
        )
        gw: MemoryConnector[Contact] = MemoryConnector(
            "gw", fields=CONTACT_FIELDS, rewrite=contact_rewriting, clock=self.clock
        )
        return crm, gw

    def make_item(self, token: str, hour: int, body: str) -> Any:
        phones = (Phone(f"+31 20 555 01{hour:02d}", "work"),) if body else ()
        return contact(token, "Jansen", f"{token}@example.com", middle_name=body, phones=phones)


ContactSyncMachine.TestCase.settings = engine_profile()
TestContactSync = ContactSyncMachine.TestCase
