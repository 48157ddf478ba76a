"""The Google Workspace simulator: OAuth (consent, token, tokeninfo), Calendar v3, People v1,
Admin SDK Directory, and the batch endpoints, on one origin.

``create_app(world)`` takes ``simulators.world.google.GoogleWorld`` (``demo()`` when None).
Point google-api-python-client at it with ``client_options={"api_endpoint": url + path}`` where
path is ``/calendar/v3/`` (Calendar) or ``/`` (People, Directory, oauth2), and google-auth with
``token_uri=url + "/token"``.
"""

from __future__ import annotations

from flask import Flask, Response

from simulators.google import (
    batch,
    calendar_api,
    consent,
    directory_api,
    id_tokens,
    identity,
    oauth,
    people_api,
    sim_admin,
)
from simulators.google.errors import GoogleApiError, OAuthError, error_body_for_status
from simulators.google.push import PushChannels
from simulators.google.seed import seed
from simulators.google.store import GoogleStore
from simulators.platform.control import install_control
from simulators.world.google import GoogleWorld, demo

FAULT_KINDS = {
    "token_expired",  # an API call's valid token is refused once with 401
    "token_revoked",  # like token_expired; on /token a refresh answers invalid_grant
    "admin_policy_enforced",  # consent screen or /token answers admin_policy_enforced
    "delta_expired",  # a sync token is refused: Calendar 410, People EXPIRED_SYNC_TOKEN
    "rate_limit",  # 403 rateLimitExceeded (or "status": 429)
    "user_rate_limit",  # 403 userRateLimitExceeded
}


def create_app(world: GoogleWorld | None = None) -> Flask:
    app = Flask(__name__)
    app.config["SIM_FAULT_KINDS"] = FAULT_KINDS
    app.config["SIM_ERROR_BODY"] = error_body_for_status
    store = GoogleStore(world or demo())
    app.extensions["google_store"] = store
    seed(store)
    # Webhook receivers are trusted as Google trusts them (public CAs); tests point
    # `app.extensions["google_push"].session.verify` at their demo CA.
    push = PushChannels(now=store.now)
    store.calendar_listeners.append(push.changed)
    app.extensions["google_push"] = push
    blueprints = (
        consent, oauth, identity, id_tokens, calendar_api, people_api, directory_api, batch,
        sim_admin,
    )  # fmt: skip
    for module in blueprints:
        app.register_blueprint(module.bp)

    @app.errorhandler(GoogleApiError)
    def _google_error(exc: GoogleApiError) -> Response:
        return exc.response()

    @app.errorhandler(OAuthError)
    def _oauth_error(exc: OAuthError) -> Response:
        return exc.response()

    install_control(app, "google")
    return app
