"""operations: approvals, run reasons, nightly reconciliation, service budgets

`sync_run` gains `kind` (a held plan is approved per user and kind), `reason` (why a run
did not simply succeed, for the metrics) and `approved_at`/`approved_by` (`synchronizer
approve`). `sync_user` gains `reconciled_at` (the nightly full listing). `service_budget`
holds the services that asked us to wait, so all their users wait, not only one.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 17:17:31.349139
"""

import sqlalchemy as sa
from alembic import op

import common.models


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'service_budget',
        sa.Column('service', sa.String(length=600), nullable=False),
        sa.Column('paused_until', common.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('updated_at', common.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('service', name=op.f('pk_service_budget')),
    )
    # Plain ALTER TABLE on both backends (as 0008): a batch rebuild on SQLite would cascade
    # its DROP to dependent rows.
    op.add_column('sync_run', sa.Column('kind', sa.Enum('appointment', 'contact', name='itemkind', native_enum=False, length=32), nullable=True))
    op.add_column('sync_run', sa.Column('reason', sa.String(length=32), nullable=True))
    op.add_column('sync_run', sa.Column('approved_at', common.models.UTCDateTime(timezone=True), nullable=True))
    op.add_column('sync_run', sa.Column('approved_by', sa.String(length=150), nullable=True))
    op.add_column('sync_user', sa.Column('reconciled_at', common.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('sync_user', 'reconciled_at')
    for column in ('approved_by', 'approved_at', 'reason', 'kind'):
        op.drop_column('sync_run', column)
    op.drop_table('service_budget')
