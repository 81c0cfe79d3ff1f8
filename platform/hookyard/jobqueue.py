"""Enqueueing with one policy: JSON serializer, deterministic job ids, timeouts, TTLs and a retry."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

import redis
from rq import Queue, Retry
from rq.exceptions import InvalidJobOperation, NoSuchJobError, StopRequested
from rq.job import Job
from rq.worker import RoundRobinWorker, SimpleWorker
from rq.serializers import JSONSerializer

from .models import Run
from .runtime import Runtime

log = logging.getLogger(__name__)
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


# A job in one of these states will still run (or is running); any other (finished, failed, stopped, canceled) will not.
LIVE_JOB_STATES = {"queued", "scheduled", "started", "deferred"}


def not_waiting(rt: Runtime, job_ids: list[str]) -> list[bool]:
    """For each job id: True when nothing will run that job (it is not in Redis, or it ended), with an ended job's
    record deleted so that the same id can be enqueued again. What the sweeps use to re-queue lost work."""
    if not job_ids:
        return []
    lost = []
    for job in Job.fetch_many(job_ids, connection=rt.redis, serializer=JSONSerializer):
        if job is not None and job.get_status(refresh=False) in LIVE_JOB_STATES:
            lost.append(False)
            continue
        if job is not None:
            try:
                job.delete()
            except (InvalidJobOperation, NoSuchJobError):
                pass  # another sweeper deleted it first
        lost.append(True)
    return lost


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
        from .scheduler_locks import reclaim

        try:
            reclaim(self)  # a killed worker's scheduler locks, which RQ would leave idle for a minute or more
        except REDIS_ERRORS as exc:
            log.warning("could not check the scheduler locks (%s)", exc.__class__.__name__)
        sweep()
        if self._shutdown_requested_date is not None:
            # A SIGTERM that came during maintenance was swallowed by it (RQ raises StopRequested wherever the
            # main thread is); without this the worker would block on its queues and never stop.
            raise StopRequested()


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


def work(rt: Runtime, fork: bool, burst: bool = False) -> None:
    """Runs a worker until it is asked to stop. RQ's worker quits when Redis goes away while it finishes
    a job; this waits for Redis to come back and starts a fresh one, so an outage needs no restart by
    hand (and does not end `make run`, where one process exiting stops them all)."""
    while True:
        worker = make_worker(rt, fork)
        try:
            worker.work(with_scheduler=True, burst=burst)
        except REDIS_ERRORS as exc:  # its teardown could not reach Redis either
            log.error("the worker lost Redis (%s)", exc.__class__.__name__)
        # RQ notes a SIGTERM/SIGINT here whether the worker was busy or idle when it came.
        if burst or worker._shutdown_requested_date is not None:
            return
        log.error("the worker stopped after an error (see above); waiting for Redis, then starting a new one")
        _wait_for_redis(rt)


def _wait_for_redis(rt: Runtime, first_wait: float = 0.5, longest_wait: float = 10.0) -> None:
    wait = first_wait
    while True:
        try:
            rt.redis.ping()
            return
        except REDIS_ERRORS as exc:
            log.warning("Redis is unreachable (%s); trying again in %.1f s", exc.__class__.__name__, wait)
            time.sleep(wait)  # nothing to wait on but time: Redis itself is what is missing
            wait = min(wait * 2, longest_wait)
