"""The SuperOffice simulator: one Flask app serving SuperID (`/login`), `/api/state`, and every
tenant's REST API under `/{tenant}/api/v1` (Online tenants and the Onsite installation)."""

from __future__ import annotations

import functools
import hashlib

import flask
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from simulators.platform.control import install_control
from simulators.superoffice import errors, faults, remote, rest, state, superid
from simulators.superoffice.credentials import CredentialStore
from simulators.superoffice.model import TenantData, build_tenant
from simulators.superoffice.webhooks import WebhookDispatcher
from simulators.world.superoffice import PartnerApp, SuperOfficeWorld


@functools.cache
def _signing_key() -> rsa.RSAPrivateKey:
    """SuperID's id_token key: one per process (generating RSA keys is slow; tests make many apps)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Simulator:
    """The simulator's state, kept in `app.extensions["superoffice"]`."""

    def __init__(self, world: SuperOfficeWorld, webhooks: WebhookDispatcher) -> None:
        self.world = world
        self.tenants: dict[str, TenantData] = {
            t.context_id.lower(): build_tenant(t) for t in world.tenants
        }
        self.apps: dict[str, PartnerApp] = {a.client_id: a for a in world.apps}
        self.credentials = CredentialStore()
        self.webhooks = webhooks
        self.signing_key = _signing_key()
        public = self.signing_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.key_id = hashlib.sha256(public).hexdigest()[:16]

    def tenant(self, context_id: str) -> TenantData | None:
        return self.tenants.get(context_id.lower())

    def is_app_token(self, secret: str) -> bool:
        return bool(secret) and any(a.client_secret == secret for a in self.apps.values())


def create_app(world: SuperOfficeWorld, **config: object) -> flask.Flask:
    """`config` overrides: SO_WEBHOOK_CA_FILE (trust for https targets), SO_WEBHOOK_RETRY_DELAYS,
    SO_WEBHOOK_ALLOW_LOOPBACK_HTTP (the demo's portal listens on plain http on loopback; real
    SuperOffice wants https), SO_ALLOW_LOOPBACK_REDIRECTS (any 127.0.0.1/localhost redirect_uri).
    `app.extensions["superoffice"].webhooks.session.verify` may be set later (e.g. the demo CA)."""
    app = flask.Flask(__name__)
    app.config.update(
        SO_WEBHOOK_CA_FILE=None,
        SO_WEBHOOK_RETRY_DELAYS=(1.0, 4.0),
        SO_WEBHOOK_ALLOW_LOOPBACK_HTTP=True,
        SO_ALLOW_LOOPBACK_REDIRECTS=True,
        SIM_ERROR_BODY=errors.sim_error_body,
        SIM_FAULT_KINDS={faults.TOKEN_EXPIRED, faults.TOKEN_REVOKED, faults.TENANT_MOVED},
    )
    app.config.update(config)
    reset(app, world)
    app.register_blueprint(state.bp)
    app.register_blueprint(superid.bp)
    app.register_blueprint(rest.bp)
    app.register_blueprint(remote.bp)
    app.register_error_handler(errors.ApiError, errors.render)
    install_control(app, "superoffice")
    return app


def reset(app: flask.Flask, world: SuperOfficeWorld) -> Simulator:
    """Give `app` fresh data from `world` (and fresh tokens and webhook queue), e.g. between tests:
    much cheaper than a new app, whose URL rules werkzeug compiles again."""
    dispatcher = WebhookDispatcher(
        retry_delays=tuple(app.config["SO_WEBHOOK_RETRY_DELAYS"]),
        verify=app.config["SO_WEBHOOK_CA_FILE"] or True,
    )
    simulator = Simulator(world, dispatcher)
    app.extensions["superoffice"] = simulator
    return simulator
