"""The app factory: landing page, security headers, request ids, logs, error pages."""

from __future__ import annotations

import json
import logging

import pytest
from flask.testing import FlaskClient

from checksite import create_app
from common.config import Settings
from common.logging_setup import JsonFormatter


def test_landing_page_says_what_it_is(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Synchronizer keeps SuperOffice CRM" in page
    assert "Check site" in page
    assert '<html lang="en">' in page


def test_security_headers(client: FlaskClient) -> None:
    headers = client.get("/").headers
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"


def test_hsts_only_over_https(client: FlaskClient) -> None:
    assert "Strict-Transport-Security" not in client.get("/").headers
    secure = client.get("/", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")


def test_request_id_is_returned_and_logged(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="synchronizer.request")
    response = client.get("/healthz")
    assert response.json == {"status": "ok"}
    request_id = response.headers["X-Request-ID"]
    records = [r for r in caplog.records if r.name == "synchronizer.request"]
    assert len(records) == 1
    assert records[0].request_id == request_id  # type: ignore[attr-defined]
    assert records[0].status == 200  # type: ignore[attr-defined]
    assert records[0].path == "/healthz"  # type: ignore[attr-defined]


def test_trusted_request_id_is_kept_but_garbage_replaced(client: FlaskClient) -> None:
    kept = client.get("/", headers={"X-Request-ID": "abcdef123456"})
    assert kept.headers["X-Request-ID"] == "abcdef123456"
    replaced = client.get("/", headers={"X-Request-ID": "bad id; drop"})
    assert replaced.headers["X-Request-ID"] != "bad id; drop"


def test_json_log_lines() -> None:
    record = logging.LogRecord("synchronizer.request", logging.INFO, "", 0, "GET / 200", None, None)
    record.request_id = "r1"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "GET / 200"
    assert line["request_id"] == "r1"
    assert line["level"] == "INFO"


def test_json_logging_setting(settings: Settings) -> None:
    import dataclasses

    create_app(dataclasses.replace(settings, log_format="json"))
    root_formatters = [h.formatter for h in logging.getLogger().handlers]
    assert any(isinstance(f, JsonFormatter) for f in root_formatters)
    create_app(settings)  # back to text for the other tests


def test_error_pages_html_and_json(client: FlaskClient) -> None:
    page = client.get("/no/such/page")
    assert page.status_code == 404
    assert "404 Not Found" in page.get_data(as_text=True)
    api = client.get("/api/nothing")
    assert api.status_code == 404
    assert api.json["error"]["code"] == 404


def test_unexpected_errors_show_a_page_not_a_traceback(client: FlaskClient) -> None:
    app = client.application

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret internals")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = client.get("/boom")
    assert response.status_code == 500
    assert "secret internals" not in response.get_data(as_text=True)


def test_client_address_behind_a_trusted_proxy(settings: Settings) -> None:
    import dataclasses

    from flask import request

    seen: list[str | None] = []
    for proxies in (0, 1):
        app = create_app(dataclasses.replace(settings, trusted_proxies=proxies))

        @app.get("/whoami")
        def whoami() -> str:
            seen.append(request.remote_addr)
            return "ok"

        app.test_client().get("/whoami", headers={"X-Forwarded-For": "198.51.100.9"})
    # Without a trusted proxy the header is ignored (it could be forged); with one it is used.
    assert seen == ["127.0.0.1", "198.51.100.9"]
