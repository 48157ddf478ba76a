"""[app_consent] Is our application consented in the tenant, with which permissions, and if
not: the admin-consent link, the application id, and the permissions we request and why."""

from __future__ import annotations

from collections.abc import Iterator

from checksite.checks.context import CheckContext
from checksite.checks.m365_app import (
    NOT_CONSENTED,
    REQUIRED_PERMISSIONS,
    admin_consent_url,
    app_token,
)
from checksite.checks.m365_tenant import tenant_of
from checksite.checks.mail_system import MICROSOFT_365, mail_system
from checksite.checks.model import Step, Stopwatch

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
        consented = token.error_code != NOT_CONSENTED
        yield Step(
            "app_consent.granted",
            "Consent",
            "fail",
            "Synchronizer is not consented in this tenant yet."
            if not consented
            else f"Microsoft refused a token for Synchronizer: {token.error}",
            details={**details, "error_code": token.error_code, "error": token.error},
            remediation=(
                f"A Global Administrator (or Privileged Role / Cloud Application "
                f"Administrator) grants consent once at {link} . If 'admin consent requests' "
                f"or approval for apps is on, approve the application id {client_id}. "
                f"Permissions we request: {permissions_text()}."
            ),
            elapsed_ms=watch.ms(),
        )
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
