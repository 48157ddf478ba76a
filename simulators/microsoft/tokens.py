"""JWTs of the simulated identity platform, signed as Entra signs them: RS256, with the key's id
(`kid`, also `x5t`: the SHA-1 thumbprint of its certificate) in the header and the public key
published at the tenant's `jwks_uri`.

One key per process, made on first use: every tenant of a cloud shares its signing keys, and
generating RSA keys per app would slow the tests down for nothing.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

ALGORITHM = "RS256"


class TokenError(ValueError):
    """The token is malformed, badly signed or expired (`expired` tells which)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SigningKey:
    private_key: rsa.RSAPrivateKey
    certificate_der: bytes  # self-signed, published in `x5c` as Entra does

    @property
    def kid(self) -> str:
        return b64url(hashlib.sha1(self.certificate_der).digest())  # noqa: S324 (x5t is SHA-1)

    def jwk(self, issuer: str | None = None) -> dict[str, Any]:
        """The public key as Entra publishes it at jwks_uri."""
        key = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        published = {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": key["n"],
            "e": key["e"],
            "x5c": [base64.b64encode(self.certificate_der).decode("ascii")],
        }
        if issuer is not None:
            published["issuer"] = issuer
        return published


@functools.cache
def signing_key() -> SigningKey:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "accounts.accesscontrol.windows.net")]
    )
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365 * 5))
        .sign(private_key, hashes.SHA256())
    )
    return SigningKey(private_key, certificate.public_bytes(serialization.Encoding.DER))


def encode(claims: dict[str, Any], key: SigningKey | None = None) -> str:
    key = key or signing_key()
    headers = {"typ": "JWT", "kid": key.kid, "x5t": key.kid}
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers=headers)


def forge(claims: dict[str, Any]) -> str:
    """A token that names our signing key (`kid`) but is signed by another one: what a client
    must refuse (the `id_token_forged` fault)."""
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = signing_key().kid
    return jwt.encode(
        claims, impostor, algorithm=ALGORITHM, headers={"typ": "JWT", "kid": kid, "x5t": kid}
    )


def decode(token: str, key: SigningKey | None = None) -> dict[str, Any]:
    """The claims of a token this simulator signed; raises TokenError with Entra's wording."""
    key = key or signing_key()
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=[ALGORITHM],
            options={"verify_aud": False, "require": ["exp"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("Lifetime validation failed, the token is expired.", expired=True) from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenError("IDX10511: Signature validation failed.") from exc
    except jwt.InvalidTokenError as exc:
        raise TokenError("IDX14100: JWT is not well formed.") from exc
    return claims


def pkce_matches(verifier: str, challenge: str, method: str) -> bool:
    if method.upper() == "S256":
        computed = b64url(hashlib.sha256(verifier.encode("ascii")).digest())
    else:
        computed = verifier
    return hmac.compare_digest(computed, challenge)
