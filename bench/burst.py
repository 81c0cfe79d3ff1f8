"""Scenario: the launch-day burst, bench/circle_burst.py (Circle's real rate-limit shape, scaled down) run and read
as a suite scenario: its completion time as a ratio to the floor the budget allows (the baseline it computes in the
same run), 429s, and Circle calls per purchase, repeated and summarised.

    .venv/bin/python bench/burst.py [--quick] [--reps 3] [--events 400] [--json PATH]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import report
from procs import stop_on_signals

SCRIPT = Path(__file__).resolve().parent / "circle_burst.py"


def parse(out: str) -> dict:
    def number(pattern):
        m = re.search(pattern, out)
        return float(m.group(1)) if m else None

    return {
        "ratio_to_floor": number(r"completion / floor: x([\d.]+)"),
        "elapsed_s": number(r"all runs finished in ([\d.]+) s"),
        "floor_s": number(r"floor at the budget: ([\d.]+) s"),
        "received_429": number(r"429s received: (\d+)"),
        "requests_per_purchase": number(r"\(([\d.]+) per purchase\)"),
        "statuses": (m.group(1) if (m := re.search(r"by status: (\{.*\})", out)) else None),
    }


def run(opts) -> dict:
    runs = []
    for rep in range(opts.reps):
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--events", str(opts.events)], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"circle_burst.py failed:\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}")
        result = parse(done.stdout)
        runs.append(result)
        print(
            f"  run {rep + 1}/{opts.reps} x{result['ratio_to_floor']:.2f} the floor ({result['elapsed_s']} s / "
            f"{result['floor_s']} s), 429s {result['received_429']:.0f}, runs {result['statuses']}",
            flush=True,
        )
    summary = {
        k: report.spread([r[k] for r in runs]) for k in ("ratio_to_floor", "received_429", "requests_per_purchase")
    }
    text = report.table(
        f"burst: {opts.events} purchases under Circle's limit shape (scaled), 2 workers, {opts.reps} runs, median (min-max)",
        ["completion / floor", "429s received", "Circle requests per purchase"],
        [
            [
                report.cell(summary["ratio_to_floor"], 2),
                report.cell(summary["received_429"], 0),
                report.cell(summary["requests_per_purchase"], 2),
            ]
        ],
    )
    return {"events": opts.events, "summary": summary, "runs": runs, "table": text}


def options(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int)
    parser.add_argument("--events", type=int)
    parser.add_argument("--json")
    opts = parser.parse_args(argv)
    apply_defaults(opts)
    return opts


def apply_defaults(opts):
    opts.reps = opts.reps or (1 if opts.quick else 3)
    opts.events = opts.events or (200 if opts.quick else 300)


def main(argv=None):
    stop_on_signals()
    opts = options(argv)
    report.write("burst", run(opts), opts.json)


if __name__ == "__main__":
    sys.exit(main())
