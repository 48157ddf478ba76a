"""[app_consent] Is our application consented in the tenant, with which permissions, and if
not: the admin-consent link, the application id, and the permissions we request and why."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from checksite.checks.context import CheckContext
from checksite.checks.m365_app import (
    APPROVAL_REQUIRED,
    CONSENT_REQUIRED,
    CONSENT_SIGN_IN,
    NOT_CONSENTED,
    REQUIRED_PERMISSIONS,
    admin_consent_url,
    app_token,
)
from checksite.checks.m365_tenant import tenant_of
from checksite.checks.mail_system import MICROSOFT_365, mail_system
from checksite.checks.model import Report, Step, Stopwatch

ID = "app_consent"
TITLE = "Synchronizer app consent (Microsoft 365)"


def permissions_text() -> str:
    return "; ".join(f"{name}: to {why}" for name, why in REQUIRED_PERMISSIONS.items())


def run(context: CheckContext) -> Iterator[Step]:
    watch = Stopwatch()
    if mail_system(context).kind != MICROSOFT_365:
        yield Step("app_consent.skipped", "App consent", "skip", "Not a Microsoft 365 domain.")
        return
    tenant = tenant_of(context)
    if tenant.id is None:
        yield Step(
            "app_consent.skipped", "App consent", "skip", "The tenant was not found (see above)."
        )
        return
    token = app_token(context)
    client_id = context.setting("microsoft_client_id")
    if not token.configured:
        yield Step(
            "app_consent.configuration",
            "App consent",
            "skip",
            "This Synchronizer installation has no Microsoft application configured "
            "(MICROSOFT_CLIENT_ID and MICROSOFT_CLIENT_SECRET), so consent cannot be tested.",
        )
        return
    details = {"application_id": client_id, "tenant_id": tenant.id}
    link = admin_consent_url(context, tenant.id)
    if token.token is None:
        yield _refused(context, token.error_code, token.error, details, link, watch)
        return
    missing = [p for p in REQUIRED_PERMISSIONS if p not in token.roles]
    details["granted"] = token.roles
    if missing:
        yield Step(
            "app_consent.granted",
            "Consent",
            "fail",
            f"Synchronizer is consented, but without {', '.join(missing)}.",
            details={**details, "missing": missing},
            remediation=f"Grant the missing permissions again at {link} . "
            f"Permissions we request: {permissions_text()}.",
            elapsed_ms=watch.ms(),
        )
        return
    yield Step(
        "app_consent.granted",
        "Consent",
        "pass",
        f"Synchronizer (application {client_id}) is consented with {', '.join(token.roles)}.",
        details=details,
        elapsed_ms=watch.ms(),
    )


def _refused(
    context: CheckContext,
    code: int | None,
    error: str | None,
    details: dict[str, object],
    link: str,
    watch: Stopwatch,
) -> Step:
    """No app token: why, as precisely as the evidence allows. From outside, "never consented"
    and "approval for apps is on" look the same (AADSTS700016); an interactive sign-in tells
    them apart (AADSTS65001 consent required vs AADSTS90094 admin approval required)."""
    client_id = context.setting("microsoft_client_id")
    permissions = f"Permissions we request: {permissions_text()}."
    grant = (
        f"A Global Administrator (or Privileged Role / Cloud Application Administrator) grants "
        f"consent for the organisation once at {link} ."
    )
    details = {**details, "error_code": code, "error": error}
    if code != NOT_CONSENTED:
        return Step(
            "app_consent.granted",
            "Consent",
            "fail",
            f"Microsoft refused a token for Synchronizer: {error}",
            details=details,
            remediation=f"{grant} {permissions}",
            elapsed_ms=watch.ms(),
        )
    evidence, _, who = context.credentials.get(CONSENT_SIGN_IN, "").partition(" ")
    who = who or "the person who signed in"
    if evidence == str(APPROVAL_REQUIRED):
        return Step(
            "app_consent.granted",
            "Consent",
            "fail",
            f"Approval for apps is on: users may not consent to apps themselves, so Microsoft "
            f"told {who} that Synchronizer needs an administrator's approval (AADSTS90094).",
            details={**details, "sign_in": "admin approval required (AADSTS90094)"},
            remediation=f"An administrator approves application id {client_id} (Synchronizer): "
            "Microsoft Entra admin center → Enterprise applications → Admin consent requests, "
            "or add that application id to the apps your consent policy allows. "
            f"{grant} {permissions}",
            elapsed_ms=watch.ms(),
        )
    if evidence == str(CONSENT_REQUIRED):
        return Step(
            "app_consent.granted",
            "Consent",
            "fail",
            f"Synchronizer has never been consented in this tenant: Microsoft asked {who} for "
            "consent (AADSTS65001). Approval for apps does not stop this person (it would have "
            "answered AADSTS90094); it never stops an administrator.",
            details={**details, "sign_in": "consent required (AADSTS65001)"},
            remediation=f"{grant} {permissions}",
            elapsed_ms=watch.ms(),
        )
    return Step(
        "app_consent.granted",
        "Consent",
        "fail",
        "Synchronizer is not consented in this tenant yet (AADSTS700016), or approval for apps "
        "is on: from outside these look the same. Sign in on the report page to tell them "
        "apart.",
        details=details,
        remediation=f"{grant} If approval for apps (admin consent requests) is on, approve "
        f"application id {client_id} or add it to the allowed apps. {permissions}",
        elapsed_ms=watch.ms(),
    )


def consent_missing(report: dict[str, Any] | None) -> bool:
    """The report's [app_consent] found no service principal for our app (AADSTS700016)."""
    if not report:
        return False
    for check in Report.from_dict(report).checks:
        for step in check.steps if check.id == "app_consent" else []:
            if step.id == "app_consent.granted" and step.details.get("error_code") == NOT_CONSENTED:
                return True
    return False
