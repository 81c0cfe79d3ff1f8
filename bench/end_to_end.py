"""Scenario: end to end, and the memory it takes. A fixed count of product_purchased events (each a new buyer, one
invite_member rule) is POSTed as fast as the web server takes them (16 at a time) while 1, 2 or 4 `hookyard worker`
processes deliver them to the fake Circle at 0 ms and 50 ms added latency; Node-RED gets the same kind of events in the
same run from wrk at 16 connections (its webhook makes the call before it answers). Circle's and the token's rate limits are set high (the issue's
decisions): this measures the engine, not Circle's budget.

Per run: calls/s seen at the fake (events / time from the first emit to the last call), exactly-once (every
accepted event got one POST /community_members, none twice), CPU per event of web + workers + Redis, and peak PSS of
web, workers and Redis (sampled every 0.25 s) against Node-RED's. A run that has not drained by its deadline reports
the rate so far and counts duplicates, but cannot count losses.

    .venv/bin/python bench/end_to_end.py [--quick] [--reps 3] [--events 500] [--deadline 40] [--workers 1,2,4]
        [--latencies 0,50] [--fork-too] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

import load
import report
from peers import node_red_missing, peers_env, start_node_red
from procs import PssSampler, stop_on_signals, tree_cpu_seconds
from stack import Stack


def _calls(stack: Stack) -> list:
    return stack.fake("calls")["calls"]


def _drain(stack: Stack, emitter: load.Emitter, started: float, deadline: float) -> tuple[list, bool]:
    """Waits until every accepted event has a call at the fake, or the deadline; returns (calls, drained)."""
    while True:
        calls = _calls(stack)
        wanted = set(emitter.sent)
        if wanted and wanted <= {c[0] for c in calls}:
            return calls, True
        if time.monotonic() - started > deadline:
            return calls, False
        stack.procs.check_alive()
        time.sleep(0.25)  # polling the fake's record: the condition is checked above, this only paces the polls


def _outcome(calls: list, emitter: load.Emitter, started: float, drained: bool, events: int) -> dict:
    per_email = Counter(c[0] for c in calls)
    ours = [c for c in calls if c[0] in emitter.sent]
    last = max((c[1] for c in ours), default=started)
    return {
        "events": events,
        "accepted": len(emitter.sent),
        "statuses": emitter.statuses,
        "calls": len(ours),
        "calls_per_s": len(ours) / max(1e-6, last - started),
        "duplicates": sum(n - 1 for e, n in per_email.items() if n > 1 and e in emitter.sent),
        "lost": len(set(emitter.sent) - set(per_email)) if drained else None,
        "drained": drained,
        "non_2xx_at_fake": sum(1 for c in ours if c[2] not in (200, 201)),
    }


def _durable(stack: Stack, emitter: load.Emitter) -> dict:
    """What the database holds once the deadline has passed: accepted events it has not stored (lost), and runs not
    finished yet (pending). For a run that drained, a call per event already proves nothing was lost; for one that
    did not, this is how "none lost" is still checked."""
    from sqlalchemy import func, select

    from hookyard.db import Database
    from hookyard.models import Event, Run

    db = Database(stack.env["DATABASE_URL"])
    try:
        with db.session() as s:
            stored = set(s.scalars(select(Event.email)))
            by_status = dict(s.execute(select(Run.status, func.count()).group_by(Run.status)).all())
    finally:
        db.dispose()
    return {
        "lost_from_db": len(set(emitter.sent) - stored),
        "runs_by_status": by_status,
        "pending": sum(n for status, n in by_status.items() if status not in ("succeeded", "failed")),
    }


def hookyard_run(
    workers: int, latency_ms: float, events: int, deadline: float, fork: bool, tag: str, threads: int = 1
) -> dict:
    with Stack("e2e") as stack:
        stack.start_fake()
        stack.prepare_instance(rules=1)
        stack.start_web()
        stack.fake("latency", s=latency_ms / 1000)
        stack.start_workers(workers, threads, **({"HOOKYARD_WORKER_FORK": "1"} if fork else {}))
        stack.fake("reset")
        pids = stack.server_pids()
        emitter = load.Emitter(f"{stack.web_url}/api/v1/events", stack.token)
        delivery = pids["workers"] + pids.get("redis", [])
        cpu_before = tree_cpu_seconds(pids["web"]), tree_cpu_seconds(delivery)
        with PssSampler(pids) as pss:
            started = time.monotonic()
            emitter.flood(events, tag)
            calls, drained = _drain(stack, emitter, started, deadline)
        result = _outcome(calls, emitter, started, drained, events)
        # Intake's CPU per accepted event plus delivery's per call made: a run cut short by its deadline has
        # accepted more events than it delivered, and one ratio over calls would charge their intake twice.
        web_ms = 1000 * (tree_cpu_seconds(pids["web"]) - cpu_before[0]) / max(1, result["accepted"])
        delivery_ms = 1000 * (tree_cpu_seconds(delivery) - cpu_before[1]) / max(1, result["calls"])
        result.update(cpu_ms_per_event=web_ms + delivery_ms, cpu_ms_web=web_ms, cpu_ms_delivery=delivery_ms)
        result.update(_durable(stack, emitter))
        if not drained:
            result["lost"] = result["lost_from_db"]  # stored and pending is not lost
        result["pss_mb"] = pss.peaks_mb()
        result["pss_mb"]["total"] = round(sum(pss.peaks_mb().values()), 1)
        return result


def node_red_run(peers: Stack, url: str, pid: int, latency_ms: float, seconds: float) -> dict:
    """Node-RED is driven by wrk for ``seconds`` (the Python emitter tops out near Node-RED's rate, so it would measure
    itself): each request names a new buyer, and the fake's record shows whether each accepted one made one call."""
    peers.fake("latency", s=latency_ms / 1000)
    load.wrk(url, "/hook", 4, 1)  # warm-up (V8's JIT), not measured
    peers.fake("reset")
    cpu_before = tree_cpu_seconds([pid])
    with PssSampler({"node-red": [pid]}) as pss:
        answered = load.wrk(url, "/hook", 16, seconds)
        calls = _calls(peers)
    per_email = Counter(c[0] for c in calls)
    accepted = answered["requests"] - answered["non_2xx"]
    duration = answered["requests"] / max(1e-6, answered["requests_per_s"])
    return {
        "events": answered["requests"],
        "accepted": accepted,
        "calls": len(calls),
        "calls_per_s": len(calls) / duration,
        "duplicates": sum(n - 1 for n in per_email.values() if n > 1),
        "lost": max(0, accepted - len(per_email)),
        "drained": True,  # it answers only after its call: every answered event's call has arrived
        "cpu_ms_per_event": 1000 * (tree_cpu_seconds([pid]) - cpu_before) / max(1, len(calls)),
        "pss_mb": {"total": pss.peaks_mb()["node-red"]},
    }


def run(opts) -> dict:
    skip_node_red = node_red_missing()
    if skip_node_red:
        print(skip_node_red)
    # (name, fork, threads per process)
    modes = [("no-fork", False, 1)] + [(f"{t} threads", False, t) for t in opts.threads if t > 1]
    modes += [("fork", True, 1)] if opts.fork_too else []
    configs = [("hookyard", mode, w, lat) for lat in opts.latencies for mode in modes for w in opts.workers]
    if not skip_node_red:
        configs += [("node-red", None, None, lat) for lat in opts.latencies]
    runs: dict[str, list[dict]] = {}
    with Stack("e2e-peers") as peers:
        if not skip_node_red:
            fake_url = peers.start_fake()
            node_red_url, node_red_pid = start_node_red(peers.procs, peers_env(), peers.tmp, fake_url)
        for rep, (system, mode, w, lat) in report.interleaved(configs, opts.reps):
            tag = f"r{rep}-{system}-{w}-{lat}-{time.time_ns()}"
            if system == "hookyard":
                name = f"hookyard {mode[0]} x{w} @{lat:g}ms"
                result = report.attempt(name, hookyard_run, w, lat, opts.events, opts.deadline, mode[1], tag, mode[2])
            else:
                name = f"node-red @{lat:g}ms"
                result = node_red_run(peers, node_red_url, node_red_pid, lat, opts.node_red_seconds)
            runs.setdefault(name, []).append(result)
            print(
                f"  run {rep + 1}/{opts.reps} {name:26} {result['calls_per_s']:7.1f} calls/s  "
                f"accepted {result['accepted']}/{result['events']}  dup {result['duplicates']}  lost {result['lost']}  "
                + (f"pending {result['pending']}  " if not result["drained"] else "")
                + f"{result['cpu_ms_per_event']:.1f} CPU-ms/event  PSS {result['pss_mb']['total']} MB"
                + ("" if result["drained"] else "  (not drained by the deadline)"),
                flush=True,
            )
    keys = ("calls_per_s", "cpu_ms_per_event")
    summary = {n: {k: report.spread([r[k] for r in rs]) for k in keys} for n, rs in runs.items()}
    for n, rs in runs.items():
        summary[n]["pss_total_mb"] = report.spread([r["pss_mb"]["total"] for r in rs])
        for part in ("web", "workers", "redis"):
            if part in rs[0]["pss_mb"]:
                summary[n][f"pss_{part}_mb"] = report.spread([r["pss_mb"][part] for r in rs])
        summary[n]["exact"] = all(r["duplicates"] == 0 and r["lost"] == 0 for r in rs)
        summary[n]["pending_at_deadline"] = sum(r.get("pending", 0) for r in rs if not r["drained"])
        summary[n]["duplicates"] = sum(r["duplicates"] for r in rs)
        summary[n]["lost"] = sum(r["lost"] or 0 for r in rs)
        summary[n]["undrained_runs"] = sum(1 for r in rs if not r["drained"])
    rows = []
    for n, s in summary.items():
        lat = n.rsplit("@", 1)[1]
        base = summary.get(f"node-red @{lat}")
        rows.append(
            [
                n,
                report.cell(s["calls_per_s"]),
                report.ratio(s["calls_per_s"], base["calls_per_s"]) if base else "-",
                exactness(s),
                report.cell(s["cpu_ms_per_event"]),
            ]
        )
    text = report.table(
        f"end to end: {opts.events} events per run, {opts.reps} interleaved runs, median (min-max)",
        ["configuration", "calls/s", "vs Node-RED", "exactly once", "CPU ms/event"],
        rows,
    )
    mem_rows = []
    for n, s in summary.items():
        lat = n.rsplit("@", 1)[1]
        base = summary.get(f"node-red @{lat}")
        mem_rows.append(
            [
                n,
                *(report.cell(s[f"pss_{p}_mb"]) if f"pss_{p}_mb" in s else "-" for p in ("web", "workers", "redis")),
                report.cell(s["pss_total_mb"]),
                report.ratio(s["pss_total_mb"], base["pss_total_mb"]) if base else "-",
            ]
        )
    mem_text = report.table(
        "memory: peak PSS (MB) under the end-to-end load",
        ["configuration", "web", "workers", "Redis", "total", "vs Node-RED"],
        mem_rows,
    )
    if not skip_node_red:
        print(
            "Node-RED keeps nothing on a crash (an event in flight is lost); Hookyard answers once the event is durable."
        )
    return {
        "events": opts.events,
        "repetitions": opts.reps,
        "summary": summary,
        "runs": runs,
        "table": text,
        "memory_table": mem_text,
        "skipped": skip_node_red,
    }


def exactness(s: dict) -> str:
    if not s["exact"]:
        return f"NO: {s['duplicates']} duplicate calls, {s['lost']} lost"
    if s["undrained_runs"]:
        return f"yes so far ({s['undrained_runs']} runs undrained at the deadline, {s['pending_at_deadline']} runs stored and pending)"
    return "yes"


def options(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int)
    parser.add_argument("--events", type=int)
    parser.add_argument("--deadline", type=float)
    parser.add_argument("--workers")
    parser.add_argument("--latencies")
    parser.add_argument("--fork-too", action="store_true", help="also run the forking worker (--fork)")
    parser.add_argument("--threads", help="also run workers of N threads each (HOOKYARD_WORKER_THREADS), e.g. 4,8")
    parser.add_argument("--json")
    opts = parser.parse_args(argv)
    apply_defaults(opts)
    return opts


def apply_defaults(opts):
    quick = opts.quick
    opts.reps = opts.reps or 3
    opts.node_red_seconds = 3.0 if quick else 5.0
    opts.events = opts.events or (100 if quick else 300)
    opts.deadline = opts.deadline or 8.0
    opts.workers = [int(w) for w in (opts.workers or ("2" if quick else "1,2,4")).split(",")]
    opts.threads = [int(t) for t in (opts.threads or "").split(",") if t]
    opts.latencies = [float(v) for v in (opts.latencies or ("0" if quick else "0,50")).split(",")]


def main(argv=None):
    stop_on_signals()
    opts = options(argv)
    report.write("end_to_end", run(opts), opts.json)


if __name__ == "__main__":
    sys.exit(main())
