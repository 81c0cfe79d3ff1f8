"""app usage: calls counted against an app's remote quota, per scope and month

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    # A new table only: no batch rebuild of an existing table is needed on SQLite.
    op.create_table('app_usage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('app', sa.String(length=100), nullable=False),
    sa.Column('scope', sa.String(length=200), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('calls', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('app', 'scope', 'period', name='uq_app_usage'),
    sqlite_autoincrement=True
    )


def downgrade():
    op.drop_table('app_usage')
