"""TLS is never skipped when TLS is the problem: every host Autodiscover tried is probed
(protocols, chain, name, expiry), also when Autodiscover failed because of TLS, and TLS
failures read as plain words everywhere, never as OpenSSL's text. Real TLS servers with
demo-CA certificates of every kind, a real DNS server, the whole set of checks."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response

from checksite.checks.context import CheckContext, parse_target
from checksite.checks.model import Report, Step
from checksite.checks.registry import select
from checksite.checks.runner import run_checks
from common.netguard import GuardPolicy, NetGuard
from simulators.dns import DnsServer
from simulators.exchange.autodiscover import Answer, pox_response
from simulators.exchange.soap import BUILDS
from simulators.platform.addresses import AddressPool
from tests.fixtures.checks import find_step
from tests.fixtures.simulators import Serve

DOMAIN = "tlscase.example"
AUTODISCOVER = f"autodiscover.{DOMAIN}"
LIBRARY_TEXT = ("[SSL", "_ssl.c", "SSLError", "CERTIFICATE_VERIFY_FAILED", "ALERT", "verify failed")


def exchange_answering_settings() -> Flask:
    app = Flask("autodiscover")

    @app.post("/autodiscover/autodiscover.xml")
    def settings() -> Response:
        ews_url = f"https://{AUTODISCOVER}/EWS/Exchange.asmx"
        answer = Answer(f"alice@{DOMAIN}", ews_url=ews_url, ews_host=AUTODISCOVER)
        return Response(pox_response(answer, BUILDS["2019"]), content_type="text/xml")

    return app


def run(dns: DnsServer, ca_file: str) -> Report:
    guard = NetGuard(
        GuardPolicy(
            allow_private=True,
            dns_servers=(dns.address,),
            ca_bundle=Path(ca_file),
            timeout=3.0,
        )
    )
    return run_checks(CheckContext(parse_target(f"alice@{DOMAIN}"), guard), select(), 10.0)


def every_step(report: Report) -> Iterator[Step]:
    pending = [step for check in report.checks for step in check.steps]
    while pending:
        step = pending.pop()
        yield step
        pending += step.children


@pytest.fixture
def tls_world(
    serve: Serve, dns_server: Callable[..., DnsServer], sim_addresses: AddressPool
) -> Callable[..., DnsServer]:
    def start(root: dict[str, str] | None, autodiscover: dict[str, str]) -> DnsServer:
        records = [(DOMAIN, "MX", f"10 mail.{DOMAIN}.")]
        for name, setup, app in (
            (DOMAIN, root, Flask("website")),
            (AUTODISCOVER, autodiscover, exchange_answering_settings()),
        ):
            if setup is None:
                continue
            address = sim_addresses.allocate()
            serve(app, host=address, port=443, hostnames=[name], **setup)
            records.append((name, "A", address))
        return dns_server(records)

    return start


# (server set-up, what Autodiscover says, what the TLS probe's failing step says)
FAILURES: list[tuple[dict[str, Any], str, str]] = [
    ({"tls_profile": "tls10_only"}, "speaks only an old TLS version", "TLS 1.2 is not offered"),
    ({"tls_profile": "no_tls12"}, "speaks only an old TLS version", "TLS 1.2 is not offered"),
    ({"cert": "expired"}, "The certificate has expired.", "The certificate has expired."),
    ({"cert": "not_yet_valid"}, "not valid yet", "not valid yet"),
    ({"cert": "wrong_name"}, f"not issued for {AUTODISCOVER}", f"not issued for {AUTODISCOVER}"),
    ({"cert": "self_signed"}, "self-signed", "self-signed"),
    ({"cert": "unknown_ca"}, "CA that is not trusted", "CA that is not trusted"),
]


@pytest.mark.parametrize(("setup", "said", "probed"), FAILURES, ids=[str(f[0]) for f in FAILURES])
def test_autodiscover_failing_on_tls_leads_to_the_tls_probe_of_that_host(
    tls_world: Callable[..., DnsServer],
    demo_ca: Any,
    setup: dict[str, Any],
    said: str,
    probed: str,
) -> None:
    report = run(tls_world(None, setup), demo_ca.ca_file)
    checks = {c.id: c for c in report.checks}
    method = find_step(checks["autodiscover"].steps, "autodiscover.method.2")
    assert method.status == "fail"
    assert "TLS failed: " in method.message and said in method.message
    tls = checks["tls"]
    assert tls.status == "fail"  # not skipped: TLS is why Autodiscover failed
    (host,) = tls.steps
    assert host.title == f"{AUTODISCOVER} (tried by Autodiscover)"
    assert any(probed in s.message and s.status == "fail" for s in host.children)
    assert {c.title for c in host.children} >= {"TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"}
    assert "Certificate" in {c.title for c in host.children}
    text = json.dumps(report.to_dict())
    assert not [t for t in LIBRARY_TEXT if t in text]


def test_a_certificate_on_an_old_protocol_is_still_judged(
    tls_world: Callable[..., DnsServer], demo_ca: Any
) -> None:
    report = run(tls_world(None, {"tls_profile": "tls10_only", "cert": "expired"}), demo_ca.ca_file)
    host = next(c for c in report.checks if c.id == "tls").steps[0]
    certificate = next(c for c in host.children if c.title == "Certificate")
    assert certificate.status == "fail"
    assert "has expired" in certificate.message


def test_a_tls_problem_on_a_host_tried_before_the_working_one_is_a_warning(
    tls_world: Callable[..., DnsServer], demo_ca: Any
) -> None:
    # The website on the bare domain has an expired certificate; autodiscover.<domain> works.
    report = run(tls_world({"cert": "expired"}, {}), demo_ca.ca_file)
    checks = {c.id: c for c in report.checks}
    assert find_step(checks["autodiscover"].steps, "autodiscover.result").status == "pass"
    tls = checks["tls"]
    tried = next(s for s in tls.steps if s.title.endswith("(tried by Autodiscover)"))
    assert tried.title.startswith(DOMAIN)
    assert tried.status == "warn"
    assert "tries this host before the one that works" in tried.message
    assert "has expired" in tried.message
    used = next(s for s in tls.steps if s.title == AUTODISCOVER)
    assert used.status == "pass"
    assert tls.status == "warn"


def test_a_host_where_nothing_listens_is_left_to_autodiscover(
    tls_world: Callable[..., DnsServer], demo_ca: Any, sim_addresses: AddressPool
) -> None:
    dns = tls_world(None, {})
    dns.add_records([(DOMAIN, "A", sim_addresses.allocate())])  # a website elsewhere, no 443
    tls = next(c for c in run(dns, demo_ca.ca_file).checks if c.id == "tls")
    assert [s.title for s in tls.steps] == [AUTODISCOVER]
