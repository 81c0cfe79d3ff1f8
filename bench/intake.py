"""Scenario: intake. wrk POSTs product_purchased events (one matching rule) to the web server alone (no workers)
at 16 and 64 connections, against hello-world Flask on the same gunicorn settings and against Node-RED's webhook
(which answers only after its outbound call to the fake Circle), interleaved and repeated in one run.

Reports requests/s, p50 and p99 latency, and CPU per request (utime+stime of the server's process tree), each as a
ratio to hello-world's. With --postgres URL (or HOOKYARD_BENCH_POSTGRES_URL) the same is measured on PostgreSQL
(scenario intake_postgres), with SQLite's Hookyard in the same run as its baseline.

    .venv/bin/python bench/intake.py [--quick] [--reps 3] [--seconds 10] [--postgres URL] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack

import load
import report
from peers import node_red_missing, peers_env, start_hello, start_node_red
from procs import Processes, stop_on_signals, tree_cpu_seconds
from stack import Stack, postgres_url

WARMUP_SECONDS = 1


def measure(url: str, path: str, connections: int, seconds: float, pids: list[int], token: str = "") -> dict:
    load.wrk(url, path, min(4, connections), WARMUP_SECONDS, token)  # imports, connections, caches: not measured
    before = tree_cpu_seconds(pids)
    result = load.wrk(url, path, connections, seconds, token)
    cpu = tree_cpu_seconds(pids) - before
    result["cpu_ms_per_request"] = 1000 * cpu / max(1, result["requests"])
    return result


def hookyard_run(connections: int, seconds: float, database_url: str | None = None) -> dict:
    with Stack("intake", database_url=database_url) as stack:
        stack.start_fake()
        stack.prepare_instance(rules=1)
        stack.start_web()
        result = measure(stack.web_url, "/api/v1/events", connections, seconds, [stack.web.pid], stack.token)
        if result["non_2xx"]:
            result["note"] = f"{result['non_2xx']} answers were not 202: see the web log"
        return result


def run(opts) -> dict:
    missing = load.wrk_missing()
    if missing:
        print(missing)
        return {"skipped": missing}
    connections = [16] if opts.quick else [16, 64]
    pg = postgres_url(getattr(opts, "postgres", None))
    systems = ["hookyard", "hello"]
    skip_node_red = (
        "Node-RED not part of this scenario" if getattr(opts, "postgres_only", False) else node_red_missing()
    )
    if getattr(opts, "postgres_only", False):
        if not pg:
            line = "intake on PostgreSQL skipped: give --postgres URL or set HOOKYARD_BENCH_POSTGRES_URL"
            print(line)
            return {"skipped": line}
    elif skip_node_red:
        print(skip_node_red)
    else:
        systems.append("node-red")
    if pg:
        systems.append("hookyard-postgres")
    runs: dict[str, list[dict]] = {f"{s} c={c}": [] for s in systems for c in connections}
    with ExitStack() as stack:
        peers = stack.enter_context(Stack("intake-peers"))
        fake_url = peers.start_fake()
        procs: Processes = peers.procs
        hello_url, hello_pid = start_hello(procs, peers_env())
        if "node-red" in systems:
            node_red_url, node_red_pid = start_node_red(procs, peers_env(), peers.tmp, fake_url)
        configs = [(s, c) for c in connections for s in systems]
        for rep, (system, c) in report.interleaved(configs, opts.reps):
            if system == "hookyard":
                result = report.attempt("hookyard run", hookyard_run, c, opts.seconds)
            elif system == "hookyard-postgres":
                result = report.attempt("hookyard run", hookyard_run, c, opts.seconds, pg)
            elif system == "hello":
                result = measure(hello_url, "/hook", c, opts.seconds, [hello_pid])
            else:
                peers.fake("reset")  # its record of calls would grow for the whole scenario
                result = measure(node_red_url, "/hook", c, opts.seconds, [node_red_pid])
            runs[f"{system} c={c}"].append(result)
            print(
                f"  run {rep + 1}/{opts.reps} {system:18} c={c:<3} {result['requests_per_s']:8.1f} req/s  "
                f"p50 {result['p50_ms']:.1f} ms  p99 {result['p99_ms']:.1f} ms  "
                f"{result['cpu_ms_per_request']:.2f} CPU-ms/req"
                + (f"  non-2xx {result['non_2xx']}" if result["non_2xx"] else ""),
                flush=True,
            )
    summary = {
        name: {
            k: report.spread([r[k] for r in rs]) for k in ("requests_per_s", "p50_ms", "p99_ms", "cpu_ms_per_request")
        }
        for name, rs in runs.items()
    }
    rows = []
    for c in connections:
        base = summary[f"hello c={c}"]
        for system in systems:
            s = summary[f"{system} c={c}"]
            rows.append(
                [
                    system,
                    c,
                    report.cell(s["requests_per_s"]),
                    report.ratio(s["requests_per_s"], base["requests_per_s"]),
                    report.cell(s["p50_ms"]),
                    report.cell(s["p99_ms"]),
                    report.ratio(s["p99_ms"], base["p99_ms"]),
                    report.cell(s["cpu_ms_per_request"], 2),
                    report.ratio(s["cpu_ms_per_request"], base["cpu_ms_per_request"]),
                ]
            )
    text = report.table(
        f"intake: POST /api/v1/events, web only, {opts.seconds:g} s per run, {opts.reps} interleaved runs, median (min-max)",
        ["system", "conns", "req/s", "vs hello", "p50 ms", "p99 ms", "p99 vs hello", "CPU ms/req", "CPU vs hello"],
        rows,
    )
    if "hookyard-postgres" in systems:
        for c in connections:
            print(
                f"c={c}: Hookyard on PostgreSQL / on SQLite req/s "
                f"{report.ratio(summary[f'hookyard-postgres c={c}']['requests_per_s'], summary[f'hookyard c={c}']['requests_per_s'])}"
            )
    if "node-red" in systems:
        print(
            "Node-RED answers after its outbound call but keeps nothing on a crash; Hookyard answers once the event is durable."
        )
    for c in connections:
        if "node-red" in systems:
            print(
                f"c={c}: Hookyard / Node-RED req/s {report.ratio(summary[f'hookyard c={c}']['requests_per_s'], summary[f'node-red c={c}']['requests_per_s'])}"
            )
    return {
        "connections": connections,
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
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--postgres", help="also measure on this PostgreSQL database (emptied first)")
    parser.add_argument("--json")
    opts = parser.parse_args(argv)
    apply_defaults(opts)
    return opts


def apply_defaults(opts):
    opts.reps = opts.reps or 3
    opts.seconds = opts.seconds or (3.0 if opts.quick else 5.0)


def main(argv=None):
    stop_on_signals()
    opts = options(argv)
    report.write("intake", run(opts), opts.json)


if __name__ == "__main__":
    sys.exit(main())
