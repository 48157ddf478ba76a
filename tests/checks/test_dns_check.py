"""[dns] against a real DNS server: existence, the MX records and the mail system told from all
the evidence (MX, SPF, Microsoft's tenant lookup; here Microsoft cannot be reached, so the DNS
evidence decides: see test_demo_world.py for the tenant lookup on the simulated world)."""

from __future__ import annotations

import pytest

from checksite.checks import domain_dns
from tests.fixtures.checks import Hostile, check_context, find_step, run_check


@pytest.mark.parametrize(
    ("domain", "system", "label"),
    [
        ("m365.test.example", "microsoft365", "Microsoft 365"),
        ("gws.test.example", "google", "Google Workspace"),
        ("icloud.test.example", "icloud", "iCloud Mail"),
        ("onprem.test.example", "onpremises", "on-premises"),
        ("other.test.example", "other", "a mail hosting service"),
        # Behind a filter: Google's SPF include names Google, Microsoft's names Microsoft 365.
        ("gfiltered.test.example", "google", "Google Workspace"),
        ("msfiltered.test.example", "microsoft365", "Microsoft 365"),
        # A filter and nothing else (a Google verification record alone proves nothing).
        ("filtered.test.example", "undetermined", "cannot tell"),
        ("gverified.test.example", "undetermined", "cannot tell"),
    ],
)
def test_the_evidence_tells_the_mail_system(
    hostile: Hostile, domain: str, system: str, label: str
) -> None:
    result = run_check(domain_dns, check_context(hostile.guard(), f"someone@{domain}"))
    assert find_step(result.steps, "dns.mx").status == "pass"
    verdict = find_step(result.steps, "dns.system")
    assert verdict.details["system"] == system
    assert label.lower() in verdict.message.lower()
    assert result.status == "pass"


def test_a_filter_is_named_and_the_evidence_behind_the_verdict_shown(hostile: Hostile) -> None:
    result = run_check(domain_dns, check_context(hostile.guard(), "gfiltered.test.example"))
    assert "Proofpoint, a mail filtering service" in find_step(result.steps, "dns.mx").message
    evidence = find_step(result.steps, "dns.system").details["evidence"]
    assert any("Proofpoint" in e for e in evidence)
    assert any("_spf.google.com" in e for e in evidence)
    thin = run_check(domain_dns, check_context(hostile.guard(), "gverified.test.example"))
    assert "Search Console" in find_step(thin.steps, "dns.system").message


def test_a_personal_mail_service_is_known_by_name_whatever_its_mx(hostile: Hostile) -> None:
    # gmail.com's MX is Google's: by the MX alone it would pass for Google Workspace.
    result = run_check(domain_dns, check_context(hostile.guard(), "someone@gmail.com"))
    step = find_step(result.steps, "dns.system")
    assert step.details["system"] == "personal"
    assert result.status == "info"
    # Not even looked up: outlook.com is not in this DNS, and nothing says it does not exist.
    result = run_check(domain_dns, check_context(hostile.guard(), "someone@outlook.com"))
    assert [s.id for s in result.steps] == ["dns.system"]


def test_a_domain_that_does_not_exist_fails(hostile: Hostile) -> None:
    result = run_check(domain_dns, check_context(hostile.guard(), "missing.test.example"))
    step = find_step(result.steps, "dns.domain")
    assert step.status == "fail"
    assert "does not exist" in step.message
    assert result.status == "fail"


@pytest.mark.parametrize("domain", ["nomx.test.example", "nullmx.test.example"])
def test_no_mail_server_is_a_warning(hostile: Hostile, domain: str) -> None:
    result = run_check(domain_dns, check_context(hostile.guard(), domain))
    assert find_step(result.steps, "dns.mx").status == "warn"
    assert result.status == "warn"


def test_a_dns_server_that_fails_for_the_domain_is_the_domains_fault(hostile: Hostile) -> None:
    hostile.dns.set_failure("broken.test.example", "servfail")
    try:
        result = run_check(domain_dns, check_context(hostile.guard(), "broken.test.example"))
    finally:
        hostile.dns.set_failure("broken.test.example", None)
    step = find_step(result.steps, "dns.domain")
    assert step.status == "fail"
    assert "DNS lookup failed" in step.message
    assert "domain's DNS servers are failing" in step.message


def test_input_read_otherwise_than_typed_is_said(hostile: Hostile) -> None:
    context = check_context(hostile.guard(), "https://www.onprem.test.example/contact")
    result = run_check(domain_dns, context)
    assert context.target.domain == "onprem.test.example"
    note = find_step(result.steps, "dns.input")
    assert "as the domain onprem.test.example" in note.message
