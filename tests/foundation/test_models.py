"""Migrations and models, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from common.db import Database
from common.models import (
    AuditEntry,
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


def _at_0003_with_links(database_url: str) -> Database:
    """A database at revision 0003 with two users of one profile, links (one with a content
    hash) and an audit entry that points at a link."""
    from sqlalchemy import text

    from common.secrets import configure_keys, generate_key

    configure_keys([generate_key()])
    database = Database(database_url)
    upgrade(database, "0003")
    with database.engine.begin() as connection:
        for statement in (
            "INSERT INTO organisation (id, name, slug, created_at) "
            "VALUES (1, 'Org', 'org', CURRENT_TIMESTAMP)",
            "INSERT INTO profile (id, organisation_id, name, enabled, crm_kind, crm_url, "
            "groupware_kind, groupware_settings, settings, created_at, updated_at) VALUES "
            "(1, 1, 'p', true, 'superoffice_onsite', 'https://crm', 'm365', '{}', '{}', "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            "INSERT INTO sync_user (id, profile_id, crm_associate_id, mailbox, invitation_state, "
            "created_at) VALUES (1, 1, 7, 'ann@org.example', 'active', CURRENT_TIMESTAMP)",
            "INSERT INTO sync_user (id, profile_id, crm_associate_id, mailbox, invitation_state, "
            "created_at) VALUES (2, 1, 8, 'bob@org.example', 'active', CURRENT_TIMESTAMP)",
            "INSERT INTO item_link (id, profile_id, sync_user_id, kind, correlation_id, crm_id, "
            "remote_id, crm_version, remote_version, content_hash, state, updated_at) VALUES "
            "(1, 1, 1, 'appointment', 'c1', '101', 'AAMk=', 'v1', 'ck1', 'h1', 'linked', "
            "CURRENT_TIMESTAMP)",
            "INSERT INTO item_link (id, profile_id, sync_user_id, kind, correlation_id, crm_id, "
            "state, pending_action, updated_at) VALUES "
            "(2, 1, 1, 'appointment', 'c2', '102', 'pending', 'create_groupware', "
            "CURRENT_TIMESTAMP)",
            "INSERT INTO audit_entry (id, profile_id, sync_user_id, item_link_id, kind, side, "
            "action, correlation_id, crm_id, remote_id, state, created_at) VALUES "
            "(1, 1, 1, 1, 'appointment', 'groupware', 'create', 'c1', '101', 'AAMk=', "
            "'applied', CURRENT_TIMESTAMP)",
        ):
            connection.execute(text(statement))
    return database


def test_upgrade_to_0004_splits_the_content_hash_per_side(database_url: str) -> None:
    """Existing links keep their agreement on both sides, their ids and their audit entries;
    afterwards a correlation id is unique per user and kind, not in the whole database."""
    database = _at_0003_with_links(database_url)
    upgrade(database)
    assert current_revision(database) == head_revision(database)
    columns = {c["name"] for c in inspect(database.engine).get_columns("item_link")}
    assert {"crm_hash", "remote_hash", "span_end"} <= columns and "content_hash" not in columns
    with database.session() as session:
        linked, pending = session.scalars(select(ItemLink).order_by(ItemLink.id)).all()
        assert (linked.id, linked.correlation_id, linked.crm_id, linked.remote_id) == (
            1,
            "c1",
            "101",
            "AAMk=",
        )
        assert (linked.crm_hash, linked.remote_hash, linked.span_end) == ("h1", "h1", None)
        assert (linked.crm_version, linked.remote_version) == ("v1", "ck1")
        assert linked.state is LinkState.LINKED
        assert (pending.crm_hash, pending.remote_hash, pending.state) == (
            None,
            None,
            LinkState.PENDING,
        )
        assert pending.pending_action == "create_groupware"
        audit = session.get_one(AuditEntry, 1)
        assert audit.item_link_id == 1  # rebuilding the table on SQLite must not unlink it
        # The other user may now hold the same stamp (a meeting delivered to both).
        session.add(
            ItemLink(
                id=3,  # the rows above were given ids: PostgreSQL's sequence did not move
                profile_id=1,
                sync_user_id=2,
                kind=ItemKind.APPOINTMENT,
                correlation_id="c1",
                crm_id="101",
                remote_id="AAMk=",
                span_end=datetime(2026, 3, 21, 10, tzinfo=UTC),
            )
        )
    with database.session() as session:
        other = session.scalars(select(ItemLink).where(ItemLink.sync_user_id == 2)).one()
        assert other.span_end == datetime(2026, 3, 21, 10, tzinfo=UTC)
    with pytest.raises(IntegrityError), database.session() as session:
        session.add(
            ItemLink(
                id=4, profile_id=1, sync_user_id=1, kind=ItemKind.APPOINTMENT, correlation_id="c1"
            )
        )
    database.dispose()


def _downgrade(database: Database, revision: str) -> None:
    from alembic import command

    from common.schema import alembic_config

    config = alembic_config(database)
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_downgrade_from_0004_keeps_the_agreed_hash_where_both_sides_agree(
    database_url: str,
) -> None:
    from sqlalchemy import text

    database = _at_0003_with_links(database_url)
    upgrade(database)
    with database.session() as session:
        session.get_one(ItemLink, 2).crm_hash = "h2"  # the sides disagree: no agreed hash
    _downgrade(database, "0003")
    assert current_revision(database) == "0003"
    with database.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, correlation_id, crm_id, content_hash FROM item_link ORDER BY id")
        ).all()
        assert [tuple(row) for row in rows] == [(1, "c1", "101", "h1"), (2, "c2", "102", None)]
        audit_link = connection.execute(text("SELECT item_link_id FROM audit_entry")).scalar()
        assert audit_link == 1
    upgrade(database)
    assert current_revision(database) == head_revision(database)
    database.dispose()


def test_downgrade_from_0004_refuses_a_stamp_shared_by_two_users(database_url: str) -> None:
    """Revision 0003 holds one link per correlation id: the downgrade says so and changes
    nothing rather than drop a user's link."""
    database = _at_0003_with_links(database_url)
    upgrade(database)
    with database.session() as session:
        session.add(
            ItemLink(
                id=3, profile_id=1, sync_user_id=2, kind=ItemKind.APPOINTMENT, correlation_id="c1"
            )
        )
    with pytest.raises(RuntimeError, match="'c1'"):
        _downgrade(database, "0003")
    assert current_revision(database) == head_revision(database)
    with database.session() as session:
        assert len(session.scalars(select(ItemLink)).all()) == 3
    database.dispose()
