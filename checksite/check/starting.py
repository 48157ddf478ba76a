"""Starting a run from a web request (the page's form or the API), shared by both."""

from __future__ import annotations

from flask import current_app

from checksite.check.retention import purge_expired
from checksite.check.runs import RunRegistry
from checksite.checks.context import parse_target
from checksite.checks.registry import select
from checksite.database import get_database
from common.config import Settings


def settings() -> Settings:
    return current_app.config["SYNCHRONIZER"]


def current_runs() -> RunRegistry:
    """This app's runs in memory (one registry per app, as per process in production)."""
    runs: RunRegistry = current_app.extensions.setdefault("synchronizer.check_runs", RunRegistry())
    return runs


def rate_limit() -> str:
    return settings().check_rate_limit


def start_run(
    target_text: str,
    *,
    password: str | None = None,
    superoffice_url: str | None = None,
    ews_url: str | None = None,
    oab_url: str | None = None,
    only: list[str] | None = None,
    credentials: dict[str, str] | None = None,
    superoffice_username: str | None = None,
    superoffice_password: str | None = None,
) -> str:
    """The new report's id; TargetError / UnknownCheck for bad input."""
    target = parse_target(
        target_text,
        password=password,
        superoffice_url=superoffice_url,
        ews_url=ews_url,
        oab_url=oab_url,
        superoffice_username=superoffice_username,
        superoffice_password=superoffice_password,
    )
    specs = select(only)
    config = settings()
    purge_expired(get_database(), config.check_report_retention_days)  # old reports go
    return current_runs().start(get_database(), config, target, specs, credentials)
