"""Ports (issue 9, point 17): the probes of [tls] and [firewall] touch, on each host, only the
port Synchronizer will use there: 443, or the port the service's URL names (an EWS URL given by
hand, or one Autodiscover's answer gives); never another port of that host. The firewall's
advice names the ports it probed.

The world: Exchange's EWS on port 8443 of mail.portcase.example, whose ports 443 and 80 record
every connection (none may come); autodiscover.portcase.example answers with that EWS URL."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response

from checksite.checks.context import CheckContext, parse_target
from checksite.checks.model import Report
from checksite.checks.registry import select
from checksite.checks.runner import run_checks
from common.config import Settings
from common.netguard import GuardPolicy, NetGuard
from simulators.dns import DnsServer
from simulators.exchange.autodiscover import Answer, pox_response
from simulators.exchange.soap import BUILDS
from simulators.platform.addresses import AddressPool
from tests.fixtures.checks import find_step
from tests.fixtures.hostile_servers import HostileListener, silent
from tests.fixtures.simulators import Serve

DOMAIN = "portcase.example"
MAIL = f"mail.{DOMAIN}"
AUTODISCOVER = f"autodiscover.{DOMAIN}"
EWS_URL = f"https://{MAIL}:8443/EWS/Exchange.asmx"


def exchange_on_8443() -> Flask:
    app = Flask("ews-8443")

    @app.post("/EWS/Exchange.asmx")
    def ews() -> Response:  # as Exchange: a sign-in challenge without credentials
        return Response(status=401, headers={"WWW-Authenticate": "NTLM"})

    @app.get("/")
    def home() -> Response:
        return Response("", status=403)

    return app


def autodiscover_naming_8443() -> Flask:
    app = Flask("autodiscover")

    @app.post("/autodiscover/autodiscover.xml")
    def settings() -> Response:
        answer = Answer(f"alice@{DOMAIN}", ews_url=EWS_URL, ews_host=f"{MAIL}:8443")  # OAB too
        return Response(pox_response(answer, BUILDS["SE"]), content_type="text/xml")

    return app


@dataclasses.dataclass
class PortWorld:
    dns: DnsServer
    usual_ports: list[HostileListener]  # the mail host's 443 and 80

    def touched(self) -> list[int]:
        return [port for port, w in zip((443, 80), self.usual_ports, strict=True) if w.connections]


@pytest.fixture
def port_world(
    serve: Serve, dns_server: Callable[..., DnsServer], sim_addresses: AddressPool
) -> Iterator[PortWorld]:
    mail, autodiscover = sim_addresses.allocate(), sim_addresses.allocate()
    serve(exchange_on_8443(), host=mail, port=8443, hostnames=[MAIL])
    serve(autodiscover_naming_8443(), host=autodiscover, port=443, hostnames=[AUTODISCOVER])
    usual = [HostileListener(mail, port, silent) for port in (443, 80)]
    records = [(DOMAIN, "MX", f"10 {MAIL}."), (MAIL, "A", mail), (AUTODISCOVER, "A", autodiscover)]
    try:
        yield PortWorld(dns_server(records), usual)
    finally:
        for listener in usual:
            listener.stop()


def run(world: PortWorld, ca_file: str, **target: Any) -> Report:
    guard = NetGuard(
        GuardPolicy(
            allow_private=True,
            dns_servers=(world.dns.address,),
            ca_bundle=Path(ca_file),
            timeout=2.0,
        )
    )
    settings = dataclasses.replace(
        Settings.load(environ={}), outbound_ip="203.0.113.7", check_allow_private_networks=True
    )
    context = CheckContext(parse_target(f"alice@{DOMAIN}", **target), guard, settings)
    return run_checks(context, select(), 8.0)


@pytest.mark.parametrize(
    "given", [{"ews_url": EWS_URL}, {}], ids=["EWS URL given by hand", "from Autodiscover"]
)
def test_a_service_on_another_port_is_probed_on_that_port_only(
    port_world: PortWorld, demo_ca: Any, given: dict[str, str]
) -> None:
    report = run(port_world, demo_ca.ca_file, **given)
    checks = {c.id: c for c in report.checks}
    tls_titles = [s.title for s in checks["tls"].steps]
    assert f"{MAIL}:8443" in tls_titles, tls_titles
    assert all(not t.startswith(f"{MAIL} ") and t != MAIL for t in tls_titles), tls_titles
    reach = [s for s in checks["firewall"].steps if s.title.endswith(f"{MAIL}:8443")]
    assert [s.status for s in reach] == ["pass"]
    assert reach[0].title == f"Exchange Web Services: {MAIL}:8443"
    if not given:  # what each host is for: the Autodiscover endpoint is not EWS
        titles = [s.title for s in checks["firewall"].steps]
        assert f"Autodiscover: {AUTODISCOVER}" in titles
    assert "port 8443" in " ".join(c.message for c in reach[0].children)
    outbound = find_step(checks["firewall"].steps, "firewall.outbound_ip")
    assert f"8443 (for {MAIL})" in outbound.message.partition(" on TCP ")[2]
    assert port_world.touched() == []  # no other port of that host was touched


def test_a_host_autodiscover_was_redirected_to_is_probed_on_the_redirects_port(
    serve: Serve, dns_server: Callable[..., DnsServer], sim_addresses: AddressPool, demo_ca: Any
) -> None:
    """The HTTP redirect method sends Autodiscover to port 8443 of a server that speaks only
    TLS 1.0: [tls] says why there, on that port (Autodiscover used it), and on no other."""
    mail, autodiscover = sim_addresses.allocate(), sim_addresses.allocate()
    redirect = Flask("redirect")

    @redirect.get("/autodiscover/autodiscover.xml")
    def elsewhere() -> Response:
        target = f"https://{MAIL}:8443/autodiscover/autodiscover.xml"
        return Response(status=302, headers={"Location": target})

    serve(redirect, tls=False, host=autodiscover, port=80)
    serve(
        autodiscover_naming_8443(), host=mail, port=8443, hostnames=[MAIL], tls_profile="tls10_only"
    )
    usual = [HostileListener(mail, port, silent) for port in (443, 80)]
    records = [(DOMAIN, "MX", f"10 {MAIL}."), (MAIL, "A", mail), (AUTODISCOVER, "A", autodiscover)]
    try:
        world = PortWorld(dns_server(records), usual)
        report = run(world, demo_ca.ca_file)
        tls = next(c for c in report.checks if c.id == "tls")
        (host,) = tls.steps
        assert host.title == f"{MAIL}:8443 (tried by Autodiscover)"
        assert host.status == "fail"
        assert any("TLS 1.2 is not offered" in c.message for c in host.children)
        assert world.touched() == []
    finally:
        for listener in usual:
            listener.stop()
