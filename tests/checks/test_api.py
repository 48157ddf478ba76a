"""The JSON API and the page's server side: start, poll, stored report, SSE, escaping, limits."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import jsonschema
from flask import Flask
from flask.testing import FlaskClient

from checksite.check.api import OPENAPI
from common.db import Database
from common.models import CheckReport


def wait_done(client: FlaskClient, report_id: str, seconds: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body = client.get(f"/api/checks/{report_id}").get_json()
        if body["status"] == "done":
            return body  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError("the check did not finish")


def schema(name: str) -> dict[str, Any]:
    document = json.loads(OPENAPI.read_text())
    return {"$ref": f"#/components/schemas/{name}", "components": document["components"]}


def test_post_starts_a_check_and_get_returns_the_report(check_app: Flask) -> None:
    client = check_app.test_client()
    started = client.post(
        "/api/checks",
        json={"target": "alice@alpineskihouse.example", "password": "Alice-Passw0rd!"},
    )
    assert started.status_code == 202
    body = started.get_json()
    jsonschema.validate(body, schema("Started"))
    assert len(body["id"]) >= 22
    assert started.headers["Location"].endswith(f"/api/checks/{body['id']}")
    done = wait_done(client, body["id"])
    jsonschema.validate(done, schema("CheckState"))
    assert done["verdict"] == "pass"
    assert done["report"]["target"] == "alice@alpineskihouse.example"
    assert "Alice-Passw0rd!" not in json.dumps(done)
    ids = [c["id"] for c in done["report"]["checks"]]
    assert ids[:2] == ["dns", "autodiscover"]


def test_the_report_is_stored_and_reachable_by_its_link(check_app: Flask) -> None:
    client = check_app.test_client()
    report_id = client.post(
        "/api/checks", json={"target": "icloudmail.example", "only": ["dns", "unsupported"]}
    ).get_json()["id"]
    done = wait_done(client, report_id)
    assert done["verdict"] == "fail"
    database = Database(check_app.config["SYNCHRONIZER"].database_url)
    with database.session() as session:
        row = session.get(CheckReport, report_id)
        assert row is not None
        assert row.verdict == "fail"
        assert row.report["checks"][1]["id"] == "unsupported"
    page = client.get(f"/check/r/{report_id}")
    assert page.status_code == 200
    assert "Verdict: FAIL" in page.text
    download = client.get(f"/check/r/{report_id}.json")
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert download.get_json()["report"]["verdict"] == "fail"


def test_bad_requests_are_400_with_a_message(check_app: Flask) -> None:
    client = check_app.test_client()
    for payload in (
        None,
        {"target": 5},
        {"target": "<b>x</b>"},
        {"target": "a.example", "only": ["x"]},
    ):
        response = client.post("/api/checks", json=payload)
        assert response.status_code == 400
        assert response.get_json()["error"]
    assert client.get("/api/checks/nope").status_code == 404
    assert client.get("/api/checks/" + "a" * 22).status_code == 404


def test_the_openapi_document_is_served(check_app: Flask) -> None:
    document = check_app.test_client().get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    assert {"/api/checks", "/api/checks/{id}"} <= set(document["paths"])


def test_server_sent_events_stream_steps_then_the_report(check_app: Flask) -> None:
    client = check_app.test_client()
    report_id = client.post("/api/checks", json={"target": "icloudmail.example"}).get_json()["id"]
    stream = client.get(f"/check/r/{report_id}/events")
    assert stream.mimetype == "text/event-stream"
    kinds = [
        line.split(": ", 1)[1] for line in stream.text.splitlines() if line.startswith("event:")
    ]
    assert kinds[-1] == "report"
    assert "check" in kinds and "step" in kinds
    # After the run, a late viewer gets the stored report at once.
    assert "event: report" in client.get(f"/check/r/{report_id}/events").text


def test_the_form_escapes_what_was_typed(check_app: Flask) -> None:
    check_app.config["WTF_CSRF_ENABLED"] = False
    client = check_app.test_client()
    response = client.post("/check", data={"target": "<script>alert(1)</script>.example"})
    assert response.status_code == 400
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert "not a valid domain name" in response.text


def test_the_form_needs_its_csrf_token(check_app: Flask) -> None:
    response = check_app.test_client().post("/check", data={"target": "proseware.example"})
    assert response.status_code == 400


def test_check_requests_are_rate_limited_per_client(check_app: Flask) -> None:
    check_app.config["SYNCHRONIZER"] = dataclasses.replace(
        check_app.config["SYNCHRONIZER"], check_rate_limit="2 per minute"
    )
    client = check_app.test_client()
    codes = [
        client.post(
            "/api/checks",
            json={"target": "icloudmail.example", "only": ["dns"]},
            environ_base={"REMOTE_ADDR": "192.0.2.77"},
        ).status_code
        for _ in range(3)
    ]
    assert codes == [202, 202, 429]
    other = client.post(
        "/api/checks",
        json={"target": "icloudmail.example", "only": ["dns"]},
        environ_base={"REMOTE_ADDR": "192.0.2.78"},
    )
    assert other.status_code == 202


def test_a_run_whose_process_died_is_reported_interrupted(check_app: Flask) -> None:
    from datetime import timedelta

    from common.models import utcnow

    database: Database = check_app.extensions["synchronizer.db"]
    with database.session() as session:
        old = CheckReport(target="lost.example", created_at=utcnow() - timedelta(hours=1))
        fresh = CheckReport(target="busy.example")
        session.add_all([old, fresh])
    client = check_app.test_client()
    lost = client.get(f"/api/checks/{old.id}").get_json()
    assert lost["status"] == "interrupted"
    assert lost["report"] is None
    assert client.get(f"/api/checks/{fresh.id}").get_json()["status"] == "running"


def _field_block(html: str, field_id: str) -> str:
    """The form's <div class="field"> that holds the input with this id."""
    at = html.index(f'id="{field_id}"')
    start = html.rindex('<div class="field">', 0, at)
    return html[start : html.index("</div>", at)]


def test_the_form_shows_each_error_next_to_its_field(check_app: Flask) -> None:
    check_app.config["WTF_CSRF_ENABLED"] = False
    client = check_app.test_client()
    response = client.post(
        "/check",
        data={
            "target": "alice@proseware.example",
            "ews_url": "http://mail.proseware.example/EWS/Exchange.asmx",
        },
    )
    assert response.status_code == 400
    html = response.text
    ews = _field_block(html, "ews_url")
    assert "The EWS URL must start with https://" in ews
    assert 'aria-invalid="true"' in ews
    assert "must start with https://" not in _field_block(html, "target")
    # The group the field is in is open, and what was typed is still there.
    assert '<details class="field-group" open>' in html
    assert 'value="alice@proseware.example"' in _field_block(html, "target")
    response = client.post("/check", data={"target": "contoso.example", "password": "x"})
    assert "needs a mailbox address" in _field_block(response.text, "password")


def test_the_api_names_the_field_of_an_error(check_app: Flask) -> None:
    client = check_app.test_client()
    response = client.post(
        "/api/checks",
        json={"target": "alice@proseware.example", "ews_url": "http://mail.proseware.example/"},
    )
    assert response.status_code == 400
    body = response.get_json()
    jsonschema.validate(body, schema("Error"))
    assert body["field"] == "ews_url"
    assert "https://" in body["error"]
    assert client.post("/api/checks", json={"target": "x"}).get_json()["field"] == "target"


def test_the_api_gives_what_to_fix_first_once_the_report_is_done(check_app: Flask) -> None:
    client = check_app.test_client()
    report_id = client.post(
        "/api/checks", json={"target": "alice@margiestravel.example"}
    ).get_json()["id"]
    deadline = time.monotonic() + 20
    while (state := client.get(f"/api/checks/{report_id}").get_json())["status"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [(f["status"], f["check_id"]) for f in state["fix_first"]] == [
        ("fail", "tls"),
        ("fail", "autodiscover"),
    ]
    assert state["fix_first"][0]["remediation"].startswith("Enable TLS 1.2 on the server")
