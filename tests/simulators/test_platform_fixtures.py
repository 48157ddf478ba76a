"""The shared simulator fixtures other areas' tests build on."""

from __future__ import annotations

from collections.abc import Callable

import dns.resolver
import pytest

from simulators.dns import DnsServer
from simulators.platform.control import control_of
from simulators.runner import SimulatorStack


def test_use_sim_dns_points_the_default_resolver_at_the_simulated_dns(
    use_sim_dns: dns.resolver.Resolver, sim_stack: SimulatorStack
) -> None:
    assert dns.resolver.default_resolver is use_sim_dns
    assert use_sim_dns.nameservers == [sim_stack.dns_host]
    answer = dns.resolver.resolve("icloudmail.example", "MX")
    assert len(answer) == 2


def test_the_default_resolver_is_restored_afterwards(sim_stack: SimulatorStack) -> None:
    current = dns.resolver.default_resolver
    assert current is None or current.nameservers != [sim_stack.dns_host]


def test_dns_server_factory(dns_server: Callable[..., DnsServer]) -> None:
    server = dns_server([("only.example", "TXT", '"here"')])
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = [server.host], server.port
    assert resolver.resolve("only.example", "TXT")[0].to_text() == '"here"'
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("other.only.example", "A")


def test_sims_clears_faults_and_counters(
    sim_stack: SimulatorStack, request: pytest.FixtureRequest
) -> None:
    for app in sim_stack.apps.values():
        control_of(app).faults.add({"kind": "drop", "path": "^/never$"})
        control_of(app).stats.count("GET /left-over")
    sims = request.getfixturevalue("sims")
    for name, app in sims.apps.items():
        assert control_of(app).faults.active() == [], name
        assert control_of(app).stats.snapshot()["total"] == 0, name


def test_fresh_sims_is_a_stack_of_its_own(
    fresh_sims: SimulatorStack, sim_stack: SimulatorStack
) -> None:
    assert set(fresh_sims.urls) == set(sim_stack.urls)
    assert not set(fresh_sims.urls.values()) & set(sim_stack.urls.values())
    assert fresh_sims.ca_file == sim_stack.ca_file
