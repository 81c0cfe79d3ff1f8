"""The Heroku-style deployment, end to end: PostgreSQL and Redis, the Procfile's `release` twice, then its `web` and
`worker` lines under honcho with 2 web and 3 worker processes; 500 purchases through the API, spread over both web
processes, each inviting its buyer at the fake Circle exactly once; then a deploy's SIGTERM to every process while
more work is in flight: nothing is left `running` or without its job, and no process outlives the platform's grace.

honcho signals each process group (every process of a "dyno") once, like the platform, and waits its KILL_WAIT
before SIGKILL: set here to Heroku's 30 s (honcho's own is 5 s). PostgreSQL comes from HOOKYARD_TEST_POSTGRES_URL (CI
always sets it; without it this test is skipped, as the PostgreSQL suite is). Redis is Debian's redis-server where it is
installed (CI installs it), else the suite's own server."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from hookyard.jobqueue import not_waiting
from hookyard.localredis import free_port
from hookyard.models import Run
from hookyard.runtime import build_runtime
from hookyard.settings import Settings

from ..circle.fixtures import API_KEY
from ..conftest import POSTGRES_URL
from ..processes import alive, descendants
from ..test_migrations import _scratch_database
from ..waiting import wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not POSTGRES_URL, reason="needs PostgreSQL: set HOOKYARD_TEST_POSTGRES_URL (CI does)"),
]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PURCHASES = 500
IN_FLIGHT = 40  # emitted just before the SIGTERM
GRACE = 30  # Heroku's seconds between SIGTERM and SIGKILL
METRICS_TOKEN = "smoke-metrics-token"
# What honcho itself prints about the processes it runs (without --no-prefix's prefix): not the processes' lines.
HONCHOS_OWN = re.compile(
    r"^(\S+ )?(started \(pid=\d+\)|stopped \(rc=-?\d+\)|sending SIG\w+ to \S+ \(pid \d+\)|SIG\w+ received)$"
)
HONCHO = "import sys, honcho.manager, honcho.command; honcho.manager.KILL_WAIT = 30; sys.argv[0] = 'honcho'; honcho.command.main()"


def _free_ports(count: int) -> int:
    """A base port with ``count`` free ports after it (honcho gives web.1 the base, web.2 the next)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count < 65536 and all(_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no run of free ports")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def postgres(tmp_path):
    yield from _scratch_database("postgres", tmp_path)


@pytest.fixture
def platform_redis(tmp_path, redis_url):
    """Redis from the OS packages, as a platform provides one (CI installs Debian's redis-server); without it, the
    suite's own server, on a database of its own."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield redis_url.rsplit("/", 1)[0] + "/9"
        return
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = subprocess.Popen([*command, "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=1)

    def answers():
        try:
            return client.ping()
        except redis.RedisError:
            return server.poll() is not None  # it exited: fail below rather than wait

    wait_for(answers, timeout=20, message=f"{binary} did not start")
    assert server.poll() is None, f"{binary} exited with {server.returncode}"
    yield url
    server.terminate()
    server.wait(timeout=10)


def test_the_procfile_with_two_web_and_three_workers_delivers_500_purchases_and_stops_cleanly(
    postgres, platform_redis, fake_circle, tmp_path, figures
):
    redis_db = platform_redis
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKYARD_", "CIRCLE_")) and k != "PYTHONPATH"}
    env.update(
        DATABASE_URL=postgres,
        REDIS_URL=redis_db,
        SECRET_KEY="smoke-test-secret-key",
        HOOKYARD_INSTANCE_PATH=str(tmp_path / "instance"),
        HOOKYARD_BIND="127.0.0.1",
        WEB_CONCURRENCY="1",  # two web processes of one gunicorn worker each: this machine has 2 cores
        CIRCLE_API_BASE_URL=fake_circle.base_url,
        CIRCLE_RATE_LIMIT="100000/60",  # 500 runs are not paced for minutes (Circle's own shape is tested elsewhere)
        HOOKYARD_SWEEP_INTERVAL="5",
        HOOKYARD_METRICS_TOKEN=METRICS_TOKEN,
    )
    settings = Settings.from_env(env=env)
    rt = build_runtime(settings)
    rt.redis.flushdb()

    for _ in range(2):  # the release phase, twice: the second finds nothing to do
        release = subprocess.run([BIN / "hookyard", "db", "upgrade"], env=env, capture_output=True, text=True)
        assert release.returncode == 0, release.stderr
    created = subprocess.run(
        [BIN / "hookyard", "tokens", "create", "--marketplace", "Smoke store"], env=env, capture_output=True, text=True
    )
    assert created.returncode == 0, created.stderr
    token = next(line for line in created.stdout.split() if line.startswith("hy_"))

    base = _free_ports(2)
    log_path = tmp_path / "honcho.log"
    with open(log_path, "wb") as log:
        honcho = subprocess.Popen(
            [sys.executable, "-c", HONCHO, "-f", str(ROOT / "Procfile"), "start", "-p", str(base)]
            + ["-c", "web=2,worker=3", "--no-colour", "--no-prefix", "web", "worker"],
            cwd=ROOT,
            env={**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        webs = [f"http://127.0.0.1:{base + i}" for i in range(2)]
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"

        def ready():
            try:
                up = all(session.get(f"{web}/readyz", timeout=2).status_code == 200 for web in webs)
            except requests.RequestException:
                return False
            from rq import Worker

            return up and len(Worker.all(connection=rt.redis)) == 3

        wait_for(ready, timeout=90, message=f"2 web and 3 worker processes did not start:\n{log_path.read_text()}")

        integration = session.post(
            f"{webs[0]}/api/v1/integrations",
            json={
                "app": "circle",
                "name": "Community",
                "config": {"api_key": API_KEY, "community_url": "https://test-community.circle.so"},
            },
            timeout=30,
        )
        assert integration.status_code == 201, integration.text
        rule = session.post(
            f"{webs[1]}/api/v1/rules",
            json={
                "product_id": None,
                "trigger": "samcart.product_purchased",
                "integration_id": integration.json()["id"],
                "action": "invite_member",
                "params": {},
            },
            timeout=30,
        )
        assert rule.status_code == 201, rule.text

        def purchase(i: int) -> int:
            answer = session.post(
                f"{webs[i % 2]}/api/v1/events",
                json={
                    "trigger": "samcart.product_purchased",
                    "payload": {"customer": {"email": f"buyer{i}@example.com"}, "product": {"id": "444"}},
                },
                timeout=30,
            )
            return answer.status_code

        began = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(purchase, range(PURCHASES)))
        assert statuses == [202] * PURCHASES

        def succeeded() -> int:
            with rt.db.session() as s:
                return s.scalar(select(func.count()).select_from(Run).where(Run.status == "succeeded"))

        wait_for(lambda: succeeded() == PURCHASES, timeout=300, message="the 500 runs did not all succeed")
        figures["seconds_for_500"] = round(time.monotonic() - began, 1)
        posts = [r.json["email"] for r in fake_circle.requests_for("POST", "/community_members") if r.status == 201]
        assert sorted(posts) == sorted(f"buyer{i}@example.com" for i in range(PURCHASES))  # each exactly once

        # One web process's /metrics counts what every process did (the counters live in Redis).
        scraped = requests.get(f"{webs[1]}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30)
        assert scraped.status_code == 200, scraped.text
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(scraped.text)
            for sample in family.samples
        }
        accepted = sum(v for (name, _), v in samples.items() if name == "hookyard_events_accepted_total")
        assert accepted == PURCHASES
        assert samples[("hookyard_runs_total", (("outcome", "succeeded"),))] == PURCHASES
        assert not any(name == "hookyard_scrape_error" and v for (name, _), v in samples.items())
        figures["metrics_events_accepted"] = int(accepted)

        # A deploy while work is in flight: more purchases, then SIGTERM, as the platform sends it.
        with ThreadPoolExecutor(8) as pool:
            more = list(pool.map(purchase, range(PURCHASES, PURCHASES + IN_FLIGHT)))
        assert more == [202] * IN_FLIGHT
        processes = descendants(honcho.pid)
        signalled = time.monotonic()
        honcho.send_signal(signal.SIGTERM)
        honcho.wait(timeout=GRACE + 15)
        wait_for(
            lambda: not any(alive(pid) for pid in processes),
            timeout=GRACE + 5 - (time.monotonic() - signalled),
            message="a process outlived the grace period",
        )
        stopped_in = time.monotonic() - signalled
    finally:
        if honcho.poll() is None:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait()
    output = log_path.read_text()
    assert "SIGKILL" not in output, output[-4000:]  # honcho never had to force anyone
    # Every line the processes wrote is a JSON object (honcho's own lines about them are not theirs).
    lines = [line for line in output.splitlines() if line.strip() and not HONCHOS_OWN.search(line)]
    records = [json.loads(line) for line in lines]
    assert all(isinstance(r, dict) and {"time", "level", "logger", "message"} <= r.keys() for r in records)
    assert any("run_id" in r for r in records) and any("request_id" in r for r in records)
    figures["log_lines_all_json"] = len(records)
    assert stopped_in < GRACE, stopped_in

    with rt.db.session() as s:
        runs = list(s.execute(select(Run.status, Run.job_id)))
    assert len(runs) == PURCHASES + IN_FLIGHT
    assert [status for status, _ in runs if status == "running"] == []
    waiting = [job_id for status, job_id in runs if status == "queued"]
    assert not any(not_waiting(rt, waiting)), "a queued run has no job in Redis"
    assert sorted({status for status, _ in runs}) <= ["queued", "succeeded"]
    figures.update(
        purchases=PURCHASES,
        invited_once=len(posts),
        in_flight_at_sigterm=IN_FLIGHT,
        queued_with_their_job=len(waiting),
        running_left=0,
        stopped_in_seconds=round(stopped_in, 1),
    )
    rt.db.dispose()
