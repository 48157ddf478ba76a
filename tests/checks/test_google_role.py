"""The Google administrator's role, decided from the role assignments and the roles: Help Desk
Admin or higher passes (named), a lower role fails, a 403 on the role lists is "cannot tell".
A Google simulator of its own, with custom roles that may read roles."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import requests

from checksite.checks.google_role import ROLES_SCOPE, role_step
from checksite.checks.model import Step
from common.config import Settings
from common.http import guarded_session
from common.netguard import NetGuard
from simulators.platform.server import SimServer
from simulators.world.google import GoogleUser, GoogleWorld, Role, demo
from tests.fixtures.checks import check_context

USERS = "https://www.googleapis.com/auth/admin.directory.user.readonly"
READ_ROLES = ["USERS_RETRIEVE", "ROLE_MANAGEMENT"]


@pytest.fixture
def google_world() -> GoogleWorld:
    world = demo()
    world.roles += [
        Role(
            "1",
            "Directory steward",
            "Custom",
            [*READ_ROLES, "USERS_ALL", "ORGANIZATION_UNITS_RETRIEVE"],
            is_system=False,
        ),  # fmt: skip
        Role("2", "Role reader", "Custom", READ_ROLES, is_system=False),
    ]
    domain = next(d for d in world.domains if d.name == "northwind.example")
    domain.users += [
        GoogleUser(
            "stella@northwind.example", "Stella", "Steward", "9001", roles=["Directory steward"]
        ),
        GoogleUser("rhea@northwind.example", "Rhea", "Reader", "9002", roles=["Role reader"]),
    ]
    return world


def decide(
    admin: str,
    settings: Settings,
    guard: NetGuard,
    server: SimServer,
    mint: Callable[..., str],
    roles: bool = True,
) -> Step:
    config = dataclasses.replace(settings, google_api_url=server.url)
    context = check_context(guard, admin, config)
    session: requests.Session = guarded_session(guard)
    token = mint(admin, USERS, ROLES_SCOPE) if roles else mint(admin, USERS)
    access = (token, "") if roles else (None, "no roles scope")
    return role_step(context, session, admin, token, lambda: access)


@pytest.fixture
def role_of(
    sims_guard: NetGuard,
    sim_settings: Settings,
    google_server: SimServer,
    google_token: Callable[..., str],
) -> Callable[..., Step]:
    return lambda admin, **kw: decide(
        admin, sim_settings, sims_guard, google_server, google_token, **kw
    )


def test_a_super_admin_passes(role_of: Callable[..., Step]) -> None:
    step = role_of("alice@northwind.example")
    assert step.status == "pass" and "is a super administrator" in step.message


def test_a_role_with_help_desk_privileges_passes_and_is_named(
    role_of: Callable[..., Step],
) -> None:
    step = role_of("stella@northwind.example")
    assert step.status == "pass", step.message
    assert "Custom (Directory steward)" in step.message


def test_a_role_without_help_desk_privileges_fails(role_of: Callable[..., Step]) -> None:
    step = role_of("rhea@northwind.example")
    assert step.status == "fail"
    assert "USERS_RESET_PASSWORD" in step.message and "Help Desk Admin" in step.remediation


def test_a_help_desk_admin_is_cannot_tell_with_the_reason(role_of: Callable[..., Step]) -> None:
    step = role_of("harry@northwind.example")
    assert step.status == "warn"
    assert "Cannot tell" in step.message and "403" in step.message
    assert "Admin roles and privileges" in step.remediation  # what to check by hand


def test_without_the_roles_scope_it_says_why(role_of: Callable[..., Step]) -> None:
    step = role_of("stella@northwind.example", roles=False)
    assert step.status == "warn" and "no roles scope" in step.message


def test_a_user_is_not_an_administrator(role_of: Callable[..., Step]) -> None:
    step = role_of("carol@northwind.example")
    assert step.status == "fail" and "not an administrator" in step.message
