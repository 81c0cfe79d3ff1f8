"""inbound webhooks: deliveries, plugin state, inbound keys

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa
import hookyard.models


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('plugin_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('marketplace_id', sa.Integer(), nullable=False),
    sa.Column('app', sa.String(length=100), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated_at', hookyard.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['marketplace_id'], ['marketplaces.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('marketplace_id', 'app', 'key', name='uq_plugin_state_key'),
    sqlite_autoincrement=True
    )
    op.create_table('deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('marketplace_id', sa.Integer(), nullable=False),
    sa.Column('integration_id', sa.Integer(), nullable=False),
    sa.Column('app', sa.String(length=100), nullable=False),
    sa.Column('received_at', hookyard.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('content_type', sa.String(length=200), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('body', sa.JSON(), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('identity', sa.String(length=64), nullable=True),
    sa.Column('body_hash', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('duplicate_of', sa.Integer(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('processed_at', hookyard.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['marketplace_id'], ['marketplaces.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_body_hash', ['integration_id', 'body_hash'], unique=False)
        batch_op.create_index('ix_deliveries_identity', ['integration_id', 'identity'], unique=False)
        batch_op.create_index('ix_deliveries_integration', ['integration_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deliveries_marketplace_id'), ['marketplace_id'], unique=False)

    # table_kwargs: SQLite rebuilds the table, and the copy must stay AUTOINCREMENT (ids never reused, 0004).
    with op.batch_alter_table('integrations', schema=None, table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.add_column(sa.Column('inbound_key_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('inbound_key', sa.Text(), nullable=True))
        batch_op.create_unique_constraint('uq_integration_inbound_key', ['inbound_key_hash'])



def downgrade():
    with op.batch_alter_table('integrations', schema=None, table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_constraint('uq_integration_inbound_key', type_='unique')
        batch_op.drop_column('inbound_key')
        batch_op.drop_column('inbound_key_hash')

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deliveries_marketplace_id'))
        batch_op.drop_index('ix_deliveries_integration')
        batch_op.drop_index('ix_deliveries_identity')
        batch_op.drop_index('ix_deliveries_body_hash')

    op.drop_table('deliveries')
    op.drop_table('plugin_state')
