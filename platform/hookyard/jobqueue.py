"""Enqueueing with one policy: JSON serializer, deterministic job ids, timeouts, TTLs and a retry."""
from __future__ import annotations

from datetime import datetime, timezone

import redis
from rq import Queue, Retry
from rq.worker import RoundRobinWorker, SimpleWorker
from rq.serializers import JSONSerializer

from .models import Run
from .runtime import Runtime

RESULT_TTL = 24 * 3600
FAILURE_TTL = 7 * 24 * 3600
# RQ's own retry only covers a crash of our job function itself (a bug, a lost database);
# outcomes that plugins call retryable are rescheduled by hookyard.jobs with backoff.
CRASH_RETRY = Retry(max=3, interval=[10, 60, 300])


def run_job_id(event_id: int, rule_id: int, dispatch: int = 1) -> str:
    # One id per (event, rule, dispatch): redelivering the same event never creates a second job,
    # and a retry or deferral never overwrites the job record of the run that scheduled it.
    return f"run-{event_id}-{rule_id}-{dispatch}"


def shard_queues(rt: Runtime) -> list[Queue]:
    """The queues a worker serves, round robin.

    Runs are spread over shards by integration, so one connection's burst of ten thousand jobs
    queues up in its own shard while every other connection's jobs keep being picked in turn.
    """
    return [Queue(f"{rt.settings.queue_name}-{i}", connection=rt.redis, serializer=JSONSerializer)
            for i in range(rt.settings.queue_shards)]


def queue_for(rt: Runtime, run: Run) -> Queue:
    shard = (run.integration_id or 0) % rt.settings.queue_shards
    return Queue(f"{rt.settings.queue_name}-{shard}", connection=rt.redis, serializer=JSONSerializer)


def queued_count(rt: Runtime) -> int:
    return sum(q.count for q in shard_queues(rt))


def enqueue_run(rt: Runtime, run: Run) -> None:
    queue = queue_for(rt, run)
    options = dict(job_id=run.job_id, job_timeout=rt.settings.job_timeout, result_ttl=RESULT_TTL,
                   failure_ttl=FAILURE_TTL, retry=CRASH_RETRY)
    at = run.not_before
    if at is not None and at > datetime.now(timezone.utc):
        queue.enqueue_at(at, "hookyard.jobs.run_rule", run.id, **options)
    else:
        queue.enqueue("hookyard.jobs.run_rule", run.id, **options)


class Sweeping:
    """Sweeps with RQ's maintenance, which every worker runs between jobs and while idle."""

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        from .jobs import sweep

        sweep()


class ForkingWorker(Sweeping, RoundRobinWorker):
    pass


class NonForkingWorker(Sweeping, SimpleWorker):
    reorder_queues = RoundRobinWorker.reorder_queues


def make_worker(rt: Runtime, fork: bool):
    """Forking isolates each job in a child; not forking runs several times faster (warm caches and
    connections). Both serve the shard queues round robin and sweep every HOOKYARD_SWEEP_INTERVAL."""
    interval = rt.settings.sweep_interval
    return (ForkingWorker if fork else NonForkingWorker)(
        shard_queues(rt), connection=rt.redis, serializer=JSONSerializer, maintenance_interval=interval,
        # An idle worker waits on the queues for worker_ttl - 15 s between maintenance runs.
        worker_ttl=interval + 15, job_monitoring_interval=max(1, min(30, (interval + 15) // 3)))


REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
