"""Production entry point: `gunicorn wsgi:app` (settings from SYNCHRONIZER_* / the TOML file)."""

import sys

from checksite import create_app
from common.config import ConfigError, Settings
from daemon.push import triggers

try:
    settings = Settings.load()
    # The composition root: the push receivers queue syncs through the daemon's queue.
    app = create_app(settings, push=triggers(settings))
except ConfigError as error:
    # One clear line instead of a traceback in the server's log.
    print(f"Error: {error}", file=sys.stderr)
    raise SystemExit(1) from None
