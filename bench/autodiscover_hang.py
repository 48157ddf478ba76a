"""Autodiscover when the domain's own website accepts connections and never answers.

Outlook and exchangelib try https://<domain>/autodiscover first and wait for it before they
try autodiscover.<domain>. Here the demo organisation proseware.example (Exchange 2019, whose
Autodiscover lives on autodiscover.proseware.example) gets a website that accepts TCP and
never answers, and in one run, against the same simulated servers and DNS:

- the Check site's [autodiscover] check (methods at once, Outlook's order, a grace for the
  hanging method, then a warning), through the product's runner and its default deadline;
- exchangelib's own autodiscover (`exchangelib.autodiscover.discover`), unchanged.

    .venv/bin/python bench/autodiscover_hang.py [--rounds 1]

Targets: the check takes <= 4 s and is >= 2.5x faster than exchangelib, and both find EWS.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dns.resolver  # noqa: E402
import requests  # noqa: E402
from exchangelib import Credentials  # noqa: E402
from exchangelib.autodiscover import cache as autodiscover_cache  # noqa: E402
from exchangelib.autodiscover import clear_cache, discover  # noqa: E402
from exchangelib.autodiscover.discovery import Autodiscovery  # noqa: E402
from exchangelib.protocol import BaseProtocol, close_connections  # noqa: E402

from checksite.checks import autodiscover  # noqa: E402
from checksite.checks.context import parse_target  # noqa: E402
from checksite.checks.registry import CheckSpec  # noqa: E402
from checksite.checks.runner import run_checks  # noqa: E402
from checksite.checks.wiring import DEFAULT_DEADLINE_S, make_context  # noqa: E402
from common.config import Settings  # noqa: E402
from simulators.runner import SimulatorStack, start_all  # noqa: E402

DOMAIN = "proseware.example"
MAILBOX, PASSWORD = f"alice@{DOMAIN}", "Alice-Passw0rd!"
TARGET_SECONDS, TARGET_RATIO = 4.0, 2.5


class SilentWebsite:
    """Accepts every connection on (host, 443) and never sends a byte."""

    def __init__(self, host: str) -> None:
        self.listener = socket.create_server((host, 443), backlog=64)
        self.listener.settimeout(0.1)
        self.accepted: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                self.accepted.append(self.listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=2)
        self.listener.close()
        for conn in self.accepted:
            conn.close()


def check_site(stack: SimulatorStack) -> tuple[float, str]:
    settings = Settings.load(
        environ={},
        instance_path=Path(tempfile.mkdtemp(prefix="bench-")),
        check_allow_private_networks=True,
        check_dns_servers=(f"{stack.dns_host}:{stack.dns_port}",),
        check_ca_bundle=Path(stack.ca_file),
        check_timeout_seconds=DEFAULT_DEADLINE_S,
    )
    context = make_context(settings, parse_target(MAILBOX, password=PASSWORD))
    spec = CheckSpec(autodiscover.ID, autodiscover.TITLE, autodiscover.run)
    started = time.perf_counter()
    report = run_checks(context, [spec], settings.check_timeout_seconds)
    elapsed = time.perf_counter() - started
    steps = {step.id: step for step in report.checks[0].steps}
    for step in list(steps.values()):  # the round's methods are the first step's children
        steps.update({child.id: child for child in step.children})
    result = steps["autodiscover.result"]
    first = steps["autodiscover.method.1"]
    status = report.checks[0].status
    found = f"{status}: {result.details.get('ews_url')} by {result.details.get('method')}"
    return elapsed, f"{found}; https://{DOMAIN}: {first.status} ({first.message})"


def exchangelib_discover(stack: SimulatorStack, cache_dir: Path) -> tuple[float, str]:
    """exchangelib unchanged; only pointed at the simulated DNS and taught the demo CA."""
    ca_file = stack.ca_file

    class DemoCAAdapter(requests.adapters.HTTPAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            kwargs["verify"] = ca_file
            return super().send(request, **kwargs)

    Autodiscovery.DNS_RESOLVER_KWARGS = {"configure": False}
    Autodiscovery.DNS_RESOLVER_ATTRS = {
        "nameservers": [stack.dns_host],
        "port": stack.dns_port,
        "timeout": 2.0,
    }
    BaseProtocol.HTTP_ADAPTER_CLS = DemoCAAdapter
    autodiscover_cache.AUTODISCOVER_PERSISTENT_STORAGE = cache_dir / "autodiscover.cache"
    close_connections()
    clear_cache()
    dns.resolver.override_system_resolver(stack.resolver())  # requests' getaddrinfo too
    try:
        started = time.perf_counter()
        try:
            response, protocol = discover(MAILBOX, credentials=Credentials(MAILBOX, PASSWORD))
            found = f"pass: {protocol.service_endpoint}"
        except Exception as exc:  # shown, not hidden: the comparison needs both outcomes
            found = f"fail: {type(exc).__name__}: {exc}"
        return time.perf_counter() - started, found
    finally:
        dns.resolver.restore_system_resolver()
        clear_cache()
        close_connections()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    ok = True
    with start_all() as stack, tempfile.TemporaryDirectory() as cache_dir:
        website = stack.addresses.address_of(f"www.{DOMAIN}")
        assert website is not None, "the demo world gives the website an address"
        silent = SilentWebsite(website)
        try:
            print(f"https://{DOMAIN} ({website}:443) accepts connections and never answers")
            print(f"{'round':>5} {'Check site':>11} {'exchangelib':>12} {'ratio':>6}")
            findings: list[tuple[str, str]] = []
            for number in range(1, args.rounds + 1):
                ours, ours_found = check_site(stack)
                theirs, theirs_found = exchangelib_discover(stack, Path(cache_dir))
                ratio = theirs / ours
                ok = ok and ours <= TARGET_SECONDS and ratio >= TARGET_RATIO
                ok = ok and ours_found.startswith("warn") and theirs_found.startswith("pass")
                print(f"{number:>5} {ours:10.2f}s {theirs:11.2f}s {ratio:5.1f}x")
                findings.append((ours_found, theirs_found))
            for ours_found, theirs_found in findings[-1:]:
                print(f"Check site:  {ours_found}")
                print(f"exchangelib: {theirs_found}")
        finally:
            silent.close()
    print(
        f"targets (Check site <= {TARGET_SECONDS:g} s, >= {TARGET_RATIO:g}x faster, both find "
        f"EWS): {'met' if ok else 'MISSED'}"
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
