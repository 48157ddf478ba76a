"""Production entry point: `gunicorn wsgi:app` (settings from SYNCHRONIZER_* / the TOML file)."""

from checksite import create_app

app = create_app()
