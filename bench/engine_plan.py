"""Planning cost: incremental (changes + the links they touch) beside a full comparison.

100,000 linked appointments, 1 % of them changed (half on each side). The incremental plan
reads only the change sets and the links those changes touch (what `SqlStore.links_for` returns
through its indexes); the plain full comparison lists both sides completely and compares every
item with its link. The same incremental plan is also timed over 10,000 linked items, to show
that its cost follows the changes, not the total. Peak memory is traced per phase.

Run: .venv/bin/python bench/engine_plan.py [--total 100000] [--changed-percent 1]
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from common.capabilities import Capabilities, agreed_hash
from common.connectors.base import ChangeSet, Stored
from common.items import Appointment
from common.models import ItemKind, Side
from daemon.engine import LinkIndex, LinkSnapshot, Plan, PlanInput, plan
from daemon.policies import Policy

NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)
CAPS = {Side.CRM: Capabilities.full(), Side.GROUPWARE: Capabilities.full()}


def agreed(item: Appointment) -> str:
    """The content hash the planner compares (the common view of both sides)."""
    return agreed_hash(item, CAPS[Side.CRM], CAPS[Side.GROUPWARE])


def item(n: int, edited: bool = False) -> Appointment:
    start = NOW + timedelta(hours=n % 2000)
    return Appointment(
        subject=f"Meeting {n}{' (moved)' if edited else ''}",
        start=start,
        end=start + timedelta(hours=1),
        body=f"Agenda for meeting {n}",
        location="Room 1",
    )


class World:
    """Both sides' items and the link table, as a database would hold them."""

    def __init__(self, total: int, changed_percent: float) -> None:
        self.total = total
        self.links: dict[str, LinkSnapshot] = {}
        self.by_crm: dict[str, LinkSnapshot] = {}
        self.by_gw: dict[str, LinkSnapshot] = {}
        self.crm: list[Stored[Appointment]] = []
        self.gw: list[Stored[Appointment]] = []
        changed = max(1, int(total * changed_percent / 100))
        step = max(1, total // changed)
        self.changed = set(range(0, total, step))
        on_crm = set(range(0, total, 2 * step))  # every other change is made in the CRM
        hashes: dict[int, str] = {}
        for n in range(total):
            base = item(n)
            hashes[n] = agreed(base)
            link = LinkSnapshot(f"cid-{n}", f"crm-{n}", f"gw-{n}", "v1", "v1", hashes[n], hashes[n])
            self.links[link.correlation_id] = link
            self.by_crm[f"crm-{n}"] = link
            self.by_gw[f"gw-{n}"] = link
            crm_edit = n in on_crm
            gw_edit = n in self.changed and not crm_edit
            self.crm.append(Stored(f"crm-{n}", "v2" if crm_edit else "v1", item(n, crm_edit)))
            self.gw.append(Stored(f"gw-{n}", "v2" if gw_edit else "v1", item(n, gw_edit)))

    def changes(self, side: Side) -> list[Stored[Appointment]]:
        stored = self.crm if side is Side.CRM else self.gw
        return [stored[n] for n in sorted(self.changed) if stored[n].version == "v2"]

    def links_for(self, crm_ids: list[str], gw_ids: list[str]) -> list[LinkSnapshot]:
        found = [self.by_crm[i] for i in crm_ids] + [self.by_gw[i] for i in gw_ids]
        return list({link.correlation_id: link for link in found}.values())


def incremental(world: World) -> Plan[Appointment]:
    crm, gw = world.changes(Side.CRM), world.changes(Side.GROUPWARE)
    links = world.links_for([s.id for s in crm], [s.id for s in gw])
    counts = {Side.CRM: world.total, Side.GROUPWARE: world.total}
    return plan(
        PlanInput(
            ItemKind.APPOINTMENT,
            ChangeSet(crm, [], "c"),
            ChangeSet(gw, [], "g"),
            LinkIndex(links, counts),
            Policy(),
            NOW,
            CAPS,
        )
    )


def full_comparison(world: World) -> Plan[Appointment]:
    counts = {Side.CRM: world.total, Side.GROUPWARE: world.total}
    return plan(
        PlanInput(
            ItemKind.APPOINTMENT,
            ChangeSet(world.crm, [], "c", full=True),
            ChangeSet(world.gw, [], "g", full=True),
            LinkIndex(world.links.values(), counts),
            Policy(),
            NOW,
            CAPS,
        )
    )


def full_comparison_by_hash(world: World) -> int:
    """The plain way: hash every item on both sides and compare with its link."""
    differing = 0
    for crm, gw in zip(world.crm, world.gw, strict=True):
        link = world.by_crm[crm.id]
        if agreed(crm.item) != link.crm_hash:
            differing += 1
        if agreed(gw.item) != link.groupware_hash:
            differing += 1
    return differing


def measure(fn: Callable[[], Any], repeat: int = 1, trace: bool = True) -> tuple[float, float, Any]:
    """Best CPU time over `repeat` runs (CPU time: the host is shared) and, when `trace`,
    the traced peak (MB) of one more run."""
    gc.collect()
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.process_time()
        result = fn()
        best = min(best, time.process_time() - started)
    peak = 0
    if trace:
        gc.collect()
        tracemalloc.start()
        fn()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return best, peak / 2**20, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=100_000)
    parser.add_argument("--changed-percent", type=float, default=1.0)
    args = parser.parse_args()

    small = World(args.total // 10, args.changed_percent * 10)  # same number of changes
    world = World(args.total, args.changed_percent)
    n_changes = len(world.changed)

    inc_t, inc_mem, inc_plan = measure(lambda: incremental(world), repeat=5)
    small_t, _, _ = measure(lambda: incremental(small), repeat=5)
    full_t, full_mem, full_plan = measure(lambda: full_comparison(world))
    hash_t, _, _ = measure(lambda: full_comparison_by_hash(world), trace=False)
    assert inc_plan.counts() == full_plan.counts(), "both ways must plan the same actions"

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [
        ("incremental plan", args.total, n_changes, inc_t, inc_mem),
        ("incremental plan", small.total, len(small.changed), small_t, None),
        ("full comparison (planner, full listings)", args.total, n_changes, full_t, full_mem),
        ("full comparison (hash every item)", args.total, n_changes, hash_t, None),
    ]
    print(f"{'method':<42} {'linked':>8} {'changed':>8} {'CPU ms':>10} {'peak MB':>8}")
    for name, total, changed, seconds, mem in rows:
        shown = f"{mem:8.1f}" if mem is not None else f"{'-':>8}"
        print(f"{name:<42} {total:>8} {changed:>8} {seconds * 1000:>10.1f} {shown}")
    print(f"plan actions: {inc_plan.counts()}")
    print(f"ratio full/incremental (planner): {full_t / inc_t:8.1f}x")
    print(f"ratio full/incremental (hash all): {hash_t / inc_t:8.1f}x")
    print(
        f"ratio incremental {args.total} / {small.total} linked, same changes: "
        f"{inc_t / small_t:5.2f}x (1.00 = cost independent of the total)"
    )
    print(f"peak memory of the incremental plan: {inc_mem:.1f} MB (target < 200 MB)")
    print(
        f"process max RSS (holding both sides' {args.total} items for the baseline): {rss:.0f} MB"
    )
    grows = inc_t / small_t
    ok = grows < 3.0 and inc_mem < 200
    print(
        f"{'PASS' if ok else 'FAIL'}: incremental cost x{grows:.2f} for {args.total // small.total}x "
        f"the linked items (target < 3x: follows the changes), peak {inc_mem:.1f} MB < 200 MB"
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
