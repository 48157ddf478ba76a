"""[m365_tenant], [m365_plan] and [app_consent] against the Microsoft simulator, without a
sign-in (with one: test_microsoft_signin.py)."""

from __future__ import annotations

import json

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


def test_without_a_sign_in_plans_and_consent_are_explained_not_read(
    sims_guard: NetGuard, sim_settings: Settings
) -> None:
    context = check_context(sims_guard, "nomail@contoso.example", sim_settings)
    plan = run_check(m365_plan, context)
    assert plan.status == "info"
    step = find_step(plan.steps, "m365_plan.sign_in_needed")
    assert "whether nomail@contoso.example has an Exchange Online licence" in step.message
    consent = find_step(run_check(app_consent, context).steps, "app_consent.model")
    assert consent.status == "info"
    assert "/adminconsent?client_id=" in consent.message
    for permission in ("User.ReadBasic.All", "Calendars.ReadWrite", "offline_access"):
        assert permission in consent.message
    assert "User.Read.All" not in consent.message  # the delegated model: no directory-wide read


def test_without_our_application_configured_consent_is_skipped(
    sims_guard: NetGuard, sim_settings: Settings
) -> None:
    import dataclasses

    bare = dataclasses.replace(sim_settings, microsoft_client_id=None)
    result = run_check(app_consent, check_context(sims_guard, "contoso.example", bare))
    assert result.status == "skip"
    assert "MICROSOFT_CLIENT_ID" in result.steps[0].message
