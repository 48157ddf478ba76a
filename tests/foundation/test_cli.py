"""The `synchronizer` command: help everywhere, one-line errors, schema and admin commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from checksite.cli import main
from common.db import Database
from common.models import AdminUser
from common.passwords import verify_password

COMMANDS = [
    [],
    ["serve"],
    ["db"],
    ["db", "upgrade"],
    ["create-admin"],
    ["rotate-keys"],
    ["demo"],
    ["demo-edit"],
    ["simulators"],
    ["check"],
    ["worker"],
    ["scheduler"],
    ["sync"],
    ["status"],
    ["profile"],
    ["profile", "import"],
    ["profile", "export"],
    ["user"],
    ["user", "link"],
    ["user", "unlink"],
    ["user", "relink"],
    ["approve"],
]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"SYNCHRONIZER_INSTANCE_PATH": str(tmp_path / "instance")}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "main")
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_every_command_is_listed_here() -> None:
    """A new command must be added to COMMANDS above (and so get its --help test)."""
    listed = {c[0] for c in COMMANDS if c}
    assert set(main.commands) == listed


def test_demo_edit_without_a_running_demo_says_so(env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        main, ["demo-edit", "outlook", "--user", "adele@contoso.example", "Lunch"], env=env
    )
    assert result.exit_code == 2
    assert "start `synchronizer demo` first" in result.output


def test_create_admin_after_upgrade(env: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    result = runner.invoke(
        main,
        ["create-admin", "--username", "ada", "--organisation", "Contoso", "--password-stdin"],
        input="a long enough password\n",
        env=env,
    )
    assert result.exit_code == 0, result.output
    database = Database(f"sqlite:///{tmp_path / 'instance' / 'synchronizer.db'}")
    with database.session() as session:
        admin = session.scalars(select(AdminUser)).one()
        assert admin.organisation.name == "Contoso"
        assert verify_password(admin.password_hash, "a long enough password")
        assert "a long enough password" not in admin.password_hash


def test_create_admin_refuses_short_password_and_duplicates(env: dict[str, str]) -> None:
    runner = CliRunner()
    runner.invoke(main, ["db", "upgrade"], env=env)
    args = ["create-admin", "--username", "ada", "--password-stdin"]
    short = runner.invoke(main, args, input="short\n", env=env)
    assert short.exit_code == 1
    assert "at least 12 characters" in short.output
    assert runner.invoke(main, args, input="a long enough password\n", env=env).exit_code == 0
    again = runner.invoke(main, args, input="a long enough password\n", env=env)
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_commands_refuse_an_unmigrated_database(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["rotate-keys"], env=env)
    assert result.exit_code == 1
    assert "run `synchronizer db upgrade`" in result.output


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SYNCHRONIZER_DATABASE_URL", "oracle://scott@db/x", "DATABASE_URL"),
        ("SYNCHRONIZER_ENCRYPTION_KEYS", "not-a-fernet-key", "ENCRYPTION_KEYS"),
        ("SYNCHRONIZER_INSTANCE_PATH", "/proc/no/such/place", "INSTANCE_PATH"),
    ],
)
def test_bad_configuration_stops_with_one_line(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    """Run the real console script: one clear line on stderr, no traceback."""
    env = {
        "PATH": "/usr/bin:/bin",
        "SYNCHRONIZER_INSTANCE_PATH": str(tmp_path / "i"),
        variable: value,
    }
    script = Path(sys.executable).parent / "synchronizer"
    for args in (["db", "upgrade"], ["serve"]):
        done = subprocess.run(
            [str(script), *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("Error: configuration error: ")
        assert expected in lines[0]
        assert "Traceback" not in done.stderr


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    env = {
        "SYNCHRONIZER_INSTANCE_PATH": str(tmp_path / "i"),
        "SYNCHRONIZER_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
    }
    result = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert result.exit_code == 1
    assert result.output.startswith("Error: database error: ")
    assert len(result.output.strip().splitlines()) == 1


def test_wsgi_entry_point_reports_bad_configuration_in_one_line(tmp_path: Path) -> None:
    env = {"SYNCHRONIZER_INSTANCE_PATH": str(tmp_path / "i"), "SYNCHRONIZER_ENCRYPTION_KEYS": "x"}
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: configuration error: ENCRYPTION_KEYS: expected Fernet keys "
        "(32 url-safe base64-encoded bytes); key #1 is not one"
    ]
