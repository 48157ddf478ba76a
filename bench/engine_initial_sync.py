"""Initial sync in pages: 50,000 appointments per side, peak memory, and a plain full comparison.

Two in-memory services (`MemoryConnector`) with N items each: half of the CRM's items have an
identical twin on the groupware side, made there by hand (same subject, start, end, body: the
engine pairs them by content and copies nothing), the rest are unique to their side. Both list
in pages of 1,000; the groupware side declares batches of 20. The store is the real `SqlStore`
on a SQLite file in a temporary directory; the policy is two-way appointments, a window that
holds every item and the default deletion guard.

Three measurements, each in a fresh process (so `ru_maxrss` is that phase's own high-water
mark), timed without tracing and then repeated under `tracemalloc` for its peak:

- **engine sync**: `daemon.sync.sync()` as the daemon runs it: read in pages, pair, write the
  copies and the links. Afterwards every subject must exist exactly once on each side.
- **engine dry run**: the same run with `dry_run=True`: read, pair and plan, no writes.
- **plain full comparison**: both sides listed completely in one call each, every item hashed,
  items matched by signature in one dict; no paging, no writes.

CPU time spent inside the two services (listing, which filters and sorts all their items again
for every page, parsing what they list, storing writes) is counted apart ("svc CPU"): it is
the simulation's work, not the engine's. `tracemalloc` peak is what the phase allocated above
what the process held before it began (the two services' N items each are not counted; the
copies the sync writes into them are).
`ru_maxrss` is the whole process: both services, the interpreter and SQLite's own memory.

Run: .venv/bin/python bench/engine_initial_sync.py [--items 50000] [--no-trace]
Profile one phase: .venv/bin/python -m cProfile -s tottime bench/engine_initial_sync.py \
    --phase sync --items 5000
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common.capabilities import agreed_hash
from common.connectors.base import ChangeSet, Stored, Write, WriteResult
from common.connectors.memory import Clock, MemoryConnector
from common.db import Database
from common.items import Appointment, from_json, to_json
from common.kinds import Window as Range
from common.models import (
    Base,
    CrmKind,
    GroupwareKind,
    ItemKind,
    Organisation,
    Profile,
    Side,
    SyncUser,
)
from daemon.engine import signature
from daemon.policies import DeletionGuard, Direction, Policy, Window
from daemon.store import SqlStore
from daemon.sync import sync

NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)
DAY0 = datetime(2026, 3, 20, tzinfo=UTC)
SLOTS = 8_000  # quarter hours from today: all items start within 84 days
POLICY = Policy(
    appointments=Direction.TWO_WAY,
    window=Window(days_back=7, days_ahead=120),
    guard=DeletionGuard(),
)
TARGET_MB = 300
PHASES = ("sync", "dry", "plain")


def appointment(subject: str, n: int) -> Appointment:
    start = DAY0 + timedelta(hours=1, minutes=15 * (n % SLOTS))
    return Appointment(
        subject=subject,
        start=start,
        end=start + timedelta(minutes=45),
        body=f"Agenda for {subject}",
        location=f"Room {n % 40}",
    )


def subjects(items: int) -> tuple[list[str], list[str]]:
    """The CRM's and the groupware's subjects: the first half of the CRM's have a twin."""
    twins = items // 2
    crm = [f"Twin {n}" for n in range(twins)] + [f"CRM {n}" for n in range(twins, items)]
    gw = [f"Twin {n}" for n in range(twins)] + [f"GW {n}" for n in range(twins, items)]
    return crm, gw


def parsed(item: Appointment) -> Appointment:
    """`item` as a connector would build it from the service's JSON: new objects throughout."""
    fresh = from_json(json.loads(json.dumps(to_json(item))))
    assert isinstance(fresh, Appointment)
    return fresh


class Service(MemoryConnector[Appointment]):
    """`MemoryConnector` that also counts its batched calls (`calls` counts every item's
    write, `batches` the `apply_many` requests, `batched` the writes they carried) and the
    CPU time spent inside it (`cpu_s`), which is the simulated service's work, not the
    engine's: on every page it filters and sorts all its items again, and it parses what it
    lists."""

    def __init__(self, name: str, **options: Any) -> None:
        super().__init__(name, **options)
        self.batches = 0
        self.batched = 0
        self.cpu_s = 0.0
        self._depth = 0

    @contextlib.contextmanager
    def _inside(self) -> Iterator[None]:
        started = time.process_time() if self._depth == 0 else 0.0
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self.cpu_s += time.process_time() - started

    def changes(self, cursor: str | None, window: Range | None = None) -> ChangeSet[Appointment]:
        """A page of fresh objects, parsed from JSON as a real connector's are (the in-memory
        service would otherwise hand out the very objects it holds, and whatever the engine
        keeps of a listing would cost no memory)."""
        with self._inside():
            page = super().changes(cursor, window)
            upserts = [dataclasses.replace(s, item=parsed(s.item)) for s in page.upserts]
            return dataclasses.replace(page, upserts=upserts)

    def get(self, item_id: str) -> Stored[Appointment]:
        with self._inside():
            return super().get(item_id)

    def get_many(self, item_ids: Sequence[str]) -> dict[str, Stored[Appointment] | None]:
        with self._inside():
            return super().get_many(item_ids)

    def find_by_correlation_id(self, correlation_id: str) -> Stored[Appointment] | None:
        with self._inside():
            return super().find_by_correlation_id(correlation_id)

    def create(self, item: Appointment, correlation_id: str) -> Stored[Appointment]:
        with self._inside():
            return super().create(item, correlation_id)

    def update(self, item_id: str, item: Appointment, if_match: str | None) -> Stored[Appointment]:
        with self._inside():
            return super().update(item_id, item, if_match)

    def stamp(self, item_id: str, correlation_id: str, if_match: str | None) -> Stored[Appointment]:
        with self._inside():
            return super().stamp(item_id, correlation_id, if_match)

    def delete(self, item_id: str, if_match: str | None) -> None:
        with self._inside():
            super().delete(item_id, if_match)

    def apply_many(self, writes: Sequence[Write[Appointment]]) -> list[WriteResult[Appointment]]:
        self.batches += 1
        self.batched += len(writes)
        with self._inside():
            return super().apply_many(writes)

    def requests(self) -> int:
        """Calls as a service would count them: one per batch, not per item in it."""
        return sum(self.calls.values()) - self.batched + self.batches


def build_sides(items: int, page_size: int, batch_size: int) -> tuple[Service, Service]:
    clock = Clock(NOW)
    crm = Service("crm", clock=clock, page_size=page_size)
    gw = Service("gw", clock=clock, page_size=page_size, batch_size=batch_size)
    crm_subjects, gw_subjects = subjects(items)
    for n, subject in enumerate(crm_subjects):
        crm.user_create(appointment(subject, n))
    for n, subject in enumerate(gw_subjects):
        gw.user_create(appointment(subject, n))  # a twin is made by hand: no stamp
    return crm, gw


def make_store(url: str) -> SqlStore:
    """A fresh database with one profile and one user (as `tests.fixtures.engine`)."""
    db = Database(url)
    Base.metadata.create_all(db.engine)
    with db.session() as session:
        org = Organisation(name="Acme", slug="acme")
        profile = Profile(
            organisation=org,
            name="Acme sync",
            crm_kind=CrmKind.SUPEROFFICE_ONLINE,
            crm_url="https://sod.superoffice.com/Cust12345",
            groupware_kind=GroupwareKind.MICROSOFT_365,
        )
        user = SyncUser(profile=profile, crm_associate_id=7, mailbox="ann@acme.example")
        session.add_all([org, profile, user])
        session.flush()
        ids = (profile.id, user.id)
    return SqlStore(db, *ids)


def plain_full_comparison(
    crm: MemoryConnector[Appointment], gw: MemoryConnector[Appointment], window: Window
) -> dict[str, int]:
    """The plain way: list both sides completely into memory, hash every item, match the
    items by signature in one dict and compare the hashes of each pair."""
    bounds = Range(*window.bounds(NOW))
    listed = {side: c.changes(None, bounds) for side, c in ((Side.CRM, crm), (Side.GROUPWARE, gw))}
    assert not any(page.more for page in listed.values()), "the plain way reads in one call"
    caps = (crm.capabilities, gw.capabilities)
    crm_items = [(s, agreed_hash(s.item, *caps)) for s in listed[Side.CRM].upserts]
    gw_items = [(s, agreed_hash(s.item, *caps)) for s in listed[Side.GROUPWARE].upserts]
    waiting: dict[Any, list[str]] = {}
    for stored, hashed in gw_items:
        waiting.setdefault(signature(stored.item), []).append(hashed)
    counts: Counter[str] = Counter()
    for stored, hashed in crm_items:
        candidates = waiting.get(signature(stored.item))
        if candidates:
            counts["same" if candidates.pop(0) == hashed else "differ"] += 1
        else:
            counts["create_groupware"] += 1
    counts["create_crm"] = sum(len(left) for left in waiting.values())
    return dict(counts)


def rss_now_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def measured(fn: Callable[[], Any], trace: bool) -> tuple[dict[str, float], Any]:
    gc.collect()
    figures = {"rss_before_mb": rss_now_mb()}
    if trace:
        tracemalloc.start()
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    figures["wall_s"] = time.perf_counter() - wall
    figures["cpu_s"] = time.process_time() - cpu
    if trace:
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        figures["traced_peak_mb"] = peak / 2**20
        figures["traced_kept_mb"] = current / 2**20
    figures["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures, result


def check(
    crm: MemoryConnector[Appointment], gw: MemoryConnector[Appointment], items: int
) -> dict[str, Any]:
    """Every subject exactly once on each side; both sides the same size."""
    crm_subjects, gw_subjects = subjects(items)
    expected = set(crm_subjects) | set(gw_subjects)
    result: dict[str, Any] = {"expected_per_side": len(expected)}
    for name, side in (("crm", crm), ("gw", gw)):
        held = Counter(item.subject for _, item, _ in side.items.values())
        result[f"{name}_items"] = len(side.items)
        result[f"{name}_duplicates"] = sum(n - 1 for n in held.values() if n > 1)
        result[f"{name}_missing"] = len(expected - held.keys())
        result[f"{name}_unstamped"] = sum(1 for _, _, stamp in side.items.values() if not stamp)
    result["converged"] = result["crm_items"] == result["gw_items"] == len(expected) and not any(
        result[f"{n}_{k}"] for n in ("crm", "gw") for k in ("duplicates", "missing")
    )
    return result


def run_phase(phase: str, items: int, trace: bool) -> dict[str, Any]:
    """One measurement in this process (called in a fresh child by `main`)."""
    page_size = 0 if phase == "plain" else 1000
    crm, gw = build_sides(items, page_size=page_size, batch_size=20)
    out: dict[str, Any] = {"phase": phase, "traced": trace}
    with tempfile.TemporaryDirectory(prefix="bench-initial-sync-") as tmp:
        if phase == "plain":
            figures, counts = measured(lambda: plain_full_comparison(crm, gw, POLICY.window), trace)
            out["counts"] = counts
        else:
            store = make_store(f"sqlite:///{Path(tmp) / 'engine.db'}")
            connectors = {Side.CRM: crm, Side.GROUPWARE: gw}
            figures, outcome = measured(
                lambda: sync(
                    ItemKind.APPOINTMENT,
                    connectors,
                    store,
                    POLICY,
                    NOW,
                    dry_run=phase == "dry",
                    sleep=lambda _: None,
                ),
                trace,
            )
            out["status"] = str(outcome.status)
            out["error"] = outcome.error
            out["counts"] = {k: v for k, v in outcome.counts.items() if v}
            out["pages"] = len(outcome.plans)
            out["linked"] = {
                str(k): v for k, v in store.linked_counts(ItemKind.APPOINTMENT).items()
            }
            store.db.dispose()
        out.update(figures)
    out["calls"] = {name: dict(side.calls) for name, side in (("crm", crm), ("gw", gw))}
    out["calls_total"] = sum(sum(side.calls.values()) for side in (crm, gw))
    out["requests"] = crm.requests() + gw.requests()
    out["service_cpu_s"] = crm.cpu_s + gw.cpu_s
    out["batches"] = {"crm": crm.batches, "gw": gw.batches}
    if phase == "sync":
        out["check"] = check(crm, gw, items)
    return out


def child(phase: str, items: int, trace: bool) -> dict[str, Any]:
    args = [sys.executable, __file__, "--phase", phase, "--items", str(items)]
    if trace:
        args.append("--trace")
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"phase {phase} (trace={trace}) failed with {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def fmt(value: float | None, spec: str) -> str:
    """`value` formatted as `spec` (e.g. "10.1f"), or a dash as wide."""
    if value is None:
        return "-".rjust(int(spec.split(".")[0] or 0))
    return format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000, help="items on each side")
    parser.add_argument("--target-mb", type=float, default=TARGET_MB, help="peak memory target")
    parser.add_argument("--no-trace", action="store_true", help="skip the tracemalloc runs")
    parser.add_argument(
        "--phase",
        choices=PHASES,
        help="run one phase in this process, print its JSON (for cProfile)",
    )
    parser.add_argument("--trace", action="store_true", help="with --phase: under tracemalloc")
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(run_phase(args.phase, args.items, args.trace)))
        return

    timed = {phase: child(phase, args.items, trace=False) for phase in PHASES}
    traced = {} if args.no_trace else {p: child(p, args.items, trace=True) for p in PHASES}

    names = {
        "sync": "engine sync (pages of 1000, writes)",
        "dry": "engine dry run (pages, plan only)",
        "plain": "plain full comparison (1 listing)",
    }
    print(
        f"initial sync, {args.items} items per side ({args.items // 2} twins), SqlStore on SQLite"
    )
    print(
        f"{'method':<38} {'wall s':>8} {'CPU s':>8} {'svc CPU':>8} {'own CPU':>8} {'traced MB':>10} {'kept MB':>8} "
        f"{'RSS MB':>7} {'maxRSS MB':>9} {'calls':>7} {'requests':>8}"
    )
    for phase in PHASES:
        t, m = timed[phase], traced.get(phase, {})
        print(
            f"{names[phase]:<38} {t['wall_s']:>8.1f} {t['cpu_s']:>8.1f} "
            f"{t['service_cpu_s']:>8.1f} {t['cpu_s'] - t['service_cpu_s']:>8.1f} "
            f"{fmt(m.get('traced_peak_mb'), '10.1f')} {fmt(m.get('traced_kept_mb'), '8.1f')} "
            f"{t['rss_before_mb']:>7.0f} {t['maxrss_mb']:>9.0f} {t['calls_total']:>7} "
            f"{t['requests']:>8}"
        )
    print("(svc CPU: CPU time inside the two in-memory services, listing, parsing and storing;")
    print(" own CPU: the rest, what the engine or the plain comparison spent;")
    print(" traced MB: tracemalloc peak of the phase, in a separate traced run; kept MB: still")
    print(" held when it ended; RSS MB: the process before the phase, both sides built;")
    print(" maxRSS MB: ru_maxrss of the untraced run's whole process; calls: the sum of both")
    print(" connectors' `calls`, one per item written; requests: a batch of writes as one)")
    sync_run, dry, plain = timed["sync"], timed["dry"], timed["plain"]
    print(
        f"sync: status {sync_run['status']}, {sync_run['pages']} plans, counts {sync_run['counts']}"
    )
    print(f"sync calls: {sync_run['calls']}, groupware batches {sync_run['batches']['gw']}")
    print(f"dry run: counts {dry['counts']}")
    print(f"plain comparison: {plain['counts']}")
    print(f"result: {sync_run['check']}, links {sync_run['linked']}")

    for figures in timed.values():
        figures["own_cpu_s"] = figures["cpu_s"] - figures["service_cpu_s"]

    def ratio(phase: str, key: str, figures: dict[str, dict[str, Any]] = timed) -> str:
        return f"x{figures[phase][key] / figures['plain'][key]:.1f}"

    print(
        f"ratio to the plain comparison: sync wall {ratio('sync', 'wall_s')}, "
        f"CPU {ratio('sync', 'cpu_s')}; dry run wall {ratio('dry', 'wall_s')}, "
        f"CPU {ratio('dry', 'cpu_s')}; own CPU: sync {ratio('sync', 'own_cpu_s')}, "
        f"dry run {ratio('dry', 'own_cpu_s')}"
    )
    if traced:
        print(
            f"traced peak to the plain comparison's: sync {ratio('sync', 'traced_peak_mb', traced)}, "
            f"dry run {ratio('dry', 'traced_peak_mb', traced)}"
        )

    result = sync_run["check"]
    duplicates = result["crm_duplicates"] + result["gw_duplicates"]
    growth = sync_run["maxrss_mb"] - sync_run["rss_before_mb"]
    peak = traced["sync"]["traced_peak_mb"] if traced else None
    problems = []
    if peak is not None and peak >= args.target_mb:
        problems.append(f"traced peak {peak:.0f} MB >= {args.target_mb:.0f} MB")
    if growth >= args.target_mb:
        problems.append(f"RSS grew {growth:.0f} MB >= {args.target_mb:.0f} MB")
    if duplicates:
        problems.append(f"{duplicates} duplicates")
    if not result["converged"] or sync_run["status"] != "succeeded":
        problems.append(f"not converged (status {sync_run['status']})")
    summary = (
        f"peak {fmt(peak, '.0f')} MB traced, RSS +{growth:.0f} MB (max {sync_run['maxrss_mb']:.0f} MB)"
        f" (target < {args.target_mb:.0f} MB), {duplicates} duplicates, {result['expected_per_side']} items per side"
        f" on both; sync {sync_run['wall_s']:.0f} s wall, {sync_run['cpu_s']:.0f} s CPU vs"
        f" {plain['wall_s']:.1f} s wall, {plain['cpu_s']:.1f} s CPU for the plain comparison"
    )
    if problems:
        print(f"FAIL: {'; '.join(problems)} ({summary})")
        sys.exit(1)
    print(f"PASS: {summary}")


if __name__ == "__main__":
    main()
