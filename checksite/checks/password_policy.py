"""Where the mailbox password may go: over https only, to an address the person typed, or to
one Autodiscover found only when its host is in the mailbox's own domain (a redirect or an SRV
record must not make us hand it to somebody else's server; Outlook asks the user first)."""

from __future__ import annotations

from urllib.parse import urlsplit

from checksite.checks.context import CheckContext


def credentials_for(context: CheckContext, url: str, password: str | None) -> str | None:
    """The password for an address found by Autodiscover, or None."""
    if password is None or not url.startswith("https://"):
        return None
    host = (urlsplit(url).hostname or "").lower()
    domain = context.target.domain
    return password if host == domain or host.endswith("." + domain) else None


def password_for(context: CheckContext, url: str) -> str | None:
    """The password for an EWS or OAB address: one typed by the person gets it (they are
    https, parse_target refuses anything else), others as `credentials_for` decides."""
    if not url.startswith("https://") or context.target.mailbox is None:
        return None
    if url in (context.target.ews_url, context.target.oab_url):
        return context.target.password
    return credentials_for(context, url, context.target.password)
