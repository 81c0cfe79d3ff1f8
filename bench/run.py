"""The benchmark suite: runs the scenarios one after another, prints their tables, and writes one JSON file each
(bench/results/<scenario>.json) plus bench/results/suite.json with them all. `make bench` runs everything (about 15
minutes on a 2-core machine), `make bench-quick` a subset with fewer, shorter runs (under 3 minutes).

    .venv/bin/python bench/run.py [--quick] [--only intake,end_to_end,...] [--postgres URL]

Scenarios: intake, end_to_end (with memory), latency, rules, burst, log_cost, queue_floor, intake_postgres (only when a
PostgreSQL URL is given: --postgres or HOOKYARD_BENCH_POSTGRES_URL).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from types import SimpleNamespace

import burst
import end_to_end
import intake
import latency
import log_cost
import queue_floor
import report
import rule_count
from procs import stop_on_signals

SCENARIOS = {
    "intake": intake,
    "end_to_end": end_to_end,
    "latency": latency,
    "rules": rule_count,
    "burst": burst,
    "log_cost": log_cost,
    "queue_floor": queue_floor,
    "intake_postgres": intake,
}
QUICK = ("intake", "end_to_end", "latency")


def scenario_options(name: str, quick: bool, postgres: str | None) -> SimpleNamespace:
    # Every option a scenario's own command line has, at its default; apply_defaults fills the quick/full values.
    opts = SimpleNamespace(
        quick=quick,
        reps=None,
        seconds=None,
        events=None,
        deadline=None,
        workers=None,
        latencies=None,
        fork_too=False,
        threads=None,
        json=None,
        postgres=postgres,
        rate=50.0,
        connections=16,
        big=100_000,
        total=None,
        jobs=None,
        postgres_only=name == "intake_postgres",
    )
    SCENARIOS[name].apply_defaults(opts)
    return opts


def main(argv=None):
    stop_on_signals()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a subset, fewer and shorter runs (under 3 minutes)")
    parser.add_argument("--only", help="comma-separated scenario names")
    parser.add_argument("--postgres", help="a PostgreSQL URL for intake_postgres (its tables are emptied)")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(QUICK if args.quick else SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    began = time.monotonic()
    results, tables, failed = {}, [], []
    for name in names:
        print(f"\n# {name}", flush=True)
        started = time.monotonic()
        try:
            data = SCENARIOS[name].run(scenario_options(name, args.quick, args.postgres))
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        data["seconds_taken"] = round(time.monotonic() - started, 1)
        report.write(name, data)
        results[name] = data
        tables += [data[k] for k in ("table", "memory_table") if data.get(k)]
        tables += [f"\n{name}: {data['skipped']}"] if data.get("skipped") and not data.get("table") else []
    took = time.monotonic() - began
    print("\n\n# Summary" + ("" if not args.quick else " (quick: fewer, shorter runs)"))
    for text in tables:
        print(text)
    for name, data in results.items():
        print(f"{name}: {data['seconds_taken']:.0f} s")
    print(f"\nsuite took {took / 60:.1f} min" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    report.write("suite", {"quick": args.quick, "minutes": round(took / 60, 1), "failed": failed, "results": results})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
