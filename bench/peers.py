"""The servers Hookyard is compared with in the same run: hello-world Flask on Hookyard's gunicorn settings, and
Node-RED (installed from the npm registry at a pinned version into a cache folder outside the repository) running
the committed bench/node-red/flows.json: POST /hook -> POST to the fake Circle -> answer 202."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import requests
from procs import Processes, free_port, port_answers, wait_for
from stack import API_KEY, BENCH, BIN

NODE_RED_VERSION = "4.1.8"  # the last line that runs on Debian's Node 20 (5.x needs Node >= 22.9)
NODE_RED_HOME = Path.home() / ".cache" / "hookyard-bench" / f"node-red-{NODE_RED_VERSION}"
NODE_RED_BIN = NODE_RED_HOME / "node_modules" / ".bin" / "node-red"


def peers_env() -> dict:
    """The environment the peers run in: this one without Hookyard's or Circle's settings (they are not theirs)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("HOOKYARD_", "CIRCLE_"))}


def start_hello(procs: Processes, env: dict) -> tuple[str, int]:
    """Starts it; returns (url, pid of its gunicorn arbiter)."""
    port = free_port()
    proc = procs.start(
        "hello",
        [str(BIN / "gunicorn"), "-c", "python:hello_gunicorn_conf"],
        env={**env, "PORT": str(port), "PYTHONPATH": str(BENCH)},
        cwd=str(BENCH),
    )
    wait_for(lambda: port_answers(port), 30, "hello-world did not start:\n" + procs.log_tail("hello"), 0.1)
    return f"http://127.0.0.1:{port}", proc.pid


def node_red_missing() -> str | None:
    """None when Node-RED is installed or could be installed now; else the one-line reason to skip it."""
    if NODE_RED_BIN.exists():
        return None
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "Node-RED skipped: node and npm are not installed (Debian: apt-get install nodejs npm)"
    NODE_RED_HOME.mkdir(parents=True, exist_ok=True)
    print(f"installing node-red@{NODE_RED_VERSION} into {NODE_RED_HOME} ...", flush=True)
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", f"node-red@{NODE_RED_VERSION}"],
        cwd=NODE_RED_HOME,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not NODE_RED_BIN.exists():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"Node-RED skipped: npm install node-red@{NODE_RED_VERSION} failed: {last}"
    return None


def start_node_red(procs: Processes, env: dict, tmp: Path, fake_url: str) -> tuple[str, int]:
    """Starts it; returns (url, pid)."""
    user_dir = tmp / "node-red-user"
    user_dir.mkdir(exist_ok=True)
    flows = user_dir / "flows.json"
    shutil.copy(BENCH / "node-red" / "flows.json", flows)  # Node-RED may write beside its flows: never in the repo
    port = free_port()
    proc = procs.start(
        "node-red",
        [str(NODE_RED_BIN), "--settings", str(BENCH / "node-red" / "settings.js"), "--userDir", str(user_dir)],
        env={
            **env,
            "PORT": str(port),
            "NODE_RED_FLOWS": str(flows),
            "FAKE_CIRCLE_URL": fake_url,
            "FAKE_CIRCLE_KEY": API_KEY,
        },
    )

    def flow_answers():
        procs.check_alive()
        try:
            return requests.post(f"http://127.0.0.1:{port}/hook", json={}, timeout=2).status_code == 202
        except requests.RequestException:
            return False

    wait_for(flow_answers, 60, "Node-RED did not serve /hook:\n" + procs.log_tail("node-red"), 0.2)
    return f"http://127.0.0.1:{port}", proc.pid
