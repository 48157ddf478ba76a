"""`synchronizer check` end to end against the simulated world: output, JSON and exit codes."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient

from checksite.cli import main
from simulators.runner import SimulatorStack


def invoke(sims: SimulatorStack, tmp_path: Path, *args: str, password: str | None = None) -> Result:
    env = {
        "SYNCHRONIZER_INSTANCE_PATH": str(tmp_path / "instance"),
        "SYNCHRONIZER_OUTBOUND_IP": "203.0.113.7",
    }
    options = [
        "--dns-server",
        f"{sims.dns_host}:{sims.dns_port}",
        "--ca-bundle",
        sims.ca_file,
        "--allow-private-networks",
        "--timeout",
        "10",
    ]
    if password is not None:
        options.append("--password-stdin")
    return CliRunner().invoke(
        main, ["check", *options, *args], env=env, input=(password or "") + "\n"
    )


def test_a_healthy_exchange_passes_with_a_readable_tree(
    sims: SimulatorStack, tmp_path: Path
) -> None:
    result = invoke(sims, tmp_path, "alice@alpineskihouse.example", password="Alice-Passw0rd!")
    assert result.exit_code == 0, result.output
    assert "[PASS] Autodiscover" in result.output
    assert "Exchange Server Subscription Edition (SE)" in result.output
    assert (
        result.output.strip()
        .splitlines()[-1]
        .startswith("Verdict for alice@alpineskihouse.example: PASS")
    )
    assert "Alice-Passw0rd!" not in result.output


def test_exchange_2019_still_works_but_warns_with_the_upgrade_path(
    sims: SimulatorStack, tmp_path: Path
) -> None:
    result = invoke(sims, tmp_path, "alice@proseware.example", "--json", password="Alice-Passw0rd!")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["verdict"] == "warn"
    version = next(c for c in report["checks"] if c["id"] == "exchange_version")["steps"][-1]
    assert version["status"] == "warn"
    assert "out of Microsoft's support since October 2025" in version["message"]
    assert "Upgrade in place to Exchange Server Subscription Edition" in version["remediation"]


def test_a_failing_verdict_exits_1_and_json_is_the_report(
    sims: SimulatorStack, tmp_path: Path
) -> None:
    result = invoke(sims, tmp_path, "alice@lucerne.example", "--json", password="Alice-Passw0rd!")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert report["verdict"] == "fail"
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["exchange_version"]["status"] == "fail"
    assert checks["autodiscover"]["status"] == "pass"


def test_a_warning_still_exits_0(sims: SimulatorStack, tmp_path: Path) -> None:
    result = invoke(
        sims, tmp_path, "alice@oldcorp.example", "--only", "dns,tls", password="Alice-Passw0rd!"
    )
    assert result.exit_code == 0, result.output
    assert "[WARN] TLS and certificates" in result.output
    assert "] Autodiscover" not in result.output


def test_only_runs_the_named_checks(sims: SimulatorStack, tmp_path: Path) -> None:
    result = invoke(sims, tmp_path, "proseware.example", "--only", "dns", "--json")
    assert result.exit_code == 0
    assert [c["id"] for c in json.loads(result.output)["checks"]] == ["dns"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["<b>x</b>.example"], "not a valid domain name"),
        (["proseware.example", "--only", "dns,nope"], "unknown check id nope"),
        (["proseware.example", "--dns-server", "not-an-ip"], "--dns-server expects IP[:PORT]"),
        (["proseware.example", "--dns-server", "[::1]:99999"], "port must be a number"),
        (["proseware.example", "--dns-server", "[127.0.0.1]:53"], "brackets are for IPv6"),
        (["proseware.example", "--timeout", "0"], "--timeout expects seconds"),
        (["proseware.example", "--oab-url", "https://x.example/OAB/"], "--ews-url: an OAB URL"),
        (
            ["alice@proseware.example", "--ews-url", "http://mail.proseware.example/EWS/"],
            "--ews-url: the EWS URL must start with https://",
        ),
        (["proseware.example:8443"], "give an Exchange server on another port as the EWS URL"),
        (["ftp://proseware.example"], "a ftp: link is not a domain"),
        (["-alice@proseware.example"], "give the target after --"),
        (["--", "-proseware.example"], "not a valid domain name"),
    ],
)
def test_bad_usage_exits_2(
    sims: SimulatorStack, tmp_path: Path, args: list[str], message: str
) -> None:
    result = invoke(sims, tmp_path, *args)
    assert result.exit_code == 2
    assert message in result.output


def test_a_password_for_a_domain_is_bad_usage(sims: SimulatorStack, tmp_path: Path) -> None:
    result = invoke(sims, tmp_path, "proseware.example", password="x")
    assert result.exit_code == 2
    assert "--password-stdin: a password needs a mailbox address" in result.output


@pytest.mark.parametrize(
    "typed",
    [
        "mailto:alice@alpineskihouse.example?subject=Hello",
        "Alice Andersen <alice@alpineskihouse.example>",
        "alice@alpineskihouse.example:443",
    ],
)
def test_a_mailbox_as_people_paste_it(sims: SimulatorStack, tmp_path: Path, typed: str) -> None:
    result = invoke(sims, tmp_path, typed, "--only", "dns", "--json", password="Alice-Passw0rd!")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["target"] == "alice@alpineskihouse.example"
    dns = next(c for c in report["checks"] if c["id"] == "dns")
    assert dns["steps"][0]["id"] == "dns.input"  # the report says how the input was read


def test_a_mailbox_starting_with_a_dash_is_checked_after_double_dash(
    sims: SimulatorStack, tmp_path: Path
) -> None:
    result = invoke(
        sims, tmp_path, "--only", "dns", "--json", "--", "-sales@alpineskihouse.example"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["target"] == "-sales@alpineskihouse.example"


def test_an_ipv6_dns_server_with_a_port_is_one_address_everywhere(
    sims: SimulatorStack, tmp_path: Path
) -> None:
    """`[::1]:PORT` is port PORT on ::1 for the option, the setting and the guard alike."""
    from simulators.dns import DnsServer

    records = [r for r in sims.dns_server.zone.records() if "alpineskihouse" in r[0]]
    with DnsServer(records, host="::1") as server:
        assert server.address.startswith("[::1]:")
        env = {"SYNCHRONIZER_INSTANCE_PATH": str(tmp_path / "instance")}
        option = CliRunner().invoke(
            main,
            ["check", "alpineskihouse.example", "--only", "dns", "--json"]
            + ["--dns-server", server.address, "--allow-private-networks"],
            env=env,
        )
        assert option.exit_code == 0, option.output
        assert json.loads(option.output)["verdict"] == "pass"
        setting = CliRunner().invoke(
            main,
            ["check", "alpineskihouse.example", "--only", "dns", "--json"],
            env=env | {"SYNCHRONIZER_CHECK_DNS_SERVERS": server.address},
        )
        assert setting.exit_code == 0, setting.output
        assert json.loads(setting.output)["verdict"] == "pass"


def test_simulators_flag_reads_the_running_simulators_summary(
    sims: SimulatorStack, tmp_path: Path
) -> None:
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "simulators.json").write_text(json.dumps(sims.summary()))
    env = {"SYNCHRONIZER_INSTANCE_PATH": str(instance)}
    result = CliRunner().invoke(
        main, ["check", "adele@contoso.example", "--simulators", "--json"], env=env
    )
    assert result.exit_code == 0, result.output
    checks = {c["id"]: c for c in json.loads(result.output)["checks"]}
    assert checks["m365_tenant"]["status"] == "pass"  # the simulated authority was asked
    # Our demo application's keys came along (without them: "skip", not configured); anonymous,
    # the consent is not read but explained.
    assert checks["app_consent"]["status"] == "info"
    assert checks["app_consent"]["steps"][0]["id"] == "app_consent.model"
    google = CliRunner().invoke(
        main, ["check", "alice@northwind.example", "--simulators", "--json"], env=env
    )
    assert google.exit_code == 0, google.output
    assert {c["id"]: c["status"] for c in json.loads(google.output)["checks"]}[
        "google_workspace"
    ] == "info"


def test_simulators_flag_without_running_simulators_is_bad_usage(tmp_path: Path) -> None:
    env = {"SYNCHRONIZER_INSTANCE_PATH": str(tmp_path / "instance")}
    result = CliRunner().invoke(main, ["check", "contoso.example", "--simulators"], env=env)
    assert result.exit_code == 2
    assert "start `synchronizer simulators` first" in result.output


def page_fix_list(client: FlaskClient, target: str) -> list[str]:
    """The report page's "what to fix first" lines for a target, once its check is done."""
    report_id = client.post("/api/checks", json={"target": target}).get_json()["id"]
    deadline = time.monotonic() + 20
    while client.get(f"/api/checks/{report_id}").get_json()["status"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    page = client.get(f"/check/r/{report_id}").text
    items = re.findall(r'<li class="status-\w+">.*?<a href="#[^"]+">(.*?)</a></li>', page, re.S)
    return [html.unescape(item) for item in items]


def test_the_cli_ends_with_what_to_fix_first_as_the_page_orders_it(
    sims: SimulatorStack, tmp_path: Path, check_app: Flask
) -> None:
    """TLS comes before Autodiscover (it is why Autodiscover failed), whatever the order the
    checks finished or are listed in; each line with its fix; the same list as the page's."""
    result = invoke(sims, tmp_path, "alice@margiestravel.example")
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    start = lines.index("What to fix first:")
    assert lines[-1].startswith("Verdict for alice@margiestravel.example: FAIL")
    listed = [line for line in lines[start + 1 : -1] if re.match(r"\s+\d+\. ", line)]
    assert [re.sub(r"^\s+\d+\. (FAIL|WARN)  ", "", line) for line in listed] == page_fix_list(
        check_app.test_client(), "alice@margiestravel.example"
    )
    assert listed[0].startswith("  1. FAIL  TLS and certificates, autodiscover.margiestravel")
    assert listed[1].startswith("  2. FAIL  Autodiscover:")
    fixes = [line.strip() for line in lines[start:] if line.strip().startswith("fix:")]
    assert fixes[0].startswith("fix: Enable TLS 1.2 on the server")  # from the protocol step
    assert "[FAIL] Autodiscover" in "\n".join(lines[:start])  # the tree comes first

    as_json = json.loads(invoke(sims, tmp_path, "alice@margiestravel.example", "--json").output)
    assert [f["line"] for f in as_json["fix_first"]] == [
        re.sub(r"^\s+\d+\. (FAIL|WARN)  ", "", line) for line in listed
    ]
    assert as_json["fix_first"][0]["check_id"] == "tls"


def test_a_clean_report_says_there_is_nothing_to_fix(sims: SimulatorStack, tmp_path: Path) -> None:
    result = invoke(sims, tmp_path, "alice@alpineskihouse.example", password="Alice-Passw0rd!")
    assert result.exit_code == 0, result.output
    assert "What to fix first: nothing (every check passed or did not apply)." in result.output
