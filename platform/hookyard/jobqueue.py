"""Enqueueing with one policy: JSON serializer, deterministic job ids, timeouts, TTLs and a retry; the first
dispatch of a run and every later one (a retry, a deferral, a re-dispatch by the sweeper). The worker process is
hookyard.worker."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import redis
from rq import Queue, Retry
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy.orm import Session

from .models import ONCE_PER_EVENT_ORIGINS, Run
from .runtime import Runtime

log = logging.getLogger(__name__)
RESULT_TTL = 24 * 3600
FAILURE_TTL = 7 * 24 * 3600
# RQ's own retry only covers a crash of our job function itself (a bug, a lost database);
# outcomes that plugins call retryable are rescheduled by hookyard.jobs with backoff.
CRASH_RETRY = Retry(max=3, interval=[10, 60, 300])
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def run_job_id(event_id: int, rule_id: int, dispatch: int = 1) -> str:
    # One id per (event, rule, dispatch): redelivering the same event never creates a second job,
    # and a retry or deferral never overwrites the job record of the run that scheduled it.
    return f"run-{event_id}-{rule_id}-{dispatch}"


def job_id_of(run: Run) -> str:
    """The job id of the run's current dispatch. A test or a fix may run a rule for an event it already ran for, so
    theirs are named by the run itself (flushed first, for its id): never the job of the event's own run."""
    if run.origin in ONCE_PER_EVENT_ORIGINS or run.origin is None:  # None: not flushed yet, an event run by default
        return run_job_id(run.event_id, run.rule_id, run.dispatches)
    return f"run-{run.origin}-{run.id}-{run.dispatches}"


def shard_queues(rt: Runtime) -> list[Queue]:
    """The queues a worker serves, round robin.

    Runs are spread over shards by integration, so one connection's burst of ten thousand jobs
    queues up in its own shard while every other connection's jobs keep being picked in turn.
    """
    return [Queue(name, connection=rt.redis, serializer=JSONSerializer) for name in shard_names(rt)]


def shard_names(rt: Runtime) -> list[str]:
    return [f"{rt.settings.queue_name}-{i}" for i in range(rt.settings.queue_shards)]


def queue_for(rt: Runtime, run: Run) -> Queue:
    shard = (run.integration_id or 0) % rt.settings.queue_shards
    return Queue(f"{rt.settings.queue_name}-{shard}", connection=rt.redis, serializer=JSONSerializer)


def queued_count(rt: Runtime) -> int:
    return sum(q.count for q in shard_queues(rt))


# A job in one of these states will still run (or is running); any other (finished, failed, stopped, canceled) will not.
LIVE_JOB_STATES = {"queued", "scheduled", "started", "deferred"}


def dropped(rt: Runtime, jobs: list[Job | None]) -> list[bool]:
    """For each job: True when it says "queued" yet no queue holds it. A worker takes a job off its queues
    (BLPOP) before it marks it started; one killed in between leaves a queued job that nothing will ever run,
    and that RQ never cleans up (its intermediate-queue cleanup covers single-queue workers only). A live
    worker is in that window for a moment; a job taken then and dispatched again still runs once (the run's
    claim, or the record's own status for tasks and deliveries)."""
    queued = [job for job in jobs if job is not None and job.get_status(refresh=False) == "queued"]
    pipe = rt.redis.pipeline(transaction=False)
    for job in queued:
        key = Queue.redis_queue_namespace_prefix + job.origin
        pipe.lpos(key, job.id)
        pipe.lpos(f"{key}:intermediate", job.id)
    found = pipe.execute() if queued else []
    missing = {job.id for job, q, i in zip(queued, found[::2], found[1::2], strict=True) if q is None and i is None}
    return [job is not None and job.id in missing for job in jobs]


def not_waiting(rt: Runtime, job_ids: list[str]) -> list[bool]:
    """For each job id: True when nothing will run that job (it is not in Redis, it ended, or it was dropped
    by a worker that died), with the job's record deleted so that the same id can be enqueued again. What the
    sweeps use to re-queue lost work."""
    if not job_ids:
        return []
    lost = []
    jobs = Job.fetch_many(job_ids, connection=rt.redis, serializer=JSONSerializer)
    for job, was_dropped in zip(jobs, dropped(rt, jobs), strict=True):
        if job is not None and not was_dropped and job.get_status(refresh=False) in LIVE_JOB_STATES:
            lost.append(False)
            continue
        if job is not None:
            try:
                job.delete()
            except (InvalidJobOperation, NoSuchJobError):
                pass  # another sweeper deleted it first
        lost.append(True)
    return lost


def enqueue_run(rt: Runtime, run: Run, pipeline=None) -> None:
    """The run's job; with ``pipeline``, written when the caller executes it (several runs in one round trip)."""
    queue = queue_for(rt, run)
    options = dict(
        job_id=run.job_id,
        job_timeout=rt.settings.job_timeout,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        retry=CRASH_RETRY,
        pipeline=pipeline,
    )
    at = run.not_before
    if at is not None and at > datetime.now(timezone.utc):
        # RQ's scheduled registry keeps whole seconds, cutting the fraction off: rounded up instead, so that a job
        # never runs before its time (a retry asked to wait 2 s could otherwise come 1.9 s later).
        if at.microsecond:
            at = at.replace(microsecond=0) + timedelta(seconds=1)
        queue.enqueue_at(at, "hookyard.jobs.run_rule", run.id, **options)
    else:
        queue.enqueue("hookyard.jobs.run_rule", run.id, **options)


def dispatch_again(rt: Runtime, session: Session, run: Run) -> None:
    """The run's next job, under a new id (its dispatch count): a retry, a deferral or a sweeper's re-dispatch never
    overwrites the job record of the one before. Committed first, so the job never runs ahead of its run; with Redis
    down the run stays queued and the sweeper dispatches it once Redis is back."""
    run.dispatches += 1
    run.job_id = job_id_of(run)
    session.commit()
    try:
        enqueue_run(rt, run)
    except REDIS_ERRORS as exc:
        log.error("run %s could not be rescheduled: Redis unreachable (%s)", run.id, exc.__class__.__name__)
