"""The app's database: one `Database` per app, one session per request."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from common.db import Database

EXTENSION_KEY = "synchronizer.db"


def init_database(app: Flask, url: str) -> Database:
    database = Database(url)
    app.extensions[EXTENSION_KEY] = database
    app.teardown_appcontext(_close_session)
    return database


def get_database() -> Database:
    database: Database = current_app.extensions[EXTENSION_KEY]
    return database


def db_session() -> Session:
    """The request's session; closed (and rolled back if uncommitted) at teardown."""
    if "db_session" not in g:
        g.db_session = get_database().sessions()
    session: Session = g.db_session
    return session


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
