"""Who a token belongs to: ``tokeninfo`` (oauth2.googleapis.com and the oauth2 v2 API) and
``userinfo`` (oauth2 v2 and OpenID Connect)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from simulators.google.auth import require_token, store
from simulators.google.errors import OAuthError
from simulators.google.store import AccessToken
from simulators.world.google import SCOPE_EMAIL, SCOPE_PROFILE

bp = Blueprint("google_identity", __name__)


def _token_info_record() -> AccessToken:
    value = request.values.get("access_token", "")
    record = store().valid_access_token(value)
    if record is None:
        raise OAuthError("invalid_token", "Invalid Value")
    return record


def _subject_id(email: str) -> str:
    user = store().find_user(email)
    if user is not None:
        return user.user_id
    account = next((a for a in store().world.service_accounts if a.client_email == email), None)
    return account.client_id if account else email


@bp.route("/tokeninfo", methods=["GET", "POST"])
@bp.route("/oauth2/v3/tokeninfo", methods=["GET", "POST"])
def tokeninfo() -> Response:
    record = _token_info_record()
    expires_in = int(record.expires_at - store().now())
    return jsonify(
        azp=record.client_id,
        aud=record.client_id,
        sub=_subject_id(record.email),
        scope=" ".join(record.scopes),
        exp=str(int(record.expires_at)),
        expires_in=str(expires_in),
        email=record.email,
        email_verified="true",
        access_type=record.access_type,
    )


@bp.route("/oauth2/v2/tokeninfo", methods=["GET", "POST"])
def tokeninfo_v2() -> Response:
    """The oauth2 v2 API's shape (schema ``Tokeninfo`` in oauth2.v2.json)."""
    record = _token_info_record()
    return jsonify(
        issued_to=record.client_id,
        audience=record.client_id,
        user_id=_subject_id(record.email),
        scope=" ".join(record.scopes),
        expires_in=int(record.expires_at - store().now()),
        email=record.email,
        verified_email=True,
    )


@bp.route("/oauth2/v2/userinfo", methods=["GET"])
@bp.route("/userinfo/v2/me", methods=["GET"])
def userinfo_v2() -> Response:
    record = require_token("openid", "email", "profile", SCOPE_EMAIL, SCOPE_PROFILE)
    user = store().find_user(record.email)
    if user is None:
        return jsonify(id=_subject_id(record.email), email=record.email, verified_email=True)
    info: dict[str, Any] = {
        "id": user.user_id,
        "email": user.email,
        "verified_email": True,
        "name": user.full_name,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "hd": store().hosted_domain(user),
        "locale": "en",
        "picture": "https://lh3.googleusercontent.com/a/default-user=s96-c",
    }
    return jsonify({k: v for k, v in info.items() if v is not None})


@bp.route("/oauth2/v3/userinfo", methods=["GET"])
@bp.route("/v1/userinfo", methods=["GET"])
def userinfo_oidc() -> Response:
    record = require_token("openid", "email", "profile", SCOPE_EMAIL, SCOPE_PROFILE)
    user = store().find_user(record.email)
    claims: dict[str, Any] = {
        "sub": _subject_id(record.email),
        "email": record.email,
        "email_verified": True,
    }
    if user is not None:
        claims.update(name=user.full_name, given_name=user.given_name, family_name=user.family_name)
        if (hosted_domain := store().hosted_domain(user)) is not None:
            claims["hd"] = hosted_domain
    return jsonify(claims)
