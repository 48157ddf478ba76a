"""Migrations and models, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from common.db import Database
from common.models import (
    Base,
    CheckReport,
    CrmKind,
    Cursor,
    GroupwareKind,
    ItemKind,
    ItemLink,
    LinkState,
    Organisation,
    Profile,
    Side,
    SyncUser,
)
from common.schema import current_revision, head_revision, upgrade


def _profile(session) -> Profile:  # type: ignore[no-untyped-def]
    organisation = Organisation(name="Contoso", slug="contoso")
    profile = Profile(
        organisation=organisation,
        name="Contoso sales",
        crm_kind=CrmKind.SUPEROFFICE_ONLINE,
        crm_url="https://sod.superoffice.com/Cust12345",
        crm_tenant="Cust12345",
        groupware_kind=GroupwareKind.MICROSOFT_365,
        groupware_settings={"tenant_id": "contoso.example"},
        settings={"conflict_policy": "crm_wins", "window": {"days_back": 30}},
    )
    session.add(profile)
    session.flush()
    return profile


def test_migration_creates_every_table(migrated_database: Database) -> None:
    tables = set(inspect(migrated_database.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert current_revision(migrated_database) == head_revision(migrated_database)


def test_migration_matches_the_models(migrated_database: Database) -> None:
    """Autogenerate against the migrated schema finds nothing: the migration is complete."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with migrated_database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        assert compare_metadata(context, Base.metadata) == []


def test_upgrade_twice_is_harmless(migrated_database: Database) -> None:
    upgrade(migrated_database)
    assert current_revision(migrated_database) == head_revision(migrated_database)


def test_round_trip_with_json_enums_and_aware_times(migrated_database: Database) -> None:
    when = datetime(2026, 3, 29, 1, 30, tzinfo=UTC) + timedelta(hours=1)
    with migrated_database.session() as session:
        profile = _profile(session)
        user = SyncUser(profile=profile, crm_associate_id=7, mailbox="alex@contoso.example")
        session.add(user)
        session.flush()
        session.add(
            ItemLink(
                profile_id=profile.id,
                sync_user_id=user.id,
                kind=ItemKind.APPOINTMENT,
                crm_id="101",
                remote_id="AAMk=",
            )
        )
        session.add(
            Cursor(sync_user_id=user.id, kind=ItemKind.APPOINTMENT, side=Side.GROUPWARE, token="d1")
        )
        session.add(CheckReport(target="contoso.example", finished_at=when, report={"a": [1]}))

    with migrated_database.session() as session:
        link = session.scalars(select(ItemLink)).one()
        assert link.state is LinkState.PENDING
        assert len(link.correlation_id) == 32
        report = session.scalars(select(CheckReport)).one()
        assert report.finished_at == when
        assert report.finished_at.tzinfo is not None
        assert len(report.id) >= 22  # an unguessable link
        profile = session.scalars(select(Profile)).one()
        assert profile.settings["window"] == {"days_back": 30}
        assert profile.groupware_kind is GroupwareKind.MICROSOFT_365


def test_one_link_per_crm_item_is_enforced(migrated_database: Database) -> None:
    with pytest.raises(IntegrityError), migrated_database.session() as session:
        profile = _profile(session)
        user = SyncUser(profile=profile, crm_associate_id=7, mailbox="alex@contoso.example")
        session.add(user)
        session.flush()
        for remote in ("A", "B"):
            session.add(
                ItemLink(
                    profile_id=profile.id,
                    sync_user_id=user.id,
                    kind=ItemKind.CONTACT,
                    crm_id="55",
                    remote_id=remote,
                )
            )
        session.flush()


def test_deleting_a_profile_cascades(migrated_database: Database) -> None:
    with migrated_database.session() as session:
        profile = _profile(session)
        session.add(SyncUser(profile=profile, crm_associate_id=1, mailbox="a@contoso.example"))
    with migrated_database.session() as session:
        session.delete(session.scalars(select(Profile)).one())
    with migrated_database.session() as session:
        assert session.scalars(select(SyncUser)).all() == []


def test_naive_datetimes_are_refused(migrated_database: Database) -> None:
    with pytest.raises(Exception, match="naive"), migrated_database.session() as session:
        session.add(CheckReport(target="x", finished_at=datetime(2026, 1, 1)))
        session.flush()


def test_upgrade_keeps_existing_rows(database_url: str) -> None:
    """A database at the first revision, with data, upgrades to head without losing it."""
    from sqlalchemy import text

    from common.secrets import configure_keys, generate_key

    configure_keys([generate_key()])
    database = Database(database_url)
    upgrade(database, "0001")
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO organisation (id, name, slug, created_at) "
                "VALUES (1, 'Org', 'org', CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO profile (id, organisation_id, name, enabled, crm_kind, crm_url, "
                "groupware_kind, groupware_settings, settings, created_at, updated_at) VALUES "
                "(1, 1, 'p', true, 'superoffice_onsite', 'https://crm', 'm365', '{}', '{}', "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO sync_run (id, profile_id, status, dry_run, started_at, counts, "
                "api_calls, errors, timings) VALUES (1, 1, 'succeeded', false, "
                "CURRENT_TIMESTAMP, '{}', '{}', '{}', '{}')"
            )
        )
    upgrade(database)
    assert current_revision(database) == head_revision(database)
    with database.session() as session:
        from common.models import SyncRun

        run = session.scalars(select(SyncRun)).one()
        assert run.notes == []
        assert run.profile_id == 1
    database.dispose()
