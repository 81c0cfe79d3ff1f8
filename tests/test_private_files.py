"""Secrets and files at rest: the generated key is created whole even when processes race for it, an empty key
is never accepted, and the instance folder, the key and SQLite's files are private to the user."""

from __future__ import annotations

import multiprocessing
import os
import stat

import pytest
from sqlalchemy import text

from hookyard.db import make_engine
from hookyard.settings import Settings


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _read_key(instance, barrier, results):
    barrier.wait()  # every process reaches for the key at the same moment
    try:
        results.put(Settings.from_env(env={"HOOKYARD_INSTANCE_PATH": str(instance)}).secret_key)
    except SystemExit as exc:
        results.put(f"exit: {exc}")


def test_processes_starting_together_all_read_the_same_whole_key(tmp_path):
    ctx = multiprocessing.get_context("fork")
    trials, racers, bad = 150, 3, []
    for trial in range(trials):
        instance = tmp_path / f"instance-{trial}"
        barrier, results = ctx.Barrier(racers), ctx.Queue()
        procs = [ctx.Process(target=_read_key, args=(instance, barrier, results)) for _ in range(racers)]
        for p in procs:
            p.start()
        keys = [results.get(timeout=30) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        if len(set(keys)) != 1 or len(keys[0]) < 40:
            bad.append(keys)
    assert bad == [], f"{len(bad)} of {trials} trials read different or short keys: {bad[:3]}"
    assert not [p for p in tmp_path.glob("*/.secret_key*")], "a temporary key file was left behind"


def test_an_empty_key_is_refused_never_used(tmp_path):
    (tmp_path / "secret_key").write_text("\n")
    with pytest.raises(SystemExit, match="secret_key is empty"):
        Settings.from_env(env={"HOOKYARD_INSTANCE_PATH": str(tmp_path)})
    with pytest.raises(SystemExit, match="SECRET_KEY is set but blank"):
        Settings.from_env(env={"HOOKYARD_INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "   "})


def test_the_instance_folder_key_and_database_are_private(tmp_path):
    instance = tmp_path / "instance"
    settings = Settings.from_env(env={"HOOKYARD_INSTANCE_PATH": str(instance)})
    assert settings.secret_key  # generated on first use, as the web app and worker use it
    engine = make_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x TEXT)"))
        conn.execute(text("INSERT INTO t VALUES ('ada@example.com')"))
        db = instance / "hookyard.db"
        assert (instance / "hookyard.db-wal").exists()
        modes = {p.name: _mode(p) for p in (instance, instance / "secret_key", db, instance / "hookyard.db-wal")}
    engine.dispose()
    assert modes == {"instance": 0o700, "secret_key": 0o600, "hookyard.db": 0o600, "hookyard.db-wal": 0o600}


def test_an_instance_left_readable_by_an_earlier_version_is_tightened(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir(mode=0o755)
    os.chmod(instance, 0o755)
    (instance / "secret_key").write_text("an-earlier-generated-key-that-is-long-enough-to-use")
    db = instance / "hookyard.db"
    db.touch()
    os.chmod(db, 0o644)
    settings = Settings.from_env(env={"HOOKYARD_INSTANCE_PATH": str(instance)})
    make_engine(settings.database_url).dispose()
    assert (_mode(instance), _mode(db)) == (0o700, 0o600)
    assert settings.secret_key == "an-earlier-generated-key-that-is-long-enough-to-use"


def test_a_database_folder_the_operator_chose_is_left_as_it_is(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    make_engine(f"sqlite:///{shared / 'hookyard.db'}").dispose()
    assert (_mode(shared), _mode(shared / "hookyard.db")) == (0o755, 0o600)
