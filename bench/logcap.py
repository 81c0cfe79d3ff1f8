"""Benchmark: does trimming the log cost the same after 1,000 entries as after 1,000,000?

Writes finished log entries for one marketplace through hookyard.logcap (reserve a number, insert,
trim), exactly as the worker does, and at each checkpoint times single insert+trim operations.
Prints each checkpoint's median cost as a ratio against the 2,000-entry baseline of the same run
(the first checkpoint at which trimming deletes anything).

    .venv/bin/python bench/logcap.py [--total 1000000] [--database-url sqlite:///...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timezone

from sqlalchemy import func, select

from hookyard import logcap
from hookyard.db import Database
from hookyard.migrate import upgrade
from hookyard.models import Event, Marketplace, Run

CAP = 1000
BATCH = 500
SAMPLES = 200


def write(session, mp_id, event_id, count):
    first = logcap.reserve_log_seqs(session, mp_id, count)
    now = datetime.now(timezone.utc)
    session.add_all(
        Run(
            marketplace_id=mp_id,
            event_id=event_id,
            rule_id=seq,
            log_seq=seq,
            trigger="t",
            action="a",
            status="succeeded",
            job_id=f"j{seq}",
            history=[],
            created_at=now,
            finished_at=now,
        )
        for seq in range(first, first + count)
    )
    session.flush()
    logcap.trim(session, mp_id, CAP)
    session.commit()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    upgrade(url)
    db = Database(url)
    with db.session() as s:
        mp = Marketplace(name=f"bench-{time.time_ns()}", log_seq=0)
        s.add(mp)
        s.flush()
        event = Event(
            marketplace_id=mp.id, trigger="t", payload={}, raw_payload={}, occurred_at=datetime.now(timezone.utc)
        )
        s.add(event)
        s.commit()
        mp_id, event_id = mp.id, event.id

        checkpoints = [c for c in (1_000, 2_000, 10_000, 100_000, 1_000_000, 10_000_000) if c <= args.total]
        emitted, results = 0, []
        for checkpoint in checkpoints:
            while emitted < checkpoint - SAMPLES:
                n = min(BATCH, checkpoint - SAMPLES - emitted)
                write(s, mp_id, event_id, n)
                emitted += n
            timings = []
            for _ in range(SAMPLES):
                start = time.perf_counter()
                write(s, mp_id, event_id, 1)
                timings.append(time.perf_counter() - start)
                emitted += 1
            rows = s.scalar(select(func.count()).select_from(Run).where(Run.marketplace_id == mp_id))
            results.append((checkpoint, statistics.median(timings), rows))
            print(
                f"  {checkpoint:>10,} emitted: {statistics.median(timings) * 1e3:7.3f} ms per insert+trim, "
                f"{rows:,} entries kept",
                flush=True,
            )

    # The baseline is the first checkpoint past the cap: before it, a trim has nothing to delete.
    base = next((median for checkpoint, median, _ in results if checkpoint > CAP), results[0][1])
    print(f"\nlog cap {CAP}, {url.split(':')[0]}; median cost relative to the 2,000-entry baseline:")
    for checkpoint, median, rows in results:
        print(f"  {checkpoint:>10,} emitted: x{median / base:.2f}   ({rows:,} kept)")


if __name__ == "__main__":
    main()
