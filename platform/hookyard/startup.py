"""What a process checks before it starts: that the services it needs answer. One that does not is one line naming
the service, where the process looked for it (the URL, its password hidden) and the variable that says so, never a
traceback: on a platform (Heroku) that line is what the operator reads in the release or dyno log.

Only at start: a worker that is running outlives a Redis outage (hookyard.worker), and the web process answers 503
while the database is down, rather than either of them exiting. The web process does not exit at start either (a
platform would restart it in a loop, and its health check is what a load balancer reads): it logs the same line once,
from gunicorn's arbiter (``unreachable``), and serves, /readyz answering 503 until the service answers.
"""

from __future__ import annotations

import os

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .jobqueue import REDIS_ERRORS
from .runtime import Runtime
from .settings import without_password


class ServiceUnreachable(RuntimeError):
    """A service a process needs did not answer at start; the message says which, where and why."""


def database_unreachable(url: str, exc: BaseException) -> ServiceUnreachable:
    where = without_password(url)
    variable = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "DATABASE_URL is unset: the instance's SQLite file"
    reason = getattr(exc, "orig", None) or exc
    return ServiceUnreachable(f"cannot reach the database at {where} ({variable}): {_one_line(reason)}")


def check_database(rt: Runtime) -> None:
    try:
        with rt.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise database_unreachable(rt.settings.database_url, exc) from None


def check_redis(rt: Runtime) -> None:
    if not rt.settings.redis_url:
        raise ServiceUnreachable("REDIS_URL is not set: point it at a Redis server (`make run` starts a local one)")
    try:
        rt.redis.ping()
    except REDIS_ERRORS as exc:
        tls = " (TLS: see HOOKYARD_REDIS_SSL_CERT_REQS)" if rt.settings.redis_url.startswith("rediss://") else ""
        raise ServiceUnreachable(
            f"cannot reach Redis at {without_password(rt.settings.redis_url)} (REDIS_URL){tls}: {_one_line(exc)}"
        ) from None


def unreachable(rt: Runtime, checks=None) -> list[str]:
    """What the checks (``check_database`` and ``check_redis`` unless told) refuse, as their one-line messages."""
    problems = []
    for check in checks or (check_database, check_redis):
        try:
            check(rt)
        except ServiceUnreachable as exc:
            problems.append(str(exc))
    return problems


def _one_line(reason: object) -> str:
    return " ".join(str(reason).split()) or reason.__class__.__name__
