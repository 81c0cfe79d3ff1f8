"""Shared fixtures: a real Redis, a migrated database (SQLite, and PostgreSQL when one is given),
the test plugins installed as real distributions, the app, API clients and worker processes."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from redis import Redis
from sqlalchemy import text

from hookyard import localredis
from hookyard.app import create_app
from hookyard.localredis import free_port
from hookyard.migrate import upgrade
from hookyard.models import Base
from hookyard.plugins import load_registry
from hookyard.runtime import build_runtime
from hookyard.settings import Settings
from hookyard.testing import HookyardClient as ApiClient  # the client plugin authors get, used here too
from hookyard.tokens import create_token, get_or_create_marketplace

from .plugin_sites import install_into
from .processes import alive, descendants
from .recorder import Recorder
from .waiting import wait_for

pytest_plugins = ["tests.circle.fixtures", "tests.samcart.fixtures"]

ROOT = Path(__file__).resolve().parents[1]
TEST_PLUGINS = [ROOT / "tests" / "plugins" / "hookyard_recorder", ROOT / "examples" / "hookyard-hello"]
POSTGRES_URL = os.environ.get("HOOKYARD_TEST_POSTGRES_URL")


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory) -> Path:
    """The test app and the example third-party plugin, pip-installed as their own distributions into
    a directory that this process and every server or worker process it starts has on its path."""
    site = install_into(tmp_path_factory.mktemp("site"), *TEST_PLUGINS)
    sys.path.insert(0, str(site))
    yield site
    sys.path.remove(str(site))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    url = os.environ.get("HOOKYARD_TEST_REDIS_URL")
    if url:
        yield url
        return
    proc, url = localredis.start(tmp_path_factory.mktemp("redis"), persist=False)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def _database_params():
    return ["sqlite"] + (["postgres"] if POSTGRES_URL else [])


@pytest.fixture(scope="session", params=_database_params())
def database_url(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'hookyard.db'}"
    else:
        from hookyard.settings import normalise_database_url

        url = normalise_database_url(POSTGRES_URL)
    upgrade(url)
    return url


@pytest.fixture
def settings(database_url, redis_url, tmp_path) -> Settings:
    return Settings.from_env(
        env={"SECRET_KEY": "test-secret-key", "HOOKYARD_INSTANCE_PATH": str(tmp_path)},
        database_url=database_url,
        redis_url=redis_url,
        queue_name=f"hookyard-test-{os.getpid()}",
    )


@pytest.fixture
def runtime(settings, plugin_site):
    rt = build_runtime(settings, registry=load_registry(disabled=set()))
    _empty_database(rt)
    rt.redis.flushdb()
    yield rt
    rt.db.dispose()


def _empty_database(rt):
    with rt.db.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(text(f"DELETE FROM {table.name}"))


@pytest.fixture
def in_process(runtime):
    """Job functions (hookyard.jobs.run_rule) called in this process run against the test's runtime."""
    from hookyard import runtime as runtime_module

    runtime_module.install(runtime)
    yield
    runtime_module.install(None)


@pytest.fixture
def app(runtime):
    return create_app(runtime=runtime)


@pytest.fixture
def make_client(app, runtime):
    def make(marketplace="store-a"):
        with runtime.db.session() as session:
            mp = get_or_create_marketplace(session, marketplace)
            token = create_token(session, mp, "tests")
            session.commit()
            return ApiClient(app, token, mp.id)

    return make


@pytest.fixture
def api(make_client):
    return make_client("store-a")


@pytest.fixture
def recorder():
    rec = Recorder().start()
    yield rec
    rec.stop()


def worker_env(settings: Settings, plugin_site: Path, **extra) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        SECRET_KEY=settings.secret_key,
        HOOKYARD_QUEUE=settings.queue_name,
        HOOKYARD_INSTANCE_PATH=str(settings.instance_path),
        PYTHONPATH=os.pathsep.join([str(plugin_site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def start_worker(settings, plugin_site, runtime, tmp_path):
    """Starts real `hookyard worker` processes; each is stopped (and its log kept) after the test."""
    procs = []

    def start(**extra_env):
        log_path = tmp_path / f"worker-{len(procs)}.log"
        log = open(log_path, "wb")
        # Its own session, so a test can kill the worker together with the job it forked.
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "hookyard"), "worker"],
            env=worker_env(settings, plugin_site, **extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append((proc, log, log_path))
        # Ready when it has registered itself with RQ (in the Redis it was given).
        redis_conn = Redis.from_url(extra_env["REDIS_URL"]) if "REDIS_URL" in extra_env else runtime.redis
        wait_for(
            lambda: proc.poll() is not None or _worker_registered(redis_conn, proc.pid),
            timeout=30,
            message="the worker did not register with Redis",
        )
        assert proc.poll() is None, log_path.read_text()
        return proc

    start.procs = procs  # read by the failure report below
    yield start
    for proc, log, _ in procs:
        if proc.poll() is None:
            # Its RQ scheduler and any job it forked, found while the worker is still their parent: a SIGKILL to the
            # worker alone would leave its scheduler running for the rest of the session, re-taking the scheduler
            # locks of every later test's queues after their flushdb (RQ's heartbeat re-acquires expired locks).
            below = descendants(proc.pid)
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                for pid, cmdline in below.items():
                    if alive(pid) and _cmdline(pid) == cmdline:  # still that process, not a reused pid
                        os.kill(pid, signal.SIGKILL)
        log.close()


def procfile_web_command() -> list[str]:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return shlex.split(line.removeprefix("web:"))
    raise AssertionError("the Procfile has no web line")


@pytest.fixture
def start_web(settings, plugin_site, runtime, tmp_path):
    """start_web(**env): gunicorn as the Procfile starts it (its config module and hooks), on a free port, with the
    test's database and Redis (and the fake Circle's URL when the test has one); returns its base URL. Each process
    and its log are in ``start_web.procs`` as (process, log path)."""
    procs, logs = [], []

    def start(**extra):
        port = free_port()
        env = worker_env(settings, plugin_site, PORT=port, HOOKYARD_BIND="127.0.0.1", **extra)
        command = procfile_web_command()
        command[0] = str(Path(sys.executable).parent / command[0])
        log_path = tmp_path / f"web-{len(procs)}.log"
        log = open(log_path, "wb")
        logs.append(log)
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append((proc, log_path))
        url = f"http://127.0.0.1:{port}"

        def up():
            if proc.poll() is not None:
                return True
            try:
                return requests.get(url + "/healthz", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_for(up, timeout=60, message="gunicorn did not answer /healthz")
        assert proc.poll() is None, log_path.read_text()
        return url

    start.procs = procs
    yield start
    for (proc, _), log in zip(procs, logs):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def _cmdline(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None


def _worker_registered(redis_conn, pid: int) -> bool:
    from rq import Worker

    return any(w.pid == pid for w in Worker.all(connection=redis_conn))


def purchase(email="ada@example.com", product_id="1001", **extra) -> dict:
    return {
        "customer": {"email": email, "first_name": "Ada"},
        "product": {"id": product_id, "name": "Community"},
        **extra,
    }


class Setup:
    """Creates the objects a test needs through the API, failing loudly when the API refuses."""

    def __init__(self, api, recorder):
        self.api, self.recorder = api, recorder

    def integration(self, name="Recorder"):
        from .recorder import TOKEN

        r = self.api.post(
            "/api/v1/integrations",
            json={"app": "recorder", "name": name, "config": {"endpoint": self.recorder.url, "token": TOKEN}},
        )
        assert r.status_code == 201, r.json
        return r.json["id"]

    def product(self, external_id="1001", name="Community"):
        r = self.api.post("/api/v1/products", json={"external_id": external_id, "name": name})
        assert r.status_code == 201, r.json
        return r.json["id"]

    def rule(
        self,
        integration_id,
        product_id=None,
        trigger="samcart.product_purchased",
        channel="general",
        enabled=True,
        action="record",
        app_params=None,
    ):
        params = app_params if app_params is not None else {"channel": channel}
        r = self.api.post(
            "/api/v1/rules",
            json={
                "product_id": product_id,
                "trigger": trigger,
                "integration_id": integration_id,
                "action": action,
                "params": params,
                "enabled": enabled,
            },
        )
        assert r.status_code == 201, r.json
        return r.json["id"]

    def emit(self, payload, trigger="samcart.product_purchased", key=None, expect=202):
        headers = {"Idempotency-Key": key} if key else {}
        r = self.api.post("/api/v1/events", json={"trigger": trigger, "payload": payload}, headers=headers)
        assert r.status_code == expect, r.json
        return r.json


@pytest.fixture
def setup(api, recorder):
    return Setup(api, recorder)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    # Before teardown stops the workers: what they and Redis held when the test failed.
    if report.when == "call" and report.failed and "start_worker" in getattr(item, "funcargs", {}):
        from .diagnose import worker_state

        procs = getattr(item.funcargs["start_worker"], "procs", [])
        if procs and "runtime" in item.funcargs:
            report.sections.append(("worker state at the failure", worker_state(item.funcargs["runtime"], procs)))


def pytest_terminal_summary(terminalreporter):
    # One line, whatever else scrolled past: whether this run covered PostgreSQL, and how to make it.
    if POSTGRES_URL:
        terminalreporter.write_line("PostgreSQL suite: ran (HOOKYARD_TEST_POSTGRES_URL is set).")
    else:
        terminalreporter.write_line(
            "PostgreSQL suite: skipped; to run it too, set HOOKYARD_TEST_POSTGRES_URL="
            "postgresql://user@host:5432/dbname (a database the tests may fill; CI runs both)."
        )
