"""Secrets at rest: nothing in clear in the raw database, and key rotation end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from checksite.cli import main
from common.db import Database
from common.models import ENCRYPTED_COLUMNS, Base, Organisation, Profile, SyncUser
from common.schema import upgrade
from common.secrets import EncryptedJSON, EncryptedText, configure_keys, generate_key

SECRETS = {
    "crm": "so-password-Tr0ub4dor&3",
    "groupware": "graph-client-secret-9f8e7d",
    "refresh": "0.AAAA-refresh-token-abcdef",
}


def _store_secrets(database: Database) -> None:
    with database.session() as session:
        organisation = Organisation(name="Org", slug="org")
        profile = Profile(
            organisation=organisation,
            name="p",
            crm_kind="superoffice_onsite",
            crm_url="https://crm.example/",
            crm_credentials={"username": "admin", "password": SECRETS["crm"]},
            groupware_kind="m365",
            groupware_credentials={"client_secret": SECRETS["groupware"]},
        )
        session.add(profile)
        session.add(
            SyncUser(
                profile=profile,
                crm_associate_id=5,
                mailbox="u@org.example",
                tokens={"refresh_token": SECRETS["refresh"]},
            )
        )


def _read_secrets(database: Database) -> tuple[str, str, str]:
    with database.session() as session:
        profile = session.scalars(select(Profile)).one()
        user = session.scalars(select(SyncUser)).one()
        assert profile.crm_credentials is not None and profile.groupware_credentials is not None
        assert user.tokens is not None
        return (
            profile.crm_credentials["password"],
            profile.groupware_credentials["client_secret"],
            user.tokens["refresh_token"],
        )


def test_every_encrypted_column_is_listed_for_rotation() -> None:
    encrypted = {
        (mapper.class_, column.key)
        for mapper in Base.registry.mappers
        for column in mapper.columns
        if isinstance(column.type, EncryptedText | EncryptedJSON)
    }
    assert encrypted == set(ENCRYPTED_COLUMNS)


def test_raw_database_holds_no_secret_in_clear(migrated_database: Database) -> None:
    _store_secrets(migrated_database)
    assert _read_secrets(migrated_database) == tuple(SECRETS.values())
    dump = []
    with migrated_database.engine.connect() as connection:
        for table in ("profile", "sync_user"):
            for row in connection.execute(text(f"SELECT * FROM {table}")):  # noqa: S608
                dump.append(repr(tuple(row)))
    raw = "\n".join(dump)
    assert "gAAAA" in raw  # Fernet tokens are there...
    for secret in SECRETS.values():
        assert secret not in raw  # ...and the secrets are not


def test_sqlite_file_holds_no_secret_in_clear(tmp_path: Path) -> None:
    configure_keys([generate_key()])
    path = tmp_path / "raw.db"
    database = Database(f"sqlite:///{path}")
    upgrade(database)
    _store_secrets(database)
    database.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("raw.db"))
    for secret in SECRETS.values():
        assert secret.encode() not in raw


def test_rotate_keys_end_to_end(tmp_path: Path) -> None:
    old, new = generate_key(), generate_key()
    instance = tmp_path / "instance"
    db_url = f"sqlite:///{tmp_path / 'rot.db'}"
    env = {
        "SYNCHRONIZER_INSTANCE_PATH": str(instance),
        "SYNCHRONIZER_DATABASE_URL": db_url,
        "SYNCHRONIZER_SECRET_KEY": "x" * 32,
    }
    runner = CliRunner()
    result = runner.invoke(
        main, ["db", "upgrade"], env={**env, "SYNCHRONIZER_ENCRYPTION_KEYS": old}
    )
    assert result.exit_code == 0, result.output
    configure_keys([old])
    database = Database(db_url)
    _store_secrets(database)
    with database.engine.connect() as connection:
        before = connection.execute(text("SELECT crm_credentials FROM profile")).scalar_one()

    result = runner.invoke(
        main, ["rotate-keys"], env={**env, "SYNCHRONIZER_ENCRYPTION_KEYS": f"{new},{old}"}
    )
    assert result.exit_code == 0, result.output
    assert "re-encrypted 3 secret(s)" in result.output

    with database.engine.connect() as connection:
        after = connection.execute(text("SELECT crm_credentials FROM profile")).scalar_one()
    assert after != before
    # The old key can now be dropped: everything reads with the new key alone...
    configure_keys([new])
    assert _read_secrets(database) == tuple(SECRETS.values())
    # ...and nothing reads with the old key alone.
    configure_keys([old])
    from common.secrets import UndecryptableSecret

    with pytest.raises(UndecryptableSecret):
        _read_secrets(database)


def test_secrets_are_decrypted_only_when_used(migrated_database: Database) -> None:
    _store_secrets(migrated_database)
    with migrated_database.session() as session:
        profile = session.scalars(select(Profile)).one()
        assert "crm_credentials" not in profile.__dict__  # not loaded, not decrypted
        assert profile.name == "p"
        assert profile.crm_credentials is not None  # loaded on first use
        assert "crm_credentials" in profile.__dict__
