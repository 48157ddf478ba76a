"""[dns] against a real DNS server: existence and the MX classification."""

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
        ("other.test.example", "other", "another mail service"),
    ],
)
def test_mx_records_tell_the_mail_system(
    hostile: Hostile, domain: str, system: str, label: str
) -> None:
    result = run_check(domain_dns, check_context(hostile.guard(), f"someone@{domain}"))
    mx = find_step(result.steps, "dns.mx")
    assert mx.status == "pass"
    assert mx.details["system"] == system
    assert label in mx.message
    assert find_step(result.steps, "dns.system").details["system"] == system
    assert result.status == "pass"


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


def test_a_dns_server_that_fails_is_reported(hostile: Hostile) -> None:
    hostile.dns.set_failure("broken.test.example", "servfail")
    try:
        result = run_check(domain_dns, check_context(hostile.guard(), "broken.test.example"))
    finally:
        hostile.dns.set_failure("broken.test.example", None)
    step = find_step(result.steps, "dns.domain")
    assert step.status == "fail"
    assert "DNS lookup failed" in step.message
