"""Table tests for every planner rule and every policy (the planner is pure: plain values in)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from common.capabilities import Capabilities
from common.connectors.base import ChangeSet, Removal, RemovalKind, Stored
from common.items import APPOINTMENT_FIELDS, CONTACT_FIELDS, Appointment, Contact, content_hash
from common.models import ItemKind, LinkState, Side
from daemon.engine import LinkIndex, LinkSnapshot, Plan, PlanInput, plan
from daemon.policies import (
    AppointmentFilter,
    ConflictPolicy,
    ContactFilter,
    DeletionGuard,
    Direction,
    Policy,
    PrivatePolicy,
    Window,
)
from tests.fixtures.engine import NOW, appointment, contact

CRM, GW = Side.CRM, Side.GROUPWARE
A = appointment("Quarterly review", body="agenda")
B = appointment("Quarterly review (moved)", hour=14, body="agenda")
C = appointment("Quarterly review, other edit", body="new agenda")
H = content_hash(A, APPOINTMENT_FIELDS)
CONTACT_CAPS = {
    Side.CRM: Capabilities(CONTACT_FIELDS),
    Side.GROUPWARE: Capabilities(CONTACT_FIELDS),
}
FULL_CAPS = {
    Side.CRM: Capabilities(APPOINTMENT_FIELDS),
    Side.GROUPWARE: Capabilities(APPOINTMENT_FIELDS),
}


def st(
    item_id: str, item: Appointment | Contact, version: str = "v1", cid: str | None = None
) -> Stored:
    return Stored(item_id, version, item, cid)


def link(**changes: object) -> LinkSnapshot:
    base = LinkSnapshot("cid-1", "crm-1", "gw-1", "v1", "v1", H, H, LinkState.LINKED)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def run(
    crm: Sequence[Stored] = (),
    gw: Sequence[Stored] = (),
    *,
    crm_gone: Sequence[str] = (),
    gw_gone: Sequence[str] = (),
    links: Sequence[LinkSnapshot] = (),
    policy: Policy | None = None,
    full: tuple[bool, bool] = (False, False),
    counts: dict[Side, int] | None = None,
    approve: bool = False,
    kind: ItemKind = ItemKind.APPOINTMENT,
    caps: dict[Side, Capabilities] | None = None,
) -> Plan:
    live = [x for x in links if x.state is not LinkState.TOMBSTONE]
    default_counts = {
        CRM: sum(1 for x in live if x.crm_id),
        GW: sum(1 for x in live if x.groupware_id),
    }
    return plan(
        PlanInput(
            kind=kind,
            crm=ChangeSet(list(crm), [Removal(i) for i in crm_gone], "c", full[0]),
            groupware=ChangeSet(list(gw), [Removal(i) for i in gw_gone], "g", full[1]),
            links=LinkIndex(links, counts or default_counts),
            policy=policy or Policy(conflict=ConflictPolicy.CRM_WINS),
            now=NOW,
            caps=caps or FULL_CAPS,
            approve_deletions=approve,
            listed_nothing=frozenset(
                side
                for side, (is_full, listed) in {CRM: (full[0], crm), GW: (full[1], gw)}.items()
                if is_full and not listed
            ),
        )
    )


def ops(result: Plan) -> list[tuple[str, str]]:
    return [(a.op.value, a.target.value) for a in result.actions]


# --- the decision table ---------------------------------------------------------------------

ABSENT: list[Stored] = []
SAME = [st("crm-1", A)]
REWRITTEN_CRM = [st("crm-1", A, "v2")]
CHANGED_CRM = [st("crm-1", B, "v2")]
CHANGED_GW = [st("gw-1", C, "v2")]
SAME_CHANGE_GW = [st("gw-1", B, "v2")]


@pytest.mark.parametrize(
    ("crm", "gw", "crm_gone", "gw_gone", "expected"),
    [
        pytest.param(CHANGED_CRM, ABSENT, [], [], [("update", "groupware")], id="crm-changed"),
        pytest.param(ABSENT, CHANGED_GW, [], [], [("update", "crm")], id="gw-changed"),
        pytest.param(
            CHANGED_CRM, CHANGED_GW, [], [], [("update", "groupware")], id="both-changed-conflict"
        ),
        pytest.param(CHANGED_CRM, SAME_CHANGE_GW, [], [], [("link", "crm")], id="both-same-change"),
        pytest.param(ABSENT, ABSENT, ["crm-1"], [], [("delete", "groupware")], id="crm-deleted"),
        pytest.param(ABSENT, ABSENT, [], ["gw-1"], [("delete", "crm")], id="gw-deleted"),
        pytest.param(
            ABSENT, CHANGED_GW, ["crm-1"], [], [("create", "crm")], id="mod-beats-delete-crm"
        ),
        pytest.param(
            CHANGED_CRM, ABSENT, [], ["gw-1"], [("create", "groupware")], id="mod-beats-delete-gw"
        ),
        pytest.param(ABSENT, ABSENT, ["crm-1"], ["gw-1"], [("forget", "crm")], id="deleted-both"),
        pytest.param(REWRITTEN_CRM, ABSENT, [], [], [("link", "crm")], id="version-only-change"),
        pytest.param(SAME, ABSENT, [], [], [], id="echo-of-our-write"),
    ],
)
def test_decision_table(
    crm: list[Stored], gw: list[Stored], crm_gone: list[str], gw_gone: list[str], expected: list
) -> None:
    assert ops(run(crm, gw, crm_gone=crm_gone, gw_gone=gw_gone, links=[link()])) == expected


def test_conflict_is_recorded_with_the_losing_version() -> None:
    result = run(CHANGED_CRM, CHANGED_GW, links=[link()])
    (action,) = result.actions
    assert action.conflict is not None
    assert action.conflict.winner is CRM and action.conflict.loser.item == C
    assert action.source is not None and action.source.item == B
    assert result.counts()["conflicts"] == 1


def test_new_items_are_created_on_the_other_side() -> None:
    result = run([st("crm-7", A)], [st("gw-9", B)])
    assert sorted(ops(result)) == [("create", "crm"), ("create", "groupware")]


def test_same_stamp_on_both_sides_without_link_is_linked_not_duplicated() -> None:
    assert ops(run([st("crm-1", A, cid="x")], [st("gw-1", A, cid="x")])) == [("link", "crm")]
    both = run([st("crm-1", A, cid="x")], [st("gw-1", B, cid="x")])
    assert ops(both) == [("update", "groupware")] and both.actions[0].conflict is not None


def test_a_copy_carrying_a_linked_stamp_is_a_new_item() -> None:
    result = run([], [st("gw-5", A, cid="cid-1")], links=[link()])
    assert ops(result) == [("create", "crm")]


@pytest.mark.parametrize("kind", [RemovalKind.LEFT_RANGE, RemovalKind.UNKNOWN])
def test_only_a_known_deletion_deletes(kind: RemovalKind) -> None:
    """Removals the listing could not explain are resolved by reading the side before the
    planner sees them (`daemon.resolve`); one that reaches it unresolved deletes nothing."""
    result = plan(
        PlanInput(
            ItemKind.APPOINTMENT,
            ChangeSet([], [Removal("crm-1", kind)], "c"),
            ChangeSet([], [], "g"),
            LinkIndex([link()], {CRM: 1, GW: 1}),
            Policy(),
            NOW,
            FULL_CAPS,
        )
    )
    assert result.actions == ()


# --- interrupted creates (crash recovery) ---------------------------------------------------


def pending(**changes: object) -> LinkSnapshot:
    return link(
        groupware_id=None,
        groupware_version=None,
        state=LinkState.PENDING,
        pending_action="create_groupware",
        **changes,
    )


def test_interrupted_create_is_resumed_when_the_copy_is_not_seen() -> None:
    assert ops(run(SAME, [], links=[pending()])) == [("resume", "groupware")]
    assert ops(run([], [], links=[pending()])) == [("resume", "groupware")]


def test_interrupted_create_whose_copy_shows_up_stamped_is_linked() -> None:
    result = run([], [st("gw-3", A, cid="cid-1")], links=[pending()])
    assert ops(result) == [("link", "crm")]


def test_interrupted_create_whose_source_was_deleted_removes_the_copy() -> None:
    assert ops(run([], [], crm_gone=["crm-1"], links=[pending()])) == [("delete", "groupware")]


# --- conflict policies ----------------------------------------------------------------------


def timed(item: Appointment, minute: int) -> Appointment:
    return dataclasses.replace(item, last_modified=datetime(2026, 3, 20, 12, minute, tzinfo=UTC))


@pytest.mark.parametrize(
    ("policy", "crm_minute", "gw_minute", "winner"),
    [
        (ConflictPolicy.CRM_WINS, 1, 9, CRM),
        (ConflictPolicy.GROUPWARE_WINS, 9, 1, GW),
        (ConflictPolicy.NEWEST_WINS, 9, 1, CRM),
        (ConflictPolicy.NEWEST_WINS, 1, 9, GW),
        (ConflictPolicy.NEWEST_WINS, 5, 5, CRM),
    ],
)
def test_conflict_policies(
    policy: ConflictPolicy, crm_minute: int, gw_minute: int, winner: Side
) -> None:
    result = run(
        [st("crm-1", timed(B, crm_minute), "v2")],
        [st("gw-1", timed(C, gw_minute), "v2")],
        links=[link()],
        policy=Policy(conflict=policy),
    )
    (action,) = result.actions
    assert action.conflict is not None and action.conflict.winner is winner
    assert action.target is (GW if winner is CRM else CRM)


# --- directions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "crm", "gw", "crm_gone", "gw_gone", "expected"),
    [
        (Direction.CRM_TO_GROUPWARE, CHANGED_CRM, [], [], [], [("update", "groupware")]),
        (Direction.CRM_TO_GROUPWARE, [], CHANGED_GW, [], [], [("update", "groupware")]),  # revert
        (Direction.CRM_TO_GROUPWARE, [], [], [], ["gw-1"], [("create", "groupware")]),  # revert
        (Direction.CRM_TO_GROUPWARE, [], [], ["crm-1"], [], [("delete", "groupware")]),
        (Direction.CRM_TO_GROUPWARE, [], [st("gw-8", A)], [], [], []),  # the follower's own item
        (Direction.GROUPWARE_TO_CRM, [], CHANGED_GW, [], [], [("update", "crm")]),
        (Direction.GROUPWARE_TO_CRM, CHANGED_CRM, [], [], [], [("update", "crm")]),  # revert
        (Direction.GROUPWARE_TO_CRM, [st("crm-8", A)], [], [], [], []),
        (Direction.OFF, CHANGED_CRM, CHANGED_GW, [], [], []),
    ],
)
def test_directions(
    direction: Direction,
    crm: list[Stored],
    gw: list[Stored],
    crm_gone: list[str],
    gw_gone: list[str],
    expected: list,
) -> None:
    result = run(
        crm,
        gw,
        crm_gone=crm_gone,
        gw_gone=gw_gone,
        links=[link()],
        policy=Policy(appointments=direction),
    )
    assert ops(result) == expected


def test_one_way_revert_records_the_followers_edit() -> None:
    result = run(
        [], CHANGED_GW, links=[link()], policy=Policy(appointments=Direction.CRM_TO_GROUPWARE)
    )
    (action,) = result.actions
    assert action.conflict is not None and action.conflict.loser.item == C
    assert action.source is None and action.source_id == "crm-1"  # the applier reads the leader


def test_contacts_are_off_by_default_and_follow_their_own_direction() -> None:
    person = st("crm-3", contact("Ada", "Lovelace", "ada@example.com"))
    assert run([person], kind=ItemKind.CONTACT, policy=Policy()).actions == ()
    result = run(
        [person], kind=ItemKind.CONTACT, policy=Policy(contacts=Direction.CRM_TO_GROUPWARE)
    )
    assert ops(result) == [("create", "groupware")]


# --- window and filters ---------------------------------------------------------------------


def test_window_gates_creation_but_not_updates_of_linked_items() -> None:
    far = dataclasses.replace(
        A, start=NOW + timedelta(days=400), end=NOW + timedelta(days=400, hours=1)
    )
    policy = Policy(window=Window(days_back=30, days_ahead=120))
    created = run([st("crm-9", far)], policy=policy)
    assert created.actions == () and "outside the sync window" in created.skipped[0]
    updated = run([st("crm-1", far, "v2")], links=[link()], policy=policy)
    assert ops(updated) == [("update", "groupware")]
    past = dataclasses.replace(
        A, start=NOW - timedelta(days=31), end=NOW - timedelta(days=31) + timedelta(hours=1)
    )
    assert run([st("crm-9", past)], policy=policy).actions == ()


@pytest.mark.parametrize(
    ("rules", "item", "created"),
    [
        (AppointmentFilter(), dataclasses.replace(A, private=True), False),
        (
            AppointmentFilter(private=PrivatePolicy.SYNC_AS_PRIVATE),
            dataclasses.replace(A, private=True),
            True,
        ),
        (
            AppointmentFilter(activity_types=frozenset({"Meeting"})),
            dataclasses.replace(A, activity_type="Meeting"),
            True,
        ),
        (
            AppointmentFilter(activity_types=frozenset({"Meeting"})),
            dataclasses.replace(A, activity_type="Phone"),
            False,
        ),
        (
            AppointmentFilter(exclude_categories=frozenset({"Personal"})),
            dataclasses.replace(A, categories=frozenset({"personal"})),
            False,
        ),
        (
            AppointmentFilter(include_categories=frozenset({"CRM"})),
            dataclasses.replace(A, categories=frozenset({"CRM"})),
            True,
        ),
        (AppointmentFilter(include_categories=frozenset({"CRM"})), A, False),
    ],
)
def test_appointment_filters(rules: AppointmentFilter, item: Appointment, created: bool) -> None:
    result = run([st("crm-9", item)], policy=Policy(appointment_filter=rules))
    assert (ops(result) == [("create", "groupware")]) is created
    assert bool(result.skipped) is not created


def test_private_items_keep_their_flag_when_synced_as_private() -> None:
    rules = AppointmentFilter(private=PrivatePolicy.SYNC_AS_PRIVATE)
    result = run(
        [st("crm-9", dataclasses.replace(A, private=True))], policy=Policy(appointment_filter=rules)
    )
    assert result.actions[0].source is not None and result.actions[0].source.item.private


def test_activity_type_filter_only_applies_to_crm_items() -> None:
    rules = AppointmentFilter(activity_types=frozenset({"Meeting"}))
    assert ops(run([], [st("gw-9", A)], policy=Policy(appointment_filter=rules))) == [
        ("create", "crm")
    ]


def test_an_item_made_private_after_it_was_synced_has_its_copy_removed() -> None:
    """Point 11: filters follow later changes (mistake: only new items are filtered)."""
    private_now = st("crm-1", dataclasses.replace(B, private=True), "v2")
    result = run([private_now], links=[link()])
    assert ops(result) == [("delete", "groupware")]
    assert "private" in result.actions[0].reason
    as_private = Policy(appointment_filter=AppointmentFilter(private=PrivatePolicy.SYNC_AS_PRIVATE))
    assert ops(run([private_now], links=[link()], policy=as_private)) == [("update", "groupware")]
    off = Policy(guard=DeletionGuard(deletes_enabled=False))
    kept = run([private_now], links=[link()], policy=off)
    assert kept.actions == () and "copy kept" in kept.skipped[0]


def test_a_filter_is_checked_even_when_the_item_did_not_change() -> None:
    """A person leaving a selection does not change their updatedDate: the same version,
    the same content, and still the copy goes (mistake: filters only on changed items)."""
    person = contact("Ann", "Smith", "ann@example.com", selections=frozenset({"old"}))
    h = content_hash(person, CONTACT_FIELDS)
    linked = link(crm_hash=h, groupware_hash=h)
    rules = Policy(
        contacts=Direction.TWO_WAY, contact_filter=ContactFilter(selections=frozenset({"vip"}))
    )
    result = run(
        [st("crm-1", person, "v1")],
        links=[linked],
        policy=rules,
        kind=ItemKind.CONTACT,
        caps=CONTACT_CAPS,
    )
    assert ops(result) == [("delete", "groupware")]


@pytest.mark.parametrize(
    ("rules", "person", "created"),
    [
        (ContactFilter(), contact("Ada", "Lovelace"), True),
        (ContactFilter(require_email=True), contact("Ada", "Lovelace"), False),
        (
            ContactFilter(selections=frozenset({"7"})),
            contact("Ada", "L", selections=frozenset({"7"})),
            True,
        ),
        (
            ContactFilter(selections=frozenset({"7"})),
            contact("Ada", "L", selections=frozenset({"8"})),
            False,
        ),
    ],
)
def test_contact_selection(rules: ContactFilter, person: Contact, created: bool) -> None:
    policy = Policy(contacts=Direction.TWO_WAY, contact_filter=rules)
    result = run([st("crm-3", person)], kind=ItemKind.CONTACT, policy=policy)
    assert (ops(result) == [("create", "groupware")]) is created


# --- the deletion guard ---------------------------------------------------------------------


def many_links(n: int) -> list[LinkSnapshot]:
    return [
        link(correlation_id=f"c{i}", crm_id=f"crm-{i}", groupware_id=f"gw-{i}") for i in range(n)
    ]


@pytest.mark.parametrize(
    ("linked", "deleted", "guard", "held"),
    [
        (100, 5, DeletionGuard(max_deletes=10, max_percent=20), False),
        (100, 11, DeletionGuard(max_deletes=10, max_percent=20), True),  # more than N
        (20, 5, DeletionGuard(max_deletes=10, max_percent=20), True),  # more than P %
        (20, 4, DeletionGuard(max_deletes=10, max_percent=20), False),  # exactly P %
        (3, 1, DeletionGuard(max_deletes=10, max_percent=20, min_for_percent=2), False),
        (3, 2, DeletionGuard(max_deletes=10, max_percent=20, min_for_percent=2), True),
    ],
)
def test_deletion_guard(linked: int, deleted: int, guard: DeletionGuard, held: bool) -> None:
    links = many_links(linked)
    gone = [f"crm-{i}" for i in range(deleted)]
    result = run(crm_gone=gone, links=links, policy=Policy(guard=guard))
    assert (result.hold is not None) is held
    assert result.counts()["delete_groupware"] == deleted  # held plans still show everything
    assert run(crm_gone=gone, links=links, policy=Policy(guard=guard), approve=True).hold is None


def test_a_side_that_suddenly_lists_nothing_never_empties_the_other() -> None:
    links = many_links(3)
    generous = Policy(guard=DeletionGuard(max_deletes=1000, max_percent=100.0))
    result = run([], [], links=links, full=(True, False), policy=generous)
    assert result.hold is not None and "listed no items" in result.hold.reason


def test_deletes_switched_off_are_reported_not_planned() -> None:
    policy = Policy(guard=DeletionGuard(deletes_enabled=False))
    result = run(crm_gone=["crm-1"], links=[link()], policy=policy)
    assert result.actions == () and "switched off" in result.skipped[0]


def test_one_change_among_many_links() -> None:
    # The bench (bench/engine_plan.py) shows the cost follows the changes, not the links.
    links = many_links(10_000)
    result = run([st("crm-5", B, "v2")], links=links)
    assert ops(result) == [("update", "groupware")]


def test_policy_settings_round_trip() -> None:
    policy = Policy(
        appointments=Direction.CRM_TO_GROUPWARE,
        conflict=ConflictPolicy.GROUPWARE_WINS,
        window=Window(7, 60),
        appointment_filter=AppointmentFilter(
            activity_types=frozenset({"Meeting"}), private=PrivatePolicy.SYNC_AS_PRIVATE
        ),
        contact_filter=ContactFilter(selections=frozenset({"12"}), require_email=True),
        guard=DeletionGuard(max_deletes=5, max_percent=10.0, deletes_enabled=False),
    )
    assert Policy.from_settings(policy.to_settings()) == policy
    assert Policy.from_settings({}) == Policy()


def test_one_way_leader_delete_beats_a_follower_edit_and_records_it() -> None:
    policy = Policy(appointments=Direction.CRM_TO_GROUPWARE)
    result = run([], CHANGED_GW, crm_gone=["crm-1"], links=[link()], policy=policy)
    (action,) = result.actions
    assert (action.op.value, action.target) == ("delete", GW)
    assert action.conflict is not None and action.conflict.loser.item == C
