"""item link: per-side hashes, span end, correlation id unique per user and kind

Agreement per side (DESIGN.md): the single `content_hash` becomes `crm_hash` and
`remote_hash`, each side's content hash as that side held it after our last read or write.
Existing links agreed on one hash for both sides, so both columns start from it. `span_end`
(when an appointment's last occurrence ends) is new and unknown (NULL) for existing links.
A link belongs to one user: the correlation id is unique per user and kind, no longer in the
whole database (two users may hold the same stamp, a meeting delivered to both).

On SQLite the table is rebuilt (batch mode), and with foreign keys on, dropping the old
`item_link` runs its ON DELETE SET NULL on `audit_entry.item_link_id`: the references are kept
aside and put back.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 06:44:16.721068
"""

import sqlalchemy as sa
from alembic import op

import common.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_KEPT = "_audit_item_link_0004"


def upgrade() -> None:
    with op.batch_alter_table("item_link", schema=None) as batch_op:
        batch_op.add_column(sa.Column("crm_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("remote_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("span_end", common.models.UTCDateTime(timezone=True), nullable=True)
        )
    op.execute("UPDATE item_link SET crm_hash = content_hash, remote_hash = content_hash")
    _keep_audit_links()
    with op.batch_alter_table("item_link", schema=None) as batch_op:
        batch_op.drop_constraint("uq_item_link_correlation_id", type_="unique")
        batch_op.create_unique_constraint(
            "uq_item_link_user_kind_correlation", ["sync_user_id", "kind", "correlation_id"]
        )
        batch_op.drop_column("content_hash")
    _restore_audit_links()


def downgrade() -> None:
    # 0003 holds one link per correlation id in the whole database. Dropping a user's link
    # would lose its pairing (and duplicate items on the next sync): refuse instead.
    shared = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT correlation_id FROM item_link GROUP BY correlation_id "
                "HAVING COUNT(*) > 1 ORDER BY correlation_id"
            )
        )
        .scalars()
        .all()
    )
    if shared:
        raise RuntimeError(
            f"cannot downgrade below 0004: {len(shared)} correlation id(s) are held by more "
            f"than one link (users or kinds), e.g. {shared[0]!r}; revision 0003 allows one "
            "link per correlation id"
        )
    with op.batch_alter_table("item_link", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_hash", sa.String(length=64), nullable=True))
    # A single agreed hash exists only where both sides agree; elsewhere none is known.
    op.execute(
        "UPDATE item_link SET content_hash = CASE WHEN crm_hash = remote_hash "
        "THEN crm_hash ELSE NULL END"
    )
    _keep_audit_links()
    with op.batch_alter_table("item_link", schema=None) as batch_op:
        batch_op.drop_constraint("uq_item_link_user_kind_correlation", type_="unique")
        batch_op.create_unique_constraint("uq_item_link_correlation_id", ["correlation_id"])
        batch_op.drop_column("span_end")
        batch_op.drop_column("remote_hash")
        batch_op.drop_column("crm_hash")
    _restore_audit_links()


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _keep_audit_links() -> None:
    if _sqlite():
        op.execute(
            f"CREATE TEMPORARY TABLE {_KEPT} AS "
            "SELECT id, item_link_id FROM audit_entry WHERE item_link_id IS NOT NULL"
        )


def _restore_audit_links() -> None:
    if _sqlite():
        op.execute(
            f"UPDATE audit_entry SET item_link_id = (SELECT k.item_link_id FROM {_KEPT} AS k "
            f"WHERE k.id = audit_entry.id) WHERE id IN (SELECT id FROM {_KEPT})"
        )
        op.execute(f"DROP TABLE {_KEPT}")
