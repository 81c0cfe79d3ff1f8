"""events say where they came from (a delivery, or a store's API read by a backfill); tasks keep a result

An event a backfill read from the store's API ran one rule only; the store's own delivery of the same event, when
it comes, runs the other matching rules instead of being answered as a duplicate. Existing events were all
delivered (the server default fills them in). A task may end with a result: a backfill preview's counts.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    # A column with a constant default: SQLite's ALTER TABLE ADD COLUMN, no rebuild of a table that may be large.
    op.add_column('events', sa.Column('source', sa.String(length=16), server_default='delivery', nullable=False))
    op.add_column('tasks', sa.Column('result', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('tasks', schema=None, table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_column('result')
    with op.batch_alter_table('events', schema=None, table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_column('source')
