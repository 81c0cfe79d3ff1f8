"""Metered remotes (contract.Usage): the calls an app's remote counts against its quota, per scope (the remote's
account, e.g. a Circle community) and UTC calendar month, and the warnings near and over the quota.

The core wraps each call into a plugin that may talk to its remote (an action run, a verify, a refresh) in
``metered``: the plugin reports its calls with ``contract.count_calls()``, and they are written once, at the end,
in a short transaction of their own (one atomic upsert, so concurrent workers and web requests never lose a count);
a run's are written in its outcome's transaction instead (``pending``, then ``write``, in a savepoint). Counting
never fails what it counts: a database error is logged and the calls are lost from the count.

Callers must not hold a transaction open on the same database when a metered block ends: on SQLite every
transaction takes the write lock (BEGIN IMMEDIATE), and the count's own transaction would wait for it.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Iterator, Mapping

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from . import contract
from .contract import App
from .metrics import counters
from .models import AppUsage, utcnow
from .runtime import Runtime

log = logging.getLogger(__name__)

NEAR = 0.8  # share of the quota from which the connection warns that it is near
QUOTA_NEAR, QUOTA_EXCEEDED = "quota_near", "quota_exceeded"


@dataclass
class Meter:
    """The calls reported during one metered block. ``info`` may be set by the caller once a verify has returned, so
    the calls count for the account the new info names (a key of another community), not the old one."""

    calls: int = 0
    info: Mapping[str, Any] | None = field(default=None)
    rate_limited: int = 0  # of those calls, the ones answered 429 (for GET /metrics)

    def add(self, n: int, status: int | None = None) -> None:
        self.calls += n
        if status == 429:
            self.rate_limited += n


def now(rt: Runtime) -> datetime:
    """Now, as the runtime tells it (tests set ``rt.clock`` to cross a month without waiting for one)."""
    clock = getattr(rt, "clock", None)
    return clock() if clock else utcnow()


def period(moment: datetime) -> str:
    """The UTC calendar month of a moment: "2026-12"."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)  # naive: taken as UTC
    return aware.astimezone(timezone.utc).strftime("%Y-%m")


def scope_of(app: App, info: Mapping[str, Any] | None) -> str | None:
    """The account the app's remote counts calls for, as a string (ids of any type compare as text)."""
    if app.usage is None or not info:
        return None
    try:
        found = app.usage.scope(info)
    except Exception:  # a plugin bug: nothing is counted, the log says why
        log.exception("app %s: its usage scope raised", app.key)
        return None
    return None if found in (None, "") else str(found)


@dataclass(frozen=True)
class Count:
    """Calls to add to a month's count, once the caller's transaction can take them (``write``)."""

    app_key: str
    scope: str | None
    calls: int
    month: str


@contextmanager
def metered(
    rt: Runtime, app: App, info: Mapping[str, Any] | None = None, pending: list[Count] | None = None
) -> Iterator[Meter]:
    """Counts what the plugin reports inside the block, for the scope of ``meter.info`` (when the caller set it)
    else of ``info``, and records it when the block ends, even when it raised. Nests: an inner block's calls are
    recorded by the inner block only. With ``pending``, the count is added to that list instead, for the caller to
    ``write`` in the transaction it commits next (a run's outcome: one transaction fewer per run)."""
    meter = Meter()
    token = contract._meter.set(meter)
    try:
        yield meter
    finally:
        contract._meter.reset(token)
        # Every app's reported calls count for the operator's metrics (Redis), metered remote or not.
        counters.outbound(rt, app.key, meter.calls, meter.rate_limited)
        if meter.calls and app.usage is not None:
            scope = scope_of(app, meter.info if meter.info is not None else info)
            if pending is None:
                record(rt, app.key, scope, meter.calls)
            else:
                pending.append(Count(app.key, scope, meter.calls, period(now(rt))))


def write(session: Session, pending: list[Count]) -> None:
    """Adds the pending counts in the session's transaction, which the caller commits. Each in a savepoint, so that a
    count that cannot be written still fails nothing: its calls are lost from the count, and the log says so."""
    for count in pending:
        if count.scope is None:
            _unscoped(count.app_key, count.calls)
            continue
        try:
            # The connection's savepoint, not the session's: no flush, a third of the CPU.
            connection = session.connection()
            with connection.begin_nested():
                connection.execute(*_upsert(session, count.app_key, count.scope, count.month, count.calls))
        except Exception:
            _lost(count.app_key, count.calls, count.scope)
    pending.clear()


def record(rt: Runtime, app_key: str, scope: str | None, calls: int) -> None:
    """Adds ``calls`` to this month's count of (app, scope), in one statement of its own transaction. Never raises."""
    if not calls:
        return
    if scope is None:
        _unscoped(app_key, calls)
        return
    try:
        with rt.db.session() as session:
            session.execute(*_upsert(session, app_key, scope, period(now(rt)), calls))
            session.commit()
    except Exception:
        _lost(app_key, calls, scope)


def _unscoped(app_key: str, calls: int) -> None:
    # E.g. a key the remote refused while connecting: it names no account the count could belong to.
    log.info("app %s: %d call(s) counted by the remote were made for no known account; not recorded", app_key, calls)


def _lost(app_key: str, calls: int, scope: str) -> None:
    log.exception("app %s: could not record %d call(s) for %s; the count is short by that much", app_key, calls, scope)


def _upsert(session: Session, app_key: str, scope: str, month: str, calls: int):
    """INSERT … ON CONFLICT (app, scope, period) DO UPDATE SET calls = calls + excluded.calls: atomic on both
    backends, so two workers counting at once both land. Returns (statement, parameters)."""
    return _upsert_statement(session.get_bind().dialect.name), dict(app=app_key, scope=scope, period=month, calls=calls)


@lru_cache(maxsize=None)
def _upsert_statement(dialect_name: str):
    # One per backend, built once: building the statement costs more CPU than running it (every run counts).
    dialect = sqlite if dialect_name == "sqlite" else postgresql
    table = AppUsage.__table__
    insert = dialect.insert(table).values({c: bindparam(c) for c in ("app", "scope", "period", "calls")})
    return insert.on_conflict_do_update(
        index_elements=[table.c.app, table.c.scope, table.c.period],
        set_={"calls": table.c.calls + insert.excluded.calls},
    )


def calls(session: Session, app_key: str, scope: str, month: str) -> int:
    return (
        session.scalar(
            select(AppUsage.calls).where(AppUsage.app == app_key, AppUsage.scope == scope, AppUsage.period == month)
        )
        or 0
    )


def summary(
    rt: Runtime, session: Session, app: App | None, config: Mapping[str, Any], info: Mapping[str, Any] | None
) -> dict | None:
    """This month's usage of a connection: {label, period, calls, quota, scope, plan}; None for an app whose remote
    is not metered. ``quota`` is None when the plan has none to warn about; ``scope`` None before a check named the
    account (nothing is counted then)."""
    if app is None or app.usage is None:
        return None
    scope, month = scope_of(app, info), period(now(rt))
    return {
        "label": app.usage.label,
        "period": month,
        "scope": scope,
        "calls": calls(session, app.key, scope, month) if scope is not None else 0,
        "quota": _declared(app, "quota", config),
        "plan": _declared(app, "plan", config),
    }


def _declared(app: App, name: str, config: Mapping[str, Any]):
    try:
        return getattr(app.usage, name)(config)
    except Exception:  # a plugin bug must not break a page: shown as unknown, the log says why
        log.exception("app %s: its usage %s raised", app.key, name)
        return None


def warnings(used: dict | None) -> list[dict]:
    """quota_near from 80% of the quota, quota_exceeded from 100%, as {code, message}."""
    if not used or not used.get("quota"):
        return []
    count, quota, label = used["calls"], used["quota"], used["label"]
    plan = f" of the {used['plan']} plan" if used.get("plan") else ""
    month = datetime.strptime(used["period"], "%Y-%m").strftime("%B %Y")
    if count >= quota:
        return [
            {
                "code": QUOTA_EXCEEDED,
                "message": f"{count:,} of {quota:,} {label} used in {month} (UTC): the monthly quota{plan} is "
                "used up, and the remote may refuse further calls until the month ends. Check the plan "
                "chosen on this connection, or upgrade it.",
            }
        ]
    if count >= NEAR * quota:
        return [
            {
                "code": QUOTA_NEAR,
                "message": f"{count:,} of {quota:,} {label} used in {month} (UTC), {count / quota:.0%} of the "
                f"monthly quota{plan}. The count starts again on the 1st (UTC).",
            }
        ]
    return []
