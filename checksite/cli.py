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
    """Run the product on embedded defaults: migrate, create a demo administrator, serve."""
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
    from simulators.runner import start_all

    stack = start_all(ca_dir=str(settings.instance_path / "simulators-ca"))
    sims_file = settings.instance_path / "simulators.json"
    try:
        sims_file.write_text(json.dumps(stack.summary(), indent=2) + "\n", encoding="utf-8")
        settings = _settings_for_simulators(settings, stack.summary())
        url = f"http://{host}:{port}/"
        click.echo(f"Synchronizer demo: {url}")
        click.echo(f"  administrator: {username}  password: {password}")
        click.echo(f"  simulated services ({sims_file}): " + ", ".join(sorted(stack.urls)))
        _serve(settings, host, port)
    finally:
        sims_file.unlink(missing_ok=True)
        stack.stop()


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

    app = create_app(settings)
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


if __name__ == "__main__":  # pragma: no cover
    main()
