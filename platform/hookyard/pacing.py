"""A request budget shared by every worker through Redis, split fairly between connections.

Remote APIs such as Circle limit requests per client IP, so one budget covers the whole deployment.
The budget is an exact sliding window (a log of request times in a sorted set): no interval of
``window`` seconds ever holds more than ``limit`` requests, whatever window alignment the remote
uses. A connection under its fair share (limit / active connections) always gets a slot while the
budget lasts; one over its share gets a slot only from budget the others are not using. A connection
is active while it keeps asking (within the last ACTIVE_HORIZON seconds), so a waiting connection
keeps its share reserved and an idle one does not.
"""

from __future__ import annotations

import math
import random
import time

from .contract import Deferred

# KEYS[1] bucket prefix. ARGV: limit, window (s), member, active horizon (s), sub-window (s) and its
# limit. Returns "0" for a granted slot, else the seconds to wait, as a string (Lua numbers would be
# truncated to integers on the way out).
_ACQUIRE = """
local prefix, limit, window, member, horizon, sub, sub_limit =
  KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local ttl = math.ceil(window) + 1
local all, asking = prefix .. ':log', prefix .. ':asking'
redis.call('ZADD', asking, now, member)
redis.call('ZREMRANGEBYSCORE', asking, '-inf', now - horizon)
redis.call('EXPIRE', asking, ttl)

local function used(key)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  return redis.call('ZCARD', key)
end
local total = used(all)
if total >= limit then
  local oldest = redis.call('ZRANGE', all, 0, 0, 'WITHSCORES')
  return tostring(math.max(tonumber(oldest[2]) + window - now, 0.001))
end
if sub < window and redis.call('ZCOUNT', all, now - sub, '+inf') >= sub_limit then
  local oldest = redis.call('ZRANGEBYSCORE', all, now - sub, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  return tostring(math.max(tonumber(oldest[2]) + sub - now, 0.001))
end
local members = redis.call('ZRANGE', asking, 0, -1)
local share = limit / #members
if used(prefix .. ':log:' .. member) + 1 > share then
  local reserved = 0
  for _, m in ipairs(members) do
    if m ~= member then
      local u = used(prefix .. ':log:' .. m)
      if u < share then reserved = reserved + (share - u) end
    end
  end
  if limit - total - 1 < reserved then
    return tostring(math.max(window * #members / limit, 0.001))
  end
end
local id = now .. ':' .. redis.call('INCR', prefix .. ':seq')
redis.call('ZADD', all, now, id)
redis.call('ZADD', prefix .. ':log:' .. member, now, id)
redis.call('EXPIRE', all, ttl)
redis.call('EXPIRE', prefix .. ':log:' .. member, ttl)
redis.call('EXPIRE', prefix .. ':seq', ttl)
return '0'
"""

# A connection that has not asked for this long no longer holds a share. Waiting runs ask again
# well within it: inline waits are short, and a deferral for share lasts window * connections / limit.
ACTIVE_HORIZON = 10.0


class FairBudget:
    """``limit`` requests per ``window`` seconds. With ``sub_window``, they are also spread evenly:
    at most the proportional share of the limit in any ``sub_window``, so a backlog drains at a steady
    rate with short waits instead of a burst followed by a long wait."""

    def __init__(self, redis, bucket: str, limit: int, window: float, sub_window: float | None = None):
        if limit < 1 or window <= 0:
            raise ValueError("a budget needs a limit of at least 1 per a positive window")
        self.redis, self.key, self.limit, self.window = redis, f"hookyard:pace:{bucket}", limit, window
        self.sub_window = min(sub_window or window, window)
        self.sub_limit = max(1, math.ceil(limit * self.sub_window / window))
        self._script = redis.register_script(_ACQUIRE)

    def try_acquire(self, member: str) -> float:
        """0.0 when a slot was taken for ``member``; otherwise how long to wait before asking again."""
        horizon = min(self.window, ACTIVE_HORIZON)
        args = [self.limit, self.window, member, horizon, self.sub_window, self.sub_limit]
        return float(self._script(keys=[self.key], args=args))


# Waiting in the job keeps a worker busy for nobody else; past this, the run is deferred instead.
MAX_INLINE_WAIT = 2.0


def pacer(redis, member: str, *, defer: bool = True):
    """The ``RunContext.pace`` implementation for one connection. With ``defer=False`` it waits however long the
    budget asks, never raising Deferred: for a task that reads the remote (access reconciliation), which has no run to
    put back on the queue."""
    budgets: dict[tuple, FairBudget] = {}

    def pace(bucket: str, limit: int, window: float) -> None:
        budget = budgets.get((bucket, limit, window))
        if budget is None:
            budget = budgets[(bucket, limit, window)] = FairBudget(
                redis, bucket, limit, window, sub_window=MAX_INLINE_WAIT
            )
        deadline = time.monotonic() + MAX_INLINE_WAIT
        while True:
            wait = budget.try_acquire(member)
            if wait == 0:
                return
            if defer and time.monotonic() + wait > deadline:
                # Jitter spreads the deferred runs so they do not return as one herd.
                raise Deferred(
                    wait + random.uniform(0, min(wait, window / 10)),
                    f"pacing: the shared {bucket} budget of {limit} requests per {window:g} s is in use",
                )
            time.sleep(wait)

    return pace
