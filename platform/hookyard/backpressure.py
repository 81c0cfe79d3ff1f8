"""Refusing work the workers cannot do in time: POST /events answers 429 while the queue holds more
due jobs than HOOKYARD_BACKPRESSURE_MAX_DEPTH or its oldest due job has waited longer than
HOOKYARD_BACKPRESSURE_MAX_AGE seconds. Scheduled retries and delayed triggers are not due, so they
never count. When Redis is unreachable nothing is refused: events are stored and the sweeper
enqueues their runs later (accepting durably matters more than the queue's shape)."""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone

from rq.job import Job
from rq.queue import Queue

from .jobqueue import REDIS_ERRORS, shard_names
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


# Each shard's length and the enqueued_at of its head job, in one round trip: every POST /events asks (the check
# runs before the event is stored), so it is one script call rather than a pipeline of two commands per shard and
# a second one for the heads. KEYS: the shard queues' keys; ARGV[1]: the job hash prefix. Reads only.
_STATES = """
local replies = {}
for i, key in ipairs(KEYS) do
  local head = redis.call("LINDEX", key, 0)
  local stamp = false
  if head then stamp = redis.call("HGET", ARGV[1] .. head, "enqueued_at") end
  replies[2 * i - 1] = redis.call("LLEN", key)
  replies[2 * i] = stamp
end
return replies
"""
_scripts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # client -> its Script (EVALSHA, then EVAL)


def shard_states(rt: Runtime) -> dict[str, QueueState]:
    """Each shard queue's state, by queue name (also GET /metrics's gauges, hookyard.metrics.collect)."""
    names = shard_names(rt)
    client = rt.redis
    script = _scripts.get(client) or _scripts.setdefault(client, client.register_script(_STATES))
    replies = script(
        keys=[Queue.redis_queue_namespace_prefix + name for name in names],
        args=[Job.redis_job_namespace_prefix],
        client=client,
    )
    now = datetime.now(timezone.utc)
    states = {}
    for name, depth, stamp in zip(names, replies[0::2], replies[1::2], strict=True):
        stamp = stamp.decode() if isinstance(stamp, bytes) else stamp
        # A head whose record is gone (expired, deleted) has no age: counted in the depth only.
        states[name] = QueueState(depth, (now - _parse(stamp)).total_seconds() if stamp else 0.0)
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
