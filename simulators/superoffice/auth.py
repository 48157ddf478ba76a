"""Who is calling a tenant's REST API: the Authorization header schemes SuperOffice accepts.

Onsite: `Basic user:pass`, `Basic 7T:ticket:` (a ticket instead of a username) and `SOTicket`.
Online: `Bearer 8A:…` from SuperID, and `SOTicket 7T:…` together with `SO-AppToken` (the system
user); Basic is refused ("Basic is not allowed in Online").
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import TYPE_CHECKING

from flask import request

from simulators.superoffice.errors import ApiError
from simulators.superoffice.faults import claim
from simulators.superoffice.model import AssociateRecord, TenantData

if TYPE_CHECKING:
    from simulators.superoffice.app import Simulator

_CHALLENGE = {"WWW-Authenticate": 'Basic realm="SuperOffice", Bearer'}


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, _CHALLENGE)


def _claim_token_expired() -> bool:
    return claim("token_expired") is not None


def authenticate(sim: Simulator, tenant: TenantData) -> AssociateRecord:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if not header:
        raise _unauthorized("Authentication required")
    if _claim_token_expired():
        raise _unauthorized("Token expired")
    online = tenant.config.kind == "online"
    if scheme == "basic":
        if online:
            raise _unauthorized("Basic is not allowed in Online")
        return _basic(sim, tenant, value)
    if scheme == "soticket":
        if online and not sim.is_app_token(request.headers.get("SO-AppToken", "")):
            raise _unauthorized("SOTicket requires a valid SO-AppToken in Online")
        return _ticket(sim, tenant, value)
    if scheme == "bearer":
        grant = sim.credentials.access(value)
        if grant is None or grant.context_id != tenant.context_id:
            raise _unauthorized("Invalid or expired access token")
        return _active(tenant, grant.associate_id)
    raise _unauthorized(f"Unsupported authorization scheme {scheme!r}")


def _basic(sim: Simulator, tenant: TenantData, value: str) -> AssociateRecord:
    try:
        username, _, password = base64.b64decode(value).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise _unauthorized("Malformed Basic credentials") from exc
    if username.startswith("7T:") and not password:
        return _ticket(sim, tenant, username)
    assoc = tenant.associate_by_username(username)
    if assoc is None or assoc.deleted or assoc.kind != "InternalAssociate":
        raise _unauthorized("Unknown user name or wrong password")
    if not _same(assoc.password, password):
        raise _unauthorized("Unknown user name or wrong password")
    return assoc


def _ticket(sim: Simulator, tenant: TenantData, ticket: str) -> AssociateRecord:
    grant = sim.credentials.ticket(ticket)
    if grant is None or grant.context_id != tenant.context_id:
        raise _unauthorized("Invalid or expired ticket")
    return _active(tenant, grant.associate_id)


def _active(tenant: TenantData, associate_id: int) -> AssociateRecord:
    assoc = tenant.associates.get(associate_id)
    if assoc is None or assoc.deleted:
        raise _unauthorized("The user is no longer active")
    return assoc


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
