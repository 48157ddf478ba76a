"""[firewall] From the sync server's own egress: DNS, TCP, TLS and one HTTP request to each
endpoint the daemon will use, timed, plus the outbound IP address customers must allow."""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import requests

from checksite.checks import own_network
from checksite.checks.autodiscover_client import MALFORMED_ANSWER, describe_error
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
    with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
        futures = [
            pool.submit(
                probe_endpoint,
                context.guard,
                context.session(),
                purpose,
                url,
                provider=PROVIDERS.get(purpose),
                own_egress=lambda: own_network.egress(context),
            )
            for purpose, url in targets
        ]
        for future in futures:
            yield future.result()


def probe_endpoint(
    guard: NetGuard,
    session: requests.Session,
    purpose: str,
    url: str,
    *,
    provider: str | None = None,
    own_egress: Callable[[], own_network.OwnCheck] | None = None,
) -> Step:
    """DNS, TCP, TLS and HTTP for one base URL, each timed and judged. A failure is put down to
    the customer's firewall only for the customer's own hosts, and only while the Check site
    itself reaches the internet (`own_egress`)."""
    watch = Stopwatch()
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port out of range
        return Step(f"firewall.{host}", purpose, "fail", f"{url} is not a valid address.")
    children: list[Step] = []
    title = f"{purpose}: {host}" + ("" if port in (80, 443) else f":{port}")

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
