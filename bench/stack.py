"""What a scenario runs, each as a real process: Redis, the fake Circle, a fresh Hookyard instance (migrated, with a
store, a token, a Circle connection and its rules), the web server as the Procfile starts it, and `hookyard worker`s.

A ``Stack`` is one run's worth: it owns a temporary folder (database, Redis data, logs) and a ``Processes`` stack,
and stops everything when it leaves its ``with`` block.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import requests
from procs import Processes, free_port, port_answers, wait_for

from hookyard import localredis

BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
API_KEY = "bench-admin-v2-key"
HIGH_RATE = "100000000/60"  # the decisions: end-to-end runs measure the engine, not Circle's or the token's budget


def postgres_url(cli_value: str | None) -> str | None:
    return cli_value or os.environ.get("HOOKYARD_BENCH_POSTGRES_URL") or None


class Stack:
    def __init__(self, name: str, database_url: str | None = None, env: dict | None = None):
        self.tmp = Path(tempfile.mkdtemp(prefix=f"hookyard-bench-{name}-"))
        self.procs = Processes(self.tmp)
        self.database_url = database_url
        self.extra_env = env or {}
        self.env: dict = {}
        self.fake_url = ""
        self.web_url = ""
        self.token = ""
        self.web = None
        self.workers: list[subprocess.Popen] = []
        self.redis = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.procs.stop_all()
        finally:
            if exc[0] is None or issubclass(exc[0], (KeyboardInterrupt, SystemExit)):
                shutil.rmtree(self.tmp, ignore_errors=True)  # kept after a failure: its logs say why

    # ------------------------------------------------------------------ parts

    def start_fake(self) -> str:
        port = free_port()
        self.procs.start(
            "fake-circle",
            [sys.executable, str(BENCH / "fake_circle_server.py"), "--port", str(port), "--api-key", API_KEY],
            env=dict(os.environ),
        )
        wait_for(
            lambda: port_answers(port), 20, "the fake Circle did not start:\n" + self.procs.log_tail("fake-circle")
        )
        self.fake_url = f"http://127.0.0.1:{port}"
        return self.fake_url

    def fake(self, what: str, **params) -> dict:
        answer = requests.request(
            "GET" if what == "calls" else "POST", f"{self.fake_url}/_bench/{what}", params=params, timeout=30
        )
        answer.raise_for_status()
        return answer.json()

    def start_redis(self) -> str:
        self.redis, url = localredis.start(self.tmp / "redis", persist=False)
        self.procs.adopt("redis", self.redis)
        return url

    def prepare_instance(self, rules: int = 1) -> None:
        """Redis, a migrated database (SQLite in the run's folder unless a URL was given), a store, a token, a Circle
        connection and ``rules`` invite_member rules for every product (product_id NULL: every purchase matches)."""
        redis_url = self.start_redis()
        database_url = self.database_url or f"sqlite:///{self.tmp / 'hookyard.db'}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKYARD_", "CIRCLE_"))}
        env.update(
            PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            SECRET_KEY="bench-secret-key",
            HOOKYARD_INSTANCE_PATH=str(self.tmp / "instance"),
            HOOKYARD_BIND="127.0.0.1",
            CIRCLE_API_BASE_URL=f"{self.fake_url}/api/admin/v2",
            CIRCLE_RATE_LIMIT=HIGH_RATE,
            HOOKYARD_API_RATE_LIMIT=HIGH_RATE,
            HOOKYARD_BACKPRESSURE_MAX_DEPTH="10000000",  # web-only runs queue every run they accept
            HOOKYARD_LOG_CAP="10000000",  # every run stays in the log, so every outcome can be counted
        )
        env.update(self.extra_env)
        self.env = env
        upgrade = subprocess.run([str(BIN / "hookyard"), "db", "upgrade"], env=env, capture_output=True, text=True)
        if upgrade.returncode != 0:
            raise RuntimeError(f"hookyard db upgrade failed:\n{upgrade.stderr[-2000:]}")
        if database_url.startswith("postgres"):
            _empty_postgres(env)
        self._seed(rules)

    def _seed(self, rules: int) -> None:
        # The core's own functions, in this process, with the instance's settings: what the API would do.
        saved = dict(os.environ)
        os.environ.update(self.env)  # the Circle plugin reads its settings from the environment
        try:
            from hookyard import rules as rule_functions
            from hookyard.connections import create as create_integration
            from hookyard.runtime import build_runtime
            from hookyard.settings import Settings
            from hookyard.tokens import create_token, get_or_create_marketplace

            rt = build_runtime(Settings.from_env(env=self.env))
            with rt.db.session() as s:
                store = get_or_create_marketplace(s, "bench store")
                self.token = create_token(s, store, name="bench")
                integration = create_integration(
                    rt,
                    s,
                    store.id,
                    "circle",
                    "Community",
                    {"api_key": API_KEY, "community_url": "https://bench.circle.so"},
                )
                for _ in range(rules):
                    rule_functions.create(
                        rt,
                        s,
                        store.id,
                        {
                            "product_id": None,
                            "trigger": "samcart.product_purchased",
                            "integration_id": integration.id,
                            "action": "invite_member",
                            "params": {},
                        },
                    )
                s.commit()
                self.store_id, self.integration_id = store.id, integration.id
            rt.db.dispose()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def start_web(self, **env) -> str:
        """gunicorn exactly as the Procfile's web line starts it (settings from hookyard.gunicorn_conf)."""
        port = free_port()
        self.web = self.procs.start(
            "web",
            [str(BIN / "gunicorn"), "-c", "python:hookyard.gunicorn_conf"],
            env={**self.env, **env, "PORT": str(port)},
        )
        self.web_url = f"http://127.0.0.1:{port}"
        wait_for(self._ready, 60, "the web server did not become ready:\n" + self.procs.log_tail("web"), 0.1)
        return self.web_url

    def _ready(self) -> bool:
        self.procs.check_alive()
        try:
            return requests.get(f"{self.web_url}/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def start_workers(self, count: int, threads: int = 1, **env) -> None:
        """``count`` `hookyard worker` processes of ``threads`` workers each (HOOKYARD_WORKER_THREADS)."""
        from redis import Redis
        from rq import Worker

        for i in range(count):
            self.workers.append(
                self.procs.start(
                    f"worker-{i}",
                    [str(BIN / "hookyard"), "worker"],
                    env={**self.env, "HOOKYARD_WORKER_THREADS": str(threads), **env},
                )
            )
        connection = Redis.from_url(self.env["REDIS_URL"])

        def all_registered():
            self.procs.check_alive()
            return len(Worker.all(connection=connection)) >= count * threads

        wait_for(all_registered, 60, f"{count} x {threads} workers did not register", 0.1)

    def server_pids(self) -> dict[str, list[int]]:
        pids = {"web": [self.web.pid] if self.web else [], "workers": [w.pid for w in self.workers]}
        if self.redis is not None:
            pids["redis"] = [self.redis.pid]
        return pids

    def event_body(self, email: str = "buyer@example.com", product: str = "444") -> dict:
        return {
            "trigger": "samcart.product_purchased",
            "payload": {"customer": {"email": email}, "product": {"id": product}},
        }


def _empty_postgres(env: dict) -> None:
    """A given PostgreSQL database is reused across runs: empty its tables (after migrating) so each run starts
    fresh, as a new SQLite file does."""
    from sqlalchemy import create_engine, text

    from hookyard.settings import normalise_database_url

    engine = create_engine(normalise_database_url(env["DATABASE_URL"]))
    with engine.begin() as conn:
        tables = [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"
                )
            )
        ]
        if tables:
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
    engine.dispose()
