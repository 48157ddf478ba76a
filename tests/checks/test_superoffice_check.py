"""[superoffice] against the SuperOffice simulator: Onsite and Online, states, a wrong URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from checksite.checks import superoffice
from checksite.cli import main
from common.netguard import NetGuard
from simulators.runner import SimulatorStack
from simulators.world.superoffice import DEMO_PASSWORD
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
    found = [s for s in result.steps if s.id != "superoffice.administrator"]  # Online: sign-in
    assert found[-1].id == last_step
    assert text in found[-1].message


def test_an_unreachable_site_is_explained(sims_guard: NetGuard) -> None:
    context = check_context(
        sims_guard, "proseware.example", superoffice_url="https://127.0.0.1:1/SuperOffice"
    )
    step = find_step(run_check(superoffice, context).steps, "superoffice.reachable")
    assert step.status == "fail"
    assert "refused" in step.message


def test_without_a_url_the_check_is_skipped(sims_guard: NetGuard) -> None:
    assert run_check(superoffice, check_context(sims_guard, "proseware.example")).status == "skip"


@pytest.mark.parametrize(
    ("user", "password", "status", "text"),
    [
        ("ALICE", DEMO_PASSWORD, "pass", "is an administrator (General Administrator)"),
        ("BOB", DEMO_PASSWORD, "fail", "not General Administrator"),
        ("ALICE", "wrong", "fail", "refused the user name or password"),
    ],
)
def test_the_onsite_administrator_role(
    sims: SimulatorStack, sims_guard: NetGuard, user: str, password: str, status: str, text: str
) -> None:
    context = check_context(
        sims_guard,
        "adatum.example",
        superoffice_url=f"{sims.urls['superoffice']}/SuperOffice",
        superoffice_username=user,
        superoffice_password=password,
    )
    step = find_step(run_check(superoffice, context).steps, "superoffice.administrator")
    assert step.status == status
    assert text in step.message


def test_online_users_are_not_asked_for_a_password(
    sims: SimulatorStack, sims_guard: NetGuard
) -> None:
    context = check_context(
        sims_guard,
        "proseware.example",
        superoffice_url=f"{sims.urls['superoffice']}/Cust54567",
        superoffice_username="alex@proseware.example",
        superoffice_password="x",
    )
    step = find_step(run_check(superoffice, context).steps, "superoffice.administrator")
    assert step.status == "skip"
    assert "Sign in with SuperOffice" in step.message  # the report page's button


def test_the_cli_reads_the_superoffice_password_from_stdin(
    sims: SimulatorStack, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        main,
        [
            "check",
            "adatum.example",
            "--only",
            "superoffice",
            "--json",
            "--allow-private-networks",
            "--ca-bundle",
            sims.ca_file,
            "--superoffice-url",
            f"{sims.urls['superoffice']}/SuperOffice",
            "--superoffice-user",
            "ALICE",
        ],
        env={"SYNCHRONIZER_INSTANCE_PATH": str(tmp_path / "instance")},
        input=DEMO_PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    steps = json.loads(result.output)["checks"][0]["steps"]
    assert steps[-1]["id"] == "superoffice.administrator"
    assert steps[-1]["status"] == "pass"
    assert DEMO_PASSWORD not in result.output
