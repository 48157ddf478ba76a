"""Stored reports expire (CHECK_REPORT_RETENTION_DAYS, default 30) and can be deleted by whoever
has their link: through the page (a CSRF-protected form) or the API. Gone means gone everywhere:
the page, the JSON download, the live feed, the API and the database row."""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import timedelta
from typing import Any

from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from checksite.cli import main
from common.config import Settings
from common.db import Database
from common.models import CheckReport, utcnow


def start(client: FlaskClient) -> str:
    body = {"target": "icloudmail.example", "only": ["dns"]}
    report_id: str = client.post("/api/checks", json=body).get_json()["id"]
    deadline = time.monotonic() + 15
    while client.get(f"/api/checks/{report_id}").get_json()["status"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return report_id


def database(app: Flask) -> Database:
    return Database(app.config["SYNCHRONIZER"].database_url)


def age(app: Flask, report_id: str, by: timedelta) -> None:
    with database(app).session() as session:
        row = session.get(CheckReport, report_id)
        assert row is not None
        row.created_at = utcnow() - by


def stored(app: Flask, report_id: str) -> bool:
    with database(app).session() as session:
        return session.get(CheckReport, report_id) is not None


def reachable(client: FlaskClient, report_id: str) -> dict[str, int]:
    return {
        "page": client.get(f"/check/r/{report_id}").status_code,
        "json": client.get(f"/check/r/{report_id}.json").status_code,
        "events": client.get(f"/check/r/{report_id}/events").status_code,
        "api": client.get(f"/api/checks/{report_id}").status_code,
        "print": client.get(f"/check/r/{report_id}/print").status_code,
    }


GONE = {"page": 404, "json": 404, "events": 404, "api": 404, "print": 404}
THERE = {"page": 200, "json": 200, "events": 200, "api": 200, "print": 200}


def retention(app: Flask, days: int) -> None:
    settings: Settings = app.config["SYNCHRONIZER"]
    app.config["SYNCHRONIZER"] = dataclasses.replace(settings, check_report_retention_days=days)


def test_a_report_expires_after_thirty_days_by_default(check_app: Flask) -> None:
    assert check_app.config["SYNCHRONIZER"].check_report_retention_days == 30
    client = check_app.test_client()
    kept, expired = start(client), start(client)
    age(check_app, kept, timedelta(days=30) - timedelta(minutes=5))
    age(check_app, expired, timedelta(days=30, minutes=1))
    assert reachable(client, kept) == THERE
    assert "until" in client.get(f"/check/r/{kept}").text  # the page says how long it lives
    assert reachable(client, expired) == GONE
    assert not stored(check_app, expired)  # deleted, not merely hidden
    assert stored(check_app, kept)


def test_the_retention_is_configurable_and_old_reports_are_purged_when_a_run_starts(
    check_app: Flask,
) -> None:
    retention(check_app, 2)
    client = check_app.test_client()
    young, old = start(client), start(client)
    age(check_app, young, timedelta(days=1))
    age(check_app, old, timedelta(days=3))
    start(client)  # nobody asked for `old`: starting any run deletes it
    assert not stored(check_app, old)
    assert stored(check_app, young)
    assert reachable(client, young) == THERE


def csrf_token(page: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert match is not None, "the report page has no delete form"
    return match.group(1)


def test_the_page_deletes_a_report_with_its_csrf_token(check_app: Flask) -> None:
    client = check_app.test_client()
    report_id = start(client)
    page = client.get(f"/check/r/{report_id}").text
    forged = client.post(f"/check/r/{report_id}/delete")  # another site's form has no token
    assert forged.status_code == 400
    assert reachable(client, report_id) == THERE
    done = client.post(f"/check/r/{report_id}/delete", data={"csrf_token": csrf_token(page)})
    assert done.status_code == 303
    assert "The report was deleted" in client.get(done.headers["Location"]).text
    assert reachable(client, report_id) == GONE
    assert not stored(check_app, report_id)


def test_the_api_deletes_a_report_only_by_its_id(check_app: Flask) -> None:
    client = check_app.test_client()
    mine, other = start(client), start(client)
    guessed = "A" * len(mine)
    assert client.delete(f"/api/checks/{guessed}").status_code == 404
    assert client.delete("/api/checks/x").status_code == 404
    assert reachable(client, mine) == THERE
    answer = client.delete(f"/api/checks/{mine}")
    assert answer.status_code == 204
    assert reachable(client, mine) == GONE
    assert client.delete(f"/api/checks/{mine}").status_code == 404  # once
    assert reachable(client, other) == THERE  # only that one


def test_a_report_deleted_while_it_runs_is_not_stored_afterwards(check_app: Flask) -> None:
    client = check_app.test_client()
    body: dict[str, Any] = {"target": "adele@contoso.example"}
    report_id = client.post("/api/checks", json=body).get_json()["id"]
    assert client.delete(f"/api/checks/{report_id}").status_code == 204
    run = check_app.extensions["synchronizer.check_runs"].get(report_id)
    assert run is not None and not run.done  # still running when it was deleted
    deadline = time.monotonic() + check_app.config["SYNCHRONIZER"].check_timeout_seconds + 5
    while not run.done:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not stored(check_app, report_id)
    assert reachable(client, report_id) == GONE


def test_reading_any_report_deletes_every_expired_one(check_app: Flask) -> None:
    client = check_app.test_client()
    young, old, older = start(client), start(client), start(client)
    age(check_app, old, timedelta(days=31))
    age(check_app, older, timedelta(days=400))
    assert client.get(f"/check/r/{young}").status_code == 200  # nobody asked for the others
    assert not stored(check_app, old) and not stored(check_app, older)
    assert stored(check_app, young)


def test_deleting_a_report_deletes_the_expired_ones_too(check_app: Flask) -> None:
    client = check_app.test_client()
    mine, old = start(client), start(client)
    age(check_app, old, timedelta(days=31))
    assert client.delete(f"/api/checks/{mine}").status_code == 204
    assert not stored(check_app, old)


def test_an_expired_report_cannot_be_signed_in_to_or_deleted(check_app: Flask) -> None:
    client = check_app.test_client()
    report_id = start(client)
    age(check_app, report_id, timedelta(days=30))  # exactly its last moment has passed
    for provider in ("microsoft", "google", "superoffice"):
        assert client.get(f"/check/r/{report_id}/signin/{provider}").status_code == 404
    assert client.delete(f"/api/checks/{report_id}").status_code == 404


def test_the_housekeeping_command_deletes_expired_reports(check_app: Flask) -> None:
    """`synchronizer db purge-reports`, for cron: reports go on time also on an idle site."""
    client = check_app.test_client()
    young, old = start(client), start(client)
    age(check_app, old, timedelta(days=8))
    age(check_app, young, timedelta(days=6))
    settings: Settings = check_app.config["SYNCHRONIZER"]
    env = {
        "SYNCHRONIZER_INSTANCE_PATH": str(settings.instance_path),
        "SYNCHRONIZER_DATABASE_URL": settings.database_url,
        "SYNCHRONIZER_CHECK_REPORT_RETENTION_DAYS": "7",
    }
    result = CliRunner().invoke(main, ["db", "purge-reports"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "deleted 1 report(s) older than 7 day(s)"
    assert not stored(check_app, old)
    assert stored(check_app, young)
