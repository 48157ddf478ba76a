"""The `synchronizer` command: the composition root, the one place that may reach everything.

Simulators and other heavy parts are imported only inside the commands that run them.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from common.config import ConfigError, Settings

if TYPE_CHECKING:
    from common.db import Database

F = TypeVar("F", bound=Callable[..., Any])
# When this process started (time.monotonic()), set by the console script `entry`: a check's
# deadline then counts the interpreter's start and imports too. None when `main` is called
# from inside another program (tests).
PROCESS_STARTED: float | None = None


def process_started() -> float | None:
    """The time.monotonic() value at which this process started (Linux: /proc/self/stat)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_ticks = int(fields[19])  # field 22, starttime: clock ticks after boot
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return time.monotonic() - max(age, 0.0)


class Context:
    """Settings are read lazily, so `--help` works even with a broken configuration."""

    def __init__(self, config_file: str | None) -> None:
        self.config_file = config_file
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.load(self.config_file)
        return self._settings


def friendly_errors(command: F) -> F:
    """Configuration and database errors end the command with one line, not a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from sqlalchemy.exc import OperationalError

        from common.secrets import UndecryptableSecret

        try:
            return command(*args, **kwargs)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        except UndecryptableSecret as exc:
            raise click.ClickException(str(exc)) from None
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise click.ClickException(f"database error: {reason}") from None

    return wrapper  # type: ignore[return-value]


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar="SYNCHRONIZER_CONFIG",
    help="TOML file with settings (else SYNCHRONIZER_* environment variables and defaults).",
)
@click.pass_context
def main(ctx: click.Context, config_file: str | None) -> None:
    """Synchronizer: keeps SuperOffice CRM and Exchange, Microsoft 365 or Google in step."""
    ctx.obj = Context(config_file)


def entry() -> None:
    """The console script `synchronizer`: `main`, with the process's start time recorded."""
    global PROCESS_STARTED
    PROCESS_STARTED = process_started()
    main()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@pass_context
@friendly_errors
def serve(ctx: Context, host: str, port: int) -> None:
    """Run the development web server (production: `gunicorn wsgi:app`)."""
    _require_current_schema(ctx.settings)
    _serve(ctx.settings, host, port)


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@pass_context
@friendly_errors
def db_upgrade(ctx: Context, revision: str) -> None:
    """Create the database schema, or upgrade it to the newest migration."""
    from common.db import Database
    from common.schema import current_revision, upgrade

    database = Database(ctx.settings.database_url)
    upgrade(database, revision)
    click.echo(f"database at revision {current_revision(database)}")


@main.command("create-admin")
@click.option("--username", prompt=True, help="The administrator's sign-in name.")
@click.option("--organisation", default="Default organisation", show_default=True)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (one line)."
)
@pass_context
@friendly_errors
def create_admin_command(
    ctx: Context, username: str, organisation: str, password_stdin: bool
) -> None:
    """Create a local administrator who signs in with a username and password."""
    from common.admins import AdminError, create_admin

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    database = _current_database(ctx.settings)
    try:
        with database.session() as session:
            create_admin(session, username, password, organisation)
    except AdminError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"administrator {username!r} created in organisation {organisation!r}")


@main.command("rotate-keys")
@pass_context
@friendly_errors
def rotate_keys(ctx: Context) -> None:
    """Re-encrypt every stored secret with the newest of ENCRYPTION_KEYS.

    Put the new key first in ENCRYPTION_KEYS (keep the old ones after it), run this, then
    remove the old keys.
    """
    from common.rotation import rotate_all
    from common.secrets import configure_keys

    configure_keys(list(ctx.settings.encryption_keys))
    count = rotate_all(_current_database(ctx.settings))
    click.echo(f"re-encrypted {count} secret(s) with the newest key")


@db.command("purge-reports")
@pass_context
@friendly_errors
def purge_reports(ctx: Context) -> None:
    """Delete the Check site's reports older than CHECK_REPORT_RETENTION_DAYS.

    The web app deletes them too whenever a report is read or a check starts; run this from
    cron (daily) so that they go on time also while nobody uses the Check site.
    """
    from checksite.check.retention import purge_expired

    days = ctx.settings.check_report_retention_days
    count = purge_expired(_current_database(ctx.settings), days)
    click.echo(f"deleted {count} report(s) older than {days} day(s)")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@pass_context
@friendly_errors
def demo(ctx: Context, host: str, port: int) -> None:
    """Run the product on embedded defaults beside the simulated world: migrate, create a
    demo administrator, link the demo organisations' users, serve, and sync them for real
    with a worker and the scheduler."""
    import dataclasses

    from common.admins import create_admin
    from common.db import Database
    from common.models import AdminUser
    from common.schema import upgrade

    settings = ctx.settings
    database = Database(settings.database_url)
    upgrade(database)
    username, password = _demo_credentials(settings.instance_path)
    with database.session() as session:
        if session.query(AdminUser).filter_by(username=username).first() is None:
            create_admin(session, username, password, "Demo organisation")
    # The outside world (SuperOffice, Microsoft, Exchange, Google, DNS) is simulated on loopback.
    from checksite import demo as demo_run
    from simulators.runner import start_all

    stack = start_all(ca_dir=str(settings.instance_path / "simulators-ca"))
    sims_file = settings.instance_path / "simulators.json"
    try:
        sims_file.write_text(json.dumps(stack.summary(), indent=2) + "\n", encoding="utf-8")
        settings = dataclasses.replace(
            _settings_for_simulators(settings, stack.summary()),
            public_url=f"http://{host}:{port}",  # where the services post their notifications
            sync_ca_bundle=Path(stack.ca_file),
        )
        url = f"http://{host}:{port}/"
        click.echo(f"Synchronizer demo: {url}")
        click.echo(f"  administrator: {username}  password: {password}")
        click.echo(f"  simulated services ({sims_file}): " + ", ".join(sorted(stack.urls)))
        demo_run.run(settings, stack.world, host, port, click.echo)
    finally:
        sims_file.unlink(missing_ok=True)
        stack.stop()


@main.command("demo-edit")
@click.argument("side", type=click.Choice(["outlook", "superoffice"]))
@click.argument("subject")
@click.option("--user", "mailbox", required=True, metavar="EMAIL", help="A linked demo user.")
@pass_context
@friendly_errors
def demo_edit(ctx: Context, side: str, subject: str, mailbox: str) -> None:
    """While `synchronizer demo` runs: make an appointment in the simulated Outlook or
    SuperOffice as a demo user, and time how long it takes to appear on the other side."""
    from checksite import demo as demo_run

    path = ctx.settings.instance_path / "simulators.json"
    if not path.is_file():
        raise click.UsageError(f"{path} not found: start `synchronizer demo` first")
    summary = json.loads(path.read_text(encoding="utf-8"))
    settings = _settings_for_simulators(ctx.settings, summary)
    try:
        took = demo_run.edit_and_watch(settings, summary, side, mailbox, subject, click.echo)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    if took is None:
        sys.exit(1)


@main.command("simulators")
@click.option(
    "--port-base",
    type=click.IntRange(1024, 65000),
    default=None,
    help="DNS on this port, the simulators on the next ones (default: free ports).",
)
@click.option("--only", multiple=True, help="Start only this simulator (repeatable).")
@pass_context
@friendly_errors
def simulators_command(ctx: Context, port_base: int | None, only: tuple[str, ...]) -> None:
    """Run every simulator on loopback until Ctrl-C or SIGTERM; writes instance/simulators.json."""
    from simulators.runner import RegistryError, serve_until_stopped

    try:
        serve_until_stopped(
            ctx.settings.instance_path, port_base=port_base, names=only or None, echo=click.echo
        )
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option(
    "--workers", default=4, show_default=True, type=click.IntRange(1, 64), help="Worker threads."
)
@click.option(
    "--shutdown-timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds running syncs may take to finish after SIGINT/SIGTERM before they are "
    "handed back to the queue.",
)
@click.option(
    "--lease-seconds",
    default=90.0,
    show_default=True,
    type=click.FloatRange(1, 3600),
    help="How long a mailbox stays locked to this worker if it dies mid-sync (renewed "
    "every third of it while the sync runs).",
)
@pass_context
@friendly_errors
def worker(ctx: Context, workers: int, shutdown_timeout: float, lease_seconds: float) -> None:
    """Run sync tasks from the queue until SIGINT or SIGTERM (running syncs finish first)."""
    from common.logging_setup import configure_logging
    from daemon.worker import run_worker

    _require_current_schema(ctx.settings)
    configure_logging(ctx.settings.log_format, ctx.settings.log_level)
    run_worker(
        ctx.settings,
        workers=workers,
        shutdown_timeout=shutdown_timeout,
        lease_seconds=lease_seconds,
    )


@main.command()
@click.option(
    "--every",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    help="Seconds between dispatcher runs.",
)
@click.option(
    "--lease-seconds",
    default=30.0,
    show_default=True,
    type=click.FloatRange(1, 600),
    help="How long a scheduler that dies keeps the others waiting.",
)
@pass_context
@friendly_errors
def scheduler(ctx: Context, every: float, lease_seconds: float) -> None:
    """Queue the syncs that are due, every minute, the push subscriptions' upkeep every five,
    and the housekeeping (runs left running by dead workers, the nightly reconciliation, token
    renewal); of several schedulers one runs, the others wait to take over. Stops on SIGINT or
    SIGTERM."""
    import signal
    import threading
    from datetime import timedelta

    from common.logging_setup import configure_logging
    from daemon import push, queue
    from daemon.housekeeping import Housekeeper
    from daemon.scheduler import Scheduler

    _require_current_schema(ctx.settings)
    configure_logging(ctx.settings.log_format, ctx.settings.log_level)
    queue.configure(ctx.settings.queue_url)
    runtime = push.configure(ctx.settings)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    Scheduler(
        runtime.db,
        Housekeeper(runtime.db, extra={"push upkeep": push.UpkeepTicker()}).tick,
        every=timedelta(seconds=every),
        ttl=timedelta(seconds=lease_seconds),
    ).run(stop)


KINDS = {"appointments": "appointment", "contacts": "contact"}


@main.command("sync")
@click.option("--user", "mailbox", required=True, metavar="EMAIL", help="The user's mailbox.")
@click.option("--kind", type=click.Choice(sorted(KINDS)), help="Only this kind.")
@click.option(
    "--profile", "profile_id", type=int, help="The profile, if the mailbox is in several."
)
@click.option("--dry-run", is_flag=True, help="Plan, print what would change, change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@pass_context
@friendly_errors
def sync_command(
    ctx: Context,
    mailbox: str,
    kind: str | None,
    profile_id: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Sync one user now, in the foreground, and print the run's record; exit 1 if it did
    not finish (busy, throttled, failed, needs attention)."""
    from common.kinds import ItemKind
    from daemon import tasks

    _require_current_schema(ctx.settings)
    runtime = tasks.configure(ctx.settings)
    user_id = _user_by_mailbox(runtime.db, mailbox, profile_id)
    result = tasks.run_user(
        user_id, ItemKind(KINDS[kind]) if kind else None, dry_run=dry_run, operator=True
    )
    record = result.as_dict() | {"mailbox": mailbox, "dry_run": dry_run}
    if dry_run:
        record["plan"] = _run_notes(runtime.db, [r.run_id for r in result.runs])
    if as_json:
        click.echo(json.dumps(record, indent=2))
    else:
        _echo_sync_record(record)
    if result.state != "done":
        sys.exit(1)


def _user_by_mailbox(database: Database, mailbox: str, profile_id: int | None) -> int:
    from sqlalchemy import func, select

    from common.models import SyncUser

    query = select(SyncUser.id, SyncUser.profile_id).where(
        func.lower(SyncUser.mailbox) == mailbox.strip().lower()
    )
    if profile_id is not None:
        query = query.where(SyncUser.profile_id == profile_id)
    with database.session() as session:
        found = session.execute(query).all()
    if not found:
        raise click.ClickException(f"no linked user has the mailbox {mailbox!r}")
    if len(found) > 1:
        profiles = ", ".join(str(row.profile_id) for row in found)
        raise click.UsageError(f"{mailbox} is in profiles {profiles}: give --profile")
    return int(found[0].id)


def _run_notes(database: Database, run_ids: list[int]) -> list[str]:
    from common.models import SyncRun

    with database.session() as session:
        return [n for i in run_ids if (run := session.get(SyncRun, i)) for n in run.notes]


def _echo_sync_record(record: dict[str, Any]) -> None:
    line = f"{record['mailbox']}: {record['state']}"
    if record["reason"]:
        line += f" ({record['reason']})"
    if record["retry_in"] is not None:
        line += f"; again in {record['retry_in']:.0f} s"
    click.echo(line)
    for run in record["runs"]:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(run["counts"].items())) or "no changes"
        click.echo(f"  {run['kind']}s: run {run['run_id']} {run['status']}: {counts}")
        if run["error"]:
            click.echo(f"    error: {run['error']}")
    for line in record.get("plan", []):
        click.echo(f"  {line}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@pass_context
@friendly_errors
def status(ctx: Context, as_json: bool) -> None:
    """Each user's state, last and next sync and last error; the scheduler; the queue."""
    from daemon import queue
    from daemon.status import collect

    queue.configure(ctx.settings.queue_url)
    report = collect(_current_database(ctx.settings))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    scheduler_line = report["scheduler"]
    click.echo(
        "scheduler: "
        + (
            f"{scheduler_line['owner']} since {scheduler_line['since']}"
            if scheduler_line
            else "none"
        )
    )
    waiting = report["queue"]["waiting"]
    click.echo(
        f"queue: {report['queue']['backend']}, "
        + ("unreachable" if waiting is None else f"{waiting} waiting")
    )
    for user in report["users"]:
        click.echo(
            f"{user['mailbox']} [{user['profile']}]: {user['state']}; last {user['last_sync'] or '-'}"
            f", next {user['next_sync'] or 'due'}"
        )
        problem = user["needs_attention"] or user["last_error"]
        if problem:
            click.echo(f"  {problem}")


class CheckCommand(click.Command):
    """A mailbox may start with '-' (-sales@contoso.com): after `--` it is the target; before
    it click reads it as options, so say how to give it instead of "No such option"."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)  # click's parser consumes the list it is given
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption:
            known = {name for param in self.params for name in getattr(param, "opts", [])}
            for arg in given:
                if arg == "--":
                    break
                dashed = arg.startswith("-") and arg.split("=", 1)[0] not in known
                if dashed and ("@" in arg or "." in arg):
                    raise click.UsageError(
                        f"{arg} starts with '-', so it reads as an option: give the target "
                        f"after --, as in: synchronizer check -- {arg}",
                        ctx,
                    ) from None
            raise


@main.command("check", cls=CheckCommand)
@click.argument("target")
@click.option("--password-stdin", is_flag=True, help="Read the mailbox password from stdin.")
@click.option("--superoffice-url", metavar="URL", help="Also check this SuperOffice site.")
@click.option(
    "--superoffice-user",
    metavar="NAME",
    help="SuperOffice Onsite administrator to check (its password: the next line on stdin).",
)
@click.option(
    "--service-account",
    metavar="NAME",
    help="Exchange service account to test impersonation of the mailbox with (its password: "
    "the next line on stdin).",
)
@click.option("--ews-url", metavar="URL", help="EWS URL to use instead of Autodiscover.")
@click.option("--oab-url", metavar="URL", help="OAB URL (with --ews-url).")
@click.option("--only", metavar="ID,...", help="Run only these checks (comma-separated ids).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--timeout", type=float, metavar="S", help="Deadline for the whole run.")
@click.option(
    "--dns-server",
    "dns_servers",
    multiple=True,
    metavar="HOST[:PORT]",
    help="Resolve names with this DNS server (repeatable; default: the configured ones).",
)
@click.option(
    "--ca-bundle",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Also trust the certificate authorities in this PEM file.",
)
@click.option(
    "--allow-private-networks",
    is_flag=True,
    default=None,
    help="Allow connections to private and loopback addresses (for the simulators).",
)
@click.option(
    "--simulators",
    "use_simulators",
    is_flag=True,
    help="Check against the running simulators (instance/simulators.json).",
)
@pass_context
@friendly_errors
def check_command(
    ctx: Context,
    target: str,
    password_stdin: bool,
    superoffice_url: str | None,
    superoffice_user: str | None,
    service_account: str | None,
    ews_url: str | None,
    oab_url: str | None,
    only: str | None,
    as_json: bool,
    timeout: float | None,
    dns_servers: tuple[str, ...],
    ca_bundle: Path | None,
    allow_private_networks: bool | None,
    use_simulators: bool,
) -> None:
    """Check a domain or mailbox address: exit 0 for pass or warn, 1 for fail, 2 for bad usage."""
    from checksite.checks.cli_run import run_from_cli

    settings = _simulator_settings(ctx.settings) if use_simulators else ctx.settings
    code = run_from_cli(
        settings,
        target,
        password=sys.stdin.readline().rstrip("\r\n") if password_stdin else None,
        superoffice_url=superoffice_url,
        superoffice_user=superoffice_user,
        superoffice_password=sys.stdin.readline().rstrip("\r\n") if superoffice_user else None,
        service_account=service_account,
        service_password=sys.stdin.readline().rstrip("\r\n") if service_account else None,
        ews_url=ews_url,
        oab_url=oab_url,
        only=only,
        as_json=as_json,
        timeout=timeout,
        dns_servers=dns_servers,
        ca_bundle=ca_bundle,
        allow_private_networks=allow_private_networks,
        echo=click.echo,
        started=PROCESS_STARTED,
    )
    sys.exit(code)


def _simulator_settings(settings: Settings) -> Settings:
    """The settings of a check against running simulators (instance/simulators.json)."""
    path = settings.instance_path / "simulators.json"
    if not path.is_file():
        raise click.UsageError(f"{path} not found: start `synchronizer simulators` first")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise click.UsageError(f"{path}: {exc}") from None
    return _settings_for_simulators(settings, summary)


def _settings_for_simulators(settings: Settings, summary: dict[str, Any]) -> Settings:
    """Point every outside endpoint at the simulators (their summary: `simulators.json`),
    trust their demo CA and DNS, and use the demo world's application keys."""
    import dataclasses

    import requests

    from checksite.checks.wiring import BadOption, simulator_settings
    from simulators.world import google, microsoft, superoffice

    key_file = settings.instance_path / "simulators-google-service-account.json"
    try:
        # The Google simulator hands out the service account's key, as Google's console would.
        answer = requests.get(
            summary["google"] + "/_sim/state/credentials", verify=summary["ca_file"], timeout=10
        )
        answer.raise_for_status()
        key_file.write_text(json.dumps(answer.json()["service_account"]), encoding="utf-8")
        key_file.chmod(0o600)
        pointed = simulator_settings(
            settings,
            summary,
            microsoft_client_id=microsoft.SYNCHRONIZER_APP_ID,
            microsoft_client_secret=microsoft.SYNCHRONIZER_SECRET,
            google_client_id=google.SYNCHRONIZER_CLIENT_ID,
            google_client_secret=google.SYNCHRONIZER_CLIENT_SECRET,
            google_service_account_file=key_file,
            superoffice_client_id=superoffice.DEMO_CLIENT_ID,
            superoffice_client_secret=superoffice.DEMO_CLIENT_SECRET,
        )
    except (BadOption, ValueError, KeyError) as exc:
        raise click.UsageError(f"simulators.json: {exc}") from None
    except requests.RequestException as exc:
        raise click.UsageError(f"the simulators do not answer ({exc}); are they running?") from None
    # A documentation address (RFC 5737) stands in for the sync server's public IP.
    return dataclasses.replace(pointed, outbound_ip=settings.outbound_ip or "203.0.113.7")


def _demo_credentials(instance: Path) -> tuple[str, str]:
    """The demo administrator's password is random, made once and kept in the instance folder."""
    path = instance / "demo_admin_password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(12) + "\n", encoding="ascii")
        path.chmod(0o600)
    return "demo-admin", path.read_text(encoding="ascii").strip()


def _serve(settings: Settings, host: str, port: int) -> None:
    import logging

    from checksite import create_app
    from daemon.push import triggers

    app = create_app(settings, push=triggers(settings))
    # Our request log already writes one line per request; werkzeug's would be a second.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app.run(host=host, port=port, debug=False, use_reloader=False, threaded=True)


def _current_database(settings: Settings) -> Database:
    from common.db import Database

    database = Database(settings.database_url)
    _require_current_schema(settings, database)
    return database


def _require_current_schema(settings: Settings, database: Database | None = None) -> None:
    from common.db import Database
    from common.schema import is_up_to_date

    database = database or Database(settings.database_url)
    if not is_up_to_date(database):
        raise click.ClickException(
            "the database schema is missing or out of date: run `synchronizer db upgrade`"
        )


def _add_operator_commands() -> None:
    """`profile`, `user` and `approve` live in checksite/cli_daemon.py."""
    from checksite.cli_daemon import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_add_operator_commands()


if __name__ == "__main__":  # pragma: no cover
    main()
