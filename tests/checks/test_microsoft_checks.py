"""[m365_tenant], [m365_plan] and [app_consent] against the Microsoft simulator."""

from __future__ import annotations

import json

import pytest

from checksite.checks import app_consent, m365_plan, m365_tenant
from checksite.checks.m365_plan import TABLE, has_mailbox_plan
from common.config import Settings
from common.netguard import NetGuard
from tests.fixtures.checks import check_context, find_step, run_check


def test_tenant_exists_and_is_managed(sims_guard: NetGuard, sim_settings: Settings) -> None:
    result = run_check(m365_tenant, check_context(sims_guard, "contoso.example", sim_settings))
    assert result.status == "pass"
    assert len(find_step(result.steps, "m365_tenant.exists").details["tenant_id"]) == 36
    assert find_step(result.steps, "m365_tenant.realm").message.startswith("Managed")


def test_federation_through_a_third_party_is_flagged(
    sims_guard: NetGuard, sim_settings: Settings
) -> None:
    context = check_context(sims_guard, "tailwindtraders.example", sim_settings)
    realm = find_step(run_check(m365_tenant, context).steps, "m365_tenant.realm")
    assert realm.status == "warn"
    assert "tailwindtraders.okta.example" in realm.message


def test_tenant_checks_skip_other_mail_systems(
    sims_guard: NetGuard, sim_settings: Settings
) -> None:
    for module in (m365_tenant, m365_plan, app_consent):
        context = check_context(sims_guard, "proseware.example", sim_settings)
        assert run_check(module, context).status == "skip"


@pytest.mark.parametrize(
    ("target", "tenant_status", "user_status"),
    [
        ("adele@contoso.example", "pass", "pass"),
        ("nomail@contoso.example", "pass", "fail"),
        ("appsonly.example", "fail", None),
    ],
)
def test_plans_are_matched_on_service_plans(
    sims_guard: NetGuard,
    sim_settings: Settings,
    target: str,
    tenant_status: str,
    user_status: str | None,
) -> None:
    result = run_check(m365_plan, check_context(sims_guard, target, sim_settings))
    skus = find_step(result.steps, "m365_plan.skus")
    assert skus.status == tenant_status
    if tenant_status == "fail":
        assert "Microsoft 365 Apps" in skus.message
        assert "no Exchange Online mailbox" in skus.message
    if user_status is not None:
        assert find_step(result.steps, "m365_plan.user").status == user_status


def test_the_licensing_table_decides_by_plan_not_by_name() -> None:
    table = json.loads(TABLE.read_text())
    by_string = {sku["string_id"]: sku_id for sku_id, sku in table["skus"].items()}
    for string_id in ("O365_BUSINESS_ESSENTIALS", "O365_BUSINESS_PREMIUM", "SPB", "ENTERPRISEPACK"):
        assert has_mailbox_plan(by_string[string_id], [])
    for string_id in ("O365_BUSINESS", "OFFICESUBSCRIPTION"):
        assert not has_mailbox_plan(by_string[string_id], [])
    # The servicePlans Graph returns win over the table: a renamed SKU still counts.
    exchange_plan = next(iter(table["mailbox_plans"]))
    assert has_mailbox_plan(
        "00000000-0000-0000-0000-000000000000", [{"servicePlanId": exchange_plan}]
    )


def test_consent_granted_lists_the_permissions(
    sims_guard: NetGuard, sim_settings: Settings
) -> None:
    result = run_check(app_consent, check_context(sims_guard, "contoso.example", sim_settings))
    step = find_step(result.steps, "app_consent.granted")
    assert step.status == "pass"
    assert "Calendars.ReadWrite" in step.details["granted"]


@pytest.mark.parametrize("domain", ["fourthcoffee.example", "litware.example"])
def test_missing_consent_explains_what_to_do(
    sims_guard: NetGuard, sim_settings: Settings, domain: str
) -> None:
    result = run_check(app_consent, check_context(sims_guard, domain, sim_settings))
    step = find_step(result.steps, "app_consent.granted")
    assert step.status == "fail"
    assert "not consented" in step.message
    assert "/adminconsent?client_id=" in step.remediation
    assert sim_settings.microsoft_client_id in step.remediation
    assert "Calendars.ReadWrite: to read and write" in step.remediation
    assert run_check(m365_plan, check_context(sims_guard, domain, sim_settings)).status == "skip"


def test_without_our_application_configured_consent_is_skipped(
    sims_guard: NetGuard, sim_settings: Settings
) -> None:
    import dataclasses

    bare = dataclasses.replace(sim_settings, microsoft_client_id=None)
    result = run_check(app_consent, check_context(sims_guard, "contoso.example", bare))
    assert result.status == "skip"
    assert "MICROSOFT_CLIENT_ID" in result.steps[0].message
