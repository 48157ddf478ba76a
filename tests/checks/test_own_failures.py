"""When the Check site's own resolver or network fails, the report says so and blames neither
the customer's DNS nor the customer's firewall (issue 9, point 9). Real servers throughout: a
DNS server that refuses, closed ports on loopback, the simulated world."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from checksite.checks import autodiscover, firewall
from checksite.checks.own_network import OURS
from checksite.cli import main
from common.config import Settings
from simulators.dns import DnsServer
from simulators.runner import SimulatorStack
from tests.fixtures.checks import check_context, find_step, run_check, sim_guard

CLOSED = "https://127.0.0.1:1"  # nothing listens there: every connection is refused at once


def messages(steps: list[dict[str, Any]]) -> Iterator[str]:
    for step in steps:
        yield step["message"] + " " + step["remediation"]
        yield from messages(step["children"])


def cli_report(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        main, ["check", "--json", "--allow-private-networks", *args], env=env
    )
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.output)  # type: ignore[no-any-return]


def test_a_resolver_that_refuses_everything_is_our_failure(tmp_path: Path) -> None:
    with DnsServer([("wingtip.example", "MX", "10 mail.wingtip.example.")]) as ours:
        for name in (".", "wingtip.example"):
            ours.set_failure(name, "refused")
        env = {"SYNCHRONIZER_INSTANCE_PATH": str(tmp_path / "instance")}
        report = cli_report(env, "alice@wingtip.example", "--dns-server", ours.address)
    checks = {c["id"]: c for c in report["checks"]}
    step = checks["dns"]["steps"][0]
    assert step["status"] == "fail"
    assert step["title"] == "The Check site's DNS resolver"
    assert OURS in step["message"]
    # Said once: nothing else fails, and nothing blames the customer's DNS or firewall.
    assert {c["id"] for c in report["checks"] if c["status"] == "fail"} == {"dns"}
    every = " ".join(m for c in report["checks"] for m in messages(c["steps"]))
    assert "firewall drops" not in every and "domain's DNS servers" not in every


def test_a_resolver_that_answers_puts_a_failing_domain_on_the_domain(tmp_path: Path) -> None:
    with DnsServer([("wingtip.example", "MX", "10 mail.wingtip.example.")]) as server:
        server.set_failure("wingtip.example", "refused")  # only the domain: our resolver works
        env = {"SYNCHRONIZER_INSTANCE_PATH": str(tmp_path / "instance")}
        report = cli_report(env, "alice@wingtip.example", "--dns-server", server.address)
    step = next(c for c in report["checks"] if c["id"] == "dns")["steps"][0]
    assert step["title"] == "The domain resolves"
    assert "domain's DNS servers are failing" in step["message"]


def test_microsoft_out_of_reach_is_not_the_customers_firewall(
    sims: SimulatorStack, sim_settings: Settings, tmp_path: Path
) -> None:
    env = {
        "SYNCHRONIZER_INSTANCE_PATH": str(tmp_path / "instance"),
        "SYNCHRONIZER_MICROSOFT_AUTHORITY_HOST": CLOSED,
        "SYNCHRONIZER_MICROSOFT_GRAPH_URL": CLOSED.replace(":1", ":2"),
    }
    args = ["adele@contoso.example", "--dns-server", f"{sims.dns_host}:{sims.dns_port}"]
    report = cli_report(env, *args, "--ca-bundle", sims.ca_file)
    checks = {c["id"]: c for c in report["checks"]}
    # The MX still says Microsoft 365; the tenant lookup failing is ours, not the domain's.
    assert checks["dns"]["status"] == "pass"
    tenant = checks["m365_tenant"]["steps"][0]
    assert tenant["status"] == "fail" and "not a fault of your set-up" in tenant["message"]
    reach = [s for s in checks["firewall"]["steps"] if s["id"] != "firewall.outbound_ip"]
    assert len(reach) == 2 and all(s["status"] == "fail" for s in reach)
    for step in reach:
        assert "not of your firewall" in step["message"]
        assert "Nothing to change on your side" in step["remediation"]


def test_a_customer_port_is_the_customers_only_while_we_get_out(
    sims: SimulatorStack, sim_settings: Settings
) -> None:
    def firewall_step(settings: Settings) -> Any:
        context = check_context(
            sim_guard(sims),
            "alice@wingtip.example",
            settings,
            ews_url="https://127.0.0.1:1/EWS/Exchange.asmx",
            oab_url="https://127.0.0.1:1/OAB/",
        )
        return find_step(run_check(firewall, context).steps, "firewall.127.0.0.1")

    theirs = firewall_step(sim_settings)
    assert "TCP 1 refused" in theirs.message and OURS not in theirs.message
    cut_off = dataclasses.replace(sim_settings, microsoft_authority_host=CLOSED)
    ours = firewall_step(cut_off)
    assert ours.status == "fail"
    assert OURS in ours.message
    assert "Make sure" not in ours.remediation


def test_autodiscover_finding_nothing_while_we_are_cut_off_says_so(
    sims: SimulatorStack, sim_settings: Settings
) -> None:
    cut_off = dataclasses.replace(sim_settings, microsoft_authority_host=CLOSED)
    result = run_check(autodiscover, check_context(sim_guard(sims), "wingtip.example", cut_off))
    final = find_step(result.steps, "autodiscover.result")
    assert final.title == "Autodiscover could not be tested"
    assert OURS in final.message
    normal = run_check(
        autodiscover, check_context(sim_guard(sims), "wingtip.example", sim_settings)
    )
    assert OURS not in find_step(normal.steps, "autodiscover.result").message
