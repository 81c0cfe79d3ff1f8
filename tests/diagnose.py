"""What the worker side looked like when a test that runs workers failed: added to the failure's report, so a rare
failure in a long run explains itself (which registry a job sits in, whose scheduler holds the locks, which workers
are registered: one that is not this test's own has leaked from an earlier test)."""

from __future__ import annotations

from pathlib import Path

LOG_LINES = 40


def worker_state(runtime, procs) -> str:
    from rq import Worker
    from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

    from hookyard.jobqueue import shard_queues

    own = {proc.pid for proc, _, _ in procs}
    lines = []
    try:
        holders, busy = set(), []
        for queue in shard_queues(runtime):
            holders.add((runtime.redis.get(f"rq:scheduler-lock:{queue.name}") or b"nobody").decode())
            counts = dict(
                queued=queue.count,
                started=StartedJobRegistry(queue=queue).count,
                scheduled=ScheduledJobRegistry(queue=queue).count,
                failed=FailedJobRegistry(queue=queue).count,
            )
            if any(counts.values()):
                busy.append(f"{queue.name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        lines.append(f"queues not empty: {'; '.join(busy) or 'none'}")
        lines.append(f"scheduler locks held by: {', '.join(sorted(holders))}")
        for worker in Worker.all(connection=runtime.redis):
            mine = "this test's" if worker.pid in own else "NOT this test's"
            lines.append(
                f"worker {worker.name} (pid {worker.pid}, {mine}): {worker.get_state()}, "
                f"job {worker.get_current_job_id()!r}"
            )
    except Exception as exc:  # the report must not hide the failure it explains
        lines.append(f"(Redis could not be read: {exc!r})")
    for proc, _, log_path in procs:
        text = Path(log_path).read_text(errors="replace").splitlines() if Path(log_path).exists() else []
        status = "running" if proc.poll() is None else f"exited {proc.returncode}"
        lines.append(f"--- worker pid {proc.pid} ({status}), last {LOG_LINES} lines of {log_path}:")
        lines.extend(text[-LOG_LINES:])
    return "\n".join(lines)
