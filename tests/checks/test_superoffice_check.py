"""[superoffice] against the SuperOffice simulator: Onsite and Online, states, a wrong URL."""

from __future__ import annotations

import pytest

from checksite.checks import superoffice
from common.netguard import NetGuard
from simulators.runner import SimulatorStack
from tests.fixtures.checks import check_context, find_step, run_check


@pytest.mark.parametrize(
    ("path", "status", "last_step", "text"),
    [
        ("SuperOffice", "pass", "superoffice.version", "SuperOffice 10.3.5"),
        ("Cust54567", "pass", "superoffice.version", "SuperOffice Online"),
        ("Cust56789", "pass", "superoffice.version", "SuperOffice Online"),  # moved to localhost
        ("Cust67890", "warn", "superoffice.state", "OfflineMaintenance"),
        ("Cust99999", "fail", "superoffice.state", "does not know the tenant"),
        ("nothing", "fail", "superoffice.api", "did not answer as the SuperOffice REST API"),
    ],
)
def test_superoffice_sites(
    sims: SimulatorStack, sims_guard: NetGuard, path: str, status: str, last_step: str, text: str
) -> None:
    url = f"{sims.urls['superoffice']}/{path}"
    context = check_context(sims_guard, "proseware.example", superoffice_url=url)
    result = run_check(superoffice, context)
    assert result.status == status
    assert result.steps[-1].id == last_step
    assert text in result.steps[-1].message


def test_an_unreachable_site_is_explained(sims_guard: NetGuard) -> None:
    context = check_context(
        sims_guard, "proseware.example", superoffice_url="https://127.0.0.1:1/SuperOffice"
    )
    step = find_step(run_check(superoffice, context).steps, "superoffice.reachable")
    assert step.status == "fail"
    assert "refused" in step.message


def test_without_a_url_the_check_is_skipped(sims_guard: NetGuard) -> None:
    assert run_check(superoffice, check_context(sims_guard, "proseware.example")).status == "skip"
