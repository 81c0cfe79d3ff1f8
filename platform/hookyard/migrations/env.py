from alembic import context

from hookyard.db import make_engine
from hookyard.models import Base

config = context.config


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
    )
    with context.begin_transaction():
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {broken[:10]}")


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `hookyard db upgrade`")
run_migrations_online()
