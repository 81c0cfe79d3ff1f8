"""Enqueueing with one policy: JSON serializer, deterministic job ids, timeouts, TTLs and a retry."""
from __future__ import annotations

from datetime import datetime, timezone

import redis
from rq import Queue, Retry
from rq.serializers import JSONSerializer

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


def get_queue(rt: Runtime) -> Queue:
    return Queue(rt.settings.queue_name, connection=rt.redis, serializer=JSONSerializer)


def enqueue_run(rt: Runtime, run_id: int, job_id: str, at: datetime | None = None) -> None:
    queue = get_queue(rt)
    options = dict(job_id=job_id, job_timeout=rt.settings.job_timeout, result_ttl=RESULT_TTL,
                   failure_ttl=FAILURE_TTL, retry=CRASH_RETRY)
    if at is not None and at > datetime.now(timezone.utc):
        queue.enqueue_at(at, "hookyard.jobs.run_rule", run_id, **options)
    else:
        queue.enqueue("hookyard.jobs.run_rule", run_id, **options)


REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
