"""The hosts Synchronizer would talk to, shared by [tls] and [firewall]."""

from __future__ import annotations

from urllib.parse import urlsplit

from checksite.checks.context import CheckContext

Endpoint = tuple[str, int]


def url_endpoint(url: str) -> Endpoint | None:
    """(host, port) of a URL, or None when it is not a valid address (a server may say
    anything: a port out of range, an unclosed IPv6 bracket)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    default = 443 if parts.scheme == "https" else 80
    return (parts.hostname or "", port or default) if parts.hostname else None


def exchange_endpoints(context: CheckContext) -> list[Endpoint]:
    """The EWS/OAB hosts given by hand, else those Autodiscover found (HTTPS ones only)."""
    urls = [u for u in (context.target.ews_url, context.target.oab_url) if u]
    if not urls:
        from checksite.checks.autodiscover import discovery  # shared, computed once

        found = discovery(context)
        urls = [u for u in (found.ews_url, found.oab_url, found.endpoint_url) if u]
    endpoints: list[Endpoint] = []
    for url in urls:
        endpoint = url_endpoint(url) if url.lower().startswith("https://") else None
        if endpoint is not None and endpoint not in endpoints:
            endpoints.append(endpoint)
    return endpoints
