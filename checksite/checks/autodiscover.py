"""[autodiscover] The four methods in the order Outlook tries them, redirects followed with a
loop and hop limit, and the EWS and OAB URLs found (or how to give them by hand).

The methods run concurrently (they are independent), and the first one in client order that
works wins (`autodiscover_race`): the check takes as long as the slowest method it needs, not
the sum of them, and a method that hangs gets a short grace, then a warning.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import dns.exception
import dns.resolver
import requests

from checksite.checks.autodiscover_client import Exchange, get_url, post_pox
from checksite.checks.autodiscover_race import MethodOutcome, Work, race
from checksite.checks.channel_binding import binding_session
from checksite.checks.context import CheckContext
from checksite.checks.endpoints import url_endpoint
from checksite.checks.mail_system import GOOGLE, ICLOUD, MICROSOFT_365, mail_system
from checksite.checks.model import Step, Stopwatch
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

    outcome: str = "none"  # settings | found | manual | login_page | loop | none | skipped
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
    system = mail_system(context)
    if system.kind in (MICROSOFT_365, GOOGLE, ICLOUD):
        return Discovery("skipped", message=f"Not needed: the domain uses {system.label}.")
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
            seen_addresses.add(new.lower())
            email = new
            continue
        return found
    found.outcome = "loop"
    found.message = f"Gave up after {MAX_HOPS} redirects."
    return found


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


def credentials_for(context: CheckContext, url: str, password: str | None) -> str | None:
    """The password goes only to https hosts of the mailbox's own domain: a redirect or an SRV
    record must not make us hand it to somebody else's server (Outlook asks the user first)."""
    if password is None or not url.startswith("https://"):
        return None
    host = (urlsplit(url).hostname or "").lower()
    domain = context.target.domain
    return password if host == domain or host.endswith("." + domain) else None


def _works(exchange: Exchange) -> bool:
    if exchange.outcome == "redirect":
        return exchange.answer is not None  # an Autodiscover redirectAddr/redirectUrl answer
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
    for exchange in exchanges:
        _add_addresses(guard, exchange)
    return exchanges


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
        yield Step(
            "autodiscover.manual",
            "EWS and OAB URLs given by hand",
            "pass",
            found.message,
            details={"ews_url": found.ews_url, "oab_url": found.oab_url},
        )
        return
    yield from found.steps
    yield _result_step(found, watch)


def _result_step(found: Discovery, watch: Stopwatch) -> Step:
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
    if found.outcome == "settings":
        return Step(
            "autodiscover.result",
            "Exchange Web Services found",
            "pass",
            f"Found by {found.method}: EWS at {found.ews_url}, OAB at {found.oab_url}.",
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
    if found.outcome == "found":
        return Step(
            "autodiscover.result",
            "Autodiscover endpoint found",
            "pass",
            f"Found by {found.method} at {found.endpoint_url}; it asks for sign-in "
            f"({', '.join(found.auth_methods)}). Enter the mailbox password to read the EWS "
            "and OAB URLs as well.",
            details=details,
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
