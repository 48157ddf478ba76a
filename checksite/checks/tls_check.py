"""[tls] For each host Synchronizer would talk to: TLS 1.2 offered, older versions refused,
and a trusted certificate for the right name that does not expire soon."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from checksite.checks.context import CheckContext
from checksite.checks.endpoints import exchange_endpoints, url_endpoint
from checksite.checks.model import Step
from checksite.checks.tls_probe import probe_host

ID = "tls"
TITLE = "TLS and certificates"


def run(context: CheckContext) -> Iterator[Step]:
    endpoints = exchange_endpoints(context)
    superoffice = context.target.superoffice_url
    if superoffice and superoffice.startswith("https://"):
        endpoints = [*endpoints, url_endpoint(superoffice)]
        endpoints = list(dict.fromkeys(endpoints))  # one probe per host and port
    if not endpoints:
        yield Step(
            "tls.none",
            "Hosts to test",
            "skip",
            "No on-premises Exchange or SuperOffice host was found to test (Microsoft 365 and "
            "Google use their own, well-configured servers).",
        )
        return
    with ThreadPoolExecutor(max_workers=min(8, len(endpoints))) as pool:
        futures = [pool.submit(probe_host, context.guard, host, port) for host, port in endpoints]
        for future in futures:
            yield future.result()
