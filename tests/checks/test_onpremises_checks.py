"""[exchange_version], [firewall] and [unsupported] against the simulated demo world."""

from __future__ import annotations

import pytest

from checksite.checks import exchange_version, firewall, unsupported
from common.config import Settings
from common.netguard import NetGuard
from tests.fixtures.checks import check_context, find_step, run_check

ALICE = "Alice-Passw0rd!"


@pytest.mark.parametrize(
    ("domain", "status", "release", "source"),
    [
        ("proseware.example", "pass", "Exchange Server 2019", "EWS ServerVersionInfo"),
        ("fabrikam.example", "pass", "Exchange Server 2016", "EWS ServerVersionInfo"),
        ("lucerne.example", "fail", "Exchange Server 2013", "EWS ServerVersionInfo"),
        ("oldcorp.example", "pass", "Exchange Server 2016", "EWS ServerVersionInfo"),
    ],
)
def test_exchange_version_from_ews(
    sims_guard: NetGuard, domain: str, status: str, release: str, source: str
) -> None:
    result = run_check(
        exchange_version, check_context(sims_guard, f"alice@{domain}", password=ALICE)
    )
    step = find_step(result.steps, "exchange_version.result")
    assert step.status == status
    assert step.details["release"] == release
    assert step.details["source"] == source
    if status == "fail":
        assert "end of Microsoft's support in April 2023" in step.message
        assert step.remediation


def test_exchange_version_without_a_password_reads_the_header(sims_guard: NetGuard) -> None:
    result = run_check(exchange_version, check_context(sims_guard, "proseware.example"))
    step = find_step(result.steps, "exchange_version.result")
    assert step.status == "pass"
    assert step.details["source"] == "X-OWA-Version header"


def test_exchange_version_is_skipped_for_microsoft_365(sims_guard: NetGuard) -> None:
    result = run_check(exchange_version, check_context(sims_guard, "contoso.example"))
    assert result.status == "skip"


def test_firewall_walks_dns_tcp_tls_http_with_timings(
    sims_guard: NetGuard, sim_settings: Settings
) -> None:
    context = check_context(sims_guard, "alice@proseware.example", sim_settings, password=ALICE)
    result = run_check(firewall, context)
    assert result.status == "pass"
    outbound = find_step(result.steps, "firewall.outbound_ip")
    assert "203.0.113.7" in outbound.message
    ews = find_step(result.steps, "firewall.mail.proseware.example")
    assert [c.title for c in ews.children] == ["DNS", "TCP", "TLS", "HTTP"]
    assert all(c.status == "pass" for c in ews.children)


@pytest.mark.parametrize("domain", ["contoso.example", "northwind.example"])
def test_firewall_tests_the_cloud_endpoints(
    sims_guard: NetGuard, sim_settings: Settings, domain: str
) -> None:
    result = run_check(firewall, check_context(sims_guard, domain, sim_settings))
    assert result.status == "pass"
    assert len([s for s in result.steps if s.id.startswith("firewall.127.")]) == 2


def test_firewall_reports_a_closed_port(sims_guard: NetGuard, sim_settings: Settings) -> None:
    context = check_context(
        sims_guard,
        "alice@wingtip.example",
        sim_settings,
        ews_url="https://127.0.0.1:1/EWS/Exchange.asmx",
        oab_url="https://127.0.0.1:1/OAB/",
    )
    result = run_check(firewall, context)
    step = find_step(result.steps, "firewall.127.0.0.1")
    assert step.status == "fail"
    assert "TCP 1 refused" in step.message


@pytest.mark.parametrize(
    ("target", "step_id", "status"),
    [
        ("icloudmail.example", "unsupported.icloud", "fail"),
        ("imaponly.example", "unsupported.imap_pop", "fail"),
        ("bob@woodgrove.example", "unsupported.pre_authentication", "fail"),
        ("proseware.example", "unsupported.two_factor", "info"),
        ("contoso.example", "unsupported.portal_ad", "info"),
    ],
)
def test_unsupported_set_ups_get_plain_answers(
    sims_guard: NetGuard, target: str, step_id: str, status: str
) -> None:
    password = "Bob-Passw0rd!" if "@" in target else None
    result = run_check(unsupported, check_context(sims_guard, target, password=password))
    step = find_step(result.steps, step_id)
    assert step.status == status
    assert result.status == status


def test_firewall_tests_superoffice_and_superid_for_an_online_tenant(
    sims_guard: NetGuard, sim_settings: Settings
) -> None:
    superid = sim_settings.superoffice_online_url
    url = f"{superid.replace('127.0.0.1', 'localhost')}/Cust12345"  # the tenant elsewhere
    context = check_context(sims_guard, "contoso.example", sim_settings, superoffice_url=url)
    assert [p for p, _ in firewall.endpoints(context)][-2:] == [
        "SuperOffice",
        "SuperOffice ID (sign-in)",
    ]
    same = check_context(
        sims_guard, "contoso.example", sim_settings, superoffice_url=f"{superid}/Cust12345"
    )
    assert [p for p, _ in firewall.endpoints(same)][-1] == "SuperOffice"  # one probe per host
