"""Processes below a test: finding them in /proc and killing them the way a machine failure would."""

from __future__ import annotations

import os
import signal
from pathlib import Path


def descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid``, with its command line, read from /proc."""
    parents, args = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError):
            continue
        child = int(stat.parent.name)
        parents[child], args[child] = int(fields[1]), cmdline
    found = {}
    for child in parents:
        ancestor = parents.get(child)
        while ancestor:
            if ancestor == pid:
                found[child] = args[child]
                break
            ancestor = parents.get(ancestor)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return state != "Z"


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything below it. RQ runs each job in a child with its own session,
    so killing the worker's process group alone would leave the job running.

    The tree is frozen first (SIGSTOP, until a pass finds no new process): a process listed and then killed could
    fork in between, and the child (a worker's scheduler, started just after it takes its locks) would live on as
    an orphan that still holds what the test means to lose."""
    frozen: set[int] = set()
    while True:
        found = {pid, *descendants(pid)} - frozen
        if not found:
            break
        for victim in found:
            _signal(victim, signal.SIGSTOP)
        frozen |= found
    for victim in frozen:
        _signal(victim, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
