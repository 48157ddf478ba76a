"""[m365_plan] The tenant's subscriptions include Exchange Online (matched on service plans
from Microsoft's licensing table, never on product names), and the mailbox's own licence. Read
only with the token of an administrator of the tenant who signed in on the report page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from checksite.checks.context import CheckContext
from checksite.checks.m365_app import READ_PLANS, admin_of_target, graph_get
from checksite.checks.m365_tenant import tenant_of
from checksite.checks.mail_system import MICROSOFT_365, mail_system
from checksite.checks.model import Step, Stopwatch
from common.http import BodyTooLarge
from common.netguard import Blocked, ResolveError

ID = "m365_plan"
TITLE = "Microsoft 365 plan"
TABLE = Path(__file__).with_name("m365_plans.json")  # from tools/derive_m365_plans.py
APPS_ONLY_EXPLANATION = (
    "Microsoft 365 Apps (for business or enterprise) contain the Office applications but no "
    "Exchange Online mailbox, so there is no calendar for Synchronizer to use."
)


@cache
def licensing_table() -> dict[str, Any]:
    return json.loads(TABLE.read_text(encoding="utf-8"))


def has_mailbox_plan(sku_id: str, service_plans: list[dict[str, Any]]) -> bool:
    """True when one of the SKU's service plans provisions an Exchange Online mailbox."""
    table = licensing_table()
    mailbox_plans = table["mailbox_plans"]
    if service_plans:
        return any(str(p.get("servicePlanId", "")).lower() in mailbox_plans for p in service_plans)
    known = table["skus"].get(sku_id.lower())
    return bool(known and known["mailbox_plans"])


def mailbox_plan_states(service_plans: list[dict[str, Any]]) -> list[str]:
    """provisioningStatus of each Exchange Online mailbox plan in one user's licence: an
    administrator can switch a plan off for a user ("Disabled") while the licence stays."""
    mailbox_plans = licensing_table()["mailbox_plans"]
    return [
        str(p.get("provisioningStatus", "Success"))
        for p in service_plans
        if str(p.get("servicePlanId", "")).lower() in mailbox_plans
    ]


def sku_name(sku_id: str, fallback: str) -> str:
    known = licensing_table()["skus"].get(sku_id.lower())
    return str(known["name"]) if known else fallback


def run(context: CheckContext) -> Iterator[Step]:
    watch = Stopwatch()
    if mail_system(context).kind != MICROSOFT_365 or tenant_of(context).id is None:
        yield Step("m365_plan.skipped", "Plan", "skip", "Not a Microsoft 365 tenant.")
        return
    signed = admin_of_target(context)
    if signed is None or not signed.may(*READ_PLANS):
        yield _not_read(context, signed is not None)
        return
    try:
        response = graph_get(context, signed.token, "/subscribedSkus")
        skus = response.json().get("value", []) if response.status_code == 200 else None
    except (Blocked, ResolveError, BodyTooLarge, requests.RequestException, ValueError) as exc:
        yield Step("m365_plan.skus", "Subscriptions", "warn", f"Could not read them: {exc}")
        return
    if skus is None:
        yield Step(
            "m365_plan.skus",
            "Subscriptions",
            "warn",
            f"Microsoft Graph answered HTTP {response.status_code} for the subscriptions.",
        )
        return
    yield _tenant_step(skus, watch, signed.username)
    if context.target.mailbox:
        yield _user_step(context, signed.token, context.target.mailbox)


def _not_read(context: CheckContext, signed_without_access: bool) -> Step:
    """What a sign-in would add: the plans are the tenant's business, read only with an
    administrator's own access, never with ours."""
    mailbox = context.target.mailbox
    what = "Which plans the tenant has" + (
        f" and whether {mailbox} has an Exchange Online licence" if mailbox else ""
    )
    if signed_without_access:
        reason = f"the sign-in did not include reading them ({', '.join(READ_PLANS)})"
    else:
        reason = "nobody of this tenant signed in"
    return Step(
        "m365_plan.sign_in_needed",
        "Plan",
        "info",
        f"{what} is read only with the access of an administrator of this tenant; {reason}. "
        "Sign in on the report page (tick the plans) to have them read.",
    )


def _tenant_step(skus: list[dict[str, Any]], watch: Stopwatch, username: str) -> Step:
    children = []
    with_mailbox = []
    for sku in skus:
        sku_id = str(sku.get("skuId", ""))
        name = sku_name(sku_id, str(sku.get("skuPartNumber", sku_id)))
        active = sku.get("capabilityStatus", "Enabled") == "Enabled"
        mailbox = has_mailbox_plan(sku_id, sku.get("servicePlans") or [])
        if mailbox and active:
            with_mailbox.append(name)
        children.append(
            Step(
                f"m365_plan.sku.{sku_id}",
                name,
                "info",
                ("includes an Exchange Online mailbox" if mailbox else "no Exchange Online")
                + ("" if active else f" ({sku.get('capabilityStatus')})"),
                details={"sku_id": sku_id, "part_number": sku.get("skuPartNumber")},
            )
        )
    if with_mailbox:
        return Step(
            "m365_plan.skus",
            "Subscriptions",
            "pass",
            f"Exchange Online is included in {', '.join(with_mailbox)}.",
            details={"read_with": "an administrator's sign-in", "signed_in_as": username},
            children=children,
            elapsed_ms=watch.ms(),
        )
    return Step(
        "m365_plan.skus",
        "Subscriptions",
        "fail",
        "No subscription of this tenant includes Exchange Online. " + APPS_ONLY_EXPLANATION,
        details={"read_with": "an administrator's sign-in", "signed_in_as": username},
        remediation="Add a plan with Exchange Online (Microsoft 365 Business Basic, Standard or "
        "Premium, Office 365 E1/E3/E5, Exchange Online Plan 1 or 2) for the people you "
        "synchronize.",
        children=children,
        elapsed_ms=watch.ms(),
    )


def _user_step(context: CheckContext, token: str, mailbox: str) -> Step:
    try:
        response = graph_get(context, token, f"/users/{quote(mailbox)}/licenseDetails")
    except (Blocked, ResolveError, BodyTooLarge, requests.RequestException) as exc:
        return Step("m365_plan.user", f"Licence of {mailbox}", "warn", str(exc))
    if response.status_code == 404:
        return Step(
            "m365_plan.user",
            f"Licence of {mailbox}",
            "fail",
            f"{mailbox} is not a user of this tenant.",
            remediation="Check the address (it must be the user's sign-in name / UPN).",
        )
    if response.status_code != 200:
        return Step(
            "m365_plan.user",
            f"Licence of {mailbox}",
            "warn",
            f"Microsoft Graph answered HTTP {response.status_code}.",
        )
    licences = response.json().get("value", [])
    names = [sku_name(str(x.get("skuId", "")), str(x.get("skuPartNumber", ""))) for x in licences]
    states = [s for x in licences for s in mailbox_plan_states(x.get("servicePlans") or [])]
    if states and all(s == "Disabled" for s in states):
        return Step(
            "m365_plan.user",
            f"Licence of {mailbox}",
            "fail",
            f"{mailbox} has a licence with Exchange Online ({', '.join(names)}), but Exchange "
            "Online is switched off for this user in it, so there is no mailbox to synchronize.",
            details={"licences": names, "exchange_plans": states},
            remediation=f"In the Microsoft 365 admin center, open {mailbox} → Licenses and apps "
            "and tick Exchange Online under the licence's apps.",
        )
    if any(s != "Disabled" for s in states) or any(
        has_mailbox_plan(str(x.get("skuId", "")), x.get("servicePlans") or []) for x in licences
    ):
        return Step(
            "m365_plan.user",
            f"Licence of {mailbox}",
            "pass",
            f"{mailbox} has Exchange Online ({', '.join(names)}).",
            details={"licences": names},
        )
    return Step(
        "m365_plan.user",
        f"Licence of {mailbox}",
        "fail",
        f"{mailbox} has no licence with Exchange Online"
        + (f" (only {', '.join(names)})." if names else ".")
        + (" " + APPS_ONLY_EXPLANATION if names else ""),
        details={"licences": names},
        remediation=f"Assign {mailbox} a licence that includes Exchange Online.",
    )
