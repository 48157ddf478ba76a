"""[firewall] From the sync server's own egress: DNS, TCP, TLS and one HTTP request to each
endpoint the daemon will use, timed, plus the outbound IP address customers must allow. A host
still silent shortly before the run's deadline is reported with the stage it hangs at (the
other checks' "time limit reached" points here for the host and port)."""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Callable, Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urlsplit

import requests

from checksite.checks import own_network
from checksite.checks.autodiscover_client import MALFORMED_ANSWER, describe_error
from checksite.checks.channel_binding import binding_session
from checksite.checks.context import CheckContext
from checksite.checks.endpoints import named_exchange_endpoints, url_endpoint
from checksite.checks.mail_system import (
    GOOGLE,
    MAY_BE_EXCHANGE,
    MICROSOFT_365,
    mail_system,
    not_applicable,
)
from checksite.checks.model import Step, Stopwatch
from checksite.checks.tls_words import describe_ssl_error
from common.http import BodyTooLarge
from common.netguard import Blocked, DeadlineExceeded, NetGuard, ResolveError

ONLINE_TENANT = re.compile(r"/Cust\d+/?$", re.IGNORECASE)
# Seconds before the run's deadline at which [firewall] stops waiting for a host and reports
# where it waited (a host that never answers must still be named, with its port).
REPORT_MARGIN_S = 1.0
ID = "firewall"
TITLE = "Firewall and reachability"


# The services Synchronizer's own server calls directly: the customer's firewall is not on the
# way, so a failure to reach them is ours (or the provider's), never the customer's.
PROVIDERS = {
    "Microsoft sign-in": "Microsoft",
    "Microsoft Graph": "Microsoft",
    "Google sign-in (tokens)": "Google",
    "Google APIs": "Google",
}


def endpoints(context: CheckContext) -> list[tuple[str, str]]:
    """(purpose, base URL) of every service the daemon would call for this target."""
    system = mail_system(context).kind
    found: list[tuple[str, str]] = []
    if not_applicable(context) is not None:
        system = ""  # no mail system to reach (said once by [dns] / [unsupported])
    elif system == MICROSOFT_365:
        found += [
            ("Microsoft sign-in", context.setting("microsoft_authority_host", "")),
            ("Microsoft Graph", context.setting("microsoft_graph_url", "")),
        ]
    elif system == GOOGLE:
        found += [
            ("Google sign-in (tokens)", context.setting("google_oauth_url", "")),
            ("Google APIs", context.setting("google_api_url", "")),
        ]
    if system in MAY_BE_EXCHANGE:  # on-premises Exchange, also a hybrid's
        for (host, port), purpose in named_exchange_endpoints(context).items():
            suffix = "" if port == 443 else f":{port}"
            found.append((purpose, f"https://{host}{suffix}"))
    if context.target.superoffice_url:
        found.append(("SuperOffice", context.target.superoffice_url))
        superid = context.setting("superoffice_online_url", "")
        tenant = urlsplit(context.target.superoffice_url)
        # Online: tokens are renewed at SuperID (often the very host of the address given).
        if ONLINE_TENANT.search(tenant.path) and urlsplit(superid).netloc != tenant.netloc:
            found.append(("SuperOffice ID (sign-in)", superid))
    return [(purpose, url) for purpose, url in found if url]


def customer_ports(targets: list[tuple[str, str]]) -> str:
    """The TCP ports of the customer's own endpoints, in words ("443", "443 and 8443 (for
    mail.contoso.com)"): the port a URL names is the one Synchronizer will use."""
    ports: dict[int, list[str]] = {}
    for purpose, url in targets:
        if purpose in PROVIDERS:
            continue
        endpoint = url_endpoint(url)
        if endpoint is not None:
            ports.setdefault(endpoint[1], []).append(endpoint[0])
    words = [
        str(port) if port in (80, 443) else f"{port} (for {', '.join(dict.fromkeys(hosts))})"
        for port, hosts in sorted(ports.items())
    ]
    if not words:
        return "443"
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def run(context: CheckContext) -> Iterator[Step]:
    outbound = context.setting("outbound_ip")
    targets = endpoints(context)
    if outbound:
        yield Step(
            "firewall.outbound_ip",
            "Our outbound IP address",
            "info",
            f"Synchronizer connects from {outbound}. If your firewall or Exchange publishing "
            f"rules limit who may connect, allow {outbound} on TCP {customer_ports(targets)}.",
            details={"outbound_ip": outbound},
        )
    else:
        yield Step(
            "firewall.outbound_ip",
            "Our outbound IP address",
            "info",
            "The sync server's outbound IP address is not configured (OUTBOUND_IP), so it "
            "cannot be shown here.",
        )
    if not targets:
        yield Step(
            "firewall.none",
            "Endpoints",
            "skip",
            "No endpoint to test: "
            + (not_applicable(context) or "the mail system's servers were not found."),
        )
        return
    probes = []
    for purpose, url in targets:
        guard = context.guard.cancellable()  # its sockets can be closed on their own
        progress: list[Step] = []
        future = context.background(
            f"firewall {url}",
            lambda g=guard, p=purpose, u=url, steps=progress: probe_endpoint(
                g,
                binding_session(g),
                p,
                u,
                provider=PROVIDERS.get(p),
                own_egress=lambda: own_network.egress(context),
                children=steps,
            ),
        )
        probes.append((guard, future, purpose, url, progress))
    watch = Stopwatch()
    for guard, future, purpose, url, progress in probes:
        try:
            yield future.result(timeout=_time_to_report(context.guard))
        except FutureTimeout:
            guard.sockets.close_all()  # its thread ends; the runner waits for it
            yield no_answer(purpose, url, progress, watch.ms(), PROVIDERS.get(purpose))


def _time_to_report(guard: NetGuard) -> float | None:
    """How long to wait for a host before saying it did not answer: until shortly before the
    run's deadline, so that the report names the host and port it waited for."""
    if guard.deadline is None:
        return None
    return max(0.0, guard.deadline - REPORT_MARGIN_S - time.monotonic())


STAGES = ("DNS", "TCP", "TLS", "HTTP")


def no_answer(
    purpose: str, url: str, progress: list[Step], waited_ms: int, provider: str | None
) -> Step:
    """A host whose probe was still waiting when the report was due: where it waited."""
    host, port = url_endpoint(url) or ("", 0)
    done = [s.title for s in progress]
    stage = next((name for name in STAGES if name not in done), "HTTP")
    waiting = {
        "DNS": f"the DNS lookup of {host} was not answered",
        "TCP": f"the connection to TCP port {port} was neither accepted nor refused (a "
        "firewall that drops it looks like this)",
        "TLS": f"TCP port {port} accepted the connection, but the TLS handshake never finished",
        "HTTP": "the connection and TLS worked, but the answer to the HTTPS request did not "
        "come (or never finished)",
    }[stage]
    children = [*progress, Step(f"firewall.{host}.{stage.lower()}", stage, "fail", "No answer.")]
    message = f"No answer within {waited_ms / 1000:.1f} s: {waiting}."
    remediation = (
        f"Make sure {host} answers on TCP port {port} from Synchronizer's outbound IP address "
        "(a firewall rule, a load balancer or a proxy in front of it may hold the connection)."
    )
    if provider is not None:
        message = (
            f"The Check site could not reach {provider} here: {message} Synchronizer's own "
            f"server calls {provider} directly, so this is a problem of our network or of "
            f"{provider}'s, not of your firewall."
        )
        remediation = "Nothing to change on your side; run the check again later."
    return Step(
        f"firewall.{host}",
        _title(purpose, host, port),
        "fail",
        message,
        details={"url": url, "waited_ms": waited_ms},
        remediation=remediation,
        children=children,
        elapsed_ms=waited_ms,
    )


def _title(purpose: str, host: str, port: int) -> str:
    return f"{purpose}: {host}" + ("" if port in (80, 443) else f":{port}")


def probe_endpoint(
    guard: NetGuard,
    session: requests.Session,
    purpose: str,
    url: str,
    *,
    provider: str | None = None,
    own_egress: Callable[[], own_network.OwnCheck] | None = None,
    children: list[Step] | None = None,
) -> Step:
    """DNS, TCP, TLS and HTTP for one base URL, each timed and judged. A failure is put down to
    the customer's firewall only for the customer's own hosts, and only while the Check site
    itself reaches the internet (`own_egress`). Each stage's step goes to `children` as soon
    as it is known (whoever stops waiting can tell where the probe was)."""
    watch = Stopwatch()
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port out of range
        return Step(f"firewall.{host}", purpose, "fail", f"{url} is not a valid address.")
    children = [] if children is None else children
    title = _title(purpose, host, port)

    def finish(status: str, message: str, remediation: str = "") -> Step:
        if status == "fail" and provider is not None:
            message = (
                f"The Check site could not reach {provider} here: {message} Synchronizer's own "
                f"server calls {provider} directly, so this is a problem of our network or of "
                f"{provider}'s, not of your firewall."
            )
            remediation = "Nothing to change on your side; run the check again later."
        return Step(
            f"firewall.{host}",
            title,
            status,  # type: ignore[arg-type]
            message,
            details={"url": url},
            remediation=remediation,
            children=children,
            elapsed_ms=watch.ms(),
        )

    step_watch = Stopwatch()
    try:
        addresses = guard.resolve(host)
    except (Blocked, ResolveError) as exc:
        children.append(Step(f"firewall.{host}.dns", "DNS", "fail", str(exc)))
        return finish("fail", str(exc), "Check the host name; it must resolve in public DNS.")
    children.append(
        Step(
            f"firewall.{host}.dns",
            "DNS",
            "pass",
            f"{host} resolves to {', '.join(map(str, addresses))}.",
            details={"addresses": [str(a) for a in addresses]},
            elapsed_ms=step_watch.ms(),
        )
    )
    step_watch = Stopwatch()
    try:
        sock = guard.connect_address(host, addresses[0], port)
    except DeadlineExceeded:
        raise
    except OSError as exc:
        timed_out = isinstance(exc, TimeoutError)
        children.append(
            Step(f"firewall.{host}.tcp", "TCP", "fail", "Timed out." if timed_out else str(exc))
        )
        # Only while the Check site itself gets out is a failure here the customer's.
        ours = own_egress() if own_egress is not None and provider is None else None
        if ours is not None and ours.ok is False:
            reason = "timed out" if timed_out else (exc.strerror or str(exc))
            return finish(
                "fail",
                f"No connection on TCP {port} ({reason}), but {ours.detail}. {own_network.OURS}",
                "Run the check again in a few minutes.",
            )
        if timed_out:
            return finish(
                "fail",
                f"No answer on TCP {port} (timed out): a firewall drops the connection.",
                f"Allow TCP {port} to {host} from Synchronizer's outbound IP address.",
            )
        return finish(
            "fail",
            f"TCP {port} refused or unreachable ({exc.strerror or exc}).",
            f"Make sure {host} accepts connections on TCP {port}.",
        )
    children.append(
        Step(
            f"firewall.{host}.tcp",
            "TCP",
            "pass",
            f"Connected to {addresses[0]} port {port}.",
            elapsed_ms=step_watch.ms(),
        )
    )
    if parts.scheme == "https":
        step_watch = Stopwatch()
        try:
            with guard.wrap_tls(sock, host) as tls:
                version = tls.version()
            children.append(
                Step(
                    f"firewall.{host}.tls",
                    "TLS",
                    "pass",
                    f"{version}, certificate valid for {host}.",
                    elapsed_ms=step_watch.ms(),
                )
            )
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            words = describe_ssl_error(exc, host)
            children.append(Step(f"firewall.{host}.tls", "TLS", "fail", words))
            return finish(
                "fail",
                f"TLS failed: {words}",
                "See the TLS check for the details of this host's certificate and protocols.",
            )
    else:
        sock.close()
    step_watch = Stopwatch()
    try:
        response = session.get(url, allow_redirects=False)
    except (Blocked, ResolveError, BodyTooLarge) as exc:
        children.append(Step(f"firewall.{host}.http", "HTTP", "fail", str(exc)))
        return finish("fail", str(exc))
    except requests.RequestException as exc:
        children.append(Step(f"firewall.{host}.http", "HTTP", "fail", describe_error(exc)))
        return finish("fail", describe_error(exc))
    except ValueError:  # requests parses a Location even when it does not follow it
        children.append(Step(f"firewall.{host}.http", "HTTP", "pass", MALFORMED_ANSWER))
        return finish("pass", f"Reachable in {watch.ms()} ms (it answers, if oddly).")
    children.append(
        Step(
            f"firewall.{host}.http",
            "HTTP",
            "pass",
            f"GET {url}: HTTP {response.status_code} (any answer proves the path is open).",
            details={"http_status": response.status_code},
            elapsed_ms=step_watch.ms(),
        )
    )
    return finish("pass", f"Reachable in {watch.ms()} ms (DNS, TCP, TLS and HTTP).")
