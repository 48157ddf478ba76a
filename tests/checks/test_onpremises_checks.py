"""[exchange_version], [firewall] and [unsupported] against the simulated demo world."""

from __future__ import annotations

import pytest

from checksite.checks import exchange_version, firewall, unsupported
from common.config import Settings
from common.netguard import NetGuard
from tests.fixtures.checks import check_context, find_step, run_check

ALICE = "Alice-Passw0rd!"


SE = "Exchange Server Subscription Edition (SE)"
IN_PLACE = "Upgrade in place to Exchange Server Subscription Edition (SE)"
NEW_SERVERS = "install Exchange Server Subscription Edition (SE) on new servers"
NO_PATH = "move the mailboxes to Microsoft 365, or to Exchange Server Subscription Edition"


@pytest.mark.parametrize(
    ("domain", "status", "release", "said", "upgrade"),
    [
        ("alpineskihouse.example", "pass", SE, "Current, supported", None),
        ("proseware.example", "warn", "Exchange Server 2019", "since October 2025", IN_PLACE),
        ("fabrikam.example", "warn", "Exchange Server 2016", "since October 2025", NEW_SERVERS),
        ("oldcorp.example", "warn", "Exchange Server 2016", "since October 2025", NEW_SERVERS),
        ("lucerne.example", "fail", "Exchange Server 2013", "in April 2023", NO_PATH),
    ],
)
def test_exchange_version_from_ews(
    sims_guard: NetGuard,
    domain: str,
    status: str,
    release: str,
    said: str,
    upgrade: str | None,
) -> None:
    result = run_check(
        exchange_version, check_context(sims_guard, f"alice@{domain}", password=ALICE)
    )
    step = find_step(result.steps, "exchange_version.result")
    assert (step.status, step.details["release"]) == (status, release)
    assert step.details["source"] == "EWS ServerVersionInfo"
    assert said in step.message
    if upgrade is None:
        assert not step.remediation
    else:
        assert upgrade in step.remediation
    # No remediation sends anyone to a version out of Microsoft's support.
    for old in ("2013", "2016", "2019"):
        assert f"to Exchange Server {old}" not in step.remediation
        assert f"to Exchange {old}" not in step.remediation


def test_exchange_version_without_a_password_reads_the_header(sims_guard: NetGuard) -> None:
    result = run_check(exchange_version, check_context(sims_guard, "alpineskihouse.example"))
    step = find_step(result.steps, "exchange_version.result")
    assert step.status == "pass"
    assert step.details["release"] == SE
    assert step.details["source"] == "X-OWA-Version header"


@pytest.mark.parametrize(
    ("dotted", "release", "support"),
    [
        ("15.2.2562.17", SE, "current"),  # SE RTM
        ("15.2.1748.10", "Exchange Server 2019", "ended"),  # 2019 CU15, the last 2019 build
        ("15.1.2507.6", "Exchange Server 2016", "ended"),
        ("15.0.1497.2", "Exchange Server 2013", "unsupported"),
        ("15.20.8722.30", "Exchange Online (Microsoft 365)", "online"),
        ("15.1", "Exchange Server 2016", "ended"),
    ],
)
def test_builds_are_told_apart(dotted: str, release: str, support: str) -> None:
    from checksite.checks.exchange_release import from_dotted

    version = from_dotted(dotted, "test")
    assert version is not None
    assert (version.release.name, version.release.support) == (release, support)


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
        ("munsonspickles.example", "unsupported.imap_pop", "fail"),
        ("someone@gmail.com", "unsupported.personal", "fail"),
        ("bob@woodgrove.example", "unsupported.pre_authentication", "fail"),
        ("proseware.example", "unsupported.two_factor", "info"),
        ("contoso.example", "unsupported.portal_ad", "info"),
    ],
)
def test_unsupported_set_ups_get_plain_answers(
    sims_guard: NetGuard, target: str, step_id: str, status: str
) -> None:
    password = "Bob-Passw0rd!" if target.startswith("bob@") else None
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


def test_mail_only_hosting_is_said_once_with_its_evidence(sims_guard: NetGuard) -> None:
    from checksite.checks import autodiscover

    context = check_context(sims_guard, "munsonspickles.example")
    step = find_step(run_check(unsupported, context).steps, "unsupported.imap_pop")
    assert "mx1.webhoster.example" in step.message
    assert "no Exchange answers Autodiscover" in step.message
    result = run_check(autodiscover, context)
    assert result.status == "info"  # evidence here, the verdict is [unsupported]'s
    assert "IMAP/POP mail hosting" in find_step(result.steps, "autodiscover.result").message
    # An Exchange of the domain's own without Autodiscover is no mail-only hosting.
    wingtip = check_context(sims_guard, "wingtip.example")
    assert run_check(autodiscover, wingtip).status == "fail"
    assert all(s.id != "unsupported.imap_pop" for s in run_check(unsupported, wingtip).steps)
