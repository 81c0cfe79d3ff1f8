"""A worker killed while its scheduler holds the queues' locks: retries and delayed jobs must not wait the minute RQ
lets those locks lapse (rq/rq#1758); a surviving worker takes them over (hookyard.scheduler_locks)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from rq.scheduler import SCHEDULER_KEY_TEMPLATE

from hookyard.jobqueue import shard_queues

from ..processes import descendants, kill_tree
from ..waiting import wait_for

pytestmark = pytest.mark.e2e
ENV = dict(HOOKYARD_SWEEP_INTERVAL="2")


def lock_holder(runtime, queue):
    return runtime.redis.get(f"rq:scheduler-lock:{queue.name}")


def scheduler_pid(runtime, holder: bytes | None) -> int | None:
    pid = runtime.redis.hget(SCHEDULER_KEY_TEMPLATE % holder.decode(), "pid") if holder else None
    return int(pid) if pid else None


def test_a_killed_workers_scheduled_jobs_run_without_waiting_for_its_locks_to_lapse(start_worker, runtime, tmp_path):
    victim = start_worker(**ENV)  # the first to start takes every queue's scheduler lock
    queues = shard_queues(runtime)
    # Held by the victim's own scheduler (its child), not by a scheduler some earlier test left running, whose
    # heartbeat would keep them after this one is killed.
    wait_for(
        lambda: all(scheduler_pid(runtime, lock_holder(runtime, q)) in descendants(victim.pid) for q in queues),
        timeout=30,
        message=lambda: (
            "the victim's scheduler did not take every lock; held by pids "
            f"{ {scheduler_pid(runtime, lock_holder(runtime, q)) for q in queues} }"
        ),
    )
    survivor = start_worker(**ENV)
    held_by_victim = {lock_holder(runtime, q) for q in queues}
    kill_tree(victim.pid)  # SIGKILL, worker and scheduler: nothing is released
    victim.wait(timeout=10)

    due = datetime.now(timezone.utc) + timedelta(seconds=1)
    jobs = [queue.enqueue_at(due, "time.sleep", 0) for queue in (queues[0], queues[-1])]
    # RQ alone leaves them until the dead locks lapse (61 s, then the next look): this deadline fails without the
    # takeover (15 s of silence, then the survivor's next maintenance, every 2 s here).
    wait_for(
        lambda: all(job.get_status(refresh=True) == "finished" for job in jobs),
        timeout=45,
        interval=0.5,
        message=lambda: f"scheduled jobs still {[job.get_status(refresh=True) for job in jobs]}",
    )
    assert {lock_holder(runtime, q) for q in queues}.isdisjoint(held_by_victim)
    log = (tmp_path / "worker-1.log").read_text()
    assert "stopped sending heartbeats: taking over its queues" in log
    assert survivor.poll() is None
