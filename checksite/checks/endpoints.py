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
    return list(named_exchange_endpoints(context))


def named_exchange_endpoints(context: CheckContext) -> dict[Endpoint, str]:
    """The same, each with what Synchronizer uses it for (a host serving several: the first)."""
    target = context.target
    urls = [("Exchange Web Services", target.ews_url), ("Offline address book", target.oab_url)]
    if not target.ews_url:
        from checksite.checks.autodiscover import discovery  # shared, computed once

        found = discovery(context)
        urls = [
            ("Exchange Web Services", found.ews_url),
            ("Offline address book", found.oab_url),
            ("Autodiscover", found.endpoint_url),
        ]
    endpoints: dict[Endpoint, str] = {}
    for purpose, url in urls:
        endpoint = url_endpoint(url) if url and url.lower().startswith("https://") else None
        if endpoint is not None:
            endpoints.setdefault(endpoint, purpose)
    return endpoints
