"""[m365_tenant] The Microsoft 365 tenant exists (openid-configuration), its id, and whether
sign-in is Managed or Federated (getuserrealm); federation through a third-party identity
provider is flagged, because every sign-in then depends on that gateway."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

from checksite.checks.autodiscover import discovery
from checksite.checks.context import CheckContext
from checksite.checks.mail_system import MICROSOFT_365, mail_system
from checksite.checks.mailbox_home import CLOUD, ON_PREMISES, mailbox_home
from checksite.checks.model import Step, Stopwatch
from checksite.checks.tenant_lookup import Tenant, tenant_of

__all__ = ["ID", "TITLE", "Tenant", "run", "tenant_of"]

ID = "m365_tenant"
TITLE = "Microsoft 365 tenant"
MICROSOFT_HOSTS = ("microsoftonline.com", "microsoft.com", "windows.net", "live.com")


def run(context: CheckContext) -> Iterator[Step]:
    watch = Stopwatch()
    if mail_system(context).kind != MICROSOFT_365:
        yield Step(
            "m365_tenant.skipped",
            "Microsoft 365 tenant",
            "skip",
            "The domain's mail does not go to Microsoft 365.",
        )
        return
    tenant = tenant_of(context)
    if tenant.id is None and tenant.lookup_failed:
        yield Step(
            "m365_tenant.exists",
            "Microsoft's tenant lookup",
            "fail",
            f"{tenant.error}. The MX records point to Microsoft 365, but Microsoft could not be "
            "asked which tenant has the domain; this is not a fault of your set-up.",
            remediation="Run the check again in a few minutes.",
            elapsed_ms=watch.ms(),
        )
        return
    if tenant.id is None:
        yield Step(
            "m365_tenant.exists",
            "The tenant exists",
            "fail",
            f"Microsoft does not know a tenant for {context.target.domain}: {tenant.error}.",
            remediation="Add and verify the domain in the Microsoft 365 admin center "
            "(Settings → Domains), or enter the domain your mailboxes use.",
            elapsed_ms=watch.ms(),
        )
        return
    yield Step(
        "m365_tenant.exists",
        "The tenant exists",
        "pass",
        f"{context.target.domain} belongs to the tenant {tenant.id}.",
        details={"tenant_id": tenant.id},
        elapsed_ms=watch.ms(),
    )
    yield _realm_step(tenant)
    yield _sign_in_step(context, tenant)
    hybrid = _hybrid_step(context)
    if hybrid is not None:
        yield hybrid


def _hybrid_step(context: CheckContext) -> Step | None:
    """On-premises Exchange next to the tenant: both are reported, and where the mailbox is."""
    found = discovery(context)
    if found.outcome not in ("settings", "found", "cloud", "login_page"):
        return None
    server = urlsplit(found.endpoint_url or "").hostname or "an on-premises server"
    message = (
        f"{context.target.domain} has both this Microsoft 365 tenant and on-premises Exchange "
        f"(Autodiscover answers at {server}): a hybrid. "
    )
    home = mailbox_home(context)
    mailbox = context.target.mailbox
    if home.where == CLOUD:
        message += (
            f"{mailbox} lives in Exchange Online ({home.evidence}): Synchronizer reaches it "
            "through Microsoft Graph."
        )
    elif home.where == ON_PREMISES:
        message += (
            f"{mailbox} lives on-premises ({home.evidence}): Synchronizer reaches it through "
            "EWS on your Exchange, with a service account there."
        )
    elif mailbox is None:
        message += (
            "Enter a mailbox address to see whether it lives in Exchange Online or on-premises."
        )
    else:
        message += f"Where {mailbox} lives could not be told: {home.evidence}."
    return Step(
        "m365_tenant.hybrid",
        "Hybrid Exchange",
        "info",
        message,
        details={"onpremises_server": server, "mailbox": mailbox, "mailbox_home": home.where},
    )


def _realm_step(tenant: Tenant) -> Step:
    details = {"namespace_type": tenant.namespace, "brand": tenant.brand}
    if tenant.namespace == "Managed":
        return Step(
            "m365_tenant.realm",
            "Sign-in",
            "pass",
            "Managed: people sign in at Microsoft directly.",
            details=details,
        )
    if tenant.namespace == "Federated":
        gateway = urlsplit(tenant.auth_url or "").hostname or "an unknown host"
        details["auth_host"] = gateway
        if gateway.endswith(MICROSOFT_HOSTS):
            return Step("m365_tenant.realm", "Sign-in", "info", "Federated.", details=details)
        return Step(
            "m365_tenant.realm",
            "Sign-in",
            "warn",
            f"Federated: sign-in goes through a third-party identity provider ({gateway}). "
            "Administrators' sign-in and consent for Synchronizer depend on it.",
            details=details,
            remediation=f"Make sure the administrator who consents can sign in through "
            f"{gateway}, and that it does not block Microsoft's OAuth consent flow.",
        )
    return Step(
        "m365_tenant.realm",
        "Sign-in",
        "warn",
        "Microsoft did not say how people of this domain sign in.",
        details=details,
    )


def _sign_in_step(context: CheckContext, tenant: Tenant) -> Step:
    """Who signed in, and whether that sign-in is used: only an account of this tenant's."""
    from checksite.checks.m365_app import admin_sign_in  # (m365_app needs tenant_of)

    signed = admin_sign_in(context)
    domain = context.target.domain
    if signed is None:
        return Step(
            "m365_tenant.sign_in",
            "Administrator's sign-in",
            "info",
            "Nobody signed in: this report holds only what Microsoft publishes about "
            f"{domain}. An administrator of this tenant can sign in on the report page so the "
            "report also reads your plans and licences and Synchronizer's consent, with the "
            "administrator's own read-only access.",
        )
    details = {"signed_in_tenant": signed.tenant_id, "tenant_id": tenant.id}
    if signed.tenant_id.lower() != str(tenant.id).lower():
        return Step(
            "m365_tenant.sign_in",
            "Administrator's sign-in",
            "warn",
            f"{signed.username} signed in with an account of another tenant "
            f"({signed.tenant_id}), not of {domain}'s tenant ({tenant.id}). Nothing from that "
            "sign-in is used in this report.",
            details=details,
            remediation=f"Sign in with an administrator account of {domain}'s tenant.",
        )
    return Step(
        "m365_tenant.sign_in",
        "Administrator's sign-in",
        "pass",
        f"{signed.username} signed in with an account of this tenant; the report reads with "
        f"that account's access ({', '.join(sorted(signed.scopes)) or 'sign-in only'}).",
        details={**details, "signed_in_as": signed.username},
    )
