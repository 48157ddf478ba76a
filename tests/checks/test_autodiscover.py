"""[autodiscover] against the Exchange simulator's real HTTP(S) hosts and a real DNS server:
every method, redirects, loops, a pre-authentication gateway, and the manual URLs."""

from __future__ import annotations

import pytest

from checksite.checks import autodiscover
from common.netguard import NetGuard
from tests.fixtures.checks import Hostile, check_context, find_step, run_check

PASSWORDS = {"alice": "Alice-Passw0rd!", "bob": "Bob-Passw0rd!"}


@pytest.mark.parametrize(
    ("domain", "method"),
    [
        ("proseware.example", "https://autodiscover.domain"),
        ("fabrikam.example", "https://domain"),
        ("lucerne.example", "https://autodiscover.domain"),  # Basic only
        ("adatum.example", "HTTP redirect (port 80)"),
        ("relecloud.example", "DNS SRV record"),
        ("oldcorp.example", "https://autodiscover.domain"),
    ],
)
def test_each_method_finds_ews_with_a_password(
    sims_guard: NetGuard, domain: str, method: str
) -> None:
    context = check_context(sims_guard, f"alice@{domain}", password=PASSWORDS["alice"])
    result = run_check(autodiscover, context)
    step = find_step(result.steps, "autodiscover.result")
    assert step.status == "pass", step.message
    assert step.details["method"] == method
    assert step.details["ews_url"].endswith("/EWS/Exchange.asmx")
    assert "/OAB/" in step.details["oab_url"]
    assert result.status == "pass"


def test_without_a_password_a_401_with_exchange_methods_counts_as_found(
    sims_guard: NetGuard,
) -> None:
    result = run_check(autodiscover, check_context(sims_guard, "proseware.example"))
    step = find_step(result.steps, "autodiscover.result")
    assert step.status == "pass"
    assert step.title == "Autodiscover endpoint found"
    assert {"NTLM", "Basic"} <= set(step.details["authentication_methods"])
    assert "password" in step.message
    methods = find_step(result.steps, "autodiscover.method.2")
    assert methods.details["attempts"][0]["http_status"] == 401


def test_a_wrong_password_is_reported(sims_guard: NetGuard) -> None:
    context = check_context(sims_guard, "alice@proseware.example", password="wrong")
    result = run_check(autodiscover, context)
    assert result.status == "fail"
    assert "password was not accepted" in find_step(result.steps, "autodiscover.method.2").message


def test_redirect_loops_stop_with_a_readable_step(sims_guard: NetGuard) -> None:
    context = check_context(sims_guard, "carol@treyresearch.example", password="x")
    result = run_check(autodiscover, context)
    assert result.status == "fail"
    # alice -> bob -> alice (redirectAddr), and the two hosts' redirectUrl to each other
    context = check_context(sims_guard, "alice@treyresearch.example", password=PASSWORDS["alice"])
    result = run_check(autodiscover, context)
    final = find_step(result.steps, "autodiscover.result")
    assert final.status == "fail"
    assert "loop" in final.message


def test_a_pre_authentication_gateway_is_recognised(sims_guard: NetGuard) -> None:
    context = check_context(sims_guard, "bob@woodgrove.example", password=PASSWORDS["bob"])
    result = run_check(autodiscover, context)
    final = find_step(result.steps, "autodiscover.result")
    assert final.status == "fail"
    assert final.title == "Pre-authentication gateway"
    assert "sign-in page" in final.message


def test_nothing_found_explains_the_manual_urls_and_accepts_them(
    sims_guard: NetGuard,
) -> None:
    result = run_check(autodiscover, check_context(sims_guard, "alice@wingtip.example"))
    final = find_step(result.steps, "autodiscover.result")
    assert final.status == "fail"
    assert "--ews-url" in final.remediation
    assert [s.status for s in find_step(result.steps, "autodiscover.methods.0").children] == [
        "fail"
    ] * 4
    manual = check_context(
        sims_guard,
        "alice@wingtip.example",
        ews_url="https://mail.wingtip.example/EWS/Exchange.asmx",
        oab_url="https://mail.wingtip.example/OAB/",
    )
    result = run_check(autodiscover, manual)
    assert result.status == "pass"
    assert find_step(result.steps, "autodiscover.manual").details["ews_url"].startswith("https://")


def test_an_srv_record_pointing_inside_is_a_readable_refused_step(hostile: Hostile) -> None:
    result = run_check(autodiscover, check_context(hostile.guard(), "someone@evil.example"))
    srv = find_step(result.steps, "autodiscover.method.4")
    assert srv.status == "fail"
    assert (
        "refused to connect to internal.evil.example: it resolves to an internal address "
        "(a loopback address)" in srv.message
    )
    assert "127.0.0.1" not in srv.message
    assert result.status == "fail"


def test_each_attempt_carries_its_dns_evidence(sims_guard: NetGuard) -> None:
    result = run_check(autodiscover, check_context(sims_guard, "proseware.example"))
    attempt = find_step(result.steps, "autodiscover.method.2").details["attempts"][0]
    assert attempt["dns"][0].startswith("127.")
    assert attempt["http_status"] == 401


@pytest.mark.parametrize(
    ("url", "sent"),
    [
        ("https://autodiscover.proseware.example/autodiscover/autodiscover.xml", True),
        ("https://proseware.example/autodiscover/autodiscover.xml", True),
        ("http://autodiscover.proseware.example/autodiscover/autodiscover.xml", False),
        ("https://autodiscover.attacker.example/autodiscover/autodiscover.xml", False),
        ("https://proseware.example.attacker.example/autodiscover/autodiscover.xml", False),
    ],
)
def test_the_password_only_goes_to_the_mailbox_domain_over_https(
    sims_guard: NetGuard, url: str, sent: bool
) -> None:
    from checksite.checks.autodiscover import credentials_for

    context = check_context(sims_guard, "alice@proseware.example", password="secret")
    assert (credentials_for(context, url, "secret") == "secret") is sent
