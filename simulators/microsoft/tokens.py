"""Compact JWTs for the simulated identity platform (HS256 with the world's key).

Real Entra signs RS256 with keys published at jwks_uri; clients of access tokens must treat them as
opaque, and msal does not verify id_token signatures, so a symmetric key keeps this small.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time


class TokenError(ValueError):
    """The token is malformed, badly signed or expired (`expired` tells which)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(claims: dict, key: str) -> str:
    header = {"typ": "JWT", "alg": "HS256", "kid": "sim"}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def decode(token: str, key: str, *, now: float | None = None) -> dict:
    try:
        header_part, payload_part, signature_part = token.split(".")
        claims = json.loads(b64url_decode(payload_part))
    except (ValueError, json.JSONDecodeError) as exc:
        raise TokenError("IDX14100: JWT is not well formed.") from exc
    expected = hmac.new(key.encode(), f"{header_part}.{payload_part}".encode(), hashlib.sha256)
    if not hmac.compare_digest(b64url(expected.digest()), signature_part):
        raise TokenError("IDX10511: Signature validation failed.")
    if claims.get("exp", 0) <= (now if now is not None else time.time()):
        raise TokenError("Lifetime validation failed, the token is expired.", expired=True)
    return claims


def pkce_matches(verifier: str, challenge: str, method: str) -> bool:
    if method.upper() == "S256":
        computed = b64url(hashlib.sha256(verifier.encode("ascii")).digest())
    else:
        computed = verifier
    return hmac.compare_digest(computed, challenge)
