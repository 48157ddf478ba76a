"""An internationalised domain is shown to people as they write it (faß.de), through the CLI,
the API and the page; the evidence keeps the DNS form that was queried (xn--fa-hia.de). Only
the checked domain is shown in Unicode, never another name DNS or a server gave."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from checksite.checks.model import Step
from checksite.checks.names_for_people import step_for_people, text_for_people
from checksite.cli import main
from simulators.dns import DnsServer
from simulators.runner import SimulatorStack
from tests.checks.test_report_page import page, run
from tests.fixtures.checks import sim_settings_for

FASS = "xn--fa-hia.de"  # faß.de by IDNA 2008 / UTS #46 (not fass.de)
MX_HOST = "mx1.xn--mller-kva.example"  # müller.example's mail host: a name DNS gave, not typed
# faß.de's mail at an IMAP hoster whose own name is internationalised too.
RECORDS = [
    (FASS, "MX", f"10 {MX_HOST}."),
    (FASS, "TXT", '"v=spf1 mx -all"'),
    (MX_HOST, "A", "127.0.0.1"),
]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"{FASS} exists in DNS.", "faß.de exists in DNS."),
        (f"Autodiscover for info@{FASS}", "Autodiscover for info@faß.de"),
        (f"No SRV record _autodiscover._tcp.{FASS}.", "No SRV record _autodiscover._tcp.faß.de."),
        (f"https://autodiscover.{FASS}/x", "https://autodiscover.faß.de/x"),
        (f"nix.xn--mller-kva.{FASS} is gone", "nix.müller.faß.de is gone"),
        (f"AUTODISCOVER.{FASS.upper()} is gone", "AUTODISCOVER.faß.de is gone"),
        # Other names, and longer names that merely contain the domain, stay as they were.
        (f"Mail goes to {MX_HOST}.", f"Mail goes to {MX_HOST}."),
        (f"redirected to {FASS}.evil.example", f"redirected to {FASS}.evil.example"),
        (f"redirected to www.{FASS}-login.example", f"redirected to www.{FASS}-login.example"),
        (f"redirected to evil-{FASS}", f"redirected to evil-{FASS}"),
    ],
)
def test_only_the_checked_domain_and_names_under_it_are_shown_in_unicode(
    text: str, shown: str
) -> None:
    assert text_for_people(text, FASS) == shown


def test_a_step_keeps_its_evidence_in_the_dns_form() -> None:
    child = Step("c", f"autodiscover.{FASS}", "info", f"{FASS} did not resolve",
                 details={"url": f"https://{FASS}/autodiscover"})  # fmt: skip
    step = Step("s", "Autodiscover", "fail", f"for info@{FASS}", details={"queried": FASS},
                remediation=f"Publish autodiscover.{FASS}", children=[child])  # fmt: skip
    shown = step_for_people(step, FASS)
    assert (shown.message, shown.remediation) == ("for info@faß.de", "Publish autodiscover.faß.de")
    assert shown.children[0].title == "autodiscover.faß.de"
    assert shown.children[0].message == "faß.de did not resolve"
    assert shown.details == {"queried": FASS}
    assert shown.children[0].details == {"url": f"https://{FASS}/autodiscover"}
    plain = Step("s", "x", "pass", "contoso.com exists")
    assert step_for_people(plain, "contoso.com") is plain


@pytest.fixture
def idn_dns(dns_server: Any) -> DnsServer:
    return dns_server(RECORDS)  # type: ignore[no-any-return]


def cli(dns: DnsServer, tmp_path: Path, *args: str) -> str:
    result = CliRunner().invoke(
        main,
        ["check", "--dns-server", dns.address, "--allow-private-networks", "--timeout", "5", *args],
        env={"SYNCHRONIZER_INSTANCE_PATH": str(tmp_path / "instance")},
    )
    assert result.exit_code == 1, result.output  # IMAP-only mail: nothing to synchronize with
    return result.output


def all_steps(steps: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for step in steps:
        yield step
        yield from all_steps(step["children"])


def test_the_cli_says_the_domain_as_typed_and_keeps_dns_names_as_evidence(
    idn_dns: DnsServer, tmp_path: Path
) -> None:
    text = cli(idn_dns, tmp_path, "info@faß.de")
    assert text.strip().splitlines()[-1].startswith("Verdict for info@faß.de: FAIL")
    assert "faß.de exists in DNS." in text
    assert "Autodiscover for info@faß.de" in text
    assert FASS not in text  # never the DNS form of the domain the person typed
    assert MX_HOST in text  # another name stays as DNS gave it

    report = json.loads(cli(idn_dns, tmp_path, "--json", "info@faß.de"))
    assert report["target"] == "info@faß.de"
    steps = [s for c in report["checks"] for s in all_steps(c["steps"])]
    words = [s[key] for s in steps for key in ("title", "message", "remediation")]
    words += [f["line"] for f in report["fix_first"]]
    assert not [w for w in words if FASS in w]
    domain = next(s for s in steps if s["id"] == "dns.domain")
    assert domain["details"]["queried"] == FASS
    tried = [s["details"]["attempts"][0]["url"] for s in steps if "attempts" in s["details"]]
    assert f"https://autodiscover.{FASS}/autodiscover/autodiscover.xml" in tried


@pytest.fixture
def idn_app(sims: SimulatorStack, idn_dns: DnsServer, tmp_path: Path) -> Flask:
    from checksite import create_app
    from common.db import Database
    from common.schema import upgrade

    settings = sim_settings_for(sims, tmp_path / "instance", check_dns_servers=(idn_dns.address,))
    upgrade(Database(settings.database_url))
    app = create_app(settings)
    app.config["TESTING"] = True
    return app


def test_the_api_and_the_page_say_the_domain_as_typed(idn_app: Flask) -> None:
    client = idn_app.test_client()
    report_id = run(client, "FASS.de".replace("FASS", "FAß"))  # as typed, capitals and all
    html = page(client, report_id)
    state = client.get(f"/api/checks/{report_id}").get_json()
    assert state["target"] == state["report"]["target"] == "faß.de"
    messages = [s["message"] for c in state["report"]["checks"] for s in all_steps(c["steps"])]
    assert "faß.de exists in DNS." in messages
    assert not [m for m in messages if FASS in m]
    assert html.xpath("//h1")[0].text_content() == "Check of faß.de"
    shown = " ".join(html.xpath("//span[@class='step-message' or @class='step-title']//text()"))
    assert "faß.de exists in DNS." in shown and FASS not in shown
    evidence = " ".join(html.xpath("//details[@class='evidence']//pre/text()"))
    assert f'"queried": "{FASS}"' in evidence
