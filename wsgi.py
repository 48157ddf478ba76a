"""Production entry point: `gunicorn wsgi:app` (settings from SYNCHRONIZER_* / the TOML file)."""

import sys

from checksite import create_app
from common.config import ConfigError

try:
    app = create_app()
except ConfigError as error:
    # One clear line instead of a traceback in the server's log.
    print(f"Error: {error}", file=sys.stderr)
    raise SystemExit(1) from None
