"""the kind a waiting sync task is for

`sync_user.queued_kind`: which kind the task that waits for the user syncs (appointments or
contacts; none: every kind the profile syncs). A push notification of one kind is folded into
a waiting task only when that task syncs its kind too. Existing rows: none, as every task
queued so far synced every kind.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 09:12:00.000000
"""

import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE (see 0008: a batch rebuild of sync_user would cascade on SQLite).
    op.add_column('sync_user', sa.Column('queued_kind', sa.Enum('appointment', 'contact', name='itemkind', native_enum=False, length=32), nullable=True))


def downgrade() -> None:
    op.drop_column('sync_user', 'queued_kind')
