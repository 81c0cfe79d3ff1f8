"""The shared request budget: never over the limit, fair between connections, waiting or deferring."""

import time

import pytest

from hookyard import Deferred
from hookyard.pacing import FairBudget, pacer

from .waiting import wait_for


@pytest.fixture
def redis(runtime):
    return runtime.redis


def grants(budget, member, tries):
    return sum(budget.try_acquire(member) == 0 for _ in range(tries))


def test_one_connection_alone_gets_the_whole_budget_and_no_more(redis):
    budget = FairBudget(redis, "t1", limit=10, window=30)
    assert grants(budget, "a", 25) == 10
    wait = budget.try_acquire("a")
    assert 0 < wait <= 30


def test_two_busy_connections_split_the_budget_evenly(redis):
    budget = FairBudget(redis, "t2", limit=10, window=30)
    got = {"a": 0, "b": 0}
    for _ in range(20):
        for member in ("a", "b"):
            got[member] += budget.try_acquire(member) == 0
    assert got == {"a": 5, "b": 5}


def test_a_burst_cannot_starve_a_connection_that_arrives_later(redis):
    budget = FairBudget(redis, "t3", limit=10, window=30)
    budget.try_acquire("quiet")  # the quiet store is asking too: it holds a fair share (5), used 1
    assert grants(budget, "burst", 100) == 5
    assert grants(budget, "quiet", 10) == 4


def test_a_connection_that_stopped_asking_gives_its_share_back(redis, monkeypatch):
    import hookyard.pacing

    monkeypatch.setattr(hookyard.pacing, "ACTIVE_HORIZON", 0.5)
    budget = FairBudget(redis, "t4", limit=10, window=30)
    assert grants(budget, "b", 1) == 1
    assert grants(budget, "a", 20) == 5  # b is asking: a gets its fair share, b keeps 4 owed
    wait_for(lambda: grants(budget, "a", 1), timeout=5, message="a never got b's unused share")
    assert grants(budget, "a", 20) == 3  # b went quiet: a takes the rest of the budget (10 in all)


def test_pace_waits_briefly_then_defers_with_the_wait(redis):
    pace = pacer(redis, "integration-1")
    pace("t5", 2, 0.2)
    pace("t5", 2, 0.2)
    start = time.monotonic()
    pace("t5", 2, 0.2)  # over budget for a moment: waits inside the job
    assert time.monotonic() - start > 0.01
    slow = pacer(redis, "integration-2")
    slow("t6", 1, 60)
    with pytest.raises(Deferred) as exc:
        slow("t6", 1, 60)
    assert exc.value.seconds > 2 and "60 s" in exc.value.reason


def test_no_interval_of_one_window_ever_holds_more_than_the_limit(redis):
    """An exact sliding window: whatever alignment the remote's own windows have, it never sees more."""
    budget = FairBudget(redis, "t7", limit=5, window=0.3)
    granted = []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        wait = budget.try_acquire("a")
        if wait == 0:
            granted.append(time.monotonic())
        else:
            time.sleep(min(wait, 0.05))  # the budget's own answer paces this loop
    assert len(granted) >= 15  # it does hand out the budget, about 5 per 0.3 s
    for i, start in enumerate(granted):
        in_window = [t for t in granted[i:] if t - start < 0.3 - 0.01]
        assert len(in_window) <= 5


def test_a_sub_window_spreads_the_budget_evenly(redis):
    budget = FairBudget(redis, "t8", limit=60, window=30, sub_window=2)  # 4 per 2 s at most
    assert grants(budget, "a", 20) == 4
    assert 0 < budget.try_acquire("a") <= 2
