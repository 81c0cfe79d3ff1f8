"""What GET /metrics reads when it is scraped: the counters workers keep in Redis (hookyard.metrics.counters), the
queues' depth and age, runs by status and the quotas used this month (the database). Read at scrape time rather
than counted by the process that serves /metrics, so that its answer is the deployment's whatever the number of
worker processes or machines.

A source that cannot be read (Redis down, the database unreachable) does not fail the scrape: its metrics are left
out and ``hookyard_scrape_error{source}`` says 1, so an alert can tell "no data" from "zero".
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import func, select

from .. import usage
from ..backpressure import shard_states
from ..models import AppUsage, Integration, Run
from ..runtime import Runtime
from . import counters

log = logging.getLogger(__name__)

RUN_STATUSES = ("queued", "running", "succeeded", "skipped", "failed")  # models.Run.status
FINISHED = ("succeeded", "skipped", "failed")


class Scrape:
    """A prometheus_client collector (``collect()``) over one runtime's Redis and database."""

    def __init__(self, rt: Runtime):
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        failed = {}
        for source, read in (("redis", self._redis), ("database", self._database)):
            try:
                metrics = list(read())  # all of a source or none of it: never half a family
            except Exception as exc:  # noqa: BLE001 (whatever the failure, the rest of the answer still goes out)
                log.warning("metrics: could not read %s (%s: %s)", source, exc.__class__.__name__, exc)
                failed[source] = 1
                continue
            yield from metrics
        error = GaugeMetricFamily(
            "hookyard_scrape_error",
            "1 when this scrape could not read the source (its metrics are missing from this answer), else 0.",
            labels=["source"],
        )
        for source in ("redis", "database"):
            error.add_metric([source], failed.get(source, 0))
        yield error

    # --- Redis: the counters and the queues ---------------------------------------------------------------------

    def _redis(self) -> Iterator[Metric]:
        rt = self.rt
        pipe = rt.redis.pipeline(transaction=False)
        for name in counters.HASHES:
            pipe.hgetall(counters.key(rt, name))
        runs, events, calls, limited = (_numbers(reply) for reply in pipe.execute())

        family = CounterMetricFamily("hookyard_runs", "Runs finished, by outcome (every worker).", labels=["outcome"])
        for outcome in FINISHED:
            family.add_metric([outcome], runs.get(outcome, 0))
        yield family
        yield CounterMetricFamily(
            "hookyard_run_retries",
            "Failed attempts that scheduled a retry (a retryable failure within HOOKYARD_RETRY_MAX_ATTEMPTS).",
            value=runs.get("retried", 0),
        )
        yield CounterMetricFamily(
            "hookyard_run_deferrals",
            "Attempts put back on the queue without using an attempt (Deferred: e.g. a remote's pace).",
            value=runs.get("deferred", 0),
        )
        yield _by_label(
            "hookyard_events_accepted",
            "New events stored (POST /api/v1/events and inbound deliveries), duplicates not included.",
            "trigger",
            events,
        )
        yield _by_label(
            "hookyard_outbound_calls", "Calls to an app's remote that its plugin reported (count_calls).", "app", calls
        )
        yield _by_label(
            "hookyard_outbound_rate_limited",
            "Of those, the ones the remote answered 429 Too Many Requests.",
            "app",
            limited,
        )

        depth = GaugeMetricFamily(
            "hookyard_queue_depth", "Jobs due and waiting in each shard queue (not scheduled ones).", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "hookyard_queue_oldest_job_age_seconds",
            "How long the oldest due job of each shard queue has waited; 0 when it is empty.",
            labels=["queue"],
        )
        for queue, state in shard_states(rt).items():
            depth.add_metric([queue], state.depth)
            age.add_metric([queue], state.oldest_age)
        yield depth
        yield age

    # --- the database: runs by status, quotas ---------------------------------------------------------------------

    def _database(self) -> Iterator[Metric]:
        rt = self.rt
        with rt.db.session() as session:
            by_status = dict(session.execute(select(Run.status, func.count()).group_by(Run.status)).all())
            month = usage.period(usage.now(rt))
            used = session.execute(
                select(AppUsage.app, AppUsage.scope, AppUsage.calls).where(AppUsage.period == month)
            ).all()
            metered = [key for key, app in rt.registry.apps.items() if app.usage is not None]
            connections = (
                session.execute(
                    select(Integration.app, Integration.config, Integration.info).where(Integration.app.in_(metered))
                ).all()
                if metered
                else []
            )

        runs = GaugeMetricFamily("hookyard_runs_current", "Runs in the log now, by status.", labels=["status"])
        for status in sorted(set(RUN_STATUSES) | set(by_status)):
            runs.add_metric([status], by_status.get(status, 0))
        yield runs

        quota_used = GaugeMetricFamily(
            "hookyard_app_quota_used",
            "Calls counted against a metered remote's quota this UTC month, by app and scope (e.g. a Circle "
            "community id).",
            labels=["app", "scope"],
        )
        for app_key, scope, calls in sorted(used):
            quota_used.add_metric([app_key, scope], calls)
        yield quota_used
        quota_limit = GaugeMetricFamily(
            "hookyard_app_quota_limit",
            "The monthly quota of that scope, as its connections' plans declare it (the largest, when they differ).",
            labels=["app", "scope"],
        )
        for (app_key, scope), quota in sorted(self._quotas(connections).items()):
            quota_limit.add_metric([app_key, scope], quota)
        yield quota_limit

    def _quotas(self, connections) -> dict[tuple[str, str], int]:
        quotas = {}
        for app_key, config, info in connections:
            app = self.rt.registry.apps[app_key]
            scope = usage.scope_of(app, info)
            if scope is None:
                continue  # never verified: its calls count nowhere yet
            try:
                quota = app.usage.quota(config or {})
            except Exception:  # noqa: BLE001 (a plugin bug: that scope has no limit in the answer; the log says why)
                log.exception("app %s: its usage quota raised", app_key)
                continue
            if quota:
                quotas[app_key, scope] = max(quota, quotas.get((app_key, scope), 0))
        return quotas


def _numbers(reply: dict) -> dict[str, int]:
    return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in reply.items()}


def _by_label(name: str, documentation: str, label: str, values: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, n in sorted(values.items()):
        family.add_metric([value], n)
    return family
