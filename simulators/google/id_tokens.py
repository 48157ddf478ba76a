"""OpenID Connect ID tokens signed by the simulator's own key, with the certificate endpoints
(``/oauth2/v1/certs`` PEM, ``/oauth2/v3/certs`` JWKS) and the discovery document."""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Blueprint, Response, jsonify, request

from simulators.google.auth import store
from simulators.world.google import GoogleUser

bp = Blueprint("google_id_tokens", __name__)

ISSUER = "https://accounts.google.com"  # what google-auth's verify_oauth2_token expects
KEY_ID = "sim-google-2026"
LIFETIME = 3600


@functools.cache
def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _at_hash(access_token: str) -> str:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(access_token.encode())
    return _b64(digest.finalize()[:16])


def issue(client_id: str, user: GoogleUser, access_token: str, nonce: str | None) -> str:
    now = int(store().now())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "azp": client_id,
        "aud": client_id,
        "sub": user.user_id,
        "email": user.email,
        "email_verified": True,
        "at_hash": _at_hash(access_token),
        "name": user.full_name,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "iat": now,
        "exp": now + LIFETIME,
    }
    hosted_domain = store().hosted_domain(user)
    if hosted_domain is not None:
        claims["hd"] = hosted_domain
    if nonce:
        claims["nonce"] = nonce
    header = {"alg": "RS256", "kid": KEY_ID, "typ": "JWT"}
    signing_input = (
        _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    ).encode()
    signature = _key().sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return signing_input.decode() + "." + _b64(signature)


@bp.get("/oauth2/v1/certs")
def certs_pem() -> Response:
    public = (
        _key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return jsonify({KEY_ID: public.decode()})


@bp.get("/oauth2/v3/certs")
def certs_jwks() -> Response:
    numbers = _key().public_key().public_numbers()

    def encode(value: int) -> str:
        return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    jwk = {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": KEY_ID,
           "n": encode(numbers.n), "e": encode(numbers.e)}  # fmt: skip
    return jsonify(keys=[jwk])


@bp.get("/.well-known/openid-configuration")
def openid_configuration() -> Response:
    base = request.host_url.rstrip("/")
    return jsonify(
        issuer=ISSUER,
        authorization_endpoint=base + "/o/oauth2/v2/auth",
        token_endpoint=base + "/token",
        userinfo_endpoint=base + "/v1/userinfo",
        revocation_endpoint=base + "/revoke",
        jwks_uri=base + "/oauth2/v3/certs",
        response_types_supported=["code"],
        subject_types_supported=["public"],
        id_token_signing_alg_values_supported=["RS256"],
        scopes_supported=["openid", "email", "profile"],
        token_endpoint_auth_methods_supported=["client_secret_post", "client_secret_basic"],
        grant_types_supported=[
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
        ],
    )
