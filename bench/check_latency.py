"""How long a check takes when every simulated request is slow, and what a dead host costs.

Starts the simulators in-process, injects 100 ms of latency into every simulated HTTP request,
and runs every check for healthy demo targets three ways: concurrently (the product's runner),
and one after another in one thread (what a naive runner would do). Then a target whose EWS
host accepts TCP and never answers, under a short deadline.

    .venv/bin/python bench/check_latency.py [--latency-ms 100] [--deadline 3]

Targets: total <= 1.5 x the slowest single check; the black hole ends by deadline + 1 s.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checksite.checks.context import CheckContext, parse_target  # noqa: E402
from checksite.checks.registry import select  # noqa: E402
from checksite.checks.runner import run_checks  # noqa: E402
from checksite.checks.wiring import make_context  # noqa: E402
from common.config import Settings  # noqa: E402
from simulators.platform.control import control_of  # noqa: E402
from simulators.runner import SimulatorStack, start_all  # noqa: E402
from simulators.world.microsoft import SYNCHRONIZER_APP_ID, SYNCHRONIZER_SECRET  # noqa: E402

HEALTHY = [
    ("alice@proseware.example", "Alice-Passw0rd!"),  # Exchange 2019 on-premises
    ("adele@contoso.example", None),  # Microsoft 365, app consented
]


def settings_for(stack: SimulatorStack, deadline: float) -> Settings:
    return Settings.load(
        environ={},
        instance_path=Path(tempfile.mkdtemp(prefix="bench-")),
        microsoft_client_id=SYNCHRONIZER_APP_ID,
        microsoft_client_secret=SYNCHRONIZER_SECRET,
        microsoft_authority_host=stack.urls["login"],
        microsoft_graph_url=stack.urls["graph"],
        microsoft_outlook_url=stack.urls["outlook"],
        google_oauth_url=stack.urls["google"],
        google_api_url=stack.urls["google"],
        check_allow_private_networks=True,
        check_dns_servers=(f"{stack.dns_host}:{stack.dns_port}",),
        check_ca_bundle=Path(stack.ca_file),
        check_timeout_seconds=deadline,
    )


def add_latency(stack: SimulatorStack, latency_ms: int) -> None:
    for app in stack.apps.values():
        control_of(app).faults.add({"kind": "latency", "latency_ms": latency_ms, "fraction": 1.0})


def sequential_seconds(context: CheckContext) -> float:
    started = time.perf_counter()
    for spec in select():
        for _ in spec.run(context):
            pass
    return time.perf_counter() - started


def healthy(stack: SimulatorStack, settings: Settings) -> list[tuple[str, float, float, float]]:
    rows = []
    for text, password in HEALTHY:
        target = parse_target(text, password=password)
        started = time.perf_counter()
        report = run_checks(
            make_context(settings, target), select(), settings.check_timeout_seconds
        )
        total = time.perf_counter() - started
        slowest = max(check.elapsed_ms for check in report.checks) / 1000
        sequential = sequential_seconds(make_context(settings, target))
        rows.append((f"{text} ({report.verdict})", total, slowest, sequential))
    return rows


def black_hole(stack: SimulatorStack, settings: Settings) -> tuple[float, list[str]]:
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)  # accepts, never answers
    try:
        port = listener.getsockname()[1]
        target = parse_target(
            "alice@proseware.example",
            password="Alice-Passw0rd!",
            ews_url=f"https://127.0.0.1:{port}/EWS/Exchange.asmx",
            oab_url=f"https://127.0.0.1:{port}/OAB/",
        )
        started = time.perf_counter()
        report = run_checks(
            make_context(settings, target), select(), settings.check_timeout_seconds
        )
        elapsed = time.perf_counter() - started
    finally:
        listener.close()
    return elapsed, [c.id for c in report.checks if c.timed_out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--deadline", type=float, default=3.0, help="for the black-hole run")
    args = parser.parse_args()
    with start_all() as stack:
        add_latency(stack, args.latency_ms)
        settings = settings_for(stack, 20.0)
        run_checks(make_context(settings, parse_target("proseware.example")), select(), 20)  # warm
        print(f"latency injected: {args.latency_ms} ms on every simulated HTTP request")
        print(
            f"{'target':40} {'total':>7} {'slowest':>8} {'one-by-one':>10} "
            f"{'total/slowest':>13} {'one-by-one/total':>16}"
        )
        ok = True
        for name, total, slowest, sequential in healthy(stack, settings):
            ratio = total / slowest
            ok = ok and ratio <= 1.5
            print(
                f"{name:40} {total:6.2f}s {slowest:7.2f}s {sequential:9.2f}s "
                f"{ratio:13.2f} {sequential / total:16.2f}"
            )
        elapsed, timed_out = black_hole(stack, settings_for(stack, args.deadline))
        limit = args.deadline + 1
        print(
            f"black-holed EWS host, deadline {args.deadline:g} s: report after {elapsed:.2f} s "
            f"(limit {limit:g} s); out of time: {', '.join(timed_out) or 'none'}"
        )
        ok = ok and elapsed <= limit
        print("targets met" if ok else "TARGETS MISSED")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
