"""Refusing work the workers cannot do in time: POST /events answers 429 while the queue holds more
due jobs than HOOKYARD_BACKPRESSURE_MAX_DEPTH or its oldest due job has waited longer than
HOOKYARD_BACKPRESSURE_MAX_AGE seconds. Scheduled retries and delayed triggers are not due, so they
never count. When Redis is unreachable nothing is refused: events are stored and the sweeper
enqueues their runs later (accepting durably matters more than the queue's shape)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from rq.job import Job

from .jobqueue import REDIS_ERRORS, shard_queues
from .runtime import Runtime

log = logging.getLogger(__name__)
RETRY_AFTER = 30  # seconds: long enough for workers to drain some, short enough for a store's webhook retry


@dataclass(frozen=True)
class QueueState:
    depth: int
    oldest_age: float  # seconds the oldest due job has waited; 0 when the queue is empty


def queue_state(rt: Runtime) -> QueueState:
    """The shards together: their total depth, and the age of the oldest due job in any of them."""
    states = shard_states(rt).values()
    return QueueState(sum(s.depth for s in states), max((s.oldest_age for s in states), default=0.0))


def shard_states(rt: Runtime) -> dict[str, QueueState]:
    """Each shard queue's state, by queue name (also GET /metrics's gauges, hookyard.metrics.collect). Two round
    trips whatever the queues' lengths: the shard lengths and heads, then the heads' times."""
    queues = shard_queues(rt)
    pipe = rt.redis.pipeline(transaction=False)
    for queue in queues:
        pipe.llen(queue.key)
        pipe.lindex(queue.key, 0)
    replies = pipe.execute()
    heads = [head.decode() if isinstance(head, bytes) else head for head in replies[1::2]]
    stamps = {}
    if any(heads):
        pipe = rt.redis.pipeline(transaction=False)
        for job_id in filter(None, heads):
            pipe.hget(Job.key_for(job_id), "enqueued_at")
        found = [s.decode() if isinstance(s, bytes) else s for s in pipe.execute()]
        stamps = dict(zip(filter(None, heads), found, strict=True))
    now = datetime.now(timezone.utc)
    states = {}
    for queue, depth, head in zip(queues, replies[0::2], heads, strict=True):
        stamp = stamps.get(head) if head else None
        # A head whose record is gone (expired, deleted) has no age: counted in the depth only, as before.
        states[queue.name] = QueueState(depth, (now - _parse(stamp)).total_seconds() if stamp else 0.0)
    return states


def refusal(rt: Runtime) -> str | None:
    """Why new events should wait, or None to accept them."""
    try:
        state = queue_state(rt)
    except REDIS_ERRORS:
        return None
    limits = rt.settings
    if state.depth > limits.backpressure_max_depth:
        return f"The queue holds {state.depth} jobs (limit {limits.backpressure_max_depth}); retry in {RETRY_AFTER} s."
    if state.oldest_age > limits.backpressure_max_age:
        return (
            f"The oldest queued job has waited {state.oldest_age:.0f} s (limit {limits.backpressure_max_age:.0f} s): "
            f"the workers are behind or stopped; retry in {RETRY_AFTER} s."
        )
    return None


def _parse(stamp: str) -> datetime:
    value = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
