"""What every response and every authenticated route shares: security headers and rate limits."""

from __future__ import annotations

import hashlib
import logging
import math
import time
import weakref

import redis
from flask import Flask, current_app

from . import requestctx

log = logging.getLogger(__name__)

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
# JSON is never rendered as a page, so it may load nothing. HTML pages set their own policy (the web UI's
# blueprint does, and so does the API docs page, hookyard.api.docs_ui).
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"

# While Redis is unreachable, requests skip the limiter for this long instead of each waiting out a
# connect timeout; and the outage is logged at most this often, not once per request.
OUTAGE_PAUSE = 10.0
OUTAGE_WARN_EVERY = 300.0


def init_app(app: Flask) -> None:
    """Registers the security headers on every response and the app's rate limiter."""
    app.extensions["hookyard.limiter"] = RateLimiter()
    # App-wide after_request functions run after the blueprints' ones, so setdefault keeps a blueprint's
    # own values (the web UI's stricter CSP) and fills in the rest.
    app.after_request(_security_headers)


def _security_headers(response):
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if response.is_json:
        response.headers.setdefault("Content-Security-Policy", JSON_CSP)
    return response


def over_limit(scope: str, subject: str, rate: tuple[int, float]) -> int | None:
    """Counts one request by ``subject``; when it is over ``rate`` (limit, window seconds), the seconds
    until the window resets (for Retry-After), else None. Never refuses because Redis is down."""
    return current_app.extensions["hookyard.limiter"].hit(scope, subject, rate)


# One request counted in one round trip (every API request runs it): the window starts, with its expiry, only if
# none is open, INCR keeps that expiry, and the answer carries what Retry-After needs. A script runs atomically, as
# the MULTI/EXEC pipeline of three commands it replaces did, for a fifth of the commands to send and parse.
# KEYS[1]: the subject's window; ARGV[1]: the window in milliseconds.
_HIT = """
redis.call("SET", KEYS[1], 0, "PX", ARGV[1], "NX")
local count = redis.call("INCR", KEYS[1])
return {count, redis.call("PTTL", KEYS[1])}
"""
_scripts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # client -> its Script (EVALSHA, then EVAL)


class RateLimiter:
    """Fixed windows counted in Redis, so every web process shares one count.

    A window starts at a subject's first request and lasts the configured seconds; the request that
    starts it sets the key's expiry, and later ones only increment. Fixed windows allow a burst of up
    to twice the limit across a window boundary, which is fine for abuse limits of this size.
    """

    def __init__(self):
        self._paused_until = 0.0
        self._warned_at = -math.inf

    def hit(self, scope: str, subject: str, rate: tuple[int, float]) -> int | None:
        limit, window = rate
        if limit <= 0:
            return None
        now = time.monotonic()
        if now < self._paused_until:
            return None
        runtime = requestctx.runtime()
        # Hashed: keys stay short, and no email address or token material is written to Redis.
        digest = hashlib.sha256(subject.encode()).hexdigest()
        key = f"{runtime.settings.queue_name}:ratelimit:{scope}:{digest}"
        window_ms = max(1, int(window * 1000))
        try:
            client = runtime.redis
            script = _scripts.get(client) or _scripts.setdefault(client, client.register_script(_HIT))
            count, ttl_ms = script(keys=[key], args=[window_ms], client=client)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, RuntimeError) as exc:
            # RuntimeError: REDIS_URL is unset. Either way, refusing requests here would turn a Redis
            # outage into an API outage, and events must still be accepted (stored) while Redis is down.
            self._paused_until = now + OUTAGE_PAUSE
            if now - self._warned_at >= OUTAGE_WARN_EVERY:
                self._warned_at = now
                log.warning(
                    "rate limits are not enforced: Redis is unreachable (%s); allowing requests", exc.__class__.__name__
                )
            return None
        if count <= limit:
            return None
        return max(1, math.ceil((ttl_ms if ttl_ms > 0 else window_ms) / 1000))
