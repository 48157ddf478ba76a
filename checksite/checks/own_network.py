"""Is it us? Before a failure is put down to the customer's DNS or firewall, the Check site
tests its own resolver and its own way out to the internet, once per run (shared facts)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import dns.exception
import dns.resolver

from checksite.checks.context import CheckContext
from checksite.checks.tenant_lookup import DEFAULT_AUTHORITY
from common.netguard import Blocked, DeadlineExceeded, ResolveError

OURS = (
    "This is a failure of the Check site's own network, not of your set-up: nothing here says "
    "anything about your DNS or your firewall."
)


@dataclass(frozen=True)
class OwnCheck:
    ok: bool | None  # None: could not be tested
    detail: str = ""


def resolver(context: CheckContext) -> OwnCheck:
    """Does our resolver answer at all? Any answer for the root zone (even NXDOMAIN from a
    resolver that knows only a test zone) proves it does; silence or refusal proves it does not."""
    return context.fact("own_resolver", lambda: _ask_resolver(context))


def _ask_resolver(context: CheckContext) -> OwnCheck:
    try:
        context.guard.query(".", "NS")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.YXDOMAIN):
        return OwnCheck(True, "our DNS resolver answers")
    except dns.resolver.NoNameservers:
        return OwnCheck(False, "the Check site's DNS resolver refuses or fails every query")
    except dns.exception.Timeout:
        return OwnCheck(False, "the Check site's DNS resolver does not answer")
    return OwnCheck(True, "our DNS resolver answers")


def egress(context: CheckContext) -> OwnCheck:
    """Can we open a connection to a server that is always up (Microsoft's sign-in host, or the
    one configured in its place)? A customer host that times out only means a firewall there
    when this works."""
    return context.fact("own_egress", lambda: _connect_reference(context))


def _connect_reference(context: CheckContext) -> OwnCheck:
    url = urlsplit(context.setting("microsoft_authority_host", DEFAULT_AUTHORITY))
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        connection = context.guard.connect(host, port)
    except DeadlineExceeded:
        raise
    except Blocked:
        return OwnCheck(None, f"{host} may not be used to test our own connection")
    except ResolveError:
        if resolver(context).ok is False:
            return OwnCheck(False, resolver(context).detail)
        return OwnCheck(None, f"our DNS does not know {host}, so our connection was not tested")
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        return OwnCheck(False, f"the Check site could not connect to {host} either ({reason})")
    connection.close()
    return OwnCheck(True, f"the Check site reaches {host}")
