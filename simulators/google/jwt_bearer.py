"""Checks of a service account's JWT assertion (RFC 7523), as Google's token endpoint does."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from simulators.world.google import ServiceAccount

MAX_LIFETIME = 3600
# google-auth always names Google's token endpoint as the audience, whatever token_uri says.
GOOGLE_AUDIENCES = {
    "https://oauth2.googleapis.com/token",
    "https://www.googleapis.com/oauth2/v4/token",
    "https://accounts.google.com/o/oauth2/token",
}
CLOCK_SKEW = 300


class AssertionRefused(ValueError):
    """The assertion is refused; `error` and `description` are what Google answers."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def unverified_claims(assertion: str) -> dict[str, Any]:
    try:
        _, payload, _ = assertion.split(".")
        claims = json.loads(_b64decode(payload))
    except (ValueError, json.JSONDecodeError) as exc:
        raise AssertionRefused("invalid_grant", "Invalid JWT: malformed assertion.") from exc
    if not isinstance(claims, dict):
        raise AssertionRefused("invalid_grant", "Invalid JWT: malformed assertion.")
    return claims


def verify(assertion: str, account: ServiceAccount, audience: str, now: float) -> dict[str, Any]:
    """The verified claims, or AssertionRefused with Google's error for the first problem."""
    claims = unverified_claims(assertion)
    header_b64, payload_b64, signature_b64 = assertion.split(".")
    header = json.loads(_b64decode(header_b64))
    if header.get("alg") != "RS256":
        raise AssertionRefused("invalid_grant", "Invalid JWT Signature.")
    public_key = serialization.load_pem_public_key(account.public_key_pem())
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise AssertionRefused("invalid_grant", "Invalid JWT Signature.")
    try:
        public_key.verify(
            _b64decode(signature_b64),
            f"{header_b64}.{payload_b64}".encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature as exc:
        raise AssertionRefused("invalid_grant", "Invalid JWT Signature.") from exc
    if claims.get("aud") not in GOOGLE_AUDIENCES | {audience}:
        raise AssertionRefused(
            "invalid_grant",
            f"Invalid JWT: Failed audience check. The expected value was {audience}",
        )
    iat, exp = claims.get("iat"), claims.get("exp")
    if (
        not isinstance(iat, int | float)
        or not isinstance(exp, int | float)
        or exp - iat > MAX_LIFETIME
        or now < iat - CLOCK_SKEW
        or now > exp + CLOCK_SKEW
    ):
        raise AssertionRefused(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
            "timeframe. Check your iat and exp values in the JWT claim.",
        )
    if not claims.get("scope"):
        raise AssertionRefused(
            "invalid_scope", "Invalid OAuth scope or ID token audience provided."
        )
    return claims
