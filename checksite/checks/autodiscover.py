"""[autodiscover] The four methods in the order Outlook tries them, redirects followed with a
loop and hop limit, and the EWS and OAB URLs found (or how to give them by hand).

The methods run concurrently (they are independent), and the first one in client order that
works wins (`autodiscover_race`): the check takes as long as the slowest method it needs, not
the sum of them, and a method that hangs gets a short grace, then a warning.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

import dns.exception
import dns.resolver
import requests

from checksite.checks import own_network
from checksite.checks.autodiscover_client import Exchange, get_url, post_pox
from checksite.checks.autodiscover_race import MethodOutcome, Work, race
from checksite.checks.channel_binding import binding_session
from checksite.checks.context import CheckContext
from checksite.checks.endpoints import url_endpoint
from checksite.checks.ews_probe import UrlAnswer, ews_answer, oab_answer
from checksite.checks.mail_only import mail_only_evidence
from checksite.checks.mail_system import (
    MAY_BE_EXCHANGE,
    MICROSOFT_365,
    mail_system,
    not_applicable,
)
from checksite.checks.model import Step, Stopwatch
from checksite.checks.password_policy import credentials_for
from checksite.checks.tenant_lookup import tenant_id_of_domain, tenant_of
from common.netguard import Blocked, DeadlineExceeded, NetGuard, ResolveError

ID = "autodiscover"
TITLE = "Autodiscover"
MAX_HOPS = 10
PATH = "/autodiscover/autodiscover.xml"
MANUAL_URLS_HELP = (  # the page and the CLI show it: it names no command-line option
    "When Autodiscover cannot be made to work, Synchronizer accepts the EWS and OAB URLs by "
    "hand: in the profile's Exchange settings choose 'Enter the EWS URL manually'. This "
    "check takes them by hand too (as https://mail.example.com/EWS/Exchange.asmx and "
    "https://mail.example.com/OAB/)."
)


@dataclass(frozen=True)
class TriedHost:
    """An https host an Autodiscover method (or redirect) tried, and where that failed: ""
    (it answered), dns, tcp, tls, http, or hung (stopped while it still waited)."""

    host: str
    port: int
    stage: str


@dataclass
class Discovery:
    """What Autodiscover revealed; shared with [tls], [firewall] and [exchange_version]."""

    # settings | found | manual | login_page | loop | none | skipped | cloud (a hybrid's mailbox
    # in Exchange Online)
    outcome: str = "none"
    method: str | None = None
    endpoint_url: str | None = None
    ews_url: str | None = None
    oab_url: str | None = None
    server_version: str | None = None
    owa_version: str | None = None
    auth_methods: list[str] = field(default_factory=list)
    mailbox: str | None = None
    steps: list[Step] = field(default_factory=list)
    message: str = ""
    tried: list[TriedHost] = field(default_factory=list)  # for [tls]: TLS may be why it failed
    auth_problem: str = ""  # why Synchronizer cannot sign in to the endpoint found
    auth_fix: str = ""
    password_refused: bool = False  # the endpoint found did not accept the mailbox password


def discovery(context: CheckContext) -> Discovery:
    return context.fact("autodiscover", lambda: discover(context))


def discover(context: CheckContext) -> Discovery:
    target = context.target
    if target.ews_url:
        return Discovery(
            "manual",
            method="manual",
            ews_url=target.ews_url,
            oab_url=target.oab_url,
            message="EWS and OAB URLs were given by hand; Autodiscover was not needed.",
        )
    reason = not_applicable(context)
    if reason is not None:
        return Discovery("skipped", message=f"Not tried: {reason}")
    system = mail_system(context)
    if system.kind not in MAY_BE_EXCHANGE:
        return Discovery("skipped", message=f"Not needed: the domain uses {system.label}.")
    if system.kind == MICROSOFT_365:
        cloud = _microsoft_autodiscover_record(context)
        if cloud is not None:
            return Discovery("skipped", message=cloud)
    session = context.session()
    email = target.mailbox or f"synchronizer-check@{target.domain}"
    found = Discovery(mailbox=email)
    seen_addresses = {email.lower()}
    for _ in range(MAX_HOPS):
        round_steps, winner = _try_methods(context, email, found)
        found.steps.append(
            Step(
                f"autodiscover.methods.{len(found.steps)}",
                f"Autodiscover for {email}",
                "pass" if winner else "fail",
                f"Found by {winner[0]}." if winner else "No method worked.",
                children=round_steps,
            )
        )
        if winner is None:
            found.message = "None of the four Autodiscover methods found this domain's Exchange."
            failed_tls = [t.host for t in found.tried if t.stage == "tls"]
            if failed_tls:  # a server is there: TLS is why, not a missing record
                found.message = (
                    f"Autodiscover reached {', '.join(failed_tls)}, but the TLS handshake failed "
                    "there; the TLS check shows why."
                )
            return found
        method, exchange = winner
        found.method = method
        exchange = _follow_redirect_urls(context, session, exchange, email, found)
        _record(found, exchange)
        answer = exchange.answer
        if exchange.outcome == "redirect" and answer and answer.action == "redirectAddr":
            new = (answer.redirect or "").strip()
            if new.lower() in seen_addresses:
                found.outcome = "loop"
                found.message = f"Autodiscover redirects addresses in a loop ({email} → {new})."
                return found
            if "@" not in new:
                found.message = f"Autodiscover redirected to an invalid address: {new!r}."
                return found
            if _moved_to_exchange_online(context, new):
                found.outcome = "cloud"
                found.mailbox = new
                found.message = (
                    f"Autodiscover sends {email} on to {new}, an address of the same Microsoft "
                    "365 tenant: this mailbox lives in Exchange Online."
                )
                return found
            seen_addresses.add(new.lower())
            email = new
            continue
        return found
    found.outcome = "loop"
    found.message = f"Gave up after {MAX_HOPS} redirects."
    return found


# The CNAME Microsoft 365 asks every customer domain to publish for Outlook.
MICROSOFT_AUTODISCOVER = "autodiscover.outlook.com"


def _microsoft_autodiscover_record(context: CheckContext) -> str | None:
    """Why on-premises Autodiscover need not be tried for a Microsoft 365 domain (its
    autodiscover name points to Exchange Online), or None (it may be a hybrid: try it)."""
    name = f"autodiscover.{context.target.domain}"
    try:
        answers = context.guard.query(name, "CNAME")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
        return None
    except dns.exception.Timeout:
        return None
    targets = [r.target.to_text(omit_final_dot=True).lower() for r in answers]
    if MICROSOFT_AUTODISCOVER in targets:
        return (
            f"Not needed: {name} points to Exchange Online ({MICROSOFT_AUTODISCOVER}), so no "
            "on-premises Exchange answers for this Microsoft 365 domain."
        )
    return None


def _moved_to_exchange_online(context: CheckContext, address: str) -> bool:
    """A hybrid's on-premises Exchange redirects a moved mailbox to its routing address in the
    tenant (user@tenant.mail.onmicrosoft.com); Microsoft's tenant lookup tells it apart."""
    if mail_system(context).kind != MICROSOFT_365:
        return False
    domain = address.rpartition("@")[2].lower()
    tenant = tenant_of(context).id
    return (
        domain != context.target.domain
        and tenant is not None
        and (tenant_id_of_domain(context, domain) == tenant)
    )


def _methods(domain: str) -> list[tuple[str, str, str]]:
    return [
        ("https://domain", f"https://{domain}{PATH}", "post"),
        ("https://autodiscover.domain", f"https://autodiscover.{domain}{PATH}", "post"),
        ("HTTP redirect (port 80)", f"http://autodiscover.{domain}{PATH}", "redirect"),
        ("DNS SRV record", f"_autodiscover._tcp.{domain}", "srv"),
    ]


def _try_methods(
    context: CheckContext, email: str, found: Discovery
) -> tuple[list[Step], tuple[str, Exchange] | None]:
    domain = email.rpartition("@")[2]
    password = context.target.password
    methods = _methods(domain)

    def method(kind: str, url: str) -> Work:
        return lambda guard: _run_method(context, guard, kind, url, email, password)

    outcomes, won = race(
        context,
        [(name, method(kind, url)) for name, url, kind in methods],
        lambda exchanges: _works(exchanges[-1]),
    )
    if won is None:  # nothing worked; an Exchange that refused the password found the most
        won = next(
            (i for i, o in enumerate(outcomes) if o.exchanges and o.exchanges[-1].password_refused),
            None,
        )
    winner = (methods[won][0], outcomes[won].exchanges[-1]) if won is not None else None
    for (_, url, _), outcome in zip(methods, outcomes, strict=True):
        if outcome.hung:
            _note_tried(found, url, "hung")
        for exchange in outcome.exchanges:
            _note_tried(found, exchange.url, exchange.stage)
    steps: list[Step] = []
    for (name, url, _), outcome in zip(methods, outcomes, strict=True):
        step_id = f"autodiscover.method.{len(steps) + 1}"
        if outcome.hung or outcome.skipped:
            steps.append(_unfinished_step(step_id, name, url, outcome))
            continue
        last = outcome.exchanges[-1]
        if _works(last) and last.outcome != "login_page":
            status = "pass"
        else:  # a failed method is only evidence once another one worked
            status = "fail" if winner is None or winner[1] is last else "info"
        steps.append(
            Step(
                step_id,
                name,
                status,  # type: ignore[arg-type]
                " ".join(e.message for e in outcome.exchanges),
                details={"attempts": [e.details() for e in outcome.exchanges]},
                elapsed_ms=outcome.elapsed_ms,
            )
        )
    return steps, winner


def _unfinished_step(step_id: str, name: str, url: str, outcome: MethodOutcome) -> Step:
    seconds = f"{outcome.elapsed_ms / 1000:.1f}"
    if outcome.skipped:
        return Step(
            step_id,
            name,
            "info",
            f"Not needed: an earlier method answered (stopped after {seconds} s).",
            elapsed_ms=outcome.elapsed_ms,
        )
    where = url if not url.startswith("_") else f"the DNS servers answering for {url}"
    return Step(
        step_id,
        name,
        "warn",
        f"Did not answer in {seconds} s; Outlook waits for it before trying the next method, "
        "so mail clients set up slowly or give up.",
        details={"url": url, "waited_ms": outcome.elapsed_ms},
        remediation=f"Make {where} answer at once: a web server that is not Exchange should "
        "answer /autodiscover with an error (404), or refuse the connection, instead of "
        "leaving it open without an answer.",
        elapsed_ms=outcome.elapsed_ms,
    )


def _works(exchange: Exchange) -> bool:
    """Did this method answer as Autodiscover? A server that refused the mailbox password is
    not enough while another method may accept it: Outlook moves on too (a website on the bare
    domain behind its own HTTP sign-in refuses every mailbox password)."""
    if exchange.outcome == "redirect":
        return exchange.answer is not None  # an Autodiscover redirectAddr/redirectUrl answer
    if exchange.password_refused:
        return False
    return exchange.outcome in ("settings", "found", "login_page")


def _run_method(
    context: CheckContext,
    guard: NetGuard,
    kind: str,
    url: str,
    email: str,
    password: str | None,
) -> list[Exchange]:
    session = binding_session(guard)
    exchanges = _attempt(context, guard, session, kind, url, email, password)
    domain = email.rpartition("@")[2].lower()
    for exchange in exchanges:
        _add_addresses(guard, exchange)
        if exchange.outcome == "login_page":
            _whose_sign_in_page(context, exchange, domain)
    return exchanges


def _whose_sign_in_page(context: CheckContext, exchange: Exchange, domain: str) -> None:
    """A sign-in page is a pre-authentication gateway only in front of a mail host; on the bare
    domain it is the company's own website, and Outlook tries its next method."""
    host = (urlsplit(exchange.url).hostname or "").lower()
    mx_hosts = {record.host for record in mail_system(context).mx}
    if host == domain and host not in mx_hosts:
        exchange.outcome = "web_page"
        exchange.message += (
            f" That is the website on {domain}, not Autodiscover: Outlook moves on to the "
            "next method, and so does this check."
        )
    else:
        exchange.message += " A pre-authentication gateway is in front of Exchange."


def _add_addresses(guard: NetGuard, exchange: Exchange) -> None:
    """DNS evidence for an attempt: the addresses its host resolved to (or why not)."""
    host = urlsplit(exchange.url).hostname
    if not host or exchange.url.startswith("_"):
        return
    try:
        exchange.addresses = [str(a) for a in guard.resolve(host)]
    except (Blocked, ResolveError) as exc:
        exchange.addresses = [str(exc)]
    except DeadlineExceeded:
        return


def _attempt(
    context: CheckContext,
    guard: NetGuard,
    session: requests.Session,
    kind: str,
    url: str,
    email: str,
    password: str | None,
) -> list[Exchange]:
    if kind == "post":
        secret = credentials_for(context, url, password)
        return [post_pox(session, url, email, secret, context.target.mailbox)]
    if kind == "redirect":
        first = get_url(session, url)
        if first.outcome != "redirect" or not first.location:
            first.outcome = "failed" if first.outcome != "login_page" else first.outcome
            return [first]
        if not first.location.startswith("https://"):
            first.outcome = "failed"
            first.message += " Not followed: Autodiscover redirects must lead to https."
            return [first]
        secret = credentials_for(context, first.location, password)
        second = post_pox(session, first.location, email, secret, context.target.mailbox)
        return [first, second]
    srv = _srv_url(guard, url)
    if isinstance(srv, Exchange):
        return [srv]
    srv_url, note = srv
    secret = credentials_for(context, srv_url, password)
    answer = post_pox(session, srv_url, email, secret, context.target.mailbox)
    answer.message = f"{note} {answer.message}".strip()
    return [answer]


def _srv_url(guard: NetGuard, name: str) -> tuple[str, str] | Exchange:
    """The https URL the SRV record leads to, and a note when its port is not 443: only 443
    is used (exchangelib, Synchronizer's Exchange client, ignores the record's port), and the
    Check site touches no other port."""
    try:
        records = guard.query(name, "SRV")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return Exchange(name, "failed", f"No SRV record {name}.")
    except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
        return Exchange(name, "failed", f"The SRV lookup failed: {exc}.")
    best = sorted(records, key=lambda r: (r.priority, -r.weight))[0]
    host = best.target.to_text(omit_final_dot=True)
    note = ""
    if best.port != 443:
        note = (
            f"The SRV record gives port {best.port}; Synchronizer uses Autodiscover on port "
            f"443 only, so {host} was tried on port 443 (set the record's port to 443)."
        )
    return f"https://{host}{PATH}", note


def _follow_redirect_urls(
    context: CheckContext,
    session: requests.Session,
    exchange: Exchange,
    email: str,
    found: Discovery,
) -> Exchange:
    """Follow redirectUrl answers (hop limit, loop detection), recording each hop."""
    visited = {exchange.url}
    hops = 0
    while exchange.answer and exchange.answer.action == "redirectUrl":
        url = exchange.answer.redirect or ""
        hops += 1
        if url in visited or hops > MAX_HOPS:
            found.outcome = "loop"
            exchange.outcome = "loop"
            exchange.message = f"redirectUrl leads back to {url}: a redirect loop."
            found.steps.append(
                Step(
                    "autodiscover.loop",
                    "Redirect loop",
                    "fail",
                    f"The Autodiscover servers send clients to each other ({' → '.join(visited)} → {url}).",
                    remediation="Fix the Autodiscover virtual directory's redirection on the "
                    "servers involved, or give the EWS URL by hand. " + MANUAL_URLS_HELP,
                )
            )
            return exchange
        if not url.startswith("https://"):
            exchange.outcome = "failed"
            exchange.message = f"Refused to follow redirectUrl to a non-https address ({url})."
            return exchange
        visited.add(url)
        secret = credentials_for(context, url, context.target.password)
        exchange = post_pox(session, url, email, secret, context.target.mailbox)
        _note_tried(found, url, exchange.stage)
        found.steps.append(
            Step(
                f"autodiscover.hop.{hops}",
                f"Following redirectUrl to {url}",
                "pass" if exchange.outcome in ("settings", "found", "redirect") else "fail",
                exchange.message,
                details=exchange.details(),
            )
        )
    return exchange


def _note_tried(found: Discovery, url: str, stage: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return
    tried = TriedHost(parts.hostname.lower(), parts.port or 443, stage)
    if tried not in found.tried:
        found.tried.append(tried)


def _record(found: Discovery, exchange: Exchange) -> None:
    found.endpoint_url = exchange.url
    found.auth_methods = exchange.auth_methods
    found.owa_version = exchange.owa_version
    found.auth_problem = exchange.auth_problem
    found.auth_fix = exchange.auth_fix
    found.password_refused = exchange.password_refused
    if found.outcome == "loop":
        return
    if exchange.outcome == "settings" and exchange.answer:
        found.outcome = "settings"
        found.ews_url = exchange.answer.ews_url
        found.oab_url = exchange.answer.oab_url
        found.server_version = exchange.answer.server_version
    elif exchange.outcome in ("found", "login_page"):
        found.outcome = exchange.outcome
    found.message = exchange.message


def run(context: CheckContext) -> Iterator[Step]:
    watch = Stopwatch()
    found = discovery(context)
    if found.outcome == "skipped":
        yield Step("autodiscover.skipped", "Autodiscover", "skip", found.message)
        return
    if found.outcome == "manual":
        yield from _manual_steps(context, found)
        return
    system = mail_system(context).kind
    mail_only = mail_only_evidence(context) if found.outcome == "none" else ()
    if found.outcome == "none" and (system == MICROSOFT_365 or mail_only):
        # No Exchange is the expected answer here, not a fault: the methods are evidence.
        yield from (_as_info(step) for step in found.steps)
    else:
        yield from found.steps
    yield _result_step(context, found, watch, mail_only)


def _as_info(step: Step) -> Step:
    status = "info" if step.status == "fail" else step.status
    return replace(step, status=status, children=[_as_info(c) for c in step.children])


def _manual_steps(context: CheckContext, found: Discovery) -> Iterator[Step]:
    """EWS and OAB URLs given by hand are used as they are, so they must answer as Exchange."""
    if found.ews_url is None:  # "manual" means an EWS URL was given (parse_target)
        return
    # Both asked at once, in threads of the run (the runner ends them at the deadline).
    ews = context.background("autodiscover manual EWS", ews_answer, context, found.ews_url)
    oab = (
        context.background("autodiscover manual OAB", oab_answer, context, found.oab_url)
        if found.oab_url
        else None
    )
    answers = [("EWS URL", ews.result())] + ([("OAB URL", oab.result())] if oab else [])
    for name, answer in answers:
        yield _manual_step(name, answer)


def _manual_step(name: str, answer: UrlAnswer) -> Step:
    kind = name.split()[0].lower()
    if answer.auth_problem:  # it is Exchange, but nobody outside the domain can sign in
        status, remediation = "fail", answer.auth_fix
    elif not answer.works or answer.warning:
        status = "fail" if not answer.works else "warn"
        remediation = f"Check the {name}: it is the address Exchange publishes for " + (
            "EWS (https://mail.contoso.com/EWS/Exchange.asmx)."
            if kind == "ews"
            else "the offline address book (https://mail.contoso.com/OAB/<id>/)."
        )
    else:
        status, remediation = "pass", ""
    return Step(
        f"autodiscover.manual.{kind}",
        f"{name} given by hand: {answer.url}",
        status,  # type: ignore[arg-type]
        answer.message,
        details=answer.details(),
        remediation=remediation,
    )


def _result_step(
    context: CheckContext, found: Discovery, watch: Stopwatch, mail_only: tuple[str, ...]
) -> Step:
    details = {
        "method": found.method,
        "endpoint": found.endpoint_url,
        "ews_url": found.ews_url,
        "oab_url": found.oab_url,
        "authentication_methods": found.auth_methods,
    }
    invalid = [u for u in (found.ews_url, found.oab_url) if u and url_endpoint(u) is None]
    if found.outcome == "settings" and invalid:
        return Step(
            "autodiscover.result",
            "Exchange Web Services found",
            "fail",
            f"Found by {found.method}, but the URL it gives ({', '.join(invalid)}) is not a "
            "valid address.",
            details=details,
            remediation="Correct the external URLs of the EWS and OAB virtual directories "
            "(Set-WebServicesVirtualDirectory -ExternalUrl, Set-OabVirtualDirectory "
            "-ExternalUrl). " + MANUAL_URLS_HELP,
            elapsed_ms=watch.ms(),
        )
    hybrid = (
        " Next to the Microsoft 365 tenant this is a hybrid: see the Microsoft 365 tenant check."
        if mail_system(context).kind == MICROSOFT_365
        else ""
    )
    if found.outcome == "settings":
        return Step(
            "autodiscover.result",
            "Exchange Web Services found",
            "pass",
            f"Found by {found.method}: EWS at {found.ews_url}, OAB at {found.oab_url}.{hybrid}",
            details=details,
            elapsed_ms=watch.ms(),
        )
    if found.outcome == "found" and found.auth_problem:
        return Step(
            "autodiscover.result",
            "Sign-in not possible",
            "fail",
            f"Found by {found.method} at {found.endpoint_url}, but Synchronizer cannot sign in "
            f"there. {found.auth_problem}",
            details=details,
            remediation=found.auth_fix
            or "Allow NTLM or Basic authentication (over https) on the Autodiscover and EWS "
            "virtual directories.",
            elapsed_ms=watch.ms(),
        )
    if found.outcome == "found" and found.password_refused:
        # The set-up works; only the password is wrong: no advice to publish records.
        return Step(
            "autodiscover.result",
            "Password not accepted",
            "fail",
            f"Found by {found.method} at {found.endpoint_url}, but it did not accept the "
            f"password of {context.target.mailbox}, so the EWS and OAB URLs could not be read.",
            details=details,
            remediation="Check the password by signing in to Outlook on the web with the same "
            "address. If it works there but not here, the server may not accept the e-mail "
            "address as sign-in name (its user principal name differs): ask your administrator.",
            elapsed_ms=watch.ms(),
        )
    if found.outcome == "found":
        return Step(
            "autodiscover.result",
            "Autodiscover endpoint found",
            "pass",
            f"Found by {found.method} at {found.endpoint_url}; it asks for sign-in "
            f"({', '.join(found.auth_methods)}). Enter the mailbox password to read the EWS "
            f"and OAB URLs as well.{hybrid}",
            details=details,
            elapsed_ms=watch.ms(),
        )
    if found.outcome == "cloud":
        return Step(
            "autodiscover.result",
            "The mailbox is in Exchange Online",
            "pass",
            f"{found.message} Synchronizer reaches it through Microsoft Graph.",
            details={**details, "redirect_address": found.mailbox},
            elapsed_ms=watch.ms(),
        )
    if found.outcome == "login_page":
        return Step(
            "autodiscover.result",
            "Pre-authentication gateway",
            "fail",
            f"{found.message} Synchronizer (like Outlook's Autodiscover) cannot fill in a web "
            "sign-in form.",
            details=details,
            remediation="Publish /autodiscover and /EWS on the gateway without form-based "
            "pre-authentication (pass-through to Exchange's own authentication), or allow "
            "Synchronizer's outbound IP address past it. " + MANUAL_URLS_HELP,
            elapsed_ms=watch.ms(),
        )
    if found.outcome == "none" and mail_system(context).kind == MICROSOFT_365:
        return Step(
            "autodiscover.result",
            "No on-premises Exchange",
            "info",
            "No on-premises Exchange answers Autodiscover for this Microsoft 365 domain, so it "
            "is not a hybrid. Synchronizer reaches Microsoft 365 through Microsoft Graph and "
            "needs no Autodiscover.",
            details=details,
            elapsed_ms=watch.ms(),
        )
    if found.outcome == "none" and mail_only:
        return Step(
            "autodiscover.result",
            "No Exchange",
            "info",
            "No Exchange answers Autodiscover, and " + "; ".join(mail_only) + ": IMAP/POP "
            "mail hosting (see Unsupported set-ups).",
            details={**details, "evidence": list(mail_only)},
            elapsed_ms=watch.ms(),
        )
    if found.outcome == "none":
        ours = own_network.egress(context)
        if ours.ok is False:  # then nothing can be concluded about the customer's servers
            return Step(
                "autodiscover.result",
                "Autodiscover could not be tested",
                "fail",
                f"{found.message} But {ours.detail}. {own_network.OURS}",
                details=details,
                remediation="Run the check again in a few minutes.",
                elapsed_ms=watch.ms(),
            )
    failed_tls = [t.host for t in found.tried if t.stage == "tls"]
    remediation = (
        f"Fix TLS on {', '.join(failed_tls)} as the TLS check says (TLS 1.2 and a trusted "
        "certificate for the name). "
        if failed_tls
        else "Publish autodiscover.<domain> (an A or CNAME record and a certificate with that "
        "name) or an _autodiscover._tcp SRV record pointing to your Exchange server. "
    )
    return Step(
        "autodiscover.result",
        "Autodiscover",
        "fail",
        found.message or "Autodiscover did not find Exchange.",
        details=details,
        remediation=remediation + MANUAL_URLS_HELP,
        elapsed_ms=watch.ms(),
    )
