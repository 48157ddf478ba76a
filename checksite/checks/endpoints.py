"""The hosts Synchronizer would talk to, shared by [tls] and [firewall]."""

from __future__ import annotations

from urllib.parse import urlsplit

from checksite.checks.context import CheckContext

Endpoint = tuple[str, int]


def url_endpoint(url: str) -> Endpoint:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return (parts.hostname or "", parts.port or default)


def exchange_endpoints(context: CheckContext) -> list[Endpoint]:
    """The EWS/OAB hosts given by hand, else those Autodiscover found (HTTPS ones only)."""
    urls = [u for u in (context.target.ews_url, context.target.oab_url) if u]
    if not urls:
        from checksite.checks.autodiscover import discovery  # shared, computed once

        found = discovery(context)
        urls = [u for u in (found.ews_url, found.oab_url, found.endpoint_url) if u]
    endpoints: list[Endpoint] = []
    for url in urls:
        if urlsplit(url).scheme != "https":
            continue
        endpoint = url_endpoint(url)
        if endpoint[0] and endpoint not in endpoints:
            endpoints.append(endpoint)
    return endpoints
