"""How long a stored report lives: CHECK_REPORT_RETENTION_DAYS after it was made, then it is gone
(not served, and deleted). Expired rows are deleted whenever a run starts and whenever one is
asked for, so no scheduler is needed for a report to disappear on time."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete

from common.db import Database
from common.models import CheckReport, utcnow


def expires_at(row: CheckReport, days: int) -> datetime:
    return row.created_at + timedelta(days=days)


def is_expired(row: CheckReport, days: int, now: datetime | None = None) -> bool:
    return (now or utcnow()) >= expires_at(row, days)


def purge_expired(database: Database, days: int, now: datetime | None = None) -> int:
    """Delete every report older than the retention; how many were deleted."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    with database.session() as session:
        result = session.execute(delete(CheckReport).where(CheckReport.created_at <= cutoff))
        return int(getattr(result, "rowcount", 0) or 0)


def delete_report(database: Database, report_id: str) -> bool:
    """Delete one report now (its link's owner asked); False when there was none."""
    with database.session() as session:
        row = session.get(CheckReport, report_id)
        if row is None:
            return False
        session.delete(row)
        return True
