"""Every check reaches its expected verdict for every demo domain, end to end through the CLI
(`synchronizer check --json`) and through the JSON API. Checks not listed are skipped."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from checksite.cli import main
from common.config import Settings
from simulators.runner import SimulatorStack

ALICE, BOB = "Alice-Passw0rd!", "Bob-Passw0rd!"
ON_PREMISES = {"dns": "pass", "autodiscover": "pass", "tls": "pass", "exchange_version": "pass"}
ON_PREMISES |= {"firewall": "pass", "unsupported": "info"}
# With the mailbox password: signed in, calendar opened, changes read ([ews_access]).
SIGNED_IN = ON_PREMISES | {"ews_access": "pass"}
# Anonymous runs: plans, consent and Google access wait for an administrator's sign-in (info).
M365 = {"dns": "pass", "m365_tenant": "pass", "m365_plan": "info", "app_consent": "info"}
M365 |= {"firewall": "pass", "unsupported": "info"}
GOOGLE = {"dns": "pass", "google_workspace": "info", "firewall": "pass", "unsupported": "info"}
MAIL_ONLY = {"dns": "pass", "firewall": "info", "unsupported": "fail"}

# target, password, expected statuses of the checks that run, verdict
WORLD: list[tuple[str, str | None, dict[str, str], str]] = [
    ("alice@proseware.example", ALICE, SIGNED_IN, "pass"),  # Exchange 2019
    ("alice@fabrikam.example", ALICE, SIGNED_IN, "pass"),  # 2016, Autodiscover at the root
    ("alice@adatum.example", ALICE, SIGNED_IN, "pass"),  # HTTP redirect method
    ("alice@relecloud.example", ALICE, SIGNED_IN, "pass"),  # SRV method
    ("alice@lucerne.example", ALICE, SIGNED_IN | {"exchange_version": "fail"}, "fail"),
    ("alice@oldcorp.example", ALICE, SIGNED_IN | {"tls": "warn"}, "warn"),  # TLS 1.0 on
    ("alice@treyresearch.example", ALICE, ON_PREMISES | {"autodiscover": "fail"}, "fail"),
    (
        "bob@woodgrove.example",
        BOB,
        ON_PREMISES | {"autodiscover": "fail", "exchange_version": "warn", "unsupported": "fail"},
        "fail",
    ),
    (
        "alice@wingtip.example",
        None,
        {"dns": "pass", "autodiscover": "fail", "firewall": "info", "unsupported": "info"},
        "fail",
    ),
    (  # TLS 1.0 only: Autodiscover fails in the handshake, and the TLS check says why
        "alice@margiestravel.example",
        ALICE,
        {"dns": "pass", "autodiscover": "fail", "tls": "fail", "firewall": "info"}
        | {"unsupported": "info"},
        "fail",
    ),
    ("alice@cohowinery.example", ALICE, ON_PREMISES | {"autodiscover": "fail"}, "fail"),
    ("adele@contoso.example", None, M365, "pass"),
    ("nomail@contoso.example", None, M365, "pass"),  # its licence: test_microsoft_signin
    ("appsonly.example", None, M365, "pass"),
    ("fourthcoffee.example", None, M365, "pass"),  # its consent: test_microsoft_signin
    ("litware.example", None, M365, "pass"),
    ("tailwindtraders.example", None, M365 | {"m365_tenant": "warn"}, "warn"),
    ("alice@northwind.example", None, GOOGLE, "pass"),
    ("tom@tailspin.example", None, GOOGLE, "pass"),  # blocks our app: test_admin_signin
    ("imaponly.example", None, MAIL_ONLY | {"autodiscover": "fail"}, "fail"),
    ("icloudmail.example", None, MAIL_ONLY, "fail"),
]


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["status"] for c in report["checks"] if c["status"] != "skip"}


@pytest.mark.parametrize(
    ("target", "password", "expected", "verdict"), WORLD, ids=[w[0] for w in WORLD]
)
def test_through_the_cli(
    sims: SimulatorStack,
    google_settings: Settings,
    target: str,
    password: str | None,
    expected: dict[str, str],
    verdict: str,
) -> None:
    settings = google_settings
    env = {
        "SYNCHRONIZER_INSTANCE_PATH": str(settings.instance_path),
        "SYNCHRONIZER_OUTBOUND_IP": "203.0.113.7",
        "SYNCHRONIZER_MICROSOFT_CLIENT_ID": str(settings.microsoft_client_id),
        "SYNCHRONIZER_MICROSOFT_CLIENT_SECRET": str(settings.microsoft_client_secret),
        "SYNCHRONIZER_MICROSOFT_AUTHORITY_HOST": settings.microsoft_authority_host,
        "SYNCHRONIZER_MICROSOFT_GRAPH_URL": settings.microsoft_graph_url,
        "SYNCHRONIZER_GOOGLE_OAUTH_URL": settings.google_oauth_url,
        "SYNCHRONIZER_GOOGLE_API_URL": settings.google_api_url,
        "SYNCHRONIZER_GOOGLE_SERVICE_ACCOUNT_FILE": str(settings.google_service_account_file),
    }
    args = ["check", target, "--json", "--allow-private-networks"]
    args += ["--dns-server", f"{sims.dns_host}:{sims.dns_port}", "--ca-bundle", sims.ca_file]
    if password:
        args.append("--password-stdin")
    result = CliRunner().invoke(main, args, env=env, input=f"{password or ''}\n")
    report = json.loads(result.output)
    assert statuses(report) == expected
    assert report["verdict"] == verdict
    assert result.exit_code == (1 if verdict == "fail" else 0)


def test_through_the_api(check_app: Flask, google_settings: Settings) -> None:
    check_app.config["SYNCHRONIZER"] = dataclasses.replace(
        check_app.config["SYNCHRONIZER"],
        google_service_account_file=google_settings.google_service_account_file,
    )
    client = check_app.test_client()
    started = {}
    for target, password, _, _ in WORLD:
        body: dict[str, Any] = {"target": target}
        if password:
            body["password"] = password
        response = client.post("/api/checks", json=body)
        assert response.status_code == 202
        started[target] = response.get_json()["id"]
    deadline = time.monotonic() + 30
    for target, _, expected, verdict in WORLD:
        while True:
            state = client.get(f"/api/checks/{started[target]}").get_json()
            if state["status"] == "done" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert state["status"] == "done", target
        assert (statuses(state["report"]), state["verdict"]) == (expected, verdict), target


def test_the_table_covers_every_demo_domain() -> None:
    from simulators.world import exchange, google, mail_domains, microsoft

    domains = {org.domain for org in exchange.demo().organisations}
    domains |= {tenant.default_domain for tenant in microsoft.demo_world().tenants}
    domains |= set(google.SITE_VERIFICATION)
    domains |= {d.domain for d in mail_domains.DOMAINS}
    assert domains <= {w[0].rpartition("@")[2] for w in WORLD}


# Every demo organisation is a SuperOffice customer: [superoffice] for each kind of tenant.
SUPEROFFICE = [
    ("proseware.example", "Cust54567", "pass"),  # Online, running
    ("wingtip.example", "Cust56789", "pass"),  # Online, moved to another host
    ("adatum.example", "SuperOffice", "pass"),  # Onsite 10
    ("woodgrove.example", "Cust67890", "warn"),  # Online, OfflineMaintenance
    ("nowhere.example", "Cust99999", "fail"),  # not a tenant
]


def test_superoffice_through_the_cli_and_the_api(
    sims: SimulatorStack, check_app: Flask, tmp_path: Path
) -> None:
    base = sims.urls["superoffice"]
    client = check_app.test_client()
    for domain, path, expected in SUPEROFFICE:
        args = ["check", domain, "--only", "superoffice", "--json", "--allow-private-networks"]
        args += ["--ca-bundle", sims.ca_file, "--superoffice-url", f"{base}/{path}"]
        result = CliRunner().invoke(main, args, env={"SYNCHRONIZER_INSTANCE_PATH": str(tmp_path)})
        assert statuses(json.loads(result.output)) == {"superoffice": expected}, path
        body = {"target": domain, "superoffice_url": f"{base}/{path}", "only": ["superoffice"]}
        report_id = client.post("/api/checks", json=body).get_json()["id"]
        deadline = time.monotonic() + 15
        while (state := client.get(f"/api/checks/{report_id}").get_json())["status"] != "done":
            assert time.monotonic() < deadline, path
            time.sleep(0.05)
        assert statuses(state["report"]) == {"superoffice": expected}, path
