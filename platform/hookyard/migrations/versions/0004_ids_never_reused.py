"""ids never reused (SQLite AUTOINCREMENT, sequences seeded above every referenced id); what a run ran

Without AUTOINCREMENT, SQLite hands the highest id back after a delete: a log entry, a queued run or a
retry that names a deleted rule would then run (or show) the next rule created, of any store. Every table is
rebuilt with AUTOINCREMENT, and each sequence starts above every id still referenced anywhere (runs, events,
rules), not only above the table's current maximum. PostgreSQL's sequences never go back, but they are
raised the same way in case a database was restored or edited by hand.

Runs gain the product as it was (name, external id) and ``ran``, what they were set to run; existing entries
are filled in from the rows they name, read within their own store only.

Revision ID: 0004
Revises: 0003
"""
import json

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

TABLES = ('marketplaces', 'api_tokens', 'users', 'integrations', 'products', 'rules', 'events', 'runs')

# For each table, the (table, column) pairs that hold its ids besides its own primary key.
REFERENCES = {
    'marketplaces': [(t, 'marketplace_id') for t in TABLES if t != 'marketplaces'],
    'integrations': [('rules', 'integration_id'), ('runs', 'integration_id')],
    'products': [('rules', 'product_id'), ('runs', 'product_id'), ('events', 'product_id')],
    'rules': [('runs', 'rule_id')],
    'events': [('runs', 'event_id')],
}

runs = sa.table('runs', sa.column('id', sa.Integer), sa.column('ran', sa.JSON))


def upgrade():
    bind = op.get_bind()
    sqlite = bind.dialect.name == 'sqlite'
    # The environment turns SQLite's foreign keys off while tables are copied, so these rebuilds never
    # cascade into child tables, and checks them all before committing.
    for table in TABLES:
        with op.batch_alter_table(table, recreate='always' if sqlite else 'auto',
                                  table_kwargs={'sqlite_autoincrement': True}) as batch_op:
            if table == 'runs':
                batch_op.add_column(sa.Column('product_name', sa.String(length=500), nullable=True))
                batch_op.add_column(sa.Column('product_external_id', sa.String(length=200), nullable=True))
                batch_op.add_column(sa.Column('ran', sa.JSON(), nullable=True))
    _fill_in_runs(bind)
    for table in TABLES:
        floor = _highest_id(bind, table)
        if sqlite:
            bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = :t"), {'t': table})
            bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :seq)"), {'t': table, 'seq': floor})
        else:
            _raise_postgres_sequence(bind, table, floor)


def _highest_id(bind, table: str) -> int:
    columns = [(table, 'id'), *REFERENCES.get(table, [])]
    return max(bind.execute(sa.text(f"SELECT COALESCE(MAX({c}), 0) FROM {t}")).scalar() for t, c in columns)


def _raise_postgres_sequence(bind, table: str, floor: int) -> None:
    sequence = bind.execute(sa.text("SELECT pg_get_serial_sequence(:t, 'id')"), {'t': table}).scalar()
    if sequence is None or floor < 1:
        return
    last, called = bind.execute(sa.text(f"SELECT last_value, is_called FROM {sequence}")).one()
    if floor > last or (floor == last and not called):
        bind.execute(sa.text("SELECT setval(:s, :v, true)"), {'s': sequence, 'v': floor})


def _fill_in_runs(bind) -> None:
    """Existing entries get what they can still be told: each row they name, read only within their store."""
    bind.execute(sa.text(
        "UPDATE runs SET "
        "product_name = (SELECT p.name FROM products p WHERE p.id = runs.product_id "
        "AND p.marketplace_id = runs.marketplace_id), "
        "product_external_id = (SELECT p.external_id FROM products p WHERE p.id = runs.product_id "
        "AND p.marketplace_id = runs.marketplace_id)"))
    rows = bind.execute(sa.text(
        "SELECT r.id, r.app, r.action, r.product_name, r.product_external_id, i.name, u.params FROM runs r "
        "LEFT JOIN integrations i ON i.id = r.integration_id AND i.marketplace_id = r.marketplace_id "
        "LEFT JOIN rules u ON u.id = r.rule_id AND u.marketplace_id = r.marketplace_id")).all()
    for run_id, app, action, product_name, external_id, integration_name, params in rows:
        if isinstance(params, str):  # SQLite hands JSON back as text through a plain text() query
            params = json.loads(params)
        bind.execute(runs.update().where(runs.c.id == run_id).values(ran={
            'app_name': app, 'action_label': action, 'integration_name': integration_name,
            'product_name': product_name or external_id, 'params': params or {}}))


def downgrade():
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('ran')
        batch_op.drop_column('product_external_id')
        batch_op.drop_column('product_name')
