"""POST /events keeps SQLite's write lock for its inserts only: the look-ups read in a transaction that takes no lock,
the writers of one process take turns on a lock of their own, and whatever changed between the look-ups and the
write is caught by the constraints."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import event, func, select, text

from hookyard import db as hookyard_db
from hookyard import emit as emit_module
from hookyard.db import Database, reading
from hookyard.models import Event

from .conftest import purchase
from .waiting import wait_for

PURCHASE = "samcart.product_purchased"


@pytest.fixture
def sqlite_db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'turns.db'}")
    with database.engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    yield database
    database.dispose()


def test_a_reading_transaction_takes_no_lock_and_a_writer_goes_on_meanwhile(sqlite_db, tmp_path):
    session = sqlite_db.sessions()
    reading(session)
    assert session.execute(text("SELECT count(*) FROM t")).scalar() == 0
    other = sqlite3.connect(tmp_path / "turns.db", timeout=0, isolation_level=None)  # never waits
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    other.execute("COMMIT")
    session.commit()
    # The session's next transaction writes, so it begins IMMEDIATE again: the other connection cannot write now.
    session.execute(text("INSERT INTO t VALUES (2)"))
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("BEGIN IMMEDIATE")
    session.commit()
    other.close()


def test_the_writers_of_one_process_take_turns_and_every_write_lands(sqlite_db):
    def write(n):
        for i in range(25):
            with sqlite_db.sessions() as session:
                session.execute(text("INSERT INTO t VALUES (:x)"), {"x": n * 100 + i})
                session.commit()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with sqlite_db.sessions() as session:
        assert session.execute(text("SELECT count(DISTINCT x) FROM t")).scalar() == 200


def test_a_second_writer_in_the_thread_that_holds_the_turn_fails_instead_of_hanging(sqlite_db, monkeypatch):
    monkeypatch.setattr(hookyard_db, "_TURN_TIMEOUT", 0.2)
    first, second = sqlite_db.sessions(), sqlite_db.sessions()
    first.execute(text("INSERT INTO t VALUES (1)"))  # holds the turn until it ends
    with pytest.raises(Exception, match="another thread of this process held the write lock for 0.2 s"):
        second.execute(text("INSERT INTO t VALUES (2)"))
    first.commit()
    second.rollback()
    second.execute(text("INSERT INTO t VALUES (3)"))  # the turn came back with the first session's connection
    second.commit()


def test_a_duplicate_stored_between_the_look_ups_and_the_write_is_answered_as_the_duplicate(
    setup, api, runtime, monkeypatch
):
    setup.rule(setup.integration())
    body = {"trigger": PURCHASE, "payload": purchase(email="race@example.com")}
    real_look_up = emit_module.look_up
    raced = []

    def look_up_then_lose_the_race(session, marketplace_id, prepared):
        found = real_look_up(session, marketplace_id, prepared)
        if not raced:
            raced.append(True)  # once: the other delivery, complete, between this one's look-ups and its write
            assert api.post("/api/v1/events", json=body, headers={"Idempotency-Key": "k-1"}).status_code == 202
        return found

    monkeypatch.setattr(emit_module, "look_up", look_up_then_lose_the_race)
    answer = api.post("/api/v1/events", json=body, headers={"Idempotency-Key": "k-1"})
    assert answer.status_code == 200 and answer.json["status"] == "duplicate", answer.json
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 1
        assert s.scalar(select(Event.duplicates)) == 1


def test_turns_are_handed_out_in_the_order_the_writers_came_and_a_wait_can_run_out():
    turns = hookyard_db.Turns()
    assert turns.acquire(timeout=1)
    order = []

    def writer(name):
        assert turns.acquire(timeout=10)
        order.append(name)
        turns.release()

    threads = []
    for name in ("first", "second", "third"):
        threads.append(threading.Thread(target=writer, args=(name,)))
        threads[-1].start()
        wait_for(lambda n=len(threads): len(turns._waiting) == n, timeout=10, message=f"{name} did not queue")
    assert not turns.acquire(timeout=0.05)  # a fourth gives up: nothing is handed to it later
    turns.release()
    for thread in threads:
        thread.join(timeout=10)
    assert order == ["first", "second", "third"]
    assert turns.acquire(timeout=0) is True  # free again, and not lost to the writer that gave up


def test_an_event_is_accepted_in_one_reading_transaction_then_one_write(setup, api, runtime):
    """The token's lookup begins the read that the event's look-ups go on with (POST /events is marked
    ``reads_first``); any other route ends that read before its handler runs."""
    setup.rule(setup.integration())
    begun = []

    def on_begin(conn):
        begun.append("read" if conn.get_execution_options().get(hookyard_db._READ_ONLY) else "write")

    event.listen(runtime.db.engine, "begin", on_begin)
    try:
        answer = api.post("/api/v1/events", json={"trigger": PURCHASE, "payload": purchase(email="one@example.com")})
        assert answer.status_code == 202, answer.json
        assert begun == ["read", "write"]
        begun.clear()
        assert api.post("/api/v1/products", json={"external_id": "77", "name": "Other"}).status_code == 201
        assert begun == ["read", "write"]  # the token's read, ended; then the handler's own transaction
        begun.clear()
        revoked = api.get("/api/v1/events", headers={"Authorization": "Bearer hy_not-a-token"})
        assert revoked.status_code == 401 and begun == ["read"]
    finally:
        event.remove(runtime.db.engine, "begin", on_begin)
