"""Waiting on a condition with a deadline: how tests synchronise with other processes."""

from __future__ import annotations

import time


def wait_for(condition, timeout: float = 30.0, interval: float = 0.05, message="condition not met"):
    """`message` may be a function, called at the deadline, to say what the state was then."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{message() if callable(message) else message} within {timeout} s")
        time.sleep(interval)
