"""The operator's commands of the `synchronizer` CLI: `profile import|export`, `user
link|unlink|relink` and `approve`. Part of the composition root (checksite/cli.py adds them):
the daemon is imported inside the commands, as there."""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from checksite.cli import Context, _current_database, friendly_errors, pass_context
from common.config import Settings


def _ready(settings: Settings) -> Any:
    """The database, with the keys of the stored secrets loaded."""
    from common.secrets import configure_keys

    configure_keys(list(settings.encryption_keys))
    return _current_database(settings)


def _refusals(command: Callable[..., Any]) -> Callable[..., Any]:
    """A refused operation (bad file, user taken, run not held) is one line and exit 1."""
    from functools import wraps

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from daemon.approval import ApprovalError
        from daemon.profile_file import ProfileFileError
        from daemon.user_links import LinkError

        try:
            return command(*args, **kwargs)
        except (ProfileFileError, LinkError, ApprovalError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def _emit(record: dict[str, Any], as_json: bool, line: str) -> None:
    click.echo(json.dumps(record, indent=2) if as_json else line)


# --- profiles ------------------------------------------------------------------------------


@click.group()
def profile() -> None:
    """Profiles as TOML files: connections, settings and users (secrets stay encrypted)."""


@profile.command("export")
@click.argument("profile_ref", metavar="PROFILE")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (mode 600) instead of standard output.",
)
@click.option("--no-secrets", is_flag=True, help="Leave credentials and tokens out.")
@click.option("--json", "as_json", is_flag=True, help="The same document as JSON.")
@pass_context
@friendly_errors
@_refusals
def export_command(
    ctx: Context, profile_ref: str, output: Path | None, no_secrets: bool, as_json: bool
) -> None:
    """Write PROFILE (its id or name) as TOML; secrets encrypted with this installation's key."""
    from daemon.profile_file import export, to_toml
    from daemon.user_links import find_profile

    db = _ready(ctx.settings)
    with db.session() as session:
        profile_id = find_profile(session, profile_ref).id
    document = export(db, profile_id, secrets=not no_secrets)
    text = json.dumps(document, indent=2) + "\n" if as_json else to_toml(document)
    if output is None:
        click.echo(text, nl=False)
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    click.echo(f"profile {profile_id} written to {output}", err=True)


@profile.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--update", is_flag=True, help="Bring an existing profile of that name in line.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_context
@friendly_errors
@_refusals
def import_command(ctx: Context, file: Path, update: bool, as_json: bool) -> None:
    """Make the profile FILE describes (TOML, or JSON if it ends in .json)."""
    from daemon.profile_file import import_document, parse

    db = _ready(ctx.settings)
    document = parse(file.read_text(encoding="utf-8"), json_format=file.suffix == ".json")
    result = import_document(db, document, update=update)
    line = (
        f"profile {result.profile_id} {'created' if result.created else 'updated'}: "
        f"{len(result.added)} user(s) added, {len(result.updated)} updated"
    )
    if result.kept:
        line += f"; not in the file, kept: {', '.join(result.kept)}"
    _emit(result.as_dict(), as_json, line)


# --- users ---------------------------------------------------------------------------------


@click.group()
def user() -> None:
    """Link a CRM associate to a mailbox, unlink, relink."""


def _own_sign_in(settings: Settings) -> Any:
    from daemon.user_links import needs_own_sign_in

    return needs_own_sign_in(settings.microsoft_permission_mode)


def _user_line(record: Any) -> str:
    return f"{record.mailbox} (associate {record.crm_associate_id}, profile {record.profile!r}): {record.note}"


@user.command("link")
@click.argument("profile_ref", metavar="PROFILE")
@click.argument("mailbox")
@click.option("--associate", type=int, required=True, help="The user's SuperOffice associate id.")
@click.option("--crm-username", help="The associate's SuperOffice user name.")
@click.option("--display-name", help="The person's name.")
@click.option("--json", "as_json", is_flag=True)
@pass_context
@friendly_errors
@_refusals
def link_command(
    ctx: Context,
    profile_ref: str,
    mailbox: str,
    associate: int,
    crm_username: str | None,
    display_name: str | None,
    as_json: bool,
) -> None:
    """Link MAILBOX to a CRM associate in PROFILE (its id or name)."""
    from daemon.user_links import link

    record = link(
        _ready(ctx.settings),
        profile_ref,
        mailbox,
        associate,
        _own_sign_in(ctx.settings),
        crm_username=crm_username,
        display_name=display_name,
    )
    _emit(record.as_dict(), as_json, _user_line(record))


@user.command("unlink")
@click.argument("mailbox")
@click.option("--profile", "profile_ref", help="The profile, if the mailbox is in several.")
@click.option(
    "--forget", is_flag=True, help="Remove the user with links, cursors, tokens and runs."
)
@click.option("--json", "as_json", is_flag=True)
@pass_context
@friendly_errors
@_refusals
def unlink_command(
    ctx: Context, mailbox: str, profile_ref: str | None, forget: bool, as_json: bool
) -> None:
    """Stop syncing MAILBOX (nothing is deleted on either side)."""
    from daemon.user_links import unlink

    record = unlink(_ready(ctx.settings), mailbox, profile_ref, forget=forget)
    _emit(record.as_dict(), as_json, _user_line(record))


@user.command("relink")
@click.argument("mailbox")
@click.option("--profile", "profile_ref", help="The profile, if the mailbox is in several.")
@click.option("--mailbox", "new_mailbox", help="The user's new mailbox.")
@click.option("--associate", "new_associate", type=int, help="The user's new associate id.")
@click.option("--json", "as_json", is_flag=True)
@pass_context
@friendly_errors
@_refusals
def relink_command(
    ctx: Context,
    mailbox: str,
    profile_ref: str | None,
    new_mailbox: str | None,
    new_associate: int | None,
    as_json: bool,
) -> None:
    """Sync MAILBOX again, optionally as another mailbox or associate."""
    from daemon.user_links import relink

    record = relink(
        _ready(ctx.settings),
        mailbox,
        profile_ref,
        _own_sign_in(ctx.settings),
        new_mailbox=new_mailbox,
        new_associate=new_associate,
    )
    _emit(record.as_dict(), as_json, _user_line(record))


# --- approvals -----------------------------------------------------------------------------


@click.command("approve")
@click.argument("run_id", metavar="RUN", type=int)
@click.option("--by", "by", help="Who approves (default: the logged-in user).")
@click.option("--json", "as_json", is_flag=True)
@pass_context
@friendly_errors
@_refusals
def approve_command(ctx: Context, run_id: int, by: str | None, as_json: bool) -> None:
    """Approve the plan the deletion guard held in RUN: the user's next run applies it."""
    from daemon.approval import approve

    approval = approve(_ready(ctx.settings), run_id, by or getpass.getuser())
    deletes = ", ".join(f"{n} on {side}" for side, n in sorted(approval.deletes.items()))
    line = (
        f"run {run_id} approved ({approval.reason}; deletions: {deletes or 'none'}): the next "
        f"{approval.kind.value} run of {approval.mailbox} applies it, at the scheduler's next tick"
    )
    _emit(approval.as_dict(), as_json, line)


COMMANDS = (profile, user, approve_command)
