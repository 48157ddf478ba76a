"""OpenID Connect id_tokens verified before any claim is believed: signature against the
provider's published keys (JWKS), audience, issuer, lifetime and the sign-in's nonce. Names and
tenants a report shows come from here, never from what a visitor typed (a login hint)."""

from __future__ import annotations

import secrets
from typing import Any

import jwt
import requests


class TokenRejected(Exception):
    """The id_token cannot be trusted; the message says why."""


def published_keys(http: requests.Session, jwks_uri: str) -> dict[str, Any]:
    try:
        keys = http.get(jwks_uri).json()
    except (requests.RequestException, ValueError) as exc:
        raise TokenRejected(f"the provider's keys could not be read: {exc}") from None
    if not isinstance(keys, dict):
        raise TokenRejected("the provider's keys are not a JWKS document")
    return keys


def verified_claims(
    id_token: str,
    keys: dict[str, Any],
    *,
    audience: str,
    issuers: tuple[str, ...],
    nonce: str | None,
) -> dict[str, Any]:
    """The claims of a valid id_token signed with one of `keys`; TokenRejected otherwise."""
    try:
        kid = jwt.get_unverified_header(id_token).get("kid")
        key = next(k for k in keys.get("keys", []) if k.get("kid") == kid)
        claims: dict[str, Any] = jwt.decode(
            id_token,
            jwt.PyJWK(key).key,
            algorithms=["RS256"],
            audience=audience,
            options={"require": ["exp", "iat", "iss", "aud"], "verify_iss": False},
        )
    except StopIteration:
        raise TokenRejected(
            "the id_token is signed with a key the provider does not publish"
        ) from None
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"the id_token is not valid: {exc}") from None
    if claims.get("iss") not in issuers:
        raise TokenRejected(f"the id_token comes from another issuer ({claims.get('iss')})")
    if nonce is not None and not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
        raise TokenRejected("the id_token's nonce is not this sign-in's")
    return claims
