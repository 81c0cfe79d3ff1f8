"""Processes a benchmark starts, and what they cost: CPU time and PSS read from /proc.

Every process is started in its own session (so a terminal's Ctrl-C reaches this script only, and the script stops
them in order: servers before the Redis they use) and registered in a ``Processes`` stack that stops them all on the
way out, on success, failure or Ctrl-C alike.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float, message: str, interval: float = 0.05):
    """Polls ``condition`` until it is truthy or ``timeout`` passes (then raises with ``message``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(message)


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Processes:
    """A stack of started processes, stopped last-started first (SIGTERM to the group, then SIGKILL)."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self._started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str], env: dict, cwd: str | None = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")
        proc = subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self._started.append((name, proc))
        return proc

    def adopt(self, name: str, proc: subprocess.Popen) -> None:
        """A process started elsewhere (hookyard.localredis) that this stack stops."""
        self._started.append((name, proc))

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            text = (self.log_dir / f"{name}.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        for name, proc in self._started:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")

    def stop(self, name: str) -> None:
        for i, (n, proc) in enumerate(self._started):
            if n == name:
                _terminate(proc)
                del self._started[i]
                return

    def stop_all(self) -> None:
        # A second Ctrl-C (or SIGTERM) while stopping must not leave the rest running: each remaining process is
        # then killed outright, and the interruption raised once all are gone.
        interrupted = None
        while self._started:
            _, proc = self._started.pop()
            try:
                if interrupted is None:
                    _terminate(proc)
                else:
                    _kill(proc)
            except (KeyboardInterrupt, SystemExit) as exc:
                interrupted = exc
                _kill(proc)
        if interrupted is not None:
            raise interrupted

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()


def _terminate(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # the whole group: gunicorn's and Node-RED's children too
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


# --------------------------------------------------------------------------- /proc readings


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (gunicorn's arbiter and workers; a forking RQ worker's job children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, ()))
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process and its reaped children (cutime + cstime), in seconds.

    The reaped children count matters for the forking worker: each job's child exits and its CPU lands in the
    parent's cutime/cstime once waited for."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # Fields after the name: state is [0], utime [11], stime [12], cutime [13], cstime [14].
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLOCK_TICKS


def tree_cpu_seconds(pids: list[int]) -> float:
    """CPU of several roots and their live descendants, not counting a reaped child twice."""
    return sum(cpu_seconds(p) for root in pids for p in tree(root))


def pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class PssSampler:
    """Samples the PSS of named process trees every ``interval`` seconds in a thread; keeps each group's peak of the
    tree's sum (PSS splits shared pages among the processes sharing them, so the sums add up honestly)."""

    def __init__(self, groups: dict[str, list[int]], interval: float = 0.25):
        self.groups = groups
        self.interval = interval
        self.peak_kib = {name: 0 for name in groups}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for name, roots in self.groups.items():
                total = sum(pss_kib(p) for root in roots for p in tree(root))
                self.peak_kib[name] = max(self.peak_kib[name], total)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def peaks_mb(self) -> dict[str, float]:
        return {name: round(kib / 1024, 1) for name, kib in self.peak_kib.items()}


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM unwind the script, so every ``with`` block stops what it started. SIGINT is set explicitly:
    a script started in the background by a non-interactive shell inherits it ignored, and then nothing would stop."""

    def terminate(signum, frame):
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, terminate)
