"""Without a signed-in administrator, no check uses this installation's own credentials against
a customer: the simulators count every request, and with our Microsoft application and our
Google service account both configured, an anonymous run through the CLI or the API sends no
token request to Microsoft, nothing to Graph and nothing at all to Google. Anonymous reports
hold what is public and say what a sign-in would add."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from checksite.cli import main
from common.config import Settings
from simulators.runner import SimulatorStack

TARGETS = [
    "adele@contoso.example",
    "nomail@contoso.example",
    "appsonly.example",
    "fourthcoffee.example",
    "kim@litware.example",
    "alice@northwind.example",
    "tom@tailspin.example",
]
REACHABILITY = "GET /"  # [firewall] opens each service's root page, without credentials
# Microsoft's public endpoints: tenant discovery and the realm (federation).
PUBLIC_MICROSOFT = {
    "GET /<tenant_key>/v2.0/.well-known/openid-configuration",
    "GET /getuserrealm.srf",
    REACHABILITY,
}


def served(sims: SimulatorStack, name: str) -> dict[str, int]:
    stats = sims.session().get(sims.urls[name] + "/_sim/stats").json()
    return dict(stats["endpoints"])


def assert_anonymous(sims: SimulatorStack, report: dict[str, Any]) -> None:
    microsoft = served(sims, "login")  # login and graph are one app, one counter
    assert set(microsoft) <= PUBLIC_MICROSOFT, microsoft  # no token endpoint, no Graph
    assert set(served(sims, "google")) <= {REACHABILITY}  # no token, no API
    steps = {
        step["id"]: step
        for check in report["checks"]
        for step in check["steps"]
        if check["id"] in ("m365_tenant", "m365_plan", "app_consent", "google_workspace")
    }
    if "m365_tenant.exists" in steps:  # Microsoft 365: the public facts, and what a sign-in adds
        assert microsoft.get("GET /<tenant_key>/v2.0/.well-known/openid-configuration")
        assert steps["m365_tenant.exists"]["status"] == "pass"
        assert steps["m365_tenant.sign_in"]["message"].startswith("Nobody signed in")
        assert steps["m365_plan.sign_in_needed"]["status"] == "info"
        assert steps["app_consent.model"]["status"] == "info"
        assert "Calendars.ReadWrite" in steps["app_consent.model"]["message"]
    else:
        assert steps["google_workspace.sign_in_needed"]["status"] == "info"
        assert "domain-wide delegation" in steps["google_workspace.sign_in_needed"]["message"]


@pytest.fixture
def cli(sims: SimulatorStack, google_settings: Settings) -> Callable[[str], dict[str, Any]]:
    env = {
        "SYNCHRONIZER_INSTANCE_PATH": str(google_settings.instance_path),
        "SYNCHRONIZER_MICROSOFT_CLIENT_ID": str(google_settings.microsoft_client_id),
        "SYNCHRONIZER_MICROSOFT_CLIENT_SECRET": str(google_settings.microsoft_client_secret),
        "SYNCHRONIZER_MICROSOFT_AUTHORITY_HOST": google_settings.microsoft_authority_host,
        "SYNCHRONIZER_MICROSOFT_GRAPH_URL": google_settings.microsoft_graph_url,
        "SYNCHRONIZER_GOOGLE_CLIENT_ID": str(google_settings.google_client_id),
        "SYNCHRONIZER_GOOGLE_CLIENT_SECRET": str(google_settings.google_client_secret),
        "SYNCHRONIZER_GOOGLE_OAUTH_URL": google_settings.google_oauth_url,
        "SYNCHRONIZER_GOOGLE_API_URL": google_settings.google_api_url,
        "SYNCHRONIZER_GOOGLE_SERVICE_ACCOUNT_FILE": str(
            google_settings.google_service_account_file
        ),
    }
    options = ["--json", "--allow-private-networks", "--ca-bundle", sims.ca_file]
    options += ["--dns-server", f"{sims.dns_host}:{sims.dns_port}"]

    def run(target: str) -> dict[str, Any]:
        result = CliRunner().invoke(main, ["check", target, *options], env=env)
        report: dict[str, Any] = json.loads(result.output)
        return report

    return run


@pytest.mark.parametrize("target", TARGETS)
def test_an_anonymous_cli_run_uses_none_of_our_credentials(
    sims: SimulatorStack, cli: Callable[[str], dict[str, Any]], target: str
) -> None:
    sims.reset_controls()
    assert_anonymous(sims, cli(target))


def test_an_anonymous_api_run_uses_none_of_our_credentials(
    sims: SimulatorStack, check_app: Flask, google_settings: Settings, tmp_path: Path
) -> None:
    import dataclasses

    check_app.config["SYNCHRONIZER"] = dataclasses.replace(
        check_app.config["SYNCHRONIZER"],
        google_service_account_file=google_settings.google_service_account_file,
    )
    client = check_app.test_client()
    for target in TARGETS:
        sims.reset_controls()
        report_id = client.post("/api/checks", json={"target": target}).get_json()["id"]
        deadline = time.monotonic() + 20
        while (state := client.get(f"/api/checks/{report_id}").get_json())["status"] != "done":
            assert time.monotonic() < deadline, target
            time.sleep(0.05)
        assert_anonymous(sims, state["report"])
        page = client.get(f"/check/r/{report_id}").text
        assert "Sign in as a" in page  # the page offers what a sign-in would add
