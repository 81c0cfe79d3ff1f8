"""The fake Circle (hookyard_circle.fake) in a process of its own, with a small control API for the benchmarks.

A process of its own so that the fake's work (it answers every call Hookyard's workers or Node-RED make) neither
shares the benchmark script's interpreter lock with the load generators nor counts as the server's CPU. The control
paths live outside Circle's /api/admin/v2, so they never collide with its API:

    GET  /_bench/calls          every POST /community_members so far: [[email, monotonic arrival time, status]...],
                                and the TCP connections opened (is the caller keeping them alive?)
    POST /_bench/reset          forgets the recorded requests
    POST /_bench/latency?s=0.05 the added latency of every Circle answer
    POST /_bench/rate?limit=111&window=3   Circle's fixed-window limit (limit=0 lifts it)

Arrival times are ``time.monotonic()`` (CLOCK_MONOTONIC, one clock for every process on the machine), so a
benchmark compares them with its own monotonic emit times.

    python bench/fake_circle_server.py --port 0 --api-key KEY   (prints "listening <port>" once it serves)
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import parse_qsl, urlsplit

from hookyard.fakeserver import Reply, run_until_interrupted, send
from hookyard_circle.fake import FakeCircle

CONTROL = "/_bench/"


class BenchCircle(FakeCircle):
    def _handle(self, handler):
        parts = urlsplit(handler.path)
        if not parts.path.startswith(CONTROL):
            return super()._handle(handler)
        query = dict(parse_qsl(parts.query))
        what = parts.path[len(CONTROL) :]
        if what == "calls":
            with self._lock:
                calls = [
                    [(r.json or {}).get("email"), r.at, r.status]
                    for r in self.requests
                    if r.method == "POST" and r.path == "/community_members"
                ]
            return send(handler, Reply(200, {"calls": calls, "connections_opened": self.connections_opened}, {}))
        if what == "reset":
            self.reset_requests()
        elif what == "latency":
            self.set_latency(float(query.get("s", 0)))
        elif what == "rate":
            self.rate_limit(int(query.get("limit", 0)) or None, float(query.get("window", 300)))
        else:
            return send(handler, Reply(404, {"error": f"no control {what!r}"}, {}))
        send(handler, Reply(200, {"ok": True}, {}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()
    fake = BenchCircle(port=args.port, api_key=args.api_key).start()
    print(f"listening {fake.port}", flush=True)
    sys.stdout.flush()
    run_until_interrupted(fake)


if __name__ == "__main__":
    main()
