"""A process that cannot reach a service it needs at start says so in one line, naming the service, where it looked
(the password hidden) and the variable; and REDIS_URL's TLS options, for a managed Redis (Heroku's is rediss:// with
a self-signed certificate)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from redis.connection import SSLConnection

from hookyard.localredis import free_port
from hookyard.runtime import connect_redis
from hookyard.settings import Settings

HOOKYARD = Path(sys.executable).parent / "hookyard"


def _hookyard(tmp_path, *args, **env) -> subprocess.CompletedProcess:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith("HOOKYARD_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    base.update(SECRET_KEY="startup-test", HOOKYARD_INSTANCE_PATH=str(tmp_path), **env)
    return subprocess.run([HOOKYARD, *args], env=base, capture_output=True, text=True, timeout=60)


def test_a_worker_that_cannot_reach_redis_names_it_in_one_line(tmp_path):
    assert _hookyard(tmp_path, "db", "upgrade").returncode == 0
    port = free_port()
    result = _hookyard(tmp_path, "worker", REDIS_URL=f"redis://:hunter2@127.0.0.1:{port}/0")
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: cannot reach Redis at redis://:***@127.0.0.1:{port}/0 (REDIS_URL): ")
    assert result.stderr.count("\n") == 1 and "hunter2" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [("db", "upgrade"), ("worker",)])
def test_the_release_step_and_the_worker_name_an_unreachable_database_in_one_line(tmp_path, command):
    port = free_port()  # nothing listens on it once closed
    url = f"postgresql://app:hunter2@127.0.0.1:{port}/hookyard"
    result = _hookyard(tmp_path, *command, DATABASE_URL=url, REDIS_URL="redis://127.0.0.1:1/0")
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"Error: cannot reach the database at postgresql+psycopg://app:***@127.0.0.1:{port}/hookyard (DATABASE_URL): "
    ), result.stderr
    assert result.stderr.count("\n") == 1 and "hunter2" not in result.stderr


def test_tls_redis_takes_the_certificate_options(tmp_path):
    env = {"HOOKYARD_INSTANCE_PATH": str(tmp_path), "REDIS_URL": "rediss://:pw@redis.example:6380/0"}
    default = connect_redis(Settings.from_env(env=env))
    assert default.connection_pool.connection_class is SSLConnection
    assert default.connection_pool.connection_kwargs["ssl_cert_reqs"] == "required"
    heroku = connect_redis(Settings.from_env(env={**env, "HOOKYARD_REDIS_SSL_CERT_REQS": "none"}))
    assert heroku.connection_pool.connection_kwargs["ssl_cert_reqs"] == "none"
    with pytest.raises(SystemExit, match="HOOKYARD_REDIS_SSL_CERT_REQS must be one of required, optional, none"):
        Settings.from_env(env={**env, "HOOKYARD_REDIS_SSL_CERT_REQS": "maybe"})


def test_settings_never_show_a_urls_password(tmp_path):
    shown = repr(
        Settings.from_env(
            env={
                "HOOKYARD_INSTANCE_PATH": str(tmp_path),
                "DATABASE_URL": "postgres://app:hunter2@db.example/hy",
                "REDIS_URL": "rediss://:hunter3@redis.example:6380/0",
                "HOOKYARD_METRICS_TOKEN": "hunter4",
            }
        )
    )
    assert "hunter" not in shown and "app:***@db.example" in shown and ":***@redis.example" in shown


def test_the_pool_size_comes_from_the_environment(tmp_path):
    from hookyard.runtime import build_runtime

    env = {"HOOKYARD_INSTANCE_PATH": str(tmp_path), "DATABASE_URL": "postgresql://u@127.0.0.1:1/x"}
    rt = build_runtime(
        Settings.from_env(env={**env, "HOOKYARD_DB_POOL_SIZE": "12", "HOOKYARD_DB_MAX_OVERFLOW": "0"}),
        registry=object(),
    )
    assert (rt.db.engine.pool.size(), rt.db.engine.pool._max_overflow) == (12, 0)
    with pytest.raises(SystemExit, match="HOOKYARD_DB_POOL_SIZE must be at least 1"):
        Settings.from_env(env={**env, "HOOKYARD_DB_POOL_SIZE": "0"})


def test_the_web_process_names_an_unreachable_redis_in_one_line_and_serves(start_web, tmp_path):
    port = free_port()
    url = start_web(REDIS_URL=f"redis://:hunter2@127.0.0.1:{port}/0")
    ready = requests.get(url + "/readyz", timeout=10)
    assert ready.status_code == 503 and ready.json()["checks"]["redis"].startswith("unreachable")
    assert requests.get(url + "/healthz", timeout=10).status_code == 200  # alive: the platform must not restart it
    _, log_path = start_web.procs[0]
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    said = [line["message"] for line in lines if "cannot reach" in line["message"]]
    assert len(said) == 1, said  # once, by the arbiter, not by each of its workers
    assert said[0].startswith(f"cannot reach Redis at redis://:***@127.0.0.1:{port}/0 (REDIS_URL): ")
    assert said[0].endswith("; serving, /readyz answers 503 until it does")
    assert "hunter2" not in log_path.read_text() and "Traceback" not in log_path.read_text()
