"""The migrations build exactly the schema the models describe, on every database the suite runs on, and
upgrade existing databases without losing a row."""

import json
import os
from datetime import datetime, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, text

from hookyard.db import make_engine
from hookyard.migrate import upgrade
from hookyard.models import Base

from .conftest import POSTGRES_URL


def test_models_and_migrations_agree(runtime):
    with runtime.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], "the models changed without a migration: add one under platform/hookyard/migrations"


def _scratch_database(backend, tmp_path):
    """A database of its own for a migration test: a file on SQLite, a new database on PostgreSQL."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from hookyard.settings import normalise_database_url

    base = make_url(normalise_database_url(POSTGRES_URL))
    name = f"hookyard_migration_{os.getpid()}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


@pytest.fixture(params=["sqlite"] + (["postgres"] if POSTGRES_URL else []))
def scratch_database(request, tmp_path):
    yield from _scratch_database(request.param, tmp_path)


def test_upgrading_keeps_every_row_and_never_hands_out_an_id_still_referenced(scratch_database):
    """A database from before 0004, in the state SQLite's id reuse left: an entry naming a deleted rule (9,
    above every rule left) and one naming another store's product. Rebuilding the tables must not cascade into
    the runs, the next rule must get an id above 9, and nothing of store B's may be copied into A's entries."""
    url = scratch_database
    upgrade(url, "0003")
    engine = make_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    t = meta.tables
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(
            t["marketplaces"].insert(),
            [
                dict(id=1, name="a", log_seq=2, log_floor=0, created_at=now),
                dict(id=2, name="b", log_seq=0, log_floor=0, created_at=now),
            ],
        )
        conn.execute(
            t["integrations"].insert(),
            [
                dict(
                    id=1,
                    marketplace_id=1,
                    app="recorder",
                    name="Circle",
                    config={},
                    info={},
                    options={},
                    status="connected",
                    created_at=now,
                    updated_at=now,
                )
            ],
        )
        conn.execute(
            t["products"].insert(),
            [
                dict(id=1, marketplace_id=1, external_id="555", name="Alpha", auto_created=False, created_at=now),
                dict(id=2, marketplace_id=2, external_id="556", name="Zebra", auto_created=False, created_at=now),
            ],
        )
        conn.execute(
            t["rules"].insert(),
            [
                dict(
                    id=1,
                    marketplace_id=1,
                    trigger="samcart.product_purchased",
                    integration_id=1,
                    action="record",
                    params={"channel": "vip"},
                    enabled=True,
                    created_at=now,
                    updated_at=now,
                )
            ],
        )
        conn.execute(
            t["events"].insert(),
            [
                dict(
                    id=1,
                    marketplace_id=1,
                    trigger="samcart.product_purchased",
                    duplicates=0,
                    product_id=1,
                    payload={},
                    raw_payload={},
                    occurred_at=now,
                    received_at=now,
                    matched_rules=2,
                )
            ],
        )
        run = dict(
            marketplace_id=1,
            event_id=1,
            trigger="samcart.product_purchased",
            app="recorder",
            action="record",
            status="failed",
            attempts=1,
            dispatches=1,
            history=[],
            created_at=now,
        )
        conn.execute(
            t["runs"].insert(),
            [
                dict(run, id=1, rule_id=9, log_seq=1, integration_id=1, product_id=1, job_id="a"),
                dict(run, id=2, rule_id=1, log_seq=2, integration_id=1, product_id=2, job_id="b"),
            ],
        )
    engine.dispose()

    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM runs")).scalar() == 2
            assert conn.execute(text("SELECT COUNT(*) FROM events")).scalar() == 1
            rule_id = conn.execute(
                text(
                    "INSERT INTO rules (marketplace_id, trigger, integration_id, action, params, enabled, created_at,"
                    " updated_at) VALUES (2, 't', NULL, 'record', '{}', true, :now, :now) RETURNING id"
                ),
                {"now": now},
            ).scalar()
            product_id = conn.execute(
                text(
                    "INSERT INTO products (marketplace_id, external_id, name, auto_created, created_at)"
                    " VALUES (2, '557', 'New', false, :now) RETURNING id"
                ),
                {"now": now},
            ).scalar()
            rows = {r.id: r for r in conn.execute(text("SELECT id, product_name, ran FROM runs")).all()}
    finally:
        engine.dispose()
    assert rule_id > 9 and product_id > 2
    ran = {i: json.loads(r.ran) if isinstance(r.ran, str) else r.ran for i, r in rows.items()}
    assert (rows[1].product_name, ran[1]["product_name"], ran[1]["integration_name"]) == ("Alpha", "Alpha", "Circle")
    assert ran[1]["params"] == {}  # its rule is gone
    assert (rows[2].product_name, ran[2]["product_name"]) == (None, None)  # store B's product is not copied
    assert ran[2]["params"] == {"channel": "vip"}


def test_no_table_reuses_ids(runtime):
    """SQLite reuses the highest id after a delete unless a table is AUTOINCREMENT; PostgreSQL's serial
    sequences never go back. Every migrated table must be one or the other."""
    with runtime.db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            tables = dict(conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")).all())
            plain = [t.name for t in Base.metadata.sorted_tables if "AUTOINCREMENT" not in tables[t.name]]
        else:
            plain = [
                t.name
                for t in Base.metadata.sorted_tables
                if not conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": t.name}).scalar()
            ]
    assert plain == [], f"these tables would hand a deleted row's id to the next row: {plain}"


def test_0008_app_usage_downgrades_and_upgrades_again(scratch_database):
    """0008 only adds app_usage: down to 0007 drops it and keeps the rest; up again brings it back, empty."""
    from alembic import command

    from hookyard.migrate import alembic_config

    url = scratch_database
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO app_usage (app, scope, period, calls) VALUES ('circle', '1', '2026-12', 3)"))
        command.downgrade(alembic_config(url), "0007")
        meta = MetaData()
        meta.reflect(engine)
        assert "app_usage" not in meta.tables and "integrations" in meta.tables
        upgrade(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM app_usage")).scalar() == 0
    finally:
        engine.dispose()


def test_the_release_step_run_twice_at_once_and_again_after_leaves_one_current_schema(scratch_database, tmp_path):
    """The Procfile's release (`hookyard db upgrade`) may run concurrently (two deploys) and again: every run ends
    well, and the schema is migrated once (PostgreSQL: an advisory lock; SQLite: BEGIN IMMEDIATE)."""
    import subprocess
    import sys
    from pathlib import Path

    from alembic.script import ScriptDirectory

    from hookyard.migrate import alembic_config, current_heads

    hookyard = Path(sys.executable).parent / "hookyard"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKYARD_")}
    env.update(DATABASE_URL=scratch_database, SECRET_KEY="release-test", HOOKYARD_INSTANCE_PATH=str(tmp_path))
    both = [
        subprocess.Popen(
            [hookyard, "db", "upgrade"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in both]
    again = subprocess.run([hookyard, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120)
    for code, out, err in [*results, (again.returncode, again.stdout, again.stderr)]:
        assert code == 0 and "database is at the latest schema" in out, (code, out, err)
    heads = set(ScriptDirectory.from_config(alembic_config(scratch_database)).get_heads())
    assert set(current_heads(scratch_database)) == heads
