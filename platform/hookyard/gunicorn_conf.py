"""gunicorn's settings for the web process, from the environment: ``gunicorn -c python:hookyard.gunicorn_conf``
(the Procfile's ``web`` line, and so ``hookyard run``).

Threads, not one request per process: a request waiting on a slow remote (an app verifying its credentials) holds
one thread, and the other threads keep serving other stores and the health checks. gunicorn's ``gthread`` worker
is the maintained choice that needs no change to the app (an async worker would need every library to cooperate).
Such waits are bounded by the apps' own timeouts (e.g. CIRCLE_VERIFY_TIMEOUT), so that a slow remote can hold a
thread only for seconds, and long work (a refresh) runs in the RQ worker, not here.
"""

from __future__ import annotations

import os

from hookyard import logformat


def _whole(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SystemExit(f"{name} must be at least {minimum}, got {raw!r}")
    return value


wsgi_app = "hookyard.app:create_app()"
bind = [f"{os.environ.get('HOOKYARD_BIND') or '0.0.0.0'}:{_whole('PORT', 5000)}"]
worker_class = "gthread"
workers = _whole("WEB_CONCURRENCY", 2)
# Per process. Each thread may hold a database connection: with PostgreSQL, workers × threads (16 by default) must
# fit the database's connection limit, and SQLAlchemy's pool (5 + 10 overflow per process) bounds it too.
threads = _whole("HOOKYARD_WEB_THREADS", 8)
# Seconds a worker process may go silent before gunicorn restarts it. With gthread the heartbeat comes from the
# worker's event loop, so a slow request (it holds a thread, not the loop) no longer gets its worker killed: what
# bounds a request is the apps' own timeouts, which must stay well below this (CIRCLE_VERIFY_TIMEOUT: 10 s).
timeout = _whole("HOOKYARD_WEB_TIMEOUT", 30)
# Seconds a SIGTERMed worker may take to finish its requests in flight. 25 by default, so that gunicorn is done
# before a platform's SIGKILL (Heroku sends it 30 s after SIGTERM); the apps' timeouts keep each request shorter.
graceful_timeout = _whole("HOOKYARD_WEB_GRACEFUL_TIMEOUT", 25)
# Idle keep-alive connections wait in the worker's event loop, not in a thread.
keepalive = _whole("HOOKYARD_WEB_KEEPALIVE", 5, minimum=0)
# 0 lifts gunicorn's 4094-byte request line limit (to gunicorn's own 1 MiB cap), so a long URL reaches the app and
# is answered in the API's JSON error shape instead of gunicorn's text/html 414.
limit_request_line = 0
accesslog = "-"
# Inbound URLs (/hooks/<app>/<id>) are credentials: their ids are masked in the access log. The error and access logs
# are written in HOOKYARD_LOG_FORMAT (JSON lines by default, with each request's X-Request-ID), read here first so
# that a malformed value stops gunicorn with one line before it starts anything.
logger_class = "hookyard.access_log.MaskingLogger"
logformat.chosen()


# GET /metrics (hookyard.metrics): prometheus_client's multiprocess mode. Each worker process keeps its counters in
# files under PROMETHEUS_MULTIPROC_DIR, and /metrics on any of them sums them all, dead processes' included. Set in
# the arbiter before it forks its workers (never when this module is imported: tests import it), so that every
# worker has it before it imports prometheus_client. Unset: a private folder of this server's own, removed when it
# exits. Set by the operator: that folder, emptied at start (an earlier run's files would add to this run's counts).
# With --preload the app is loaded before these hooks run: set PROMETHEUS_MULTIPROC_DIR yourself then.
_metrics_folders_made: list[str] = []


def on_starting(server):
    import tempfile
    from pathlib import Path

    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        folder = tempfile.mkdtemp(prefix="hookyard-metrics-")  # mode 0700
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        _metrics_folders_made.append(folder)
    Path(folder).mkdir(parents=True, exist_ok=True)
    for stale in Path(folder).glob("*.db"):
        stale.unlink()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # its counters stay counted; only live gauges would go


def on_exit(server):
    import shutil

    for folder in _metrics_folders_made:
        shutil.rmtree(folder, ignore_errors=True)


def when_ready(server):
    # A database or Redis that does not answer at start: one line each, naming it and its variable (as `hookyard
    # worker` and the release step say it), logged once by the arbiter; the web process serves anyway and /readyz
    # answers 503 until it answers (hookyard.startup). The embedded SQLite file is not checked: opening a missing one
    # would create it, and the app says what to run instead.
    from hookyard import startup
    from hookyard.db import Database
    from hookyard.runtime import Runtime
    from hookyard.settings import Settings

    try:
        settings = Settings.from_env()
    except (Exception, SystemExit):
        return  # the app, loading in each worker, says what is wrong with the settings
    db = Database(settings.database_url, pool_size=1, max_overflow=0)
    try:
        rt = Runtime(settings=settings, db=db, registry=None)
        checks = [startup.check_redis] if settings.database_url.startswith("sqlite") else None
        for problem in startup.unreachable(rt, checks):
            server.log.warning("%s; serving, /readyz answers 503 until it does", problem)
    finally:
        db.dispose()
