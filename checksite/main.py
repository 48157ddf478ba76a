"""The landing page and the health endpoint."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template, url_for
from sqlalchemy import text

from checksite.database import db_session

bp = Blueprint("main", __name__)


@bp.get("/")
def landing() -> str:
    # The Check site's blueprint arrives with its own feature; link to it once it is there.
    check_url = url_for("check.form") if "check" in current_app.blueprints else None
    return render_template("landing.html", check_url=check_url)


@bp.get("/healthz")
def health():  # type: ignore[no-untyped-def]
    db_session().execute(text("SELECT 1"))
    return jsonify(status="ok")
