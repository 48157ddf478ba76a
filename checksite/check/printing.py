"""The printable report (`/check/r/<id>/print`): one document with every section and every
piece of evidence shown, no forms or buttons that mean nothing on paper, the report's link and
date; the browser prints it or saves it as PDF."""

from __future__ import annotations

from flask import Response, redirect, render_template, url_for

from checksite.check import bp
from checksite.check.report_view import report_view
from checksite.check.views import stored_report
from checksite.checks.model import Report


@bp.get("/check/r/<report_id>/print")
def printable(report_id: str) -> Response | str:
    row = stored_report(report_id)
    if row.status != "done" or not row.report:  # still running: its live page
        return redirect(url_for("check.report", report_id=row.id), 303)  # type: ignore[return-value]
    return render_template(
        "check/print.html",
        row=row,
        view=report_view(Report.from_dict(row.report)),
        report_url=url_for("check.report", report_id=row.id, _external=True),
    )
