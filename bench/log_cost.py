"""Scenario: log cost, bench/logcap.py (insert + trim of finished log entries, as the worker does them) run and read
as a suite scenario: the median cost per insert at each checkpoint up to --total entries, as a ratio to the cost at
1,000 entries and to logcap.py's own 2,000-entry baseline (the first checkpoint where a trim deletes), same run.

    .venv/bin/python bench/log_cost.py [--quick] [--total 1000000] [--json PATH]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import report
from procs import stop_on_signals

SCRIPT = Path(__file__).resolve().parent / "logcap.py"


def run(opts) -> dict:
    done = subprocess.run([sys.executable, str(SCRIPT), "--total", str(opts.total)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"logcap.py failed:\n{done.stderr[-1500:]}")
    costs = {
        int(n.replace(",", "")): float(ms)
        for n, ms in re.findall(r"^\s+([\d,]+) emitted:\s+([\d.]+) ms per insert\+trim", done.stdout, re.M)
    }
    first, base = costs[min(costs)], costs.get(2000, costs[min(costs)])
    rows = [[f"{n:,}", f"{ms:.3f}", f"x{ms / first:.2f}", f"x{ms / base:.2f}"] for n, ms in sorted(costs.items())]
    text = report.table(
        f"log cost: insert + trim with the log capped at 1,000 entries, up to {opts.total:,} written (one run)",
        ["entries written", "median ms per insert+trim", "vs 1,000", "vs 2,000 (first trim)"],
        rows,
    )
    return {"total": opts.total, "median_ms": costs, "table": text}


def options(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--total", type=int)
    parser.add_argument("--json")
    opts = parser.parse_args(argv)
    apply_defaults(opts)
    return opts


def apply_defaults(opts):
    opts.total = opts.total or (100_000 if opts.quick else 1_000_000)


def main(argv=None):
    stop_on_signals()
    opts = options(argv)
    report.write("log_cost", run(opts), opts.json)


if __name__ == "__main__":
    sys.exit(main())
