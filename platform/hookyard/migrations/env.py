from alembic import context

from hookyard.db import make_engine
from hookyard.models import Base

config = context.config

# The advisory lock key that serialises migrations on PostgreSQL (any constant; "hookyard" in ASCII).
MIGRATION_LOCK = 0x686F6F6B79617264


def run_migrations_online():
    connectable = config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    # Foreign keys off while tables are copied (see make_engine), checked as a whole before the commit.
    engine = make_engine(config.get_main_option("sqlalchemy.url"), foreign_keys=False)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection):
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
        # Every migration of a run in one transaction, on SQLite too (Alembic takes its DDL as non-transactional and
        # commits after each migration; with the driver's implicit transactions off, hookyard.db, SQLite's DDL is
        # transactional). So the version is read under the run's BEGIN IMMEDIATE and held to its commit: a second
        # `hookyard db upgrade` at once waits, then finds the schema current. Per migration, it could read the old
        # version between two of the first one's commits and create a table twice.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # The release step may run twice at once (two deploys, or a retry while the first still runs): the
            # second waits here until the first commits, then finds the schema current and does nothing. SQLite's
            # BEGIN IMMEDIATE (hookyard.db), held over the whole run (transactional_ddl), serialises the same way.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {broken[:10]}")


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `hookyard db upgrade`")
run_migrations_online()
