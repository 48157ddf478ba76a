"""`synchronizer check`: options in, a live tree (or the JSON report) out, an exit code back."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click

from checksite.checks.context import TargetError, parse_target
from checksite.checks.ews_access import service_account_credentials
from checksite.checks.fix_first import fix_first
from checksite.checks.registry import UnknownCheck, select
from checksite.checks.runner import RunEvent, run_checks
from checksite.checks.text_report import check_lines, fix_first_lines, summary_line
from checksite.checks.wiring import BadOption, make_context, run_settings
from common.config import Settings

# Where a person gives each input on the command line (the page shows errors at its fields).
OPTION_OF_FIELD = {
    "password": "--password-stdin",
    "superoffice_url": "--superoffice-url",
    "superoffice_username": "--superoffice-user",
    "ews_url": "--ews-url",
    "oab_url": "--oab-url",
    "service_account": "--service-account",
    "service_password": "--service-account",  # its password is read from stdin after it
}


def run_from_cli(
    settings: Settings,
    target_text: str,
    *,
    password: str | None,
    superoffice_url: str | None,
    superoffice_user: str | None,
    superoffice_password: str | None,
    ews_url: str | None,
    oab_url: str | None,
    only: str | None,
    as_json: bool,
    timeout: float | None,
    dns_servers: tuple[str, ...],
    ca_bundle: Path | None,
    allow_private_networks: bool | None,
    echo: Callable[[str], None],
    service_account: str | None = None,
    service_password: str | None = None,
    started: float | None = None,
) -> int:
    """0 when the verdict is pass or warn, 1 when it is fail; bad usage raises UsageError (2).
    The deadline counts from `started` (time.monotonic()), else from the run's start."""
    try:
        target = parse_target(
            target_text,
            password=password,
            superoffice_url=superoffice_url,
            ews_url=ews_url,
            oab_url=oab_url,
            superoffice_username=superoffice_user,
            superoffice_password=superoffice_password,
        )
        credentials = service_account_credentials(service_account, service_password)
        specs = select([i.strip() for i in only.split(",") if i.strip()] if only else None)
        settings = run_settings(
            settings,
            timeout=timeout,
            dns_servers=dns_servers,
            ca_bundle=ca_bundle,
            allow_private_networks=allow_private_networks,
        )
    except TargetError as exc:
        option = OPTION_OF_FIELD.get(exc.field)
        raise click.UsageError(f"{option}: {exc}" if option else str(exc)) from None
    except (UnknownCheck, BadOption) as exc:
        raise click.UsageError(str(exc)) from None

    def show(event: RunEvent) -> None:
        if event.kind == "check" and event.check is not None and not as_json:
            echo("\n".join(check_lines(event.check)))

    context = make_context(settings, target, credentials)
    report = run_checks(
        context, specs, settings.check_timeout_seconds, on_event=show, started=started
    )
    if as_json:
        body = {**report.to_dict(), "fix_first": [f.to_dict() for f in fix_first(report)]}
        echo(json.dumps(body, indent=2))
    else:
        echo("\n".join(["", *fix_first_lines(report), "", summary_line(report)]))
    return 1 if report.verdict == "fail" else 0
