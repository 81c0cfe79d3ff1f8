"""Taking over the scheduler locks of a worker that died.

Retries, deferrals and delayed triggers wait in RQ's scheduled registries until a scheduler moves them to their
queue, and one scheduler per queue holds that queue's lock. A worker that is killed (SIGKILL, an out-of-memory kill,
a lost machine) cannot release its locks; RQ lets them lapse after ``interval + 60`` seconds, and a live worker whose
scheduler already holds some queues looks again only every two minutes (rq/rq#1758, "behaviour, not a bug"). Until
then nothing scheduled runs: one killed worker stalled every retry of the fault tests for a minute.

So every worker, at each maintenance, reads each lock's holder and that scheduler's heartbeat (RQ writes one every
``interval``, 1 s, into the scheduler's own hash); a holder silent for ``STALE_AFTER`` is dead. Its locks are
deleted only if still held by it (a compare-and-delete), and this worker's scheduler is restarted to take them.
Declaring a merely slow scheduler dead costs nothing lasting: at its next heartbeat it sees the lock taken and drops
the queue, and a job moved twice in that instant is still run once (the run's lease)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.scripts import release_lock
from rq.utils import utcparse

log = logging.getLogger(__name__)
STALE_AFTER = timedelta(seconds=15)  # fifteen missed heartbeats: far beyond a busy machine's pause


def dead_holders(connection, queue_names, now: datetime | None = None) -> dict[str, str]:
    """{queue name: scheduler name} for each lock held by a scheduler whose heartbeat is older than STALE_AFTER
    (or whose hash is gone: it is refreshed with the lock, so a missing one means no heartbeat for a minute)."""
    now = now or datetime.now(timezone.utc)
    holders = {}
    for name in queue_names:
        holder = connection.get(RQScheduler.get_locking_key(name))
        if holder is not None:
            holders[name] = holder.decode()
    dead, beats = {}, {}
    for queue, holder in holders.items():
        if holder not in beats:
            raw = connection.hget(SCHEDULER_KEY_TEMPLATE % holder, "last_heartbeat")
            beat = utcparse(raw.decode()) if raw else None
            beats[holder] = beat.replace(tzinfo=timezone.utc) if beat is not None and beat.tzinfo is None else beat
        beat = beats[holder]
        if beat is None or now - beat > STALE_AFTER:
            dead[queue] = holder
    return dead


def reclaim(worker) -> list[str]:
    """Frees the locks of dead schedulers on this worker's queues and restarts this worker's scheduler to take
    them. Returns the queues taken over."""
    scheduler = getattr(worker, "scheduler", None)
    if scheduler is None:
        return []  # a burst worker, or one started without a scheduler
    connection = worker.connection
    dead = dead_holders(connection, [q.name for q in worker.queues])
    freed = [
        queue
        for queue, holder in dead.items()
        if holder != scheduler.name and release_lock(connection, RQScheduler.get_locking_key(queue), holder)
    ]
    if not freed:
        return []
    log.warning(
        "scheduler %s stopped sending heartbeats: taking over its queues %s",
        ", ".join(sorted(set(dead[q] for q in freed))),
        ", ".join(sorted(freed)),
    )
    process = scheduler._process
    if process is not None and process.is_alive():
        # Its locks are fixed when it starts: stop it (it releases what it holds) and start one that takes all.
        worker.stop_scheduler()
    scheduler.acquire_locks(auto_start=True)
    return freed
