"""[ews_access] Signed-in EWS steps on on-premises Exchange, like the Remote Connectivity
Analyzer's: with the mailbox password, sign in as the mailbox, open its calendar (GetFolder)
and read its changes (SyncFolderItems), as Synchronizer does; with a service account, sign in
as it and do the same on the typed mailbox through ExchangeImpersonation. Each failing step
says its cause and its fix (`ews_diagnosis`).

The requests are exchangelib's own (`ews_client`), the library Synchronizer uses. Passwords go
only over https, to the EWS URL the person typed or to one Autodiscover found in the
mailbox's own domain. The service account is a credential handed over for this run only
(`context.credentials`), never stored."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from checksite.checks.autodiscover import Discovery, discovery
from checksite.checks.autodiscover_client import EXCHANGE_AUTH
from checksite.checks.context import CheckContext, TargetError
from checksite.checks.ews_diagnosis import Finding, Who, explain
from checksite.checks.ews_steps import Attempt, Result
from checksite.checks.model import Step, Stopwatch, verdict_of
from checksite.checks.password_policy import credentials_for

ID = "ews_access"
TITLE = "Mailbox access (EWS)"
SERVICE_ACCOUNT = "ews_service_account"  # keys of context.credentials
SERVICE_PASSWORD = "ews_service_password"  # noqa: S105 (a key, not a password)
_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z0-9-]+$"
)
_DOWN_LEVEL = re.compile(r"^[A-Za-z0-9._-]{1,15}\\[A-Za-z0-9.!#$%&'*+/=?^_`{|}~ -]{1,104}$")


def service_account_credentials(name: str | None, password: str | None) -> dict[str, str]:
    """The run's credentials for a service account typed as `svc@contoso.com` or
    `CONTOSO\\svc` with its password (both or neither); TargetError says what is wrong."""
    name, password = (name or "").strip(), password or ""
    if not name and not password:
        return {}
    if not name:
        raise TargetError(
            "a service account password needs the service account's name", "service_account"
        )
    if not password:
        raise TargetError("give the service account's password too", "service_password")
    if not (_ADDRESS.match(name) or _DOWN_LEVEL.match(name)):
        raise TargetError(
            "enter the service account as svc@contoso.com or CONTOSO\\svc", "service_account"
        )
    return {SERVICE_ACCOUNT: name, SERVICE_PASSWORD: password}


def run(context: CheckContext) -> Iterator[Step]:
    target = context.target
    service = context.credentials.get(SERVICE_ACCOUNT)
    service_password = context.credentials.get(SERVICE_PASSWORD)
    found = discovery(context)
    if found.outcome == "skipped":
        yield Step("ews_access.skipped", TITLE, "skip", found.message)
        return
    if not target.password and not service:
        yield Step(
            "ews_access.skipped",
            TITLE,
            "skip",
            "Give the mailbox password to test signing in, opening the calendar and reading "
            "its changes as Synchronizer does; give a service account too to test "
            "impersonation.",
        )
        return
    if found.outcome == "cloud":
        yield Step(
            "ews_access.skipped",
            TITLE,
            "skip",
            f"{found.message} Synchronizer reaches it through Microsoft Graph, not EWS on "
            "the on-premises server.",
        )
        return
    if found.outcome == "loop":
        yield Step(
            "ews_access.skipped",
            TITLE,
            "skip",
            "Autodiscover redirects in a loop (see Autodiscover), so no EWS URL to sign in "
            "to. Give the EWS URL by hand to test signing in.",
        )
        return
    if not found.ews_url and found.auth_problem:
        # Signing in there would only fail, and be misread as a refused password.
        yield Step(
            "ews_access.skipped",
            TITLE,
            "skip",
            "Synchronizer cannot sign in to the Exchange server Autodiscover found (see "
            f"Autodiscover): {found.auth_problem}",
            remediation="Once sign-in is allowed, run the check again; or give the EWS URL "
            "by hand to test signing in there.",
        )
        return
    if not found.ews_url and not _autodiscover_endpoint(context, found):
        yield Step(
            "ews_access.skipped",
            TITLE,
            "skip",
            "No EWS URL to sign in to: Autodiscover did not find this domain's Exchange. "
            "Give the EWS URL by hand to test signing in.",
        )
        return
    if found.ews_url and not _may_send_password(context, found.ews_url):
        yield Step(
            "ews_access.not_sent",
            TITLE,
            "skip",
            f"Passwords are not sent to {found.ews_url}: only over https, to the EWS URL you "
            f"give or to one in {target.domain} that Autodiscover found.",
            remediation="If this is your Exchange server, give its EWS URL by hand (https).",
        )
        return
    if target.mailbox and target.password:
        who = Who(target.mailbox, target.mailbox, found.ews_url or "")
        yield _walk(
            context,
            found,
            Attempt(context.guard, who, target.password, found.ews_url),
            "ews_access.mailbox",
            f"{target.mailbox} signs in and reads its calendar",
            "Signs in to EWS, opens its calendar and reads its changes, as Synchronizer will.",
        )
    if service and service_password:
        yield _impersonation(context, found, service, service_password)


def _impersonation(context: CheckContext, found: Discovery, service: str, password: str) -> Step:
    mailbox = context.target.mailbox
    step_id = "ews_access.impersonation"
    title = f"Service account {service} impersonates {mailbox or 'a mailbox'}"
    if mailbox is None:
        return Step(
            step_id,
            title,
            "skip",
            "Impersonation is tested on a mailbox: type a user's address (someone@"
            f"{context.target.domain}) instead of the domain.",
        )
    if mailbox.lower() == service.lower():
        return Step(
            step_id,
            title,
            "warn",
            "The service account would impersonate itself, which proves nothing.",
            remediation="Type a user's mailbox address as the address to check, and the "
            "service account in its own field.",
        )
    who = Who(service, mailbox, found.ews_url or "", impersonating=True)
    return _walk(
        context,
        found,
        Attempt(context.guard, who, password, found.ews_url),
        step_id,
        title,
        "Opens the calendar and reads its changes through impersonation, as Synchronizer "
        "will for every user.",
    )


def _autodiscover_endpoint(context: CheckContext, found: Discovery) -> str | None:
    """An Autodiscover URL that answered as Exchange (also with a password it refused, or
    an error about the address), when a password may be sent there."""
    urls = [found.endpoint_url] if found.outcome in ("found", "settings") else []
    urls += _answering_urls(found.steps)
    return next((url for url in urls if url and _may_send_password(context, url)), None)


def _answering_urls(steps: list[Step]) -> list[str]:
    """From [autodiscover]'s evidence: the URLs whose answer came from Exchange (an
    Exchange sign-in challenge, or an Autodiscover document)."""
    urls: list[str] = []
    for step in steps:
        for attempt in step.details.get("attempts") or []:
            methods = [m.lower() for m in attempt.get("authentication_methods") or []]
            if "action" in attempt or any(m in EXCHANGE_AUTH for m in methods):
                urls.append(str(attempt.get("url")))
        urls += _answering_urls(step.children)
    return urls


def _may_send_password(context: CheckContext, url: str) -> bool:
    if not url.startswith("https://"):
        return False
    return url == context.target.ews_url or credentials_for(context, url, "-") is not None


def _walk(
    context: CheckContext,
    found: Discovery,
    attempt: Attempt,
    step_id: str,
    title: str,
    success: str,
) -> Step:
    """The attempt's requests in order until one fails; the parent step carries the verdict,
    the cause and the fix, its children the evidence of each request."""
    who = attempt.who
    suffix = f" as {who.mailbox} (ExchangeImpersonation)" if who.impersonating else ""
    actions: list[tuple[str, str, Callable[[], Result]]] = []
    endpoint = _autodiscover_endpoint(context, found)
    if attempt.url is None and endpoint is not None:
        actions.append(
            (
                "autodiscover",
                f"Find EWS with Autodiscover, signed in as {who.account}",
                lambda: attempt.autodiscover(
                    endpoint, lambda url: _may_send_password(context, url)
                ),
            )
        )
    actions += [
        ("sign_in", f"Sign in to EWS as {who.account}", attempt.sign_in),
        ("calendar", f"Open the calendar (GetFolder){suffix}", attempt.calendar),
        ("sync", f"Read the calendar's changes (SyncFolderItems){suffix}", attempt.changes),
    ]
    watch = Stopwatch()
    children: list[Step] = []
    finding: Finding | None = None
    try:
        for name, action_title, action in actions:
            action_watch = Stopwatch()
            try:
                message, details = action()
            except Exception as exc:  # exchangelib's errors, the guard's and requests'
                context.guard.remaining()  # out of time: DeadlineExceeded for the runner
                finding = explain(
                    exc, Who(who.account, who.mailbox, attempt.url or "", who.impersonating)
                )
                children.append(
                    Step(
                        f"{step_id}.{name}",
                        action_title,
                        finding.status,
                        finding.message,
                        details={"error": finding.code},
                        elapsed_ms=action_watch.ms(),
                    )
                )
                break
            children.append(
                Step(
                    f"{step_id}.{name}",
                    action_title,
                    "pass",
                    message,
                    details=details,
                    elapsed_ms=action_watch.ms(),
                )
            )
    finally:
        attempt.close()
    return Step(
        step_id,
        title,
        verdict_of([c.status for c in children])
        if finding is None or finding.status != "skip"
        else "skip",
        finding.message if finding else success,
        details={"ews_url": attempt.url, "account": who.account, "mailbox": who.mailbox},
        remediation=finding.remediation if finding else "",
        elapsed_ms=watch.ms(),
        children=children,
    )
