"""[google_workspace] against the Google simulator: delegation per scope, a real call per API,
Google's errors explained, and the administrator's role."""

from __future__ import annotations

import dataclasses

import pytest

from checksite.checks import google_workspace
from common.config import Settings
from common.netguard import NetGuard
from tests.fixtures.checks import check_context, find_step, run_check

DIRECTORY = "google_workspace.scope.admin.directory.user.readonly"


@pytest.mark.parametrize(
    ("admin", "status", "role"),
    [
        ("alice@northwind.example", "pass", "super administrator"),
        # Delegation has no roles scope: a delegated admin's exact role cannot be read.
        ("harry@northwind.example", "warn", "Cannot tell"),
        ("carol@northwind.example", "fail", "is not an administrator"),
    ],
)
def test_access_and_role(
    sims_guard: NetGuard, google_settings: Settings, admin: str, status: str, role: str
) -> None:
    result = run_check(google_workspace, check_context(sims_guard, admin, google_settings))
    assert result.status == status
    assert role in find_step(result.steps, "google_workspace.role").message
    calendar = find_step(result.steps, "google_workspace.scope.calendar")
    assert calendar.status == "pass"


def test_an_untrusted_app_without_delegation_is_explained(
    sims_guard: NetGuard, google_settings: Settings
) -> None:
    result = run_check(
        google_workspace, check_context(sims_guard, "tom@tailspin.example", google_settings)
    )
    scopes = find_step(result.steps, "google_workspace.scopes")
    assert scopes.status == "fail"
    assert "3 of 3 scopes refused" in scopes.message
    assert "clientIdToAdd=" in scopes.remediation
    step = find_step(result.steps, DIRECTORY)
    assert step.details["error"] == "unauthorized_client"
    assert "Domain-wide delegation" in step.remediation


def test_an_unknown_user_is_explained(sims_guard: NetGuard, google_settings: Settings) -> None:
    result = run_check(
        google_workspace, check_context(sims_guard, "nobody@northwind.example", google_settings)
    )
    assert find_step(result.steps, DIRECTORY).details["error"] == "invalid_grant"


def test_skipped_without_a_service_account_or_an_admin(
    sims_guard: NetGuard, google_settings: Settings
) -> None:
    bare = dataclasses.replace(google_settings, google_service_account_file=None)
    result = run_check(google_workspace, check_context(sims_guard, "alice@northwind.example", bare))
    assert result.status == "skip"
    assert "GOOGLE_SERVICE_ACCOUNT_FILE" in result.steps[0].message
    result = run_check(
        google_workspace, check_context(sims_guard, "northwind.example", google_settings)
    )
    assert result.status == "skip"
    assert (
        run_check(
            google_workspace, check_context(sims_guard, "proseware.example", google_settings)
        ).status
        == "skip"
    )
