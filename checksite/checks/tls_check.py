"""[tls] For each host Synchronizer would talk to, and each host Autodiscover tried: TLS 1.2
offered, older versions refused, and a trusted certificate for the right name that does not
expire soon. Each host on the one port Synchronizer uses there: 443, or the port its URL names
(given by hand, or in a server's answer); never another.

The hosts Autodiscover tried are probed too, because TLS is often why Autodiscover failed (a
server that speaks only TLS 1.0, an expired certificate): skipping them would leave the report
without the cause. Where Autodiscover found Exchange elsewhere, their problems are warnings
(clients meet them first, then move on); hosts where nothing listens are left to Autodiscover.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from checksite.checks.context import CheckContext
from checksite.checks.endpoints import Endpoint, exchange_endpoints, url_endpoint
from checksite.checks.model import Status, Step
from checksite.checks.tls_probe import probe_host

ID = "tls"
TITLE = "TLS and certificates"
# Where Autodiscover failed on these hosts, a TLS probe has something to say.
_PROBED_STAGES = ("", "tls", "http")


def run(context: CheckContext) -> Iterator[Step]:
    exchange = exchange_endpoints(context)
    endpoints = list(exchange)
    superoffice = context.target.superoffice_url
    if superoffice and superoffice.lower().startswith("https://"):
        superoffice_endpoint = url_endpoint(superoffice)
        if superoffice_endpoint is not None:
            endpoints = list(dict.fromkeys([*endpoints, superoffice_endpoint]))
    tried = [e for e in tried_endpoints(context) if e not in endpoints]
    shown = 0
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(endpoints) + len(tried)))) as pool:
        used = [pool.submit(probe_host, context.guard, host, port) for host, port in endpoints]
        others = [pool.submit(probe_host, context.guard, host, port) for host, port in tried]
        for future in used:
            shown += 1
            yield future.result()
        for future in others:
            step = as_tried(future.result(), found_elsewhere=bool(exchange))
            if step is not None:
                shown += 1
                yield step
    if not shown:
        yield Step(
            "tls.none",
            "Hosts to test",
            "skip",
            "No on-premises Exchange or SuperOffice host was found to test (Microsoft 365 and "
            "Google use their own, well-configured servers).",
        )


def tried_endpoints(context: CheckContext) -> list[Endpoint]:
    """The https hosts Autodiscover tried and met a TLS server at, or failed at in the
    handshake; not those that do not exist, refuse the connection or never answered. Each on
    the port Autodiscover used there: 443, or the one a redirect's URL named."""
    if context.target.ews_url:
        return []  # Autodiscover was not used
    from checksite.checks.autodiscover import discovery  # shared, computed once

    found: list[Endpoint] = []
    for tried in discovery(context).tried:
        endpoint = (tried.host, tried.port)
        if tried.stage in _PROBED_STAGES and endpoint not in found:
            found.append(endpoint)
    return found


def as_tried(step: Step, *, found_elsewhere: bool) -> Step | None:
    """A probe of a host only Autodiscover tried, as evidence: None when no TLS server answered
    there; its problems as warnings when Exchange was found on another host."""
    if not any(child.id.endswith("certificate") for child in step.children):
        return None  # it does not resolve, or nothing listens: Autodiscover's own steps say so
    step.title = f"{step.title} (tried by Autodiscover)"
    if found_elsewhere:
        if step.status == "fail":
            step.message = (
                "Autodiscover (Outlook's, and Synchronizer's) tries this host before the one "
                f"that works, and meets this: {step.message}"
            )
        _soften(step, {"fail": "warn", "warn": "info"})
    return step


def _soften(step: Step, mapping: dict[str, Status]) -> None:
    step.status = mapping.get(step.status, step.status)
    for child in step.children:
        _soften(child, mapping)
