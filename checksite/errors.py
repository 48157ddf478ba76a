"""Error pages: HTML for people, JSON for the API."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)


def init_error_pages(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def _wants_json() -> bool:
    return request.path.startswith("/api/") or (
        request.accept_mimetypes.best_match(["application/json", "text/html"]) == "application/json"
    )


def _http_error(error: HTTPException):  # type: ignore[no-untyped-def]
    code = error.code or 500
    if _wants_json():
        return jsonify(error={"code": code, "name": error.name, "message": error.description}), code
    return render_template("error.html", error=error, code=code), code


def _unexpected_error(error: Exception):  # type: ignore[no-untyped-def]
    log.exception("unhandled error")
    return _http_error(InternalServerError())
