"""dedupe keys and duplicate counts on events, roles on API tokens

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa
import hookyard.models


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('role', sa.String(length=16), server_default='owner', nullable=False))
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dedupe_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('duplicates', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('last_duplicate_at', hookyard.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint('uq_event_dedupe_key', ['marketplace_id', 'dedupe_key'])


def downgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_constraint('uq_event_dedupe_key', type_='unique')
        batch_op.drop_column('last_duplicate_at')
        batch_op.drop_column('duplicates')
        batch_op.drop_column('dedupe_key')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('role')
