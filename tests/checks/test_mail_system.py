"""The mail system from all the evidence (issue 9, point 4), end to end through the CLI on the
simulated world: Microsoft 365 behind a filtering MX, a hybrid and where its mailboxes live,
and Exchange Online's own builds (15.20) that nobody should be told to upgrade."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask, Response, request

from checksite.checks.mail_system import (
    GOOGLE,
    MICROSOFT_365,
    MailSystem,
    MxRecord,
    decide,
    read_txt,
)
from checksite.checks.tenant_lookup import Tenant
from checksite.cli import main
from common.config import Settings
from simulators.runner import SimulatorStack
from tests.fixtures.simulators import Serve


def check(
    settings: Settings, target: str, *args: str, password: str | None = None
) -> dict[str, Any]:
    env = {
        "SYNCHRONIZER_INSTANCE_PATH": str(settings.instance_path),
        "SYNCHRONIZER_MICROSOFT_AUTHORITY_HOST": settings.microsoft_authority_host,
        "SYNCHRONIZER_MICROSOFT_GRAPH_URL": settings.microsoft_graph_url,
        "SYNCHRONIZER_MICROSOFT_OUTLOOK_URL": settings.microsoft_outlook_url,
    }
    options = ["--json", "--allow-private-networks", "--ca-bundle", str(settings.check_ca_bundle)]
    options += ["--dns-server", settings.check_dns_servers[0]]
    if password is not None:
        options.append("--password-stdin")
    result = CliRunner().invoke(
        main, ["check", *options, *args, target], env=env, input=f"{password or ''}\n"
    )
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.output)  # type: ignore[no-any-return]


def step(report: dict[str, Any], step_id: str) -> dict[str, Any]:
    def walk(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
        for item in steps:
            if item["id"] == step_id:
                return item
            found = walk(item["children"])
            if found is not None:
                return found
        return None

    for c in report["checks"]:
        found = walk(c["steps"])
        if found is not None:
            return found
    raise KeyError(step_id)


def test_microsoft_365_behind_a_filtering_mx(sims: SimulatorStack, sim_settings: Settings) -> None:
    report = check(sim_settings, "dan@humongousinsurance.example")
    system = step(report, "dns.system")
    assert system["details"]["system"] == MICROSOFT_365
    evidence = " ".join(system["details"]["evidence"])
    assert "Mimecast" in evidence and "Microsoft's tenant lookup" in evidence
    assert "Mimecast, a mail filtering service" in step(report, "dns.mx")["message"]
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert statuses["m365_tenant"] == "pass" and statuses["autodiscover"] == "skip"


@pytest.mark.parametrize(
    ("target", "password", "home", "said"),
    [
        ("alice@wideworldimporters.example", "Alice-Passw0rd!", "onpremises", "gives its settings"),
        # Without the password, Exchange Online's public Autodiscover v2 decides: it redirects
        # a mailbox still on-premises to the on-premises Autodiscover, as Microsoft documents.
        (
            "alice@wideworldimporters.example",
            None,
            "onpremises",
            "redirects it to the on-premises Autodiscover on autodiscover.wideworldimporters",
        ),
        ("bob@wideworldimporters.example", "Bob-Passw0rd!", "cloud", "redirects it to bob@"),
        ("bob@wideworldimporters.example", None, "cloud", "Exchange Online's own EWS URL"),
        # An address the tenant does not know is passed on within Microsoft's cloud: no verdict.
        (
            "carol@wideworldimporters.example",
            None,
            "unknown",
            "passes the address on to autodiscover-s.outlook.com",
        ),
        ("wideworldimporters.example", None, "unknown", "Enter a mailbox address"),
    ],
)
def test_a_hybrid_reports_both_and_where_the_mailbox_lives(
    sims: SimulatorStack,
    sim_settings: Settings,
    target: str,
    password: str | None,
    home: str,
    said: str,
) -> None:
    report = check(sim_settings, target, password=password)
    hybrid = step(report, "m365_tenant.hybrid")
    assert hybrid["details"]["mailbox_home"] == home
    assert said in hybrid["message"]
    assert "autodiscover.wideworldimporters.example" in hybrid["message"]
    assert step(report, "m365_tenant.exists")["status"] == "pass"
    assert step(report, "autodiscover.result")["status"] == "pass"


def test_a_microsoft_365_domain_without_on_premises_exchange_is_no_hybrid(
    sims: SimulatorStack, sim_settings: Settings
) -> None:
    report = check(sim_settings, "adele@contoso.example")
    with pytest.raises(KeyError):
        step(report, "m365_tenant.hybrid")
    assert "autodiscover.outlook.com" in step(report, "autodiscover.skipped")["message"]


def test_google_mail_with_a_microsoft_tenant_for_other_services_stays_google() -> None:
    by_mx = MailSystem(GOOGLE, (MxRecord(1, "aspmx.l.google.com"),), evidence=("MX",))
    decided = decide(
        "northwind.example", by_mx, read_txt([]), Tenant("0" * 8 + "-0000-0000-0000-" + "0" * 12)
    )
    assert decided.kind == GOOGLE
    assert "other Microsoft services" in " ".join(decided.notes)


# Exchange Online's EWS reports its builds as 15.20.x; the header's shape is the one quoted in
# exchangelib issue #221 (MajorVersion="15" MinorVersion="20" ... Version="V2017_07_11").
EXO_GET_FOLDER = b"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>
<h:ServerVersionInfo MajorVersion="15" MinorVersion="20" MajorBuildNumber="8722" MinorBuildNumber="30"
 Version="V2018_01_08" xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types"/>
</s:Header><s:Body><m:GetFolderResponse
 xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><m:ResponseMessages>
<m:GetFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>
</m:GetFolderResponseMessage></m:ResponseMessages></m:GetFolderResponse></s:Body></s:Envelope>"""


def test_exchange_online_is_never_told_to_upgrade(
    sims: SimulatorStack, sim_settings: Settings, serve: Serve, tmp_path: Path
) -> None:
    app = Flask("exchange-online-ews")

    @app.post("/EWS/Exchange.asmx")
    def ews() -> Response:
        if request.authorization is None:
            return Response(status=401, headers={"WWW-Authenticate": 'Basic realm="ews"'})
        return Response(EXO_GET_FOLDER, content_type="text/xml; charset=utf-8")

    server = serve(app)
    url = f"https://127.0.0.1:{server.port}/EWS/Exchange.asmx"
    report = check(sim_settings, "adele@contoso.example", "--ews-url", url, password="pw")
    version = step(report, "exchange_version.result")
    assert version["status"] == "pass"
    assert version["details"]["release"] == "Exchange Online (Microsoft 365)"
    assert "nothing to upgrade" in version["message"]
    assert "upgrade" not in (version["remediation"] or "").lower()
