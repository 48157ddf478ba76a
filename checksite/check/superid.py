"""SuperID (SuperOffice Online's identity provider) as an OpenID Connect client: the authorize
URL (code flow, state, nonce, PKCE S256) and the code's redemption, whose id_token is verified
against SuperID's published keys (JWKS) before any claim is believed."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests

from checksite.check.id_tokens import TokenRejected, verified_claims

CLAIM = "http://schemes.superoffice.net/identity/"


class SignInFailed(Exception):
    """The sign-in cannot be trusted or did not complete; the message says why."""


@dataclass(frozen=True)
class Flow:
    state: str
    nonce: str
    verifier: str

    @classmethod
    def new(cls) -> Flow:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(64))

    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class SuperIdUser:
    context_id: str  # Cust12345
    associate_id: str
    email: str
    is_administrator: bool


def authorize_url(
    online_url: str, client_id: str, redirect_uri: str, flow: Flow, context_id: str
) -> str:
    query = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": "openid",
        "state": flow.state,
        "nonce": flow.nonce,
        "code_challenge": flow.challenge(),
        "code_challenge_method": "S256",
        "acr_values": f"tenant:{context_id}",  # SuperID signs in to this tenant
    }
    return f"{online_url.rstrip('/')}/login/common/oauth/authorize?{urlencode(query)}"


def redeem(
    http: requests.Session,
    online_url: str,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    code: str,
    flow: Flow,
) -> SuperIdUser:
    """The signed-in user, from an id_token whose signature, issuer, audience, lifetime and
    nonce were verified; SignInFailed otherwise."""
    base = online_url.rstrip("/")
    try:
        discovery = http.get(f"{base}/login/.well-known/openid-configuration").json()
        answer = http.post(
            discovery["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "client_id": client_id,
                "client_secret": client_secret,
                "redirect_uri": redirect_uri,
                "code_verifier": flow.verifier,
            },
        )
        tokens = answer.json()
        if answer.status_code != 200 or "id_token" not in tokens:
            raise SignInFailed(str(tokens.get("error_description") or tokens.get("error")))
        keys = http.get(discovery["jwks_uri"]).json()
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        raise SignInFailed(f"SuperID did not answer as expected: {exc}") from None
    claims = _verified(tokens["id_token"], keys, client_id, str(discovery.get("issuer", "")))
    if not secrets.compare_digest(str(claims.get("nonce", "")), flow.nonce):
        raise SignInFailed("the id_token's nonce is not this sign-in's")
    return SuperIdUser(
        context_id=str(claims.get(CLAIM + "ctx", "")),
        associate_id=str(claims.get(CLAIM + "associateid", "")),
        email=str(claims.get(CLAIM + "email") or claims.get("sub", "")),
        is_administrator=str(claims.get(CLAIM + "is_administrator", "")).lower() == "true",
    )


def _verified(id_token: str, jwks: dict[str, Any], audience: str, issuer: str) -> dict[str, Any]:
    try:
        return verified_claims(id_token, jwks, audience=audience, issuers=(issuer,), nonce=None)
    except TokenRejected as exc:
        raise SignInFailed(str(exc).replace("the provider", "SuperID")) from None
