"""Scenario: does the number of rules cost intake? wrk POSTs product_purchased events (web only) to an instance with
10 rules against one with 100,000 rules over 10,000 products, with 1 and with 10 matching rules per event.

Every product has 10 rules: for "1 match" one is a product_purchased rule and 9 are product_refunded rules (so the
table holds as many rules, but one matches); for "10 matches" all 10 are product_purchased rules. The 10-rule
baseline is one product with its 10 rules; the 100,000-rule instance has 10,000 products and each event names one at
random. The rules are bulk-inserted with SQLAlchemy into the instance's database (the API would take minutes).

    .venv/bin/python bench/rule_count.py [--quick] [--reps 3] [--seconds 8] [--connections 16] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
import time

import load
import report
from procs import stop_on_signals, tree_cpu_seconds
from stack import Stack

RULES_PER_PRODUCT = 10
INVITE_PARAMS = {"skip_invitation": False, "space_ids": [], "space_group_ids": [], "member_tag_ids": []}


def bulk_rules(stack: Stack, products: int, matches: int) -> float:
    """Inserts ``products`` products p1..pN with RULES_PER_PRODUCT rules each; returns the seconds it took."""
    from sqlalchemy import insert, select

    from hookyard.db import Database
    from hookyard.models import Product, Rule

    began = time.monotonic()
    db = Database(stack.env["DATABASE_URL"])
    with db.session() as s:
        s.execute(
            insert(Product),
            [
                {"marketplace_id": stack.store_id, "external_id": f"p{i}", "name": f"Product {i}"}
                for i in range(1, products + 1)
            ],
        )
        ids = s.scalars(select(Product.id).where(Product.marketplace_id == stack.store_id)).all()
        rows = []
        for product_id in ids:
            for k in range(RULES_PER_PRODUCT):
                trigger = "samcart.product_purchased" if k < matches else "samcart.product_refunded"
                rows.append(
                    {
                        "marketplace_id": stack.store_id,
                        "product_id": product_id,
                        "trigger": trigger,
                        "integration_id": stack.integration_id,
                        "action": "invite_member",
                        "params": INVITE_PARAMS,
                        "enabled": True,
                    }
                )
        s.execute(insert(Rule), rows)
        s.commit()
    db.dispose()
    return time.monotonic() - began


def one_run(products: int, matches: int, opts) -> dict:
    with Stack("rules") as stack:
        stack.start_fake()
        stack.prepare_instance(rules=0)
        seeded = bulk_rules(stack, products, matches)
        stack.start_web()
        load.wrk(stack.web_url, "/api/v1/events", 4, 1, stack.token, products)  # warm-up, not measured
        result = measure_products(stack, products, opts)
        result["seed_seconds"] = seeded
        return result


def measure_products(stack: Stack, products: int, opts) -> dict:

    before = tree_cpu_seconds([stack.web.pid])
    result = load.wrk(stack.web_url, "/api/v1/events", opts.connections, opts.seconds, stack.token, products)
    result["cpu_ms_per_request"] = 1000 * (tree_cpu_seconds([stack.web.pid]) - before) / max(1, result["requests"])
    return result


def run(opts) -> dict:
    missing = load.wrk_missing()
    if missing:
        print(missing)
        return {"skipped": missing}
    configs = [(products, matches) for matches in opts.matches for products in (1, opts.big // RULES_PER_PRODUCT)]
    runs: dict[str, list[dict]] = {}
    for rep, (products, matches) in report.interleaved(configs, opts.reps):
        name = f"{products * RULES_PER_PRODUCT:,} rules, {matches} match{'es' if matches > 1 else ''}"
        result = report.attempt(name, one_run, products, matches, opts)
        runs.setdefault(name, []).append(result)
        print(
            f"  run {rep + 1}/{opts.reps} {name:28} {result['requests_per_s']:7.1f} req/s  p50 {result['p50_ms']:.1f} ms"
            f"  (seeded in {result['seed_seconds']:.1f} s)"
            + (f"  non-2xx {result['non_2xx']}" if result["non_2xx"] else ""),
            flush=True,
        )
    summary = {
        n: {k: report.spread([r[k] for r in rs]) for k in ("requests_per_s", "p50_ms", "p99_ms", "cpu_ms_per_request")}
        for n, rs in runs.items()
    }
    rows = []
    for matches in opts.matches:
        suffix = f"{matches} match{'es' if matches > 1 else ''}"
        base = summary[f"10 rules, {suffix}"]
        for n in (f"10 rules, {suffix}", f"{opts.big:,} rules, {suffix}"):
            s = summary[n]
            # Cost ratio: how many times longer each event takes than at the baseline (baseline req/s / this req/s).
            cost = f"x{base['requests_per_s']['median'] / s['requests_per_s']['median']:.2f}"
            rows.append(
                [
                    n,
                    report.cell(s["requests_per_s"]),
                    cost,
                    report.cell(s["p50_ms"]),
                    report.cell(s["cpu_ms_per_request"], 2),
                ]
            )
    text = report.table(
        f"rules: intake at {opts.connections} connections, {opts.seconds:g} s per run, {opts.reps} interleaved runs, median (min-max)",
        ["rules", "req/s", "cost vs 10 rules", "p50 ms", "CPU ms/req"],
        rows,
    )
    return {"summary": summary, "runs": runs, "table": text, "repetitions": opts.reps}


def options(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--big", type=int, default=100_000, help="rules in the large instance")
    parser.add_argument("--json")
    opts = parser.parse_args(argv)
    apply_defaults(opts)
    return opts


def apply_defaults(opts):
    opts.reps = opts.reps or 3
    opts.seconds = opts.seconds or (3.0 if opts.quick else 5.0)
    opts.matches = [10] if opts.quick else [1, 10]


def main(argv=None):
    stop_on_signals()
    opts = options(argv)
    report.write("rules", run(opts), opts.json)


if __name__ == "__main__":
    sys.exit(main())
