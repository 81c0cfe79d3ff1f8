"""Waiting on a condition with a deadline: how tests synchronise with other processes."""
from __future__ import annotations

import time


def wait_for(condition, timeout: float = 30.0, interval: float = 0.05, message: str = "condition not met"):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} within {timeout} s")
        time.sleep(interval)
