"""Each process's plugin set, published in Redis, so that processes running different plugins are noticed: after
`hookyard plugins install`, a process that was not restarted lacks the new plugin (or runs its old version), and
its runs or pages would behave unlike the others'. Every web and worker process publishes its set when it starts
and compares it with the sets of the others still alive, logging a warning for each difference.

A set lives under its own key with a TTL that its process keeps refreshing (the worker at each maintenance, the web
process on requests), and is deleted when the process stops cleanly, so that a process gone for longer than the TTL
is no longer compared with.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from datetime import datetime, timezone

from .jobqueue import REDIS_ERRORS
from .runtime import Runtime

KEY_PREFIX = "hookyard:plugin-set:"
TTL = 900  # seconds a set outlives its process's last refresh
REFRESH_EVERY = 60.0  # seconds between a web process's refreshes (on requests)
ADVICE = "restart every web and worker process after installing or removing a plugin"

log = logging.getLogger(__name__)


def plugin_versions(rt: Runtime) -> dict[str, str]:
    return {p.name: p.version or "unversioned" for p in rt.registry.plugins()}


class Publication:
    """This process's published set: ``announce`` once at start, ``refresh`` now and then, ``withdraw`` at exit."""

    def __init__(self, rt: Runtime, role: str):
        self.rt = rt
        self.process = f"{role} on {socket.gethostname()} (pid {os.getpid()})"
        self.key = KEY_PREFIX + self.process
        self.plugins = plugin_versions(rt)
        self.value = json.dumps(
            {"process": self.process, "plugins": self.plugins, "since": datetime.now(timezone.utc).isoformat()}
        )
        self._refreshed = 0.0

    def announce(self) -> list[str]:
        """Publishes the set and returns (and logs) how each other live process's set differs from it."""
        self.rt.redis.set(self.key, self.value, ex=TTL)
        self._refreshed = time.monotonic()
        found = []
        for key in self.rt.redis.scan_iter(match=KEY_PREFIX + "*", count=200):
            if key.decode() == self.key:
                continue
            raw = self.rt.redis.get(key)
            if raw is None:  # that process withdrew meanwhile
                continue
            other = json.loads(raw)
            difference = describe(self.plugins, other["plugins"])
            if difference:
                found.append(f"plugin sets differ: {other['process']}, running since {other['since']}, {difference}")
        for line in found:
            log.warning("%s (this process is %s): %s", line, self.process, ADVICE)
        return found

    def refresh(self, at_most_every: float = 0.0) -> None:
        if time.monotonic() - self._refreshed < at_most_every:
            return
        self._refreshed = time.monotonic()
        try:
            self.rt.redis.set(self.key, self.value, ex=TTL)
        except REDIS_ERRORS:
            pass  # Redis is away: the set is published again once it is back

    def withdraw(self) -> None:
        try:
            self.rt.redis.delete(self.key)
        except REDIS_ERRORS:
            pass  # it expires by itself


def describe(mine: dict[str, str], theirs: dict[str, str]) -> str:
    """How ``theirs`` differs from ``mine``, or '' when they are the same."""
    parts = []
    for name in sorted(set(mine) | set(theirs)):
        own, other = mine.get(name), theirs.get(name)
        if own == other:
            continue
        if other is None:
            parts.append(f"lacks plugin {name!r} ({own} here)")
        elif own is None:
            parts.append(f"has plugin {name!r} {other}, which this process lacks")
        else:
            parts.append(f"has plugin {name!r} {other} where this process has {own}")
    return ", ".join(parts)


def publish(rt: Runtime, role: str) -> Publication:
    """Announces this process's set. When Redis cannot be reached now, the process starts anyway (the comparison
    is a warning, never a reason not to serve), and its refreshes publish the set once Redis is back."""
    publication = Publication(rt, role)
    try:
        publication.announce()
    except REDIS_ERRORS as exc:
        log.info("could not compare this process's plugins with the others' (%s)", exc.__class__.__name__)
    return publication
