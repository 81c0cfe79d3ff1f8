"""Load generators: wrk (latency distribution, requests/s) for intake, and a paced or unpaced Python emitter for the
end-to-end scenarios, which need each event's emit time and a fixed count."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

LUA = Path(__file__).resolve().parent / "wrk" / "post_event.lua"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk_missing() -> str | None:
    """None when wrk is there (installed now with apt-get when running as root); else the line that says why not."""
    if shutil.which("wrk"):
        return None
    if os.geteuid() != 0:
        return "wrk is not installed: run `apt-get install wrk` as root"
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True)
    return None if shutil.which("wrk") else "wrk is not installed and `apt-get install -y wrk` failed"


def wrk(url: str, path: str, connections: int, seconds: float, token: str = "", products: int = 0) -> dict:
    env = dict(
        os.environ, BENCH_PATH=path, BENCH_TOKEN=token, BENCH_PRODUCTS=str(products), BENCH_RUN=str(time.time_ns())
    )
    threads = max(1, min(2, connections))
    done = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return parse_wrk(done.stdout)


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def parse_wrk(out: str) -> dict:
    result = {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "non_2xx": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0,
        "socket_errors": sum(map(int, m.groups()))
        if (m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out))
        else 0,
    }
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        result[f"p{pct}_ms"] = _ms(m.group(1)) if m else None
    return result


class Emitter:
    """POSTs events, each with its own buyer email, and records when each was sent (time.monotonic, the clock the
    fake Circle stamps arrivals with) and its status."""

    def __init__(self, url: str, token: str = ""):
        self.url = url
        self.token = token
        self.sent: dict[str, float] = {}
        self.statuses: dict[int, int] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "s"):
            self._local.s = requests.Session()
            if self.token:
                self._local.s.headers["Authorization"] = f"Bearer {self.token}"
        return self._local.s

    def emit(self, email: str) -> None:
        body = {
            "trigger": "samcart.product_purchased",
            "payload": {"customer": {"email": email}, "product": {"id": "444"}},
        }
        at = time.monotonic()
        try:
            status = self._session().post(self.url, json=body, timeout=30).status_code
        except requests.RequestException:
            status = 0
        with self._lock:
            if 200 <= status < 300:
                self.sent[email] = at
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def flood(self, count: int, prefix: str, threads: int = 16) -> None:
        """``count`` events as fast as the server takes them, ``threads`` at a time."""
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(self.emit, (f"{prefix}-{i}@example.com" for i in range(count))))

    def paced(self, rate: float, seconds: float, prefix: str, threads: int = 8) -> None:
        """A steady ``rate`` events/s for ``seconds``: event i is sent at start + i/rate (not after the previous
        answer), so a slow answer does not lower the offered rate."""
        start = time.monotonic()
        count = int(rate * seconds)
        with ThreadPoolExecutor(threads) as pool:
            for i in range(count):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # pacing the offered load, not waiting for a condition
                pool.submit(self.emit, f"{prefix}-{i}@example.com")
