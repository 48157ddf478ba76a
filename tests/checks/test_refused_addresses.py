"""A report never says which internal address the guard refused: a visitor must not learn what
names resolve to inside (the Check site's resolver may be an internal one). Every host of this
domain resolves inside, in every range; the report, through the CLI, the API and the page, says
"an internal address" and never the address, in any spelling."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import time
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner
from flask import Flask

from checksite.cli import main
from simulators.dns import DnsServer

ADDRESSES = {
    "leaky.example": "10.11.12.13",  # Autodiscover at the root domain
    "mx.leaky.example": "192.168.77.1",
    "autodiscover.leaky.example": "172.16.5.4",
    "srv.leaky.example": "::ffff:10.9.8.7",  # IPv4 inside IPv6
    "ews.leaky.example": "100.64.3.2",
    "crm.leaky.example": "169.254.169.254",
    "oab.leaky.example": "fd00::5",
}
RECORDS = [
    (name, "AAAA" if ":" in address else "A", address) for name, address in ADDRESSES.items()
] + [
    ("leaky.example", "MX", "10 mx.leaky.example."),
    ("_autodiscover._tcp.leaky.example", "SRV", "0 0 443 srv.leaky.example."),
]
MANUAL = [
    "--ews-url",
    "https://ews.leaky.example/EWS/Exchange.asmx",
    "--oab-url",
    "https://oab.leaky.example/OAB/",
    "--superoffice-url",
    "https://crm.leaky.example/SuperOffice",
]


def spellings(address: str) -> set[str]:
    """Every way a report could spell the address (and the IPv4 inside an IPv6 one)."""
    parsed = ipaddress.ip_address(address)
    found = {address, str(parsed), parsed.exploded}
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        found |= {str(parsed.ipv4_mapped), f"::ffff:{parsed.ipv4_mapped}"}
    return found


def assert_no_refused_address(text: str) -> None:
    for address in ADDRESSES.values():
        for spelling in spellings(address):
            assert spelling not in text, f"the report shows {spelling}"


def test_the_cli_report_never_names_a_refused_address(
    dns_server: Callable[..., DnsServer], tmp_path: Path
) -> None:
    dns = dns_server(RECORDS)
    env = {"SYNCHRONIZER_INSTANCE_PATH": str(tmp_path / "instance")}
    base = ["check", "--dns-server", dns.address, "--timeout", "10"]
    for args in (["leaky.example"], ["someone@leaky.example", *MANUAL]):
        for output in ([], ["--json"]):
            result = CliRunner().invoke(main, [*base, *args, *output], env=env)
            assert result.exit_code == 1, result.output  # refused hosts fail, readably
            assert "an internal address" in result.output
            assert_no_refused_address(result.output)
            if output:
                report = json.loads(result.output)
                assert "timed_out" in report["checks"][0]  # a whole report, not an error


def test_the_api_and_the_page_never_name_a_refused_address(
    check_app: Flask, dns_server: Callable[..., DnsServer]
) -> None:
    dns = dns_server(RECORDS)
    check_app.config["SYNCHRONIZER"] = dataclasses.replace(
        check_app.config["SYNCHRONIZER"],
        check_allow_private_networks=False,
        check_dns_servers=(dns.address,),
    )
    client = check_app.test_client()
    body = {
        "target": "someone@leaky.example",
        "superoffice_url": "https://crm.leaky.example/SuperOffice",
    }
    report_id = client.post("/api/checks", json=body).get_json()["id"]
    deadline = time.monotonic() + 20
    while (state := client.get(f"/api/checks/{report_id}").get_json())["status"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    text = json.dumps(state)
    assert "an internal address" in text
    assert_no_refused_address(text)
    assert_no_refused_address(client.get(f"/check/r/{report_id}").text)
    assert_no_refused_address(client.get(f"/check/r/{report_id}.json").text)
    assert_no_refused_address(client.get(f"/check/r/{report_id}/events").text)
