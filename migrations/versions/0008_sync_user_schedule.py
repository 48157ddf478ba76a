"""the daemon's schedule per sync user

`sync_user` gains the columns the daemon schedules by: `next_sync_at` (when the next run is
due), `queued_at` (a task is queued: the dispatcher does not queue a second), `failures` (runs
failed in a row: the retry backoff) and `needs_attention` (why a person must act first).
Existing users get none of them set and no failures: due now, queued nowhere.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 16:46:37.060391
"""

import sqlalchemy as sa
from alembic import op

import common.models


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE on both backends: a batch rebuild of `sync_user` on SQLite would, with
    # foreign keys on, cascade its DROP to every user's links, cursors and runs.
    op.add_column('sync_user', sa.Column('next_sync_at', common.models.UTCDateTime(timezone=True), nullable=True))
    op.add_column('sync_user', sa.Column('queued_at', common.models.UTCDateTime(timezone=True), nullable=True))
    op.add_column('sync_user', sa.Column('failures', sa.Integer(), server_default='0', nullable=False))
    op.add_column('sync_user', sa.Column('needs_attention', sa.Text(), nullable=True))


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place (no rebuild, see above).
    for column in ('needs_attention', 'failures', 'queued_at', 'next_sync_at'):
        op.drop_column('sync_user', column)
