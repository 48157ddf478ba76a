"""Flask extensions, created once and bound to each app in the factory."""

from __future__ import annotations

import ipaddress

from flask import request
from flask_limiter import Limiter
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()


def client_key() -> str:
    """Who a request comes from, for rate limits and stream limits: its address, or for IPv6
    its /64 (one subscriber gets a whole /64 and can pick any address in it)."""
    remote = request.remote_addr or ""
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address), 64), strict=False))
    return str(address)


limiter = Limiter(key_func=client_key, default_limits=[])
