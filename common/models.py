"""The data model (DESIGN.md, "Data model"): typed SQLAlchemy 2 models.

Secrets (tokens, passwords, client secrets) use the encrypted column types of
`common.secrets` and are deferred: loaded, and so decrypted, only when the attribute is used.
Everything else is plain. Timestamps are timezone-aware UTC on every
database (SQLite forgets the zone, so `UTCDateTime` puts it back).
"""

from __future__ import annotations

import enum
import secrets as token_source
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from common.kinds import ItemKind, LinkState, RunStatus, Side, new_correlation_id
from common.secrets import EncryptedJSON, EncryptedText

# Stable constraint names, so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend; naive values are refused, not guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class CrmKind(enum.StrEnum):
    SUPEROFFICE_ONLINE = "superoffice_online"
    SUPEROFFICE_ONSITE = "superoffice_onsite"


class GroupwareKind(enum.StrEnum):
    EXCHANGE = "exchange"
    MICROSOFT_365 = "m365"
    GOOGLE = "google"


class InvitationState(enum.StrEnum):
    INVITED = "invited"
    ACTIVE = "active"
    DISABLED = "disabled"


def _enum(cls: type[enum.StrEnum]) -> Enum:
    # Stored as plain strings (no native PostgreSQL enum) so adding a value needs no migration.
    return Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class Organisation(Base):
    __tablename__ = "organisation"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    admins: Mapped[list[AdminUser]] = relationship(
        back_populates="organisation", cascade="all, delete-orphan", passive_deletes=True
    )
    profiles: Mapped[list[Profile]] = relationship(
        back_populates="organisation", cascade="all, delete-orphan", passive_deletes=True
    )


class AdminUser(Base):
    """A local administrator who signs in with a username and password."""

    __tablename__ = "admin_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id", ondelete="CASCADE"))
    username: Mapped[str] = mapped_column(String(150), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]

    organisation: Mapped[Organisation] = relationship(back_populates="admins")


class Profile(Base):
    """One CRM tenant + one groupware system + the sync settings that join them."""

    __tablename__ = "profile"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)

    crm_kind: Mapped[CrmKind] = mapped_column(_enum(CrmKind))
    crm_url: Mapped[str] = mapped_column(String(500))
    crm_tenant: Mapped[str | None] = mapped_column(String(100))  # SuperOffice context id (Cust…)
    crm_credentials: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON, deferred=True)

    groupware_kind: Mapped[GroupwareKind] = mapped_column(_enum(GroupwareKind))
    groupware_settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    groupware_credentials: Mapped[dict[str, Any] | None] = mapped_column(
        EncryptedJSON, deferred=True
    )

    # Directions, conflict policy, window, filters, deletion guard (see daemon policies).
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    organisation: Mapped[Organisation] = relationship(back_populates="profiles")
    users: Mapped[list[SyncUser]] = relationship(
        back_populates="profile", cascade="all, delete-orphan", passive_deletes=True
    )


class SyncUser(Base):
    """A CRM associate linked to a mailbox within a profile."""

    __tablename__ = "sync_user"
    __table_args__ = (
        UniqueConstraint("profile_id", "crm_associate_id"),
        UniqueConstraint("profile_id", "mailbox"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profile.id", ondelete="CASCADE"))
    crm_associate_id: Mapped[int] = mapped_column(Integer)
    crm_username: Mapped[str | None] = mapped_column(String(150))
    mailbox: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(200))
    tokens: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON, deferred=True)
    invitation_state: Mapped[InvitationState] = mapped_column(
        _enum(InvitationState), default=InvitationState.INVITED
    )
    # One worker at a time per mailbox: a lease that expires, never a lock that outlives a crash.
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    last_sync_at: Mapped[datetime | None]  # when the last run that finished began
    last_error: Mapped[str | None] = mapped_column(Text)
    # The daemon's schedule (the database, not the queue, is the source of truth): when the
    # next run is due (None: now), when a task was queued for it (None: none is), how many
    # runs in a row failed (the retry backoff), and why a person must act before it syncs
    # again (credentials refused); cleared when they do.
    next_sync_at: Mapped[datetime | None]
    queued_at: Mapped[datetime | None]
    # Which kind the waiting task syncs (None: every kind the profile syncs), so that a push
    # of one kind is not folded into a waiting task of the other.
    queued_kind: Mapped[ItemKind | None] = mapped_column(_enum(ItemKind))
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    needs_attention: Mapped[str | None] = mapped_column(Text)
    # When housekeeping last asked for a full listing of both sides (the nightly
    # reconciliation: the next run that ends compares every id with the links).
    reconciled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    profile: Mapped[Profile] = relationship(back_populates="users")


class SingletonLease(Base):
    """A lease on something of which one runs per deployment (the scheduler): the row is
    taken by whoever runs it, renewed while it runs, and expires when it dies."""

    __tablename__ = "singleton_lease"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(100))
    expires_at: Mapped[datetime | None]
    # When the current owner took it over (status shows how long it has been in charge).
    taken_at: Mapped[datetime | None]


class ItemLink(Base):
    """The pairing of one CRM item with one groupware item, and what both looked like last time."""

    __tablename__ = "item_link"
    # A link belongs to one user: two users may hold the same stamp (a meeting delivered to
    # both), so the correlation id is unique per user and kind, like the item ids.
    __table_args__ = (
        UniqueConstraint(
            "sync_user_id", "kind", "correlation_id", name="uq_item_link_user_kind_correlation"
        ),
        UniqueConstraint("sync_user_id", "kind", "crm_id", name="uq_item_link_user_kind_crm"),
        UniqueConstraint("sync_user_id", "kind", "remote_id", name="uq_item_link_user_kind_remote"),
        Index("ix_item_link_user_kind_state", "sync_user_id", "kind", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profile.id", ondelete="CASCADE"))
    sync_user_id: Mapped[int] = mapped_column(ForeignKey("sync_user.id", ondelete="CASCADE"))
    kind: Mapped[ItemKind] = mapped_column(_enum(ItemKind))
    correlation_id: Mapped[str] = mapped_column(String(64), default=new_correlation_id)
    crm_id: Mapped[str | None] = mapped_column(String(200))
    remote_id: Mapped[str | None] = mapped_column(String(500))
    crm_version: Mapped[str | None] = mapped_column(String(200))
    remote_version: Mapped[str | None] = mapped_column(String(500))
    # Agreement per side (DESIGN.md): each side's content hash as that side held it after our
    # last read or write.
    crm_hash: Mapped[str | None] = mapped_column(String(64))
    remote_hash: Mapped[str | None] = mapped_column(String(64))
    # When the item's last occurrence ends (UTC); None for contacts and open-ended series.
    span_end: Mapped[datetime | None]
    state: Mapped[LinkState] = mapped_column(_enum(LinkState), default=LinkState.PENDING)
    # What the pending intent was going to do (create_remote, update_crm, …), for crash recovery;
    # on a linked pair, a write held for a person (`held_update_groupware:all`: it would have
    # mailed people the profile does not let us mail; `daemon.engine.held_marker`).
    pending_action: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Cursor(Base):
    """A delta token (Graph deltaLink, EWS SyncState, Google syncToken, CRM updated-since)."""

    __tablename__ = "cursor"
    __table_args__ = (
        UniqueConstraint("sync_user_id", "kind", "side", name="uq_cursor_user_kind_side"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sync_user_id: Mapped[int] = mapped_column(ForeignKey("sync_user.id", ondelete="CASCADE"))
    kind: Mapped[ItemKind] = mapped_column(_enum(ItemKind))
    side: Mapped[Side] = mapped_column(_enum(Side))
    token: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SyncRun(Base):
    """One synchronization run for one user: what happened, what it cost."""

    __tablename__ = "sync_run"
    __table_args__ = (Index("ix_sync_run_user_started", "sync_user_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profile.id", ondelete="CASCADE"))
    sync_user_id: Mapped[int | None] = mapped_column(ForeignKey("sync_user.id", ondelete="CASCADE"))
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus), default=RunStatus.RUNNING)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    api_calls: Mapped[dict[str, Any]] = mapped_column(default=dict)
    errors: Mapped[dict[str, Any]] = mapped_column(default=dict)
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # What a person should know about the run that is not an error (e.g. a series expanded).
    notes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # A plan held by the deletion guard waits here for an administrator's approval.
    held_plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Which kind the run synced (a held plan is approved per user and kind).
    kind: Mapped[ItemKind | None] = mapped_column(_enum(ItemKind))
    # Why a run did not simply succeed (throttled, credentials, transient, permanent,
    # unexpected, item_errors, interrupted): the metrics count failures by it.
    reason: Mapped[str | None] = mapped_column(String(32))
    # `synchronizer approve RUN`: the next run of this user and kind may delete as much.
    approved_at: Mapped[datetime | None]
    approved_by: Mapped[str | None] = mapped_column(String(150))


class ServiceBudget(Base):
    """A service that asked us to wait (a throttle longer than a run sleeps out): every user
    of it waits until `paused_until`, not only the one whose run was told."""

    __tablename__ = "service_budget"

    service: Mapped[str] = mapped_column(String(600), primary_key=True)
    paused_until: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditEntry(Base):
    """Every change applied (or conflict settled), with before/after so it can be undone."""

    __tablename__ = "audit_entry"
    __table_args__ = (
        Index("ix_audit_entry_profile_created", "profile_id", "created_at"),
        Index("ix_audit_entry_user_state", "sync_user_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profile.id", ondelete="CASCADE"))
    sync_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("sync_user.id", ondelete="SET NULL")
    )
    sync_run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_run.id", ondelete="SET NULL"))
    item_link_id: Mapped[int | None] = mapped_column(
        ForeignKey("item_link.id", ondelete="SET NULL")
    )
    kind: Mapped[ItemKind] = mapped_column(_enum(ItemKind))
    side: Mapped[Side] = mapped_column(_enum(Side))  # the side that was written
    action: Mapped[str] = mapped_column(String(32))  # create | update | delete | conflict
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    crm_id: Mapped[str | None] = mapped_column(String(200))
    remote_id: Mapped[str | None] = mapped_column(String(500))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    # pending (written with the intent) | applied | not_applied | uncertain (a crash hid the
    # outcome): the daemon's journal settles pending rows on the next run.
    state: Mapped[str] = mapped_column(String(16), default="applied", server_default="applied")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    undone_at: Mapped[datetime | None]


class WebhookEvent(Base):
    """A change a service announced to us (a SuperOffice webhook), kept for the daemon: it
    syncs the user the event names soon, and marks the row processed. Only what the payload
    holds (ids and the documented non-sensitive fields), never the record's content."""

    __tablename__ = "webhook_event"
    __table_args__ = (
        # A service's retry, or a replayed request, carries an EventId already recorded.
        UniqueConstraint(
            "profile_id", "source", "event_id", name="uq_webhook_event_profile_source_event"
        ),
        Index("ix_webhook_event_pending", "processed_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profile.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(32))  # superoffice
    event_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))  # activity.changed, person.softdeleted, …
    entity: Mapped[str] = mapped_column(String(32))  # activity, person, contact, …
    primary_key: Mapped[int | None] = mapped_column(Integer)
    # Whose record it is where the event says (an appointment's owner), and who changed it.
    associate_id: Mapped[int | None] = mapped_column(Integer)
    changed_by: Mapped[int | None] = mapped_column(Integer)
    occurred_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)


class PushState(enum.StrEnum):
    ACTIVE = "active"
    REAUTHORIZE = "reauthorize"  # the service asked for it to be renewed (reauthorized)
    REMOVED = "removed"  # the service ended it: to be made again
    FAILED = "failed"  # could not be made; `last_error` says why, the upkeep tries again


class PushSubscription(Base):
    """A service's promise to tell us when one user's items of one kind change (a Microsoft
    Graph subscription), kept alive by the daemon's upkeep. The `clientState` each of its
    notifications carries is kept only as a SHA-256: enough to check one, useless to forge
    one."""

    __tablename__ = "push_subscription"
    __table_args__ = (
        UniqueConstraint(
            "sync_user_id", "kind", "service", name="uq_push_subscription_user_kind_service"
        ),
        UniqueConstraint("service", "external_id", name="uq_push_subscription_service_external"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sync_user_id: Mapped[int] = mapped_column(ForeignKey("sync_user.id", ondelete="CASCADE"))
    kind: Mapped[ItemKind] = mapped_column(_enum(ItemKind))
    service: Mapped[str] = mapped_column(String(32))  # graph
    external_id: Mapped[str | None] = mapped_column(String(200))  # the service's id of it
    client_state_hash: Mapped[str | None] = mapped_column(String(64))
    resource: Mapped[str | None] = mapped_column(String(500))
    expires_at: Mapped[datetime | None]
    state: Mapped[PushState] = mapped_column(_enum(PushState), default=PushState.ACTIVE)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def new_report_id() -> str:
    # 128 bits from the OS's CSPRNG: the link is the only key to a stored report.
    return token_source.token_urlsafe(16)


class CheckReport(Base):
    """A stored Check site report, reachable by an unguessable id."""

    __tablename__ = "check_report"

    id: Mapped[str] = mapped_column(String(43), primary_key=True, default=new_report_id)
    target: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done
    verdict: Mapped[str | None] = mapped_column(String(8))  # pass | warn | fail
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class RateLimitCounter(Base):
    """One rate-limit window of one client (Flask-Limiter's fixed window), kept in the database
    so that every web process and host shares it without Redis."""

    __tablename__ = "rate_limit_counter"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[float] = mapped_column(index=True)  # seconds since the epoch


ENCRYPTED_COLUMNS: tuple[tuple[type[Base], str], ...] = (
    (Profile, "crm_credentials"),
    (Profile, "groupware_credentials"),
    (SyncUser, "tokens"),
)
"""Every encrypted column, for key rotation (a test keeps this list complete)."""

__all__ = [
    "AdminUser",
    "AuditEntry",
    "Base",
    "CheckReport",
    "CrmKind",
    "Cursor",
    "ENCRYPTED_COLUMNS",
    "EncryptedText",
    "GroupwareKind",
    "InvitationState",
    "ItemKind",
    "ItemLink",
    "LinkState",
    "Organisation",
    "Profile",
    "RateLimitCounter",
    "RunStatus",
    "ServiceBudget",
    "Side",
    "SingletonLease",
    "SyncRun",
    "SyncUser",
    "WebhookEvent",
]
