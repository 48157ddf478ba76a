"""App-specific fault kinds this simulator claims (the platform applies the generic ones)."""

from __future__ import annotations

from typing import Any

TOKEN_EXPIRED = "token_expired"  # API: a valid credential is answered with 401
TOKEN_REVOKED = "token_revoked"  # SuperID: the refresh token is refused (invalid_grant)
TENANT_MOVED = "tenant_moved"  # API: 421 Misdirected Request, as after a move to another host


def claim(kind: str) -> dict[str, Any] | None:
    from simulators.platform.control import claim_fault

    return claim_fault(kind)
