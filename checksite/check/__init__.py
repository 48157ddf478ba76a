"""The Check site's web face: the form, the live report page, and the JSON API.

Blueprint `check`; every run goes through `checksite.checks` (the same runner as the CLI).
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("check", __name__)

from checksite.check import (  # noqa: E402,F401  (routes register on bp)
    api,
    printing,
    signin,
    signin_google,
    signin_superoffice,
    views,
)
