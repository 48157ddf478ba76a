"""The Microsoft identity platform (login.microsoftonline.com) as far as our product uses it.

Tenant discovery (openid-configuration by tenant id or domain, getuserrealm, userrealm), the
authorization code flow with PKCE, refresh tokens, client credentials and admin consent, with
the AADSTS errors a real tenant answers. Sign-in itself is simulated: a `login_hint` naming a
known user signs that user in (no password); without one a small form asks for it.
"""

from __future__ import annotations

import html
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, current_app, request

from simulators.microsoft import consent, tokens
from simulators.microsoft.errors import aad_error, aadsts_description
from simulators.platform.control import claim_fault
from simulators.world.microsoft import MicrosoftWorld, Tenant, User

bp = Blueprint("identity", __name__)

_COMMON_TENANTS = ("common", "organizations")
CODE_LIFETIME = 600


@dataclass
class IdentityState:
    """Authorization codes and refresh tokens handed out, guarded by one lock."""

    codes: dict[str, dict] = field(default_factory=dict)
    refresh_tokens: dict[str, dict] = field(default_factory=dict)
    # Consent screens shown and not yet answered: ticket -> the authorize request behind it.
    consent_screens: dict[str, dict] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def revoke_user(self, user_id: str) -> int:
        """Revoke every refresh token of a user (the admin's "revoke sessions")."""
        with self.lock:
            hits = [t for t in self.refresh_tokens.values() if t["user_id"] == user_id]
            for grant in hits:
                grant["revoked"] = True
            return len(hits)


def _world() -> MicrosoftWorld:
    return current_app.extensions["microsoft_world"]


def _state() -> IdentityState:
    return current_app.extensions["microsoft_identity"]


def _base() -> str:
    return request.host_url.rstrip("/")


def _unknown_tenant(key: str) -> Response:
    return aad_error(
        "invalid_tenant",
        90002,
        f"Tenant '{key}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud.",
    )


# --- discovery ---------------------------------------------------------------------------


def _openid_configuration(tenant_segment: str) -> dict:
    base = _base()
    issuer_tenant = "{tenantid}" if tenant_segment in _COMMON_TENANTS else tenant_segment
    return {
        "token_endpoint": f"{base}/{tenant_segment}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{base}/{tenant_segment}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base}/{issuer_tenant}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base}/oidc/userinfo",
        "authorization_endpoint": f"{base}/{tenant_segment}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/{tenant_segment}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/{tenant_segment}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "name", "tid", "oid"],
        "kerberos_endpoint": f"{base}/{tenant_segment}/kerberos",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


@bp.get("/<tenant_key>/v2.0/.well-known/openid-configuration")
def openid_configuration(tenant_key: str) -> Response:
    if tenant_key in _COMMON_TENANTS:
        return _json(_openid_configuration(tenant_key))
    tenant = _world().tenant(tenant_key)
    if tenant is None:
        return _unknown_tenant(tenant_key)
    return _json(_openid_configuration(tenant.id))


@bp.get("/<tenant_key>/discovery/v2.0/keys")
def keys(tenant_key: str) -> Response:
    # Entra publishes the same cloud-wide keys for every tenant, with the tenant's issuer on
    # the tenant-specific URL.
    tenant = _world().tenant(tenant_key)
    issuer = f"{_base()}/{tenant.id}/v2.0" if tenant is not None else None
    return _json({"keys": [tokens.signing_key().jwk(issuer)]})


def _realm(login: str) -> tuple[str, Tenant | None]:
    domain = login.rpartition("@")[2].lower()
    return domain, _world().tenant(domain) if domain else None


@bp.get("/getuserrealm.srf")
def getuserrealm() -> Response:
    login = request.args.get("login", "")
    domain, tenant = _realm(login)
    if tenant is None:
        return _json({"State": 4, "UserState": 1, "Login": login, "NameSpaceType": "Unknown"})
    answer = {
        "State": 4 if tenant.namespace_type == "Managed" else 3,
        "UserState": 1 if tenant.namespace_type == "Managed" else 2,
        "Login": login,
        "NameSpaceType": tenant.namespace_type,
        "DomainName": domain,
        "FederationBrandName": tenant.federation_brand_name or tenant.display_name,
        "CloudInstanceName": "microsoftonline.com",
        "CloudInstanceIssuerUri": "urn:federation:MicrosoftOnline",
    }
    if tenant.namespace_type == "Federated":
        answer.update(
            {
                "AuthURL": f"{tenant.federation_auth_url}?username={login}&wa=wsignin1.0"
                "&wtrealm=urn%3afederation%3aMicrosoftOnline&wctx=",
                "FederationGlobalVersion": -1,
            }
        )
    return _json(answer)


@bp.get("/common/userrealm/<path:username>")
def userrealm(username: str) -> Response:
    domain, tenant = _realm(username)
    if tenant is None:
        return _json(
            {"ver": "1.0", "account_type": "Unknown", "cloud_instance_name": "microsoftonline.com"}
        )
    answer = {
        "ver": "1.0",
        "account_type": tenant.namespace_type,
        "domain_name": domain,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_audience_urn": "urn:federation:MicrosoftOnline",
    }
    if tenant.namespace_type == "Federated":
        answer.update(
            {
                "federation_protocol": "WSTrust",
                "federation_metadata_url": tenant.federation_auth_url,
                "federation_active_auth_url": tenant.federation_auth_url,
            }
        )
    return _json(answer)


# --- authorize ---------------------------------------------------------------------------


def _error_page(code: int, message: str, status: int = 400) -> Response:
    text = html.escape(aadsts_description(code, message))
    page = (
        "<!doctype html><title>Sign in to your account</title>"
        f"<h1>Sign in</h1><p>Sorry, but we're having trouble signing you in.</p><p id='error'>{text}</p>"
    )
    return Response(page, status=status, mimetype="text/html")


def _redirect_uri_allowed(app_redirects: list[str], uri: str) -> bool:
    parts = urlsplit(uri)
    if parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1"):
        return True
    return uri in app_redirects


def _back_to_client(redirect_uri: str, params: dict[str, str], response_mode: str) -> Response:
    if response_mode == "form_post":
        fields = "".join(
            f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
            for k, v in params.items()
        )
        page = (
            f"<!doctype html><body onload='document.forms[0].submit()'>"
            f"<form method='post' action='{html.escape(redirect_uri)}'>{fields}"
            "<noscript><button>Continue</button></noscript></form></body>"
        )
        return Response(page, mimetype="text/html")
    separator = "&" if "?" in redirect_uri else "?"
    return Response(
        status=302, headers={"Location": f"{redirect_uri}{separator}{urlencode(params)}"}
    )


def _error_params(error: str, code: int, message: str, state: str | None) -> dict[str, str]:
    params = {"error": error, "error_description": aadsts_description(code, message)}
    if state is not None:
        params["state"] = state
    return params


def _sign_in_form(tenant_key: str) -> Response:
    hidden = "".join(
        f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
        for k, v in request.args.items()
        if k != "login_hint"
    )
    page = (
        "<!doctype html><title>Sign in to your account</title><h1>Sign in</h1>"
        f"<form method='get' action='{html.escape(request.path)}'>{hidden}"
        "<label>Email <input name='login_hint' type='email' autofocus></label>"
        "<button>Next</button></form>"
    )
    return Response(page, mimetype="text/html")


def _signed_in_user(tenant_key: str, login: str) -> tuple[Tenant | None, User | None]:
    world = _world()
    tenant = world.tenant_of_user(login)
    if tenant is None or (
        tenant_key not in _COMMON_TENANTS and world.tenant(tenant_key) is not tenant
    ):
        return tenant, None
    return tenant, tenant.user(login)


@bp.get("/<tenant_key>/oauth2/v2.0/authorize")
def authorize(tenant_key: str) -> Response:
    args = request.args
    world = _world()
    if tenant_key not in _COMMON_TENANTS and world.tenant(tenant_key) is None:
        return _error_page(90002, f"Tenant '{tenant_key}' not found.")
    client_id = args.get("client_id", "")
    app = world.app(client_id)
    if app is None:
        tenant = world.tenant(tenant_key) if tenant_key not in _COMMON_TENANTS else None
        name = tenant.display_name if tenant else tenant_key
        return _error_page(
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{name}'. "
            "This can happen if the application has not been installed by the administrator of "
            "the tenant or consented to by any user in the tenant.",
        )
    redirect_uri = args.get("redirect_uri", "")
    if not _redirect_uri_allowed(app.redirect_uris, redirect_uri):
        return _error_page(
            50011,
            f"The redirect URI '{redirect_uri}' specified in the request does not match the "
            f"redirect URIs configured for the application '{client_id}'.",
        )
    state, response_mode = args.get("state"), args.get("response_mode", "query")
    if args.get("response_type") != "code":
        return _back_to_client(
            redirect_uri,
            _error_params(
                "unsupported_response_type", 70005, "The response type is not supported.", state
            ),
            response_mode,
        )
    login = args.get("login_hint", "").strip()
    if not login:
        return _sign_in_form(tenant_key)
    tenant, user = _signed_in_user(tenant_key, login)
    if tenant is None or user is None:
        return _error_page(50034, f"The user account {login} does not exist in the directory.")

    scopes, wants_default = consent.graph_scopes(args.get("scope", ""))
    prompt = args.get("prompt", "")
    decision = _consent_decision(tenant, user, scopes, wants_default, prompt, state)
    if isinstance(decision, dict):
        return _back_to_client(redirect_uri, decision, response_mode)
    if decision is not None:
        return _consent_screen(tenant, user, decision, args.to_dict())
    return _issue_code(tenant, user, args.to_dict())


def _issue_code(tenant: Tenant, user: User, args: dict[str, str]) -> Response:
    code = secrets.token_urlsafe(32)
    with _state().lock:
        _state().codes[code] = {
            "client_id": args.get("client_id", ""),
            "redirect_uri": args.get("redirect_uri", ""),
            "tenant_id": tenant.id,
            "user_id": user.id,
            "scope": args.get("scope", ""),
            "code_challenge": args.get("code_challenge"),
            "code_challenge_method": args.get("code_challenge_method", "plain"),
            "nonce": args.get("nonce"),
            "expires": time.time() + CODE_LIFETIME,
        }
    params = {
        "code": code,
        "client_info": _client_info(tenant, user),
        "session_state": str(uuid.uuid4()),
    }
    if args.get("state") is not None:
        params["state"] = args["state"]
    return _back_to_client(args.get("redirect_uri", ""), params, args.get("response_mode", "query"))


def _consent_decision(
    tenant: Tenant,
    user: User,
    scopes: list[str],
    wants_default: bool,
    prompt: str,
    state: str | None,
) -> dict[str, str] | list[str] | None:
    """None: sign in at once; a list: the permissions the consent screen asks for; a dict: the
    error parameters a real tenant sends back. As Entra: permissions nobody granted yet are
    asked for on a consent screen (only those: incremental consent); `prompt=consent` shows it
    even when all are granted; `prompt=none` never shows it (65001 instead); a user who may not
    consent (approval for apps, or a permission only an administrator can grant) gets 90094."""
    granted = consent.delegated_grant(tenant, user)
    if wants_default:
        missing = [] if consent.has_service_principal(tenant) else ["(static permissions)"]
    else:
        missing = [s for s in scopes if s not in granted]
    if not missing and prompt not in ("consent", "admin_consent"):
        return None
    admin_only = [s for s in missing if s in consent.ADMIN_CONSENT_SCOPES]
    if not user.is_admin and (tenant.consent == "admin_approval_required" or admin_only):
        return _error_params(
            "access_denied",
            90094,
            "The grant requires admin permission. Need admin approval.",
            state,
        )
    if prompt == "none":
        return _error_params(
            "consent_required",
            65001,
            f"The user or administrator has not consented to use the application with ID "
            f"'{request.args.get('client_id')}' named 'Synchronizer'. Send an interactive "
            f"authorization request for this user and resource. Missing: {' '.join(missing)}",
            state,
        )
    return missing or scopes


def _consent_screen(tenant: Tenant, user: User, asked: list[str], args: dict[str, str]) -> Response:
    """Entra's "Permissions requested" page: the permissions asked for, Accept and Cancel, and
    for an administrator the (unticked) "Consent on behalf of your organization" box."""
    ticket = secrets.token_urlsafe(24)
    with _state().lock:
        _state().consent_screens[ticket] = {
            "tenant_id": tenant.id,
            "user_id": user.id,
            "asked": asked,
            "args": args,
        }
    items = "".join(f"<li class='permission'>{html.escape(s)}</li>" for s in asked)
    organisation = (
        "<label><input type='checkbox' name='for_organization' value='1'> Consent on behalf of "
        "your organization</label>"
        if user.is_admin
        else ""
    )
    page = (
        "<!doctype html><title>Permissions requested</title><h1>Permissions requested</h1>"
        f"<p>{html.escape(user.user_principal_name)}: Synchronizer would like to:</p>"
        f"<ul>{items}</ul>"
        f"<form method='post' action='{html.escape(request.path)}/consent'>"
        f"<input type='hidden' name='ticket' value='{ticket}'>{organisation}"
        "<button name='decision' value='accept'>Accept</button>"
        "<button name='decision' value='cancel'>Cancel</button></form>"
    )
    return Response(page, mimetype="text/html")


@bp.post("/<tenant_key>/oauth2/v2.0/authorize/consent")
def consent_answer(tenant_key: str) -> Response:
    with _state().lock:
        screen = _state().consent_screens.pop(request.form.get("ticket", ""), None)
    if screen is None:
        return _error_page(90014, "The request was not a consent screen this service showed.")
    args: dict[str, str] = screen["args"]
    tenant = _world().tenant(screen["tenant_id"])
    user = tenant.user(screen["user_id"]) if tenant is not None else None
    if tenant is None or user is None:
        return _error_page(50034, "The user account does not exist in the directory.")
    if request.form.get("decision") != "accept":
        params = _error_params(
            "access_denied", 65004, "User declined to consent to access the app.", args.get("state")
        )
        return _back_to_client(
            args.get("redirect_uri", ""), params, args.get("response_mode", "query")
        )
    asked = [s for s in screen["asked"] if s != "(static permissions)"]
    organisation = (
        request.form.get("for_organization") == "1" or args.get("prompt") == "admin_consent"
    )
    if organisation and user.is_admin:
        consent.grant_admin_consent(tenant, asked)
    else:
        consent.grant_user_consent(tenant, user, asked)
    return _issue_code(tenant, user, args)


@bp.get("/<tenant_key>/adminconsent")
@bp.get("/<tenant_key>/v2.0/adminconsent")
def admin_consent(tenant_key: str) -> Response:
    args = request.args
    world = _world()
    client_id, redirect_uri, state = (
        args.get("client_id", ""),
        args.get("redirect_uri", ""),
        args.get("state"),
    )
    app = world.app(client_id)
    if app is None:
        return _error_page(700016, f"Application with identifier '{client_id}' was not found.")
    if not _redirect_uri_allowed(app.redirect_uris, redirect_uri):
        return _error_page(50011, f"The redirect URI '{redirect_uri}' does not match.")
    login = args.get("login_hint", "").strip()
    if not login:
        return _sign_in_form(tenant_key)
    tenant, user = _signed_in_user(tenant_key, login)
    if tenant is None or user is None:
        return _error_page(50034, f"The user account {login} does not exist in the directory.")
    if args.get("decline"):
        params = _error_params(
            "access_denied", 65004, "User declined to consent to access the app.", state
        )
        return _back_to_client(redirect_uri, params, "query")
    if not user.is_admin:
        params = _error_params(
            "access_denied",
            90093,
            "Graph returned an error: the signed in user is not an administrator and cannot grant "
            "consent on behalf of the organization.",
            state,
        )
        return _back_to_client(redirect_uri, params, "query")
    consent.grant_admin_consent(tenant)
    params = {"admin_consent": "True", "tenant": tenant.id}
    if "scope" in args:
        params["scope"] = args["scope"]
    if state is not None:
        params["state"] = state
    return _back_to_client(redirect_uri, params, "query")


# --- token -------------------------------------------------------------------------------


def _client_info(tenant: Tenant, user: User) -> str:
    return tokens.b64url(json.dumps({"uid": user.id, "utid": tenant.id}).encode())


def _client_credentials() -> tuple[str, str | None]:
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        return auth.username or "", auth.password
    return request.form.get("client_id", ""), request.form.get("client_secret")


@bp.post("/<tenant_key>/oauth2/v2.0/token")
def token(tenant_key: str) -> Response:
    world = _world()
    tenant = None if tenant_key in _COMMON_TENANTS else world.tenant(tenant_key)
    if tenant_key not in _COMMON_TENANTS and tenant is None:
        return _unknown_tenant(tenant_key)
    client_id, secret = _client_credentials()
    app = world.app(client_id)
    if app is None:
        name = tenant.display_name if tenant else tenant_key
        return aad_error(
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{name}'.",
        )
    if secret != app.client_secret:
        return aad_error(
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the "
            f"client secret value, not the client secret ID, for a secret added to app '{client_id}'.",
            status=401,
        )
    grant_type = request.form.get("grant_type", "")
    if grant_type == "authorization_code":
        return _redeem_code(tenant, client_id)
    if grant_type == "refresh_token":
        return _redeem_refresh_token(tenant, client_id)
    if grant_type == "client_credentials":
        return _client_credentials_grant(tenant, tenant_key, client_id)
    return aad_error(
        "unsupported_grant_type",
        70003,
        f"The app requested an unsupported grant type '{grant_type}'.",
    )


def _redeem_code(tenant: Tenant | None, client_id: str) -> Response:
    form = request.form
    with _state().lock:
        grant = _state().codes.pop(form.get("code", ""), None)
    if grant is None or grant["client_id"] != client_id:
        return aad_error(
            "invalid_grant",
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code.",
        )
    if grant["expires"] < time.time():
        return aad_error(
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity.",
        )
    if tenant is not None and tenant.id != grant["tenant_id"]:
        return aad_error(
            "invalid_grant", 50020, "User account from identity provider does not exist in tenant."
        )
    if form.get("redirect_uri") != grant["redirect_uri"]:
        return aad_error(
            "invalid_grant",
            500112,
            "The reply address does not match the reply address provided when requesting the authorization code.",
        )
    challenge = grant["code_challenge"]
    if challenge:
        verifier = form.get("code_verifier")
        if not verifier:
            return aad_error(
                "invalid_request",
                50148,
                "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.",
            )
        if not tokens.pkce_matches(verifier, challenge, grant["code_challenge_method"]):
            return aad_error(
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            )
    return _issue_user_tokens(
        grant["tenant_id"],
        grant["user_id"],
        client_id,
        form.get("scope") or grant["scope"],
        grant["nonce"],
    )


def _redeem_refresh_token(tenant: Tenant | None, client_id: str) -> Response:
    presented = request.form.get("refresh_token", "")
    with _state().lock:
        grant = _state().refresh_tokens.get(presented)
        if grant is not None and claim_fault("token_revoked"):
            grant["revoked"] = True
    if grant is None or grant["client_id"] != client_id:
        return aad_error(
            "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."
        )
    if grant["revoked"]:
        return aad_error(
            "invalid_grant",
            50173,
            "The provided grant has expired due to it being revoked, a fresh auth token is needed. "
            "The user might have changed or reset their password.",
        )
    if tenant is not None and tenant.id != grant["tenant_id"]:
        return aad_error(
            "invalid_grant", 50020, "User account from identity provider does not exist in tenant."
        )
    owner = _world().tenant(grant["tenant_id"])
    user = owner.user(grant["user_id"]) if owner else None
    scope = request.form.get("scope") or grant["scope"]
    scopes, wants_default = consent.graph_scopes(scope)
    if owner is None or user is None:
        return aad_error(
            "invalid_grant", 50034, "The user account does not exist in the directory."
        )
    granted = consent.delegated_grant(owner, user)
    if (wants_default and not consent.has_service_principal(owner)) or any(
        s not in granted for s in scopes
    ):
        return aad_error(
            "invalid_grant",
            65001,
            f"The user or administrator has not consented to use the application with ID '{client_id}' "
            "named 'Synchronizer'. Send an interactive authorization request for this user and resource.",
        )
    return _issue_user_tokens(owner.id, user.id, client_id, scope, None)


def _issue_user_tokens(
    tenant_id: str, user_id: str, client_id: str, scope: str, nonce: str | None
) -> Response:
    world = _world()
    tenant = world.tenant(tenant_id)
    assert tenant is not None
    user = tenant.user(user_id)
    assert user is not None
    scopes, wants_default = consent.graph_scopes(scope)
    granted = consent.delegated_grant(tenant, user)
    effective = sorted(granted) if wants_default else scopes
    requested = scope.split()
    now = int(time.time())
    lifetime = world.access_token_lifetime
    access = tokens.encode(
        {
            "aud": consent.GRAPH_RESOURCE,
            "iss": f"https://sts.windows.net/{tenant.id}/",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "appid": client_id,
            "app_displayname": "Synchronizer",
            "idtyp": "user",
            "name": user.display_name,
            "oid": user.id,
            "scp": " ".join(s for s in effective if s not in consent.OIDC_SCOPES),
            "sub": user.id,
            "tid": tenant.id,
            "upn": user.user_principal_name,
            "unique_name": user.user_principal_name,
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
        },
    )
    body: dict = {
        "token_type": "Bearer",
        # Entra lists Microsoft Graph's scopes by their short names ("Calendars.ReadWrite"),
        # whatever form was asked for; msal caches the token under exactly this list.
        "scope": " ".join(
            [s for s in effective if s not in consent.OIDC_SCOPES]
            + [s for s in ("openid", "profile", "email") if s in requested]
        ),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access,
    }
    if "offline_access" in requested:
        refresh = secrets.token_urlsafe(48)
        with _state().lock:
            _state().refresh_tokens[refresh] = {
                "client_id": client_id,
                "tenant_id": tenant.id,
                "user_id": user.id,
                "scope": scope,
                "revoked": False,
            }
        body["refresh_token"] = refresh
    if "openid" in requested:
        claims = {
            "aud": client_id,
            "iss": f"{_base()}/{tenant.id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "name": user.display_name,
            "oid": user.id,
            "preferred_username": user.user_principal_name,
            "sub": user.id,
            "tid": tenant.id,
            "ver": "2.0",
        }
        if nonce:
            claims["nonce"] = nonce
        forged = claim_fault("id_token_forged") is not None
        body["id_token"] = tokens.forge(claims) if forged else tokens.encode(claims)
    if request.form.get("client_info") == "1":
        body["client_info"] = _client_info(tenant, user)
    return _json(body)


def _client_credentials_grant(tenant: Tenant | None, tenant_key: str, client_id: str) -> Response:
    world = _world()
    if tenant is None:
        return aad_error(
            "invalid_request",
            50059,
            f"No tenant-identifying information found in either the request or implied by any provided credentials ('{tenant_key}').",
        )
    names, wants_default = consent.graph_scopes(request.form.get("scope", ""))
    if not wants_default or names:
        return aad_error(
            "invalid_scope",
            1002012,
            f"The provided value for scope {request.form.get('scope', '')} is not valid. Client credential "
            "flows must have a scope value with /.default suffixed to the resource identifier "
            "(application ID URI).",
        )
    if not consent.has_service_principal(tenant):
        return aad_error(
            "unauthorized_client",
            700016,
            consent.app_not_found_message(client_id, tenant),
        )
    now = int(time.time())
    claims = {
        "aud": consent.GRAPH_RESOURCE,
        "iss": f"https://sts.windows.net/{tenant.id}/",
        "iat": now,
        "nbf": now,
        "exp": now + world.access_token_lifetime,
        "appid": client_id,
        "app_displayname": "Synchronizer",
        "idtyp": "app",
        "oid": consent.service_principal_id(tenant, client_id),
        "sub": consent.service_principal_id(tenant, client_id),
        "tid": tenant.id,
        "uti": secrets.token_urlsafe(16),
        "ver": "1.0",
    }
    if tenant.consent == "granted" and tenant.granted_roles:
        claims["roles"] = list(tenant.granted_roles)
    access = tokens.encode(claims)
    return _json(
        {
            "token_type": "Bearer",
            "expires_in": world.access_token_lifetime,
            "ext_expires_in": world.access_token_lifetime,
            "access_token": access,
        }
    )


def _json(payload: dict, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")
