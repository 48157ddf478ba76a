"""push subscriptions kept by the daemon

`push_subscription`: each service subscription that tells us of one user's changes of one
kind (Microsoft Graph's, for now), with its id at the service, the SHA-256 of the
clientState its notifications carry, its expiry and state (active, to be reauthorized,
removed by the service, failed to be made). A new table: nothing to carry over.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 17:27:11.976888
"""

import sqlalchemy as sa
from alembic import op

import common.models


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('push_subscription',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sync_user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('appointment', 'contact', name='itemkind', native_enum=False, length=32), nullable=False),
    sa.Column('service', sa.String(length=32), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=True),
    sa.Column('client_state_hash', sa.String(length=64), nullable=True),
    sa.Column('resource', sa.String(length=500), nullable=True),
    sa.Column('expires_at', common.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('state', sa.Enum('active', 'reauthorize', 'removed', 'failed', name='pushstate', native_enum=False, length=32), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', common.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', common.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['sync_user_id'], ['sync_user.id'], name=op.f('fk_push_subscription_sync_user_id_sync_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_subscription')),
    sa.UniqueConstraint('service', 'external_id', name='uq_push_subscription_service_external'),
    sa.UniqueConstraint('sync_user_id', 'kind', 'service', name='uq_push_subscription_user_kind_service')
    )


def downgrade() -> None:
    op.drop_table('push_subscription')
