"""run origins (event, test, backfill, reconcile), the rule ledger, reconciliation reports, task parameters,
an index of a store's events by trigger and time

Runs say why they exist. The one-run-per-(event, rule) constraint becomes a partial unique index over event and
backfill runs only: a rule test or a reconciliation's fix may run a rule again for an event it already ran for. A
test of a trigger's example payload names no stored event, so ``event_id`` may be NULL. Existing runs are all
``event`` runs (the server default fills them in).

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa

import hookyard.models


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

ONCE = sa.text("origin IN ('event', 'backfill')")


def upgrade():
    op.create_table('reconcile_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('marketplace_id', sa.Integer(), nullable=False),
    sa.Column('integration_id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('scheduled', sa.Boolean(), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('differences', sa.JSON(), nullable=False),
    sa.Column('calls', sa.Integer(), nullable=False),
    sa.Column('created_at', hookyard.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', hookyard.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['marketplace_id'], ['marketplaces.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True
    )
    op.create_index('ix_reconcile_reports_integration', 'reconcile_reports', ['marketplace_id', 'integration_id', 'id'], unique=False)
    op.create_table('rule_ledger',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('marketplace_id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('event_key', sa.String(length=80), nullable=False),
    sa.Column('created_at', hookyard.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['marketplace_id'], ['marketplaces.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('rule_id', 'event_key', name='uq_rule_ledger'),
    sqlite_autoincrement=True
    )
    op.create_index(op.f('ix_rule_ledger_marketplace_id'), 'rule_ledger', ['marketplace_id'], unique=False)

    # table_kwargs: SQLite rebuilds the table, and the copy must stay AUTOINCREMENT (ids never reused, 0004).
    with op.batch_alter_table('runs', schema=None, table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.add_column(sa.Column('origin', sa.String(length=16), server_default='event', nullable=False))
        batch_op.add_column(sa.Column('task_id', sa.Integer(), nullable=True))
        batch_op.alter_column('event_id', existing_type=sa.INTEGER(), nullable=True)
        batch_op.drop_constraint('uq_run_event_rule', type_='unique')
    op.create_index('uq_run_event_rule', 'runs', ['event_id', 'rule_id'], unique=True,
                    sqlite_where=ONCE, postgresql_where=ONCE)
    op.create_index('ix_runs_task', 'runs', ['task_id', 'status'], unique=False)

    with op.batch_alter_table('tasks', schema=None, table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.add_column(sa.Column('params', sa.JSON(), nullable=True))
    op.create_index('ix_events_trigger_time', 'events', ['marketplace_id', 'trigger', 'occurred_at'], unique=False)


def downgrade():
    op.drop_index('ix_events_trigger_time', table_name='events')
    with op.batch_alter_table('tasks', schema=None, table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_column('params')
    op.drop_index('ix_runs_task', table_name='runs')
    op.drop_index('uq_run_event_rule', table_name='runs')
    # Tests and fixes are not one per (event, rule), and a test may name no event: they cannot be kept.
    op.execute("DELETE FROM runs WHERE origin NOT IN ('event', 'backfill') OR event_id IS NULL")
    with op.batch_alter_table('runs', schema=None, table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.create_unique_constraint('uq_run_event_rule', ['event_id', 'rule_id'])
        batch_op.alter_column('event_id', existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column('task_id')
        batch_op.drop_column('origin')
    op.drop_index(op.f('ix_rule_ledger_marketplace_id'), table_name='rule_ledger')
    op.drop_table('rule_ledger')
    op.drop_index('ix_reconcile_reports_integration', table_name='reconcile_reports')
    op.drop_table('reconcile_reports')
