"""Scenario: emit -> remote call latency. Events are POSTed at a steady rate (50/s by default, each on schedule, not
after the previous answer) and each one's latency is the fake Circle's arrival time of its call minus the moment it
was sent (both time.monotonic, one clock for all processes). Hookyard with 2 default workers, against Node-RED (whose
webhook makes the call before answering) in the same run, interleaved and repeated.

    .venv/bin/python bench/latency.py [--quick] [--reps 3] [--rate 50] [--seconds 15] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import load
import report
from end_to_end import _drain
from peers import node_red_missing, peers_env, start_node_red
from procs import stop_on_signals
from stack import Stack

WORKERS = 2


def _percentiles(calls: list, emitter: load.Emitter, waited_until: float) -> dict:
    """p50/p99 over every accepted event. An event whose call had not arrived when the wait ended counts with the
    time it had waited so far, so that a backlog raises the percentiles instead of vanishing from them (the figure
    is then a lower bound, flagged as such)."""
    first = {}
    for email, at, _ in calls:
        if email in emitter.sent and email not in first:
            first[email] = at
    latencies = sorted(1000 * (first.get(email, waited_until) - sent) for email, sent in emitter.sent.items())
    if len(latencies) < 2:
        return {"p50_ms": None, "p99_ms": None, "samples": len(first), "lower_bound": False}
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": cuts[98],
        "samples": len(first),
        "lower_bound": len(first) < len(emitter.sent),
    }


def measure(stack: Stack, url: str, token: str, opts, tag: str) -> dict:
    emitter = load.Emitter(url, token)
    started = time.monotonic()
    emitter.paced(opts.rate, opts.seconds, tag)
    calls, drained = _drain(stack, emitter, started, opts.seconds + opts.drain)
    result = _percentiles(calls, emitter, time.monotonic())
    result.update(drained=drained, accepted=len(emitter.sent), offered=int(opts.rate * opts.seconds))
    return result


def hookyard_run(opts, tag: str) -> dict:
    with Stack("latency") as stack:
        stack.start_fake()
        stack.prepare_instance(rules=1)
        stack.start_web()
        stack.start_workers(WORKERS)
        stack.fake("reset")
        return measure(stack, f"{stack.web_url}/api/v1/events", stack.token, opts, tag)


def run(opts) -> dict:
    skip_node_red = node_red_missing()
    if skip_node_red:
        print(skip_node_red)
    systems = ["hookyard"] + ([] if skip_node_red else ["node-red"])
    runs: dict[str, list[dict]] = {s: [] for s in systems}
    with Stack("latency-peers") as peers:
        if not skip_node_red:
            fake_url = peers.start_fake()
            node_red_url, _ = start_node_red(peers.procs, peers_env(), peers.tmp, fake_url)
        for rep, system in report.interleaved(systems, opts.reps):
            tag = f"lat-{rep}-{system}-{time.time_ns()}"
            if system == "hookyard":
                result = report.attempt("hookyard run", hookyard_run, opts, tag)
            else:
                peers.fake("reset")
                result = measure(peers, f"{node_red_url}/hook", "", opts, tag)
            runs[system].append(result)
            print(
                f"  run {rep + 1}/{opts.reps} {system:9} p50 {report.fmt(result['p50_ms'])} ms  "
                f"p99 {report.fmt(result['p99_ms'])} ms  ({result['samples']} calls of {result['offered']} offered)"
                + ("  (lower bounds: not drained)" if result["lower_bound"] else ""),
                flush=True,
            )
    summary = {s: {k: report.spread([r[k] for r in rs]) for k in ("p50_ms", "p99_ms")} for s, rs in runs.items()}
    base = summary.get("node-red")
    rows = [
        [
            s,
            report.cell(v["p50_ms"]),
            report.ratio(v["p50_ms"], base["p50_ms"]) if base else "-",
            report.cell(v["p99_ms"]),
            report.ratio(v["p99_ms"], base["p99_ms"]) if base else "-",
        ]
        for s, v in summary.items()
    ]
    text = report.table(
        f"latency: emit -> remote call at a steady {opts.rate:g} events/s for {opts.seconds:g} s, "
        f"Hookyard with {WORKERS} workers, {opts.reps} interleaved runs, median (min-max)",
        ["system", "p50 ms", "p50 vs Node-RED", "p99 ms", "p99 vs Node-RED"],
        rows,
    )
    if any(r["lower_bound"] for rs in runs.values() for r in rs):
        print(
            f"Some runs had not delivered every event {opts.drain:g} s after the last emit: their figures are lower bounds."
        )
    return {
        "rate": opts.rate,
        "seconds": opts.seconds,
        "repetitions": opts.reps,
        "summary": summary,
        "runs": runs,
        "table": text,
        "skipped": skip_node_red,
    }


def options(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--json")
    opts = parser.parse_args(argv)
    apply_defaults(opts)
    return opts


def apply_defaults(opts):
    opts.reps = opts.reps or (2 if opts.quick else 3)
    opts.seconds = opts.seconds or (3.0 if opts.quick else 8.0)
    # Seconds after the last emit to wait for calls: a backlog longer than this is counted as a lower bound.
    opts.drain = 4.0 if opts.quick else 8.0


def main(argv=None):
    stop_on_signals()
    opts = options(argv)
    report.write("latency", run(opts), opts.json)


if __name__ == "__main__":
    sys.exit(main())
