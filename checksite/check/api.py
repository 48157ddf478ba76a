"""The JSON API: POST /api/checks starts a run, GET /api/checks/{id} returns the report.
Documented in checksite/check/openapi.json, served at /api/openapi.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Response, jsonify, request, send_file, url_for

from checksite.check import bp
from checksite.check.retention import delete_report
from checksite.check.runs import effective_status
from checksite.check.starting import rate_limit, settings, start_run
from checksite.check.views import live_report
from checksite.checks.context import TargetError
from checksite.checks.ews_access import service_account_credentials
from checksite.checks.fix_first import fix_first
from checksite.checks.model import Report
from checksite.checks.registry import UnknownCheck
from checksite.database import get_database
from checksite.extensions import csrf, limiter

OPENAPI = Path(__file__).with_name("openapi.json")
_FIELDS = (
    "target",
    "password",
    "superoffice_url",
    "ews_url",
    "oab_url",
    "superoffice_username",
    "superoffice_password",
    "service_account",
    "service_password",
)


def _error(status: int, message: str, field: str | None = None) -> tuple[Response, int]:
    if field is not None:  # the input the message is about, e.g. "ews_url"
        return jsonify(error=message, field=field), status
    return jsonify(error=message), status


@bp.post("/api/checks")
@csrf.exempt
@limiter.limit(rate_limit)
def create_check() -> tuple[Response, int]:
    payload: Any = request.get_json(silent=True)
    if not isinstance(payload, dict) or not isinstance(payload.get("target"), str):
        return _error(400, "send a JSON object with a 'target' (a domain or mailbox address)")
    values = {name: payload.get(name) for name in _FIELDS}
    if any(v is not None and not isinstance(v, str) for v in values.values()):
        return _error(400, "target, the passwords and the URLs must be strings")
    only = payload.get("only")
    if only is not None and (
        not isinstance(only, list) or not all(isinstance(i, str) for i in only)
    ):
        return _error(400, "'only' must be a list of check ids")
    try:
        report_id = start_run(
            values["target"] or "",
            password=values["password"],
            superoffice_url=values["superoffice_url"],
            ews_url=values["ews_url"],
            oab_url=values["oab_url"],
            only=only,
            superoffice_username=values["superoffice_username"],
            superoffice_password=values["superoffice_password"],
            credentials=service_account_credentials(
                values["service_account"], values["service_password"]
            ),
        )
    except TargetError as exc:
        return _error(400, str(exc), exc.field)
    except UnknownCheck as exc:
        return _error(400, str(exc), "only")
    body = {
        "id": report_id,
        "status": "running",
        "url": url_for("check.get_check", report_id=report_id, _external=True),
        "report_page": url_for("check.report", report_id=report_id, _external=True),
    }
    response = jsonify(body)
    response.headers["Location"] = body["url"]
    return response, 202


@bp.get("/api/checks/<report_id>")
def get_check(report_id: str) -> Response | tuple[Response, int]:
    row = live_report(report_id)
    if row is None:
        return _error(404, "no report with this id")
    done = row.status == "done" and bool(row.report)
    findings = fix_first(Report.from_dict(row.report)) if done else []
    return jsonify(
        id=row.id,
        status=effective_status(row, settings().check_timeout_seconds),
        target=row.target,
        verdict=row.verdict,
        report=row.report if done else None,
        fix_first=[finding.to_dict() for finding in findings],
    )


@bp.delete("/api/checks/<report_id>")
@csrf.exempt  # a JSON API: the report's id, the secret of its link, is the authority
def delete_check(report_id: str) -> Response | tuple[Response, int]:
    row = live_report(report_id)
    if row is None or not delete_report(get_database(), row.id):
        return _error(404, "no report with this id")
    return Response(status=204)


@bp.get("/api/openapi.json")
def openapi() -> Response:
    return send_file(OPENAPI, mimetype="application/json")
