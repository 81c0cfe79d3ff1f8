"""Engine and session factory; SQLite gets the pragmas that make it a safe embedded default."""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from .private_files import private_file, private_folder

_READ_ONLY = "hookyard_read_only"
_HOLDS_TURN = "hookyard_write_turn"
_TURN_TIMEOUT = 30  # seconds, as SQLite's own busy timeout (PRAGMA busy_timeout below)


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
            # when web and worker race; IMMEDIATE takes the write lock up front and waits for it. A transaction
            # begun by ``reading`` only reads: deferred, it takes no lock, so it never waits on a writer (WAL).
            if conn.get_execution_options().get(_READ_ONLY):
                conn.exec_driver_sql("BEGIN")
                return
            _take_write_turn(conn.connection.info)
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        # Writers of one process take turns on a lock of their own before BEGIN IMMEDIATE, so that a thread
        # waiting for its turn is woken the moment the writer before it is done. Left to SQLite, the threads of a
        # web process would all poll the file lock, sleeping up to 100 ms between tries (its busy handler): under
        # load most of a request's time was that sleep. Released when the connection goes back to the pool, after
        # its COMMIT or ROLLBACK; only processes contend through SQLite's own lock. In arrival order (Turns): with a
        # plain lock a thread could wait through many others' turns, and the slowest requests waited seconds.
        write_turn = Turns()

        def _take_write_turn(info):
            if info.get(_HOLDS_TURN):
                return  # this connection's earlier transaction took it and it has not been checked in since
            if not write_turn.acquire(timeout=_TURN_TIMEOUT):
                raise sqlite3.OperationalError(
                    f"database is locked: another thread of this process held the write lock for {_TURN_TIMEOUT} s"
                )
            info[_HOLDS_TURN] = True

        @event.listens_for(engine, "checkin")
        def _end_write_turn(_dbapi_conn, record):
            if record is not None and record.info.pop(_HOLDS_TURN, False):
                write_turn.release()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow)


def reading(session: Session) -> None:
    """Begins the session's next transaction as one that only reads: on SQLite a deferred one, which takes no lock
    (every other transaction begins IMMEDIATE, waiting for the write lock, and holds it to its end). The caller ends
    it (commit or rollback) before anything writes: a deferred transaction that turns into a writer can fail at once
    with "database is locked" instead of waiting. On PostgreSQL it changes nothing. A session already in a
    transaction stays in it."""
    if not session.in_transaction():
        session.connection(execution_options={_READ_ONLY: True})


class Turns:
    """A lock handed to its waiters in the order they came (a plain threading.Lock lets any waiter, or the thread
    that just released it, take it next)."""

    def __init__(self):
        self._mutex = threading.Lock()
        self._waiting: deque[threading.Lock] = deque()
        self._held = False

    def acquire(self, timeout: float) -> bool:
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            baton = threading.Lock()
            baton.acquire()
            self._waiting.append(baton)
        if baton.acquire(timeout=timeout):
            return True  # handed over by release(): the turn is ours, still held
        with self._mutex:
            try:
                self._waiting.remove(baton)
            except ValueError:
                return True  # release() handed it over just as the wait ran out
            return False

    def release(self) -> None:
        with self._mutex:
            if self._waiting:
                self._waiting.popleft().release()  # straight to the next in line: never free in between
            else:
                self._held = False


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
