"""Microsoft identity platform + Microsoft Graph simulator.

`create_app(world)` returns one Flask app serving both the authority (login.microsoftonline.com
paths), Graph (`/v1.0/...`) and Exchange Online's public Autodiscover v2; the registry serves
it under three names ("login", "graph", "outlook").
"""

from __future__ import annotations

from flask import Flask, Response, request

# Imported for their routes on the Graph blueprint.
from simulators.microsoft import (  # noqa: F401
    batch,
    graph_calendar,
    graph_contacts,
    graph_directory,
    subscriptions,
)
from simulators.microsoft.autodiscover_v2 import bp as autodiscover_v2_bp
from simulators.microsoft.errors import GraphError, sim_error_body
from simulators.microsoft.graph_common import GraphState
from simulators.microsoft.graph_common import bp as graph_bp
from simulators.microsoft.identity import IdentityState
from simulators.microsoft.identity import bp as identity_bp
from simulators.microsoft.notifications import Notifier
from simulators.microsoft.sim_state import bp as state_bp
from simulators.microsoft.sim_state import build_mailboxes
from simulators.platform.control import install_control
from simulators.world.microsoft import MicrosoftWorld, demo_world

FAULT_KINDS = {"token_expired", "token_revoked", "delta_expired", "mailbox_hold", "id_token_forged"}


def create_app(world: MicrosoftWorld | None = None, **config: object) -> Flask:
    """`config` overrides: SIM_LATENCY_MS (network latency of each request, see the control
    API), GRAPH_NOTIFICATION_RETRY_DELAYS (seconds between tries of a change
    notification), GRAPH_NOTIFICATION_CA_FILE (trust for https webhooks; or set
    `app.extensions["microsoft_notifications"].session.verify` later),
    GRAPH_NOTIFICATIONS_ALLOW_LOOPBACK_HTTP (plain http webhooks on loopback, for the demo;
    Graph wants https)."""
    world = world or demo_world()
    app = Flask(__name__)
    app.config.update(
        GRAPH_NOTIFICATION_RETRY_DELAYS=(5.0, 30.0, 300.0, 1800.0, 3600.0),
        GRAPH_NOTIFICATION_CA_FILE=None,
        GRAPH_NOTIFICATIONS_ALLOW_LOOPBACK_HTTP=True,
        SIM_ERROR_BODY=sim_error_body,
        SIM_FAULT_KINDS=FAULT_KINDS,
    )
    app.config.update(config)
    notifier = Notifier(
        retry_delays=tuple(app.config["GRAPH_NOTIFICATION_RETRY_DELAYS"]),
        verify=app.config["GRAPH_NOTIFICATION_CA_FILE"] or True,
    )
    app.extensions["microsoft_world"] = world
    app.extensions["microsoft_identity"] = IdentityState()
    app.extensions["microsoft_notifications"] = notifier
    app.extensions["microsoft_graph"] = GraphState(
        mailboxes=build_mailboxes(world, notifier.changed)
    )
    app.register_blueprint(identity_bp)
    app.register_blueprint(graph_bp)
    app.register_blueprint(state_bp)
    app.register_blueprint(autodiscover_v2_bp)
    app.register_error_handler(GraphError, lambda exc: exc.response())
    app.register_error_handler(404, _not_found)
    app.register_error_handler(405, _not_allowed)
    install_control(app, "microsoft")
    return app


def _not_found(exc: Exception) -> Response | tuple[str, int]:
    if request.path.startswith("/v1.0/"):
        segment = request.path.removeprefix("/v1.0/")
        return GraphError(
            400, "BadRequest", f"Resource not found for the segment '{segment}'."
        ).response()
    return "Not Found", 404


def _not_allowed(exc: Exception) -> Response | tuple[str, int]:
    if request.path.startswith("/v1.0/"):
        return GraphError(
            405,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        ).response()
    return "Method Not Allowed", 405
