"""Benchmark: a burst of purchases against the fake Circle under a rate limit of Circle's shape.

Circle allows 2,000 requests per 5 minutes per IP in fixed windows; this run scales the window down
(default 111 requests per 3 s at the fake, a 100 per 3 s budget for Hookyard, i.e. the real 90%)
so that 2,000 purchases need about a minute. It reports the completion time against the floor the
budget allows (the ratio), the 429s the fake sent, failed runs, and Circle calls per action.

    .venv/bin/python bench/circle_burst.py [--events 2000] [--workers 2] [--limit 111 --window 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from hookyard import localredis
from hookyard.connections import create as create_integration
from hookyard.emit import emit
from hookyard.migrate import upgrade
from hookyard.models import Run
from hookyard.runtime import build_runtime
from hookyard.settings import Settings
from hookyard.tokens import get_or_create_marketplace
from hookyard_circle.fake import FakeCircle

API_KEY = "bench-admin-v2-key"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-fork", action="store_true", help="run the workers with --no-fork")
    parser.add_argument("--limit", type=int, default=111, help="the fake's limit per window (Circle: 2000)")
    parser.add_argument("--window", type=float, default=3.0, help="the fake's window in seconds (Circle: 300)")
    args = parser.parse_args()
    budget = int(args.limit * 0.9)
    floor = args.events / (budget / args.window)

    tmp = Path(tempfile.mkdtemp(prefix="hookyard-bench-"))
    redis_proc, redis_url = localredis.start(tmp / "redis", persist=False)
    fake = FakeCircle(api_key=API_KEY).start()
    fake.rate_limit(args.limit, args.window)
    os.environ["CIRCLE_API_BASE_URL"] = fake.base_url
    env = dict(
        os.environ,
        REDIS_URL=redis_url,
        DATABASE_URL=f"sqlite:///{tmp / 'bench.db'}",
        SECRET_KEY="bench",
        HOOKYARD_INSTANCE_PATH=str(tmp),
        CIRCLE_RATE_LIMIT=f"{budget}/{args.window:g}",
        HOOKYARD_LOG_CAP=str(max(1000, args.events)),
    )  # keep every run so all outcomes are counted
    settings = Settings.from_env(env=env)
    upgrade(settings.database_url)
    rt = build_runtime(settings)
    workers = []
    try:
        group = fake.add_space_group("Members")
        for i in range(args.events):
            fake.add_member(f"buyer{i}@example.com")
        with rt.db.session() as s:
            store = get_or_create_marketplace(s, "bench")
            integration = create_integration(
                rt, s, store.id, "circle", "Community", {"api_key": API_KEY, "community_url": "https://bench.circle.so"}
            )
            from hookyard.models import Rule

            s.add(
                Rule(
                    marketplace_id=store.id,
                    trigger="samcart.product_purchased",
                    integration_id=integration.id,
                    action="add_member_to_space_group",
                    params={"space_group_id": group},
                    enabled=True,
                )
            )
            s.commit()
        fake.reset_requests()
        hookyard = str(Path(sys.executable).parent / "hookyard")
        for i in range(args.workers):
            log = open(tmp / f"worker-{i}.log", "wb")
            command = [hookyard, "worker"] + (["--no-fork"] if args.no_fork else [])
            workers.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))

        print(
            f"{args.events} purchases, {args.workers} {'non-forking ' if args.no_fork else ''}workers, fake limit {args.limit}/{args.window:g} s, "
            f"budget {budget}/{args.window:g} s",
            flush=True,
        )
        start = time.monotonic()
        with rt.db.session() as s:
            for i in range(args.events):
                emit(
                    rt,
                    s,
                    store,
                    "samcart.product_purchased",
                    {"customer": {"email": f"buyer{i}@example.com"}, "product": {"id": "444"}},
                )
        emitted = time.monotonic() - start
        while True:
            with rt.db.session() as s:
                pending = s.scalar(select(func.count()).select_from(Run).where(Run.status.in_(("queued", "running"))))
            if pending == 0:
                break
            if any(w.poll() is not None for w in workers):
                raise SystemExit("a worker died; see " + str(tmp))
            time.sleep(0.2)
        elapsed = time.monotonic() - start
        with rt.db.session() as s:
            statuses = dict(s.execute(select(Run.status, func.count()).group_by(Run.status)).all())
            histories = list(s.scalars(select(Run.history)))
        calls = [h[-1].get("details", {}).get("circle_calls", 0) for h in histories if h]
        attempts = [len(h) for h in histories if h]
        sent_429 = sum(1 for r in fake.requests if r.status == 429)
        print(f"emitted in {emitted:.1f} s; all runs finished in {elapsed:.1f} s")
        print(f"floor at the budget: {floor:.1f} s; completion / floor: x{elapsed / floor:.2f}")
        print(
            f"429s received: {sent_429}; requests at the fake: {len(fake.requests)} "
            f"({len(fake.requests) / args.events:.2f} per purchase)"
        )
        print(f"runs: {sum(statuses.values())}, by status: {statuses}")
        print(
            f"Circle calls per action (add_member_to_space_group): mean {statistics.mean(calls):.2f}, "
            f"max {max(calls)}; attempts per run: max {max(attempts)}"
        )
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=30)
        fake.stop()
        redis_proc.terminate()


if __name__ == "__main__":
    main()
