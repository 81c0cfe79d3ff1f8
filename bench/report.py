"""The comparison rules of the suite: configurations interleaved (A B C A B C ...), repeated, each figure given as
its median with the min-max spread, and as a ratio against a baseline measured in the same run. Tables go to
stdout, every figure to a JSON file (bench/results/<scenario>.json unless --json names one)."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def interleaved(configs: list, repetitions: int):
    """(repetition, config) in the order A B C A B C ..., so that drift of a shared machine hits all alike."""
    for rep in range(repetitions):
        for config in configs:
            yield rep, config


def spread(values: list[float | None]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "runs": []}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def cell(s: dict, digits: int = 1) -> str:
    """median (min-max)"""
    if s["median"] is None:
        return "-"
    if len(s["runs"]) == 1:
        return fmt(s["median"], digits)
    return f"{fmt(s['median'], digits)} ({fmt(s['min'], digits)}-{fmt(s['max'], digits)})"


def ratio(a: dict, b: dict, digits: int = 2) -> str:
    if not a["median"] or not b["median"]:
        return "-"
    return f"x{a['median'] / b['median']:.{digits}f}"


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    out = [f"\n## {title}", line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    text = "\n".join(out)
    print(text, flush=True)
    return text


def write(scenario: str, data: dict, path: str | None = None) -> Path:
    target = Path(path) if path else RESULTS / f"{scenario}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    data = {"scenario": scenario, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **data}
    target.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"(figures written to {target})", flush=True)
    return target


def attempt(what: str, fn, *args):
    """One run, tried a second time if a process it started died under it (the machine is shared: a stray signal or
    the OOM killer should cost one run, not the scenario). A second failure is raised."""
    try:
        return fn(*args)
    except RuntimeError as exc:
        print(f"  {what} failed, trying it once more: {str(exc).splitlines()[0]}", flush=True)
        return fn(*args)
