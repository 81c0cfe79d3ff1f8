"""Engine and session factory; SQLite gets the pragmas that make it a safe embedded default."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from .private_files import private_file, private_folder


def make_engine(url: str, foreign_keys: bool = True, pool_size: int = 5, max_overflow: int = 10) -> Engine:
    """``foreign_keys=False`` is for migrations only: SQLite alters a table by copying it and dropping the
    original, and with foreign keys on, that DROP cascades (ON DELETE CASCADE) into every child table.
    ``pool_size`` and ``max_overflow`` size a server database's pool (HOOKYARD_DB_POOL_SIZE, _MAX_OVERFLOW)."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            # A folder the operator chose is created private but never changed: it may hold more than ours.
            path = Path(database)
            private_file(private_folder(path.parent, tighten=False) / path.name)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # WAL lets the web process read while the worker writes; foreign keys are off by default.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # A deferred transaction that later writes can fail at once with "database is locked"
            # when web and worker race; IMMEDIATE takes the write lock up front and waits for it.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow)


class Database:
    def __init__(self, url: str, pool_size: int = 5, max_overflow: int = 10):
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size, max_overflow=max_overflow)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Session:
        with self.sessions() as session:
            yield session

    def dispose(self):
        self.engine.dispose()
