"""The page: the form, the report (live while it runs), its JSON download, and the SSE feed."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from flask import (
    Response,
    abort,
    redirect,
    render_template,
    request,
    url_for,
)
from markupsafe import Markup, escape

from checksite.check import bp
from checksite.check.forms import CheckForm, DeleteForm
from checksite.check.report_view import report_view
from checksite.check.retention import delete_report, expires_at, unexpired_report
from checksite.check.runs import follow_stored
from checksite.check.starting import current_runs, rate_limit, settings, start_run
from checksite.check.streams import LEASE_MARGIN_S, StreamSlots
from checksite.checks.context import TargetError
from checksite.checks.ews_access import service_account_credentials
from checksite.checks.m365_app import READ_CONSENT
from checksite.checks.model import Report
from checksite.checks.superoffice import superoffice_online_tenant
from checksite.database import get_database
from checksite.extensions import client_key, limiter
from common.models import CheckReport

STREAM_RETRY_S = 5  # seconds a client refused a live stream waits before it reloads the page
# A comment line sent while nothing happens: writing is how the server learns that a viewer
# left, and so frees the stream's slot within seconds instead of at the deadline.
HEARTBEAT_S = 1.0
HEARTBEAT = ": still checking\n\n"
REPORT_ID = re.compile(r"^[A-Za-z0-9_-]{16,43}$")
_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:)]")


@bp.app_template_filter("linkify")
def linkify(text: str) -> Markup:
    """The text escaped, with its URLs as links (each piece escaped by Markup.format)."""
    parts: list[Markup] = []
    position = 0
    for match in _URL.finditer(text):
        parts.append(escape(text[position : match.start()]))
        url = match.group(0)
        parts.append(Markup('<a class="url" href="{0}" rel="noopener">{0}</a>').format(url))
        position = match.end()
    parts.append(escape(text[position:]))
    return Markup("").join(parts)


@bp.get("/check")
def form() -> str:
    deleted = request.args.get("deleted") == "1"
    return render_template("check/form.html", form=CheckForm(), deleted=deleted)


@bp.post("/check")
@limiter.limit(rate_limit)
def submit() -> Response | tuple[str, int]:
    form = CheckForm()
    if not form.validate_on_submit():
        return render_template("check/form.html", form=form), 400
    try:
        report_id = start_run(
            form.target.data or "",
            password=form.password.data or None,
            superoffice_url=form.superoffice_url.data or None,
            ews_url=form.ews_url.data or None,
            oab_url=form.oab_url.data or None,
            superoffice_username=form.superoffice_username.data or None,
            superoffice_password=form.superoffice_password.data or None,
            credentials=service_account_credentials(
                form.service_account.data, form.service_password.data
            ),
        )
    except TargetError as exc:
        field = getattr(form, exc.field, form.target)  # shown next to the field it is about
        field.errors = [*field.errors, _sentence(str(exc))]
        return render_template("check/form.html", form=form), 400
    return redirect(url_for("check.report", report_id=report_id), 303)  # type: ignore[return-value]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def live_report(report_id: str) -> CheckReport | None:
    """The stored report with this id, unless it has expired (expired ones are deleted first)."""
    if not REPORT_ID.match(report_id):
        return None
    return unexpired_report(get_database(), settings().check_report_retention_days, report_id)


def stored_report(report_id: str) -> CheckReport:
    row = live_report(report_id)
    if row is None:
        abort(404)
    return row


@bp.post("/check/r/<report_id>/delete")
def delete_page(report_id: str) -> Response | tuple[str, int]:
    """Anyone with the link may delete the report; the form's CSRF token proves the request
    comes from the report page, not from another site."""
    row = stored_report(report_id)
    if not DeleteForm().validate_on_submit():
        return render_template("check/signin_error.html", reason="the form expired; reload"), 400
    delete_report(get_database(), row.id)
    return redirect(url_for("check.form", deleted="1"), 303)  # type: ignore[return-value]


@bp.get("/check/r/<report_id>")
def report(report_id: str) -> str:
    row = stored_report(report_id)
    finished = Report.from_dict(row.report) if row.status == "done" and row.report else None
    microsoft = finished is not None and any(
        c.id == "m365_tenant" and c.status in ("pass", "warn") for c in finished.checks
    )
    google = finished is not None and any(  # a Google domain ("skipped" means it is not)
        c.id == "google_workspace" and all(s.id != "google_workspace.skipped" for s in c.steps)
        for c in finished.checks
    )
    config = settings()
    return render_template(
        "check/report.html",
        row=row,
        report=finished,
        view=report_view(finished) if finished is not None else None,
        deadline_s=config.check_timeout_seconds,
        microsoft_sign_in=microsoft
        and bool(config.microsoft_client_id and config.microsoft_client_secret),
        microsoft_consent_scopes=READ_CONSENT[config.microsoft_permission_mode],
        superoffice_sign_in=superoffice_online_tenant(row.report if finished else None) is not None
        and bool(config.superoffice_client_id and config.superoffice_client_secret),
        google_sign_in=google and bool(config.google_client_id and config.google_client_secret),
        expires=expires_at(row, config.check_report_retention_days),
        delete_form=DeleteForm(),
    )


@bp.get("/check/r/<report_id>.json")
def download(report_id: str) -> Response:
    row = stored_report(report_id)
    body = json.dumps({"id": row.id, "status": row.status, "report": row.report}, indent=2)
    return Response(
        body,
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="check-{row.id}.json"'},
    )


@bp.get("/check/r/<report_id>/events")
def events(report_id: str) -> Response:
    stored_report(report_id)  # 404 for an unknown id
    config = settings()
    timeout = config.check_timeout_seconds + 5
    database = get_database()
    release = StreamSlots(database).acquire(
        client_key(),
        config.check_streams_per_client,
        config.check_streams_total,
        lease_s=timeout + LEASE_MARGIN_S,
    )
    if release is None:  # the page reloads after a while and shows the stored report
        return Response(
            _sse("busy", {"kind": "busy", "retry_after": STREAM_RETRY_S}),
            429,
            mimetype="text/event-stream",
            headers={"Retry-After": str(STREAM_RETRY_S), "Cache-Control": "no-cache"},
        )
    run = current_runs().get(report_id)

    def stream() -> Iterator[str]:
        try:
            if run is not None:  # the run lives in this process: straight from memory
                for event in run.follow(timeout, HEARTBEAT_S):
                    yield HEARTBEAT if event is None else _sse(event.kind, event.to_dict())
                return
            finished = False  # elsewhere (another worker): from its row as steps are stored
            for data in follow_stored(database, report_id, timeout, heartbeat_s=HEARTBEAT_S):
                if data is None:
                    yield HEARTBEAT
                    continue
                finished = finished or data["kind"] == "report"
                yield _sse(str(data["kind"]), data)
            if not finished:
                yield _sse("gone", {"kind": "gone"})
        finally:
            release()

    response = Response(  # no request context needed: everything is captured above
        stream(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    response.call_on_close(release)  # also when the stream never started
    return response


def _sse(kind: str, data: object) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"
