"""tasks: long work done by the worker (a connection's refresh), with progress and cancel

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa
import hookyard.models


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('marketplace_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=100), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.Column('active_key', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('created_at', hookyard.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', hookyard.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', hookyard.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['marketplace_id'], ['marketplaces.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('marketplace_id', 'active_key', name='uq_task_active'),
    sqlite_autoincrement=True
    )


def downgrade():
    op.drop_table('tasks')
