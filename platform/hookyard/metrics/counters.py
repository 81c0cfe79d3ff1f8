"""What Hookyard counts as it works, for GET /metrics. Two kinds, by where the work happens:

- In Redis, under ``<HOOKYARD_QUEUE>:metrics:``: runs by outcome, retries, deferrals, events accepted, outbound calls
  and 429s per app. Workers on any number of machines (and the web processes) add to the same numbers, so /metrics
  on any web process reports them all (hookyard.metrics.collect reads them when scraped). One HINCRBY per thing
  counted (a worker sends a run's counts together as the run ends: ``batched``); a Redis failure loses that count
  (logged, at most every WARN_EVERY seconds) and never fails the work.
- In this process (prometheus_client Counters): deliveries received at the inbound URLs, counted by the web process
  that stored them. Under gunicorn they live in PROMETHEUS_MULTIPROC_DIR (hookyard.gunicorn_conf sets it), so
  /metrics on any web process of a host sums every process of that host, dead ones included; one host's numbers
  are its own, as Prometheus expects of a scraped instance.

Events are counted once the transaction that stores them commits: a delivery whose later event is refused rolls
back the ones before it (a savepoint), and they must not count.
"""

from __future__ import annotations

import contextvars
import logging
import math
import os
import time
from collections import Counter as Tally
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import event as orm_event
from sqlalchemy import inspect
from sqlalchemy.orm import Session

from ..runtime import Runtime

log = logging.getLogger(__name__)

# prometheus_client chose its value store (files in this folder, or memory) when it was imported; so does /metrics.
MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None

# The hashes in Redis (fields: outcomes, trigger keys, app keys).
RUNS = "runs"  # succeeded, skipped, failed (finished runs), retried (a retry scheduled), deferred
EVENTS = "events"
OUTBOUND_CALLS = "outbound_calls"
OUTBOUND_RATE_LIMITED = "outbound_rate_limited"
HASHES = (RUNS, EVENTS, OUTBOUND_CALLS, OUTBOUND_RATE_LIMITED)

WARN_EVERY = 300.0
# RuntimeError: REDIS_URL is unset (Runtime.redis). Any Redis error, not only an outage (e.g. an OOM refusal).
_FAILURES = (redis.exceptions.RedisError, RuntimeError)
_warned_at = -math.inf

# Per-process counters, in a registry of their own: /metrics builds its answer from it (or, in multiprocess mode, from
# the folder), never from prometheus_client's global registry and whatever else a library put there.
LOCAL = CollectorRegistry()
DELIVERIES = Counter(
    "hookyard_deliveries_received",
    "Deliveries stored at the inbound URLs (/hooks/<app>/<id>), rejected ones included, by this host's web processes.",
    ["app"],
    registry=LOCAL,
)


def key(rt: Runtime, name: str) -> str:
    # Scoped by the queue name like every other key of a deployment (leases, rate limits): two deployments (or test
    # processes) sharing one Redis count apart.
    return f"{rt.settings.queue_name}:metrics:{name}"


# A run's counts, gathered while its job works and sent together when it ends (``batched``): one round trip per run
# instead of one per thing counted. Per thread of execution: each of a worker's threads runs its own job.
_batch: contextvars.ContextVar["Batch | None"] = contextvars.ContextVar("hookyard_counts", default=None)


class Batch:
    """Counts to send in one pipeline, with whatever else the caller adds to it (``also``: a run's lease release)."""

    def __init__(self):
        self.counts: Tally = Tally()
        self.also: list = []  # callables given the pipeline


@contextmanager
def batched(rt: Runtime) -> Iterator[Batch]:
    """Within the block, this thread's counts are gathered, then sent in one pipeline as it ends (even by raising),
    after the commands queued in ``Batch.also``. Never raises: a failure loses the counts (logged) and what else
    was queued (a lease then lapses by its TTL)."""
    batch = Batch()
    token = _batch.set(batch)
    try:
        yield batch
    finally:
        _batch.reset(token)

        def write():
            pipe = rt.redis.pipeline(transaction=False)
            for queued in batch.also:
                queued(pipe)
            for (name, field), n in batch.counts.items():
                pipe.hincrby(key(rt, name), field, n)
            pipe.execute()

        if batch.counts or batch.also:
            _safely(write, ", ".join(f"{name}.{field}" for name, field in batch.counts) or "a run's end")


def add(rt: Runtime, name: str, field: str, n: int = 1) -> None:
    """Adds ``n`` to ``field`` of a hash (in the thread's batch, if one is open). Never raises."""
    if not n:
        return
    batch = _batch.get()
    if batch is not None:
        batch.counts[name, field] += n
        return
    _safely(lambda: rt.redis.hincrby(key(rt, name), field, n), f"{name}.{field}")


def run_finished(rt: Runtime, status: str) -> None:
    add(rt, RUNS, status)


def run_retried(rt: Runtime) -> None:
    add(rt, RUNS, "retried")


def run_deferred(rt: Runtime) -> None:
    add(rt, RUNS, "deferred")


def outbound(rt: Runtime, app_key: str, calls: int, rate_limited: int) -> None:
    """Calls an app's plugin reported to its remote (``count_calls``), and how many of them were answered 429."""
    if not calls and not rate_limited:
        return
    if _batch.get() is not None:
        add(rt, OUTBOUND_CALLS, app_key, calls)
        add(rt, OUTBOUND_RATE_LIMITED, app_key, rate_limited)
        return

    def write():
        pipe = rt.redis.pipeline(transaction=False)
        if calls:
            pipe.hincrby(key(rt, OUTBOUND_CALLS), app_key, calls)
        if rate_limited:
            pipe.hincrby(key(rt, OUTBOUND_RATE_LIMITED), app_key, rate_limited)
        pipe.execute()

    _safely(write, f"outbound calls of {app_key}")


def delivery_received(app_key: str) -> None:
    DELIVERIES.labels(app=app_key).inc()


def event_accepted(rt: Runtime, session: Session, event) -> None:
    """Counts a new event when the session's transaction commits (see the module's docstring)."""
    session.info.setdefault(_PENDING, []).append((rt, event))


_PENDING = "hookyard.metrics.events"


@orm_event.listens_for(Session, "after_commit")
def _count_committed_events(session: Session) -> None:
    # SQLAlchemy calls this for a savepoint's release too, while the savepoint is still the session's innermost
    # transaction: only the outermost commit stores anything.
    if _PENDING not in session.info or session.get_nested_transaction() is not None:
        return
    pending = session.info.pop(_PENDING)
    # An event added in a savepoint that was rolled back went back to transient, without an identity.
    stored = [(rt, event) for rt, event in pending if inspect(event).has_identity]
    if not stored:
        return
    rt = stored[0][0]
    by_trigger = Tally(event.trigger for _, event in stored)

    def write():
        pipe = rt.redis.pipeline(transaction=False)
        for trigger, n in by_trigger.items():
            pipe.hincrby(key(rt, EVENTS), trigger, n)
        pipe.execute()

    _safely(write, "events accepted")


@orm_event.listens_for(Session, "after_transaction_end")
def _forget_uncommitted_events(session: Session, transaction) -> None:
    # The outermost transaction ended without the commit above (a rollback, or a session closed without one).
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


def count_accepted(rt: Runtime, pipe, trigger: str) -> None:
    """Counts an event already committed, in the caller's pipeline (POST /events: with its runs' jobs)."""
    pipe.hincrby(key(rt, EVENTS), trigger, 1)


def _safely(write, what: str) -> None:
    try:
        write()
    except _FAILURES as exc:
        lost(what, exc)


def lost(what: str, exc: BaseException) -> None:
    """Logs that a count was lost, at most every WARN_EVERY seconds."""
    global _warned_at
    now = time.monotonic()
    if now - _warned_at >= WARN_EVERY:
        _warned_at = now
        log.warning(
            "metrics: could not count %s: Redis unreachable or refusing (%s); the counters are short by it "
            "(said at most every %.0f s)",
            what,
            exc.__class__.__name__,
            WARN_EVERY,
        )
