"""Scenario: the queue's floor. What one delivered run costs in CPU, against what RQ itself costs for a job that does
nothing, same machine, same run, interleaved.

- hookyard: ``--jobs`` product_purchased events are stored with their runs (the core's emit, in this process, as the
  API would), then one `hookyard worker` (not forking, one thread) drains them to the fake Circle at 0 ms; CPU of the
  worker and of Redis from its start to the last call at the fake, per call.
- rq (the baseline): the same count of jobs of a function that returns at once, enqueued with the options Hookyard
  uses (JSON serializer, timeout, result and failure TTLs, a retry), drained by RQ's own SimpleWorker in a process of
  its own; CPU of that process and of Redis, per job.

The ratio is what Hookyard's job adds above RQ's protocol; RQ's figure is a floor no change inside the job can go
under. With 2 cores, 300 calls/s leaves about 6.7 CPU-ms per event for everything (intake included).

    .venv/bin/python bench/queue_floor.py [--quick] [--reps 3] [--jobs 1000] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import report
from procs import stop_on_signals, tree_cpu_seconds, wait_for
from stack import BIN, Stack

from hookyard import localredis

# The bare worker: RQ only, in its own process, printing its own CPU seconds when the queue is empty.
BARE_WORKER = """
import sys, time
from redis import Redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer
redis = Redis.from_url(sys.argv[1])
worker = SimpleWorker([Queue("floor", connection=redis, serializer=JSONSerializer)], connection=redis,
                      serializer=JSONSerializer)
began = time.process_time()
worker.work(burst=True, logging_level="WARNING")
print(time.process_time() - began)
"""


def _redis_cpu(redis) -> float:
    info = redis.info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]


def _per_job(jobs: int, worker_cpu: float, redis_cpu: float, wall: float) -> dict:
    return {
        "jobs": jobs,
        "cpu_ms_worker": 1000 * worker_cpu / jobs,
        "cpu_ms_redis": 1000 * redis_cpu / jobs,
        "cpu_ms": 1000 * (worker_cpu + redis_cpu) / jobs,
        "jobs_per_s": jobs / wall,
    }


def rq_run(jobs: int, tmp) -> dict:
    from redis import Redis
    from rq import Queue, Retry
    from rq.serializers import JSONSerializer

    proc, url = localredis.start(tmp, persist=False)
    try:
        redis = Redis.from_url(url)
        queue = Queue("floor", connection=redis, serializer=JSONSerializer)
        with redis.pipeline() as pipe:
            for i in range(jobs):
                # Hookyard's enqueue options (hookyard.jobqueue.enqueue_run), on a function that does nothing.
                queue.enqueue(
                    "os.getpid",
                    job_id=f"floor-{i}",
                    job_timeout=300,
                    result_ttl=24 * 3600,
                    failure_ttl=7 * 24 * 3600,
                    retry=Retry(max=3, interval=[10, 60, 300]),
                    pipeline=pipe,
                )
            pipe.execute()
        before = _redis_cpu(redis)
        started = time.monotonic()
        done = subprocess.run([str(BIN / "python"), "-c", BARE_WORKER, url], capture_output=True, text=True)
        wall = time.monotonic() - started
        if done.returncode != 0:
            raise RuntimeError(f"the bare RQ worker failed:\n{done.stderr[-1500:]}")
        worker_cpu = float(done.stdout.strip().splitlines()[-1])
        redis_cpu = _redis_cpu(redis) - before
        left = queue.count
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    if left:
        raise RuntimeError(f"the bare RQ worker left {left} jobs")
    return _per_job(jobs, worker_cpu, redis_cpu, wall)


def _store_events(stack: Stack, jobs: int) -> None:
    """The events and their runs, written and queued by the core's emit with the instance's settings."""
    saved = dict(os.environ)
    os.environ.update(stack.env)
    try:
        from hookyard.emit import emit
        from hookyard.models import Marketplace
        from hookyard.runtime import build_runtime
        from hookyard.settings import Settings

        rt = build_runtime(Settings.from_env(env=stack.env))
        with rt.db.session() as s:
            store = s.get(Marketplace, stack.store_id)
            for i in range(jobs):
                emit(rt, s, store, "samcart.product_purchased", stack.event_body(f"floor{i}@example.com")["payload"])
        rt.db.dispose()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def hookyard_run(jobs: int) -> dict:
    from redis import Redis
    from rq.suspension import resume, suspend

    with Stack("floor") as stack:
        stack.start_fake()
        stack.prepare_instance(rules=1)
        redis = Redis.from_url(stack.env["REDIS_URL"])
        # The worker starts first and is held (RQ's suspension) while the runs are queued, so that neither its
        # startup nor the seeding is charged to the jobs, and it drains a full queue as the bare worker does.
        suspend(redis)
        stack.start_workers(1, 1)
        pid = stack.workers[0].pid
        _store_events(stack, jobs)
        stack.fake("reset")
        cpu_before, redis_before = tree_cpu_seconds([pid]), _redis_cpu(redis)
        started = time.monotonic()
        resume(redis)

        def drained():
            stack.procs.check_alive()
            return len(stack.fake("calls")["calls"]) >= jobs

        wait_for(drained, 120 + jobs / 10, f"the worker did not make {jobs} calls", 0.25)
        wall = time.monotonic() - started
        worker_cpu = tree_cpu_seconds([pid]) - cpu_before
        redis_cpu = _redis_cpu(redis) - redis_before
    return _per_job(jobs, worker_cpu, redis_cpu, wall)


def run(opts) -> dict:
    import tempfile
    from pathlib import Path

    runs = {"rq": [], "hookyard": []}
    for rep, config in report.interleaved(["rq", "hookyard"], opts.reps):
        if config == "rq":
            result = report.attempt("bare RQ", rq_run, opts.jobs, Path(tempfile.mkdtemp(prefix="hookyard-floor-")))
        else:
            result = report.attempt("hookyard worker", hookyard_run, opts.jobs)
        print(
            f"  run {rep + 1} {config}: {result['cpu_ms']:.2f} CPU-ms/job, {result['jobs_per_s']:.0f} jobs/s",
            flush=True,
        )
        runs[config].append(result)
    figures = {
        config: {key: report.spread([r[key] for r in results]) for key in results[0] if key != "jobs"}
        for config, results in runs.items()
    }
    rq, ours = figures["rq"], figures["hookyard"]
    rows = [
        [
            name,
            report.cell(f["cpu_ms_worker"], 2),
            report.cell(f["cpu_ms_redis"], 2),
            report.cell(f["cpu_ms"], 2),
            report.ratio(f["cpu_ms"], rq["cpu_ms"]),
            report.cell(f["jobs_per_s"], 0),
        ]
        for name, f in (("RQ, a job that does nothing (baseline)", rq), ("Hookyard, one invite_member run", ours))
    ]
    text = report.table(
        f"queue floor: CPU per job, {opts.jobs:,} jobs drained by one worker, {opts.reps} interleaved runs",
        ["", "worker CPU-ms/job", "Redis CPU-ms/job", "total CPU-ms/job", "vs RQ", "jobs/s (one worker)"],
        rows,
    )
    return {"jobs": opts.jobs, "reps": opts.reps, "figures": figures, "runs": runs, "table": text}


def options(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int)
    parser.add_argument("--jobs", type=int)
    parser.add_argument("--json")
    opts = parser.parse_args(argv)
    apply_defaults(opts)
    return opts


def apply_defaults(opts):
    opts.reps = opts.reps or (1 if opts.quick else 3)
    opts.jobs = opts.jobs or (300 if opts.quick else 1000)


def main(argv=None):
    stop_on_signals()
    opts = options(argv)
    report.write("queue_floor", run(opts), opts.json)


if __name__ == "__main__":
    sys.exit(main())
