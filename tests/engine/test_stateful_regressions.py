"""Sequences the nightly Hypothesis profile found, replayed on every run: each one failed
before the fix named in its key and must keep passing. Each step is a rule of the state
machine (`test_stateful.py`) called as Hypothesis called it; the machine's teardown then
settles and checks every invariant (no duplicate, agreement, no lost edit, one audit row
per write)."""

from __future__ import annotations

from typing import Any

import pytest

from common.kinds import Side
from daemon.policies import ConflictPolicy, Direction
from tests.engine import test_stateful

SEQUENCES: dict[str, tuple[str, ...]] = {
    "edit_moved_copy_during_paged_crash_long": (
        "SyncMachine",
        "configure(conflict=ConflictPolicy.CRM_WINS, direction=Direction.TWO_WAY, coarse=False, hidden_stamps=False, unknown_removals=False, idempotent=False, paged=True, batched=False)",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.CRM)",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.CRM)",
        "quiet_sync()",
        "copy_with_stamp(pick=0, side=Side.CRM)",
        "quiet_sync()",
        "copy_with_stamp(pick=0, side=Side.CRM)",
        "quiet_sync()",
        "quiet_sync()",
        "create(body='', count=1, day=1, hour=8, shape='timed', side=Side.CRM)",
        "server_move(pick=0, side=Side.CRM)",
        "quiet_sync()",
        "copy_with_stamp(pick=0, side=Side.CRM)",
        "create(body='', count=2, day=8, hour=8, shape='timed', side=Side.GROUPWARE)",
        "quiet_sync()",
        "copy_with_stamp(pick=0, side=Side.CRM)",
        "quiet_sync()",
        "server_move(pick=4, side=Side.GROUPWARE)",
        "edit(pick=0, side=Side.CRM, what='subject')",
        "server_move(pick=2, side=Side.GROUPWARE)",
        "sync_with_another_fault(at=8, fault='crash')",
    ),
    "a_page_follows_a_move_and_the_end_reads_the_copy_again": (
        "SyncMachine",
        "configure(conflict=ConflictPolicy.CRM_WINS, direction=Direction.TWO_WAY, coarse=False, hidden_stamps=False, unknown_removals=False, idempotent=False, paged=True, batched=False)",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.CRM)",
        "quiet_sync()",
        "copy_with_stamp(pick=0, side=Side.CRM)",
        "copy_with_stamp(pick=0, side=Side.CRM)",
        "quiet_sync()",
        "copy_with_stamp(pick=0, side=Side.CRM)",
        "quiet_sync()",
        "quiet_sync()",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.CRM)",
        "copy_with_stamp(pick=0, side=Side.CRM)",
        "copy_with_stamp(pick=0, side=Side.CRM)",
        "server_move(pick=0, side=Side.CRM)",
        "quiet_sync()",
        "quiet_sync()",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.CRM)",
        "quiet_sync()",
        "server_move(pick=2, side=Side.GROUPWARE)",
        "edit(pick=0, side=Side.CRM, what='subject')",
        "server_move(pick=1, side=Side.GROUPWARE)",
        "sync_with_another_fault(at=8, fault='crash')",
        "quiet_sync()",
    ),
    "a_deletion_before_an_interrupted_expired_listing": (
        "SyncMachine",
        "configure(conflict=ConflictPolicy.CRM_WINS, direction=Direction.TWO_WAY, coarse=False, hidden_stamps=False, unknown_removals=False, idempotent=False, paged=True, batched=False)",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.CRM)",
        "copy_with_stamp(pick=0, side=Side.CRM)",
        "copy_with_stamp(pick=0, side=Side.CRM)",
        "quiet_sync()",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.CRM)",
        "expire_cursor(side=Side.CRM)",
        "delete(pick=0, side=Side.CRM)",
        "copy_with_stamp(pick=0, side=Side.CRM)",
        "edit(pick=0, side=Side.CRM, what='subject')",
        "sync_with_another_fault(at=5, fault='crash')",
        "quiet_sync()",
    ),
    "a_crash_after_a_checkpoint_then_everything_deleted": (
        "SyncMachine",
        "configure(conflict=ConflictPolicy.CRM_WINS, direction=Direction.TWO_WAY, coarse=False, hidden_stamps=False, unknown_removals=False, idempotent=False, paged=True, batched=False)",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.CRM)",
        "expire_cursor(side=Side.GROUPWARE)",
        "copy_with_stamp(pick=0, side=Side.CRM)",
        "copy_with_stamp(pick=0, side=Side.CRM)",
        "sync_once()",
        "sync_with_another_fault(at=2, fault='crash')",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.GROUPWARE)",
        "delete_everything(side=Side.GROUPWARE)",
    ),
    "an_edit_after_a_run_that_crashed_past_its_checkpoint": (
        "SyncMachine",
        "configure(conflict=ConflictPolicy.CRM_WINS, direction=Direction.TWO_WAY, coarse=False, hidden_stamps=False, unknown_removals=False, idempotent=False, paged=True, batched=False)",
        "create(body='', count=2, day=0, hour=8, shape='timed', side=Side.CRM)",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.CRM)",
        "sync_once()",
        "sync_with_another_fault(at=2, fault='crash')",
        "edit(pick=0, side=Side.GROUPWARE, what='subject')",
    ),
    "a_held_run_resumed_with_its_owed_deletions": (
        "SyncMachine",
        "configure(conflict=ConflictPolicy.CRM_WINS, direction=Direction.TWO_WAY, coarse=False, hidden_stamps=False, unknown_removals=False, idempotent=False, paged=True, batched=False)",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.CRM)",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.CRM)",
        "create(body='', count=2, day=0, hour=8, shape='timed', side=Side.CRM)",
        "quiet_sync()",
        "delete_everything(side=Side.CRM)",
        "quiet_sync()",
    ),
    "an_emptied_side_after_the_window_moved": (
        "SyncMachine",
        "configure(conflict=ConflictPolicy.CRM_WINS, direction=Direction.TWO_WAY, coarse=False, hidden_stamps=False, unknown_removals=False, idempotent=False, paged=True, batched=False)",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.CRM)",
        "create(body='', count=2, day=0, hour=8, shape='timed', side=Side.CRM)",
        "quiet_sync()",
        "delete_everything(side=Side.CRM)",
        "time_passes(days=1)",
        "quiet_sync()",
    ),
    "a_contact_listing_resumed_after_a_deletion": (
        "ContactSyncMachine",
        "configure(conflict=ConflictPolicy.CRM_WINS, direction=Direction.TWO_WAY, coarse=False, hidden_stamps=False, unknown_removals=False, idempotent=False, paged=True, batched=False)",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.CRM)",
        "copy_with_stamp(pick=0, side=Side.CRM)",
        "create(body='', count=2, day=0, hour=8, shape='timed', side=Side.CRM)",
        "sync_with_another_fault(at=1, fault='crash')",
        "delete(pick=0, side=Side.CRM)",
    ),
    "a_refused_deletion_of_a_moved_private_copy_planned_again_then_a_conflict": (
        "SyncMachine",
        "configure(conflict=ConflictPolicy.CRM_WINS, direction=Direction.TWO_WAY, coarse=False, hidden_stamps=False, unknown_removals=False, idempotent=False, paged=True, batched=False)",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.CRM)",
        "sync_with_another_fault(at=0, fault='throttle')",
        "edit(pick=0, side=Side.GROUPWARE, what='private')",
        "copy_with_stamp(pick=0, side=Side.CRM)",
        "server_move(pick=0, side=Side.GROUPWARE)",
        "sync_with_another_fault(at=0, fault='stale')",
        "change_conflict_policy(conflict=ConflictPolicy.CRM_WINS)",
        "copy_with_stamp(pick=0, side=Side.CRM)",
        "server_move(pick=0, side=Side.CRM)",
        "sync_once()",
        "sync_once()",
        "delete(pick=0, side=Side.CRM)",
        "sync_once()",
        "edit_on_both_sides(pick=0, what='private')",
    ),
    "a_refused_deletion_of_a_moved_private_copy_planned_again": (
        "SyncMachine",
        "configure(conflict=ConflictPolicy.CRM_WINS, direction=Direction.TWO_WAY, coarse=False, hidden_stamps=False, unknown_removals=False, idempotent=False, paged=True, batched=False)",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.CRM)",
        "sync_with_another_fault(at=0, fault='throttle')",
        "edit(pick=0, side=Side.GROUPWARE, what='private')",
        "copy_with_stamp(pick=0, side=Side.CRM)",
        "server_move(pick=0, side=Side.GROUPWARE)",
        "sync_with_another_fault(at=0, fault='stale')",
        "copy_with_stamp(pick=0, side=Side.CRM)",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.CRM)",
    ),
    "a_private_item_relinked_while_its_copy_is_edited_then_a_create": (
        "SyncMachine",
        "configure(conflict=ConflictPolicy.CRM_WINS, direction=Direction.TWO_WAY, coarse=False, hidden_stamps=False, unknown_removals=False, idempotent=False, paged=False, batched=False)",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.CRM)",
        "sync_with_another_fault(at=0, fault='throttle')",
        "edit(pick=0, side=Side.CRM, what='private')",
        "lose_the_links()",
        "sync_with_another_fault(at=0, fault='stale')",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.CRM)",
    ),
    "a_private_item_relinked_while_its_copy_is_edited": (
        "SyncMachine",
        "configure(conflict=ConflictPolicy.CRM_WINS, direction=Direction.TWO_WAY, coarse=False, hidden_stamps=False, unknown_removals=False, idempotent=False, paged=False, batched=False)",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.CRM)",
        "sync_with_another_fault(at=0, fault='throttle')",
        "edit(pick=0, side=Side.CRM, what='private')",
        "lose_the_links()",
        "sync_with_another_fault(at=0, fault='stale')",
        "quiet_sync()",
    ),
    "an_interrupted_revert_of_a_copy_found_by_its_stamp": (
        "ContactSyncMachine",
        "configure(conflict=ConflictPolicy.CRM_WINS, direction=Direction.GROUPWARE_TO_CRM, coarse=False, hidden_stamps=False, unknown_removals=False, idempotent=False, paged=False, batched=False)",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.GROUPWARE)",
        "sync_once()",
        "copy_with_stamp(pick=0, side=Side.CRM)",
        "sync_once()",
        "delete(pick=0, side=Side.CRM)",
        "sync_with_another_fault(at=1, fault='crash')",
    ),
    "an_approved_run_after_a_held_run_of_several_pages": (
        "SyncMachine",
        "configure(conflict=ConflictPolicy.CRM_WINS, direction=Direction.TWO_WAY, coarse=False, hidden_stamps=False, unknown_removals=False, idempotent=False, paged=True, batched=False)",
        "create(body='', count=2, day=0, hour=8, shape='timed', side=Side.CRM)",
        "create(body='', count=1, day=0, hour=8, shape='timed', side=Side.CRM)",
        "sync_with_another_fault(at=0, fault='stale')",
        "sync_with_another_fault(at=5, fault='crash')",
        "expire_cursor(side=Side.CRM)",
        "delete_everything(side=Side.CRM)",
    ),
}


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_a_sequence_the_nightly_run_found(name: str) -> None:
    machine_name, *steps = SEQUENCES[name]
    machine: Any = getattr(test_stateful, machine_name)()
    names = {"Side": Side, "ConflictPolicy": ConflictPolicy, "Direction": Direction}
    try:
        for step in steps:
            rule, _, args = step.partition("(")
            call = eval(f"dict({args}", {}, names)  # noqa: S307 - our own recorded literals
            getattr(machine, rule)(**call)
            machine.links_are_unique()
    finally:
        machine.teardown()
