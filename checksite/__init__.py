"""The web face of Synchronizer: the Check site and the portal, one Flask app."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from common.config import Settings

if TYPE_CHECKING:
    from flask import Flask

    from common.push import PushTriggers

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(settings: Settings | None = None, *, push: PushTriggers | None = None) -> Flask:
    """The app factory: everything the app needs comes from `settings`, and what the push
    receivers may ask of the daemon from `push` (the composition root builds it; the web app
    never imports the daemon).

    The web stack is imported here, not at the top: `synchronizer check` imports this
    package too, and its deadline counts the process's start."""
    from flask import Flask
    from werkzeug.middleware.proxy_fix import ProxyFix

    from checksite.database import init_database
    from checksite.errors import init_error_pages
    from checksite.extensions import csrf, limiter
    from checksite.request_log import init_request_log
    from checksite.security import init_security_headers
    from common.logging_setup import configure_logging
    from common.secrets import configure_keys

    settings = settings or Settings.load()
    configure_logging(settings.log_format, settings.log_level)
    settings.warn_about_generated_secrets()
    configure_keys(list(settings.encryption_keys))

    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
        instance_path=str(settings.instance_path),
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SYNCHRONIZER=settings,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        RATELIMIT_STORAGE_URI=_rate_limit_storage(settings),
        RATELIMIT_HEADERS_ENABLED=True,
        WTF_CSRF_TIME_LIMIT=None,
    )

    if settings.trusted_proxies:
        # Client addresses (rate limits, logs) and https detection come from the proxy's headers.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    if push is not None:
        app.extensions["push"] = push
    init_database(app, settings.database_url)
    csrf.init_app(app)
    limiter.init_app(app)
    init_request_log(app)
    init_security_headers(app)
    init_error_pages(app)
    _register_blueprints(app)
    return app


def _rate_limit_storage(settings: Settings) -> str:
    """Counters shared by every web process: in Redis when there is one, else in the database
    (the embedded SQLite file by default; PostgreSQL shares them between hosts too)."""
    if settings.queue_url.startswith(("redis://", "rediss://")):
        return settings.queue_url
    from checksite.rate_limit_store import storage_uri  # registers the db+ storage

    return storage_uri(settings.database_url)


def _register_blueprints(app: Flask) -> None:
    from checksite import check, graph_hooks, hooks, main, metrics

    app.register_blueprint(main.bp)
    app.register_blueprint(check.bp)
    app.register_blueprint(hooks.bp)
    app.register_blueprint(graph_hooks.bp)
    app.register_blueprint(metrics.bp)
