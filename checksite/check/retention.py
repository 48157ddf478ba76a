"""How long a stored report lives: CHECK_REPORT_RETENTION_DAYS after it was made, then it is gone
(not served, and deleted). Every expired row is deleted before any report is read (also to
be deleted or signed in to) and whenever a run starts, so an expired report can never be
served; on a site nobody visits, `synchronizer db purge-reports` (from cron) deletes them."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete

from common.db import Database
from common.models import CheckReport, utcnow


def expires_at(row: CheckReport, days: int) -> datetime:
    return row.created_at + timedelta(days=days)


def purge_expired(database: Database, days: int, now: datetime | None = None) -> int:
    """Delete every report older than the retention; how many were deleted."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    with database.session() as session:
        result = session.execute(delete(CheckReport).where(CheckReport.created_at <= cutoff))
        return int(getattr(result, "rowcount", 0) or 0)


def unexpired_report(database: Database, days: int, report_id: str) -> CheckReport | None:
    """The report with this id, read only after every expired report is deleted."""
    purge_expired(database, days)
    with database.session() as session:
        return session.get(CheckReport, report_id)


def delete_report(database: Database, report_id: str) -> bool:
    """Delete one report now (its link's owner asked); False when there was none."""
    with database.session() as session:
        row = session.get(CheckReport, report_id)
        if row is None:
            return False
        session.delete(row)
        return True
