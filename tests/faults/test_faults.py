"""The promise of docs/guarantees.md, under injected faults, with real worker processes, a real Redis
and the fake Circle (a real HTTP server): every accepted event is processed at least once, every
action's side effect happens at most once per (event, rule), and nothing is silently dropped."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from hookyard import localredis
from hookyard.app import create_app
from hookyard.models import Run
from hookyard.runtime import Runtime

from ..circle.fixtures import CircleSetup
from ..conftest import ApiClient
from ..processes import kill_tree
from ..waiting import wait_for

pytestmark = pytest.mark.e2e

FAULTS = ["500", "502", "503", "429", "drop", "timeout", "drop_after_apply", "timeout_after_apply"]
# Quick retries and leases so faults resolve in seconds; attempts enough that a 30% fault rate never
# exhausts them (0.3^25 per run); a pacing budget far above the burst, so only faults slow it down.
WORKER_ENV = dict(
    CIRCLE_TIMEOUT="0.5",
    CIRCLE_RATE_LIMIT="1000000/300",
    HOOKYARD_WORKER_FORK="0",
    HOOKYARD_RETRY_MAX_ATTEMPTS="25",
    HOOKYARD_RETRY_BASE_DELAY="0.05",
    HOOKYARD_RETRY_MAX_DELAY="0.5",
    HOOKYARD_LEASE_TTL="3",
    HOOKYARD_SWEEP_INTERVAL="2",
)
serial = itertools.count(1)


@pytest.fixture
def store(api, fake_circle, community):
    """A Circle connection and one global rule: every purchase invites the buyer (a new member each)."""
    circle = CircleSetup(api, fake_circle)
    integration = circle.connect()
    circle.rule(integration, "invite_member", {"space_ids": [community.space2]})
    fake_circle.hold_seconds = 1.0  # a "timeout" fault holds the answer past CIRCLE_TIMEOUT
    return circle


def buyers(n):
    return [f"buyer{next(serial)}@example.com" for _ in range(n)]


def emit_all(client, emails):
    accepted = []
    for email in emails:
        answer = client.post(
            "/api/v1/events",
            json={
                "trigger": "samcart.product_purchased",
                "payload": {
                    "customer": {"email": email},
                    "product": {"id": "444", "name": "Community"},
                    "order": {"id": email},
                },
            },
        )
        assert answer.status_code == 202, answer.json
        accepted.append(answer.json["id"])
    return accepted


def statuses(runtime) -> dict[str, int]:
    with runtime.db.session() as s:
        return dict(s.execute(select(Run.status, func.count()).group_by(Run.status)).all())


def wait_all_final(runtime, expected, timeout):
    def done():
        counts = statuses(runtime)
        return (
            counts
            if counts.get("succeeded", 0) + counts.get("failed", 0) + counts.get("skipped", 0) == expected
            else None
        )

    return wait_for(
        done,
        timeout=timeout,
        interval=0.5,
        message=lambda: f"{expected} runs did not all finish (now {statuses(runtime)})",
    )


def assert_exactly_once(fake, emails, runtime):
    counts = statuses(runtime)
    assert counts == {"succeeded": len(emails)}, counts  # none failed, queued or running
    sent = fake.invitations_sent
    assert sorted(sent) == sorted(emails), (len(sent), len(emails))  # each member invited exactly once
    assert all(fake.member(email) is not None for email in emails)


def test_1000_purchases_with_30_percent_of_circle_calls_failing(
    store, api, runtime, fake_circle, start_worker, figures
):
    fake_circle.fail_randomly(0.3, FAULTS, seed=7, retry_after=0.2)
    for _ in range(2):
        start_worker(CIRCLE_API_BASE_URL=fake_circle.base_url, **WORKER_ENV)
    emails = buyers(1000)
    began = time.monotonic()
    emit_all(api, emails)
    wait_all_final(runtime, 1000, timeout=270)
    assert_exactly_once(fake_circle, emails, runtime)
    with runtime.db.session() as s:
        attempts = s.scalar(select(func.sum(Run.attempts)))
    figures.update(
        events=1000,
        faults_injected=fake_circle.random_faults,
        runs_succeeded=1000,
        attempts=attempts,
        invitations=len(fake_circle.invitations_sent),
        duplicates=0,
        lost=0,
        seconds=round(time.monotonic() - began, 1),
    )


def test_a_worker_killed_mid_burst_and_restarted(store, api, runtime, fake_circle, start_worker, figures):
    fake_circle.fail_randomly(0.3, FAULTS, seed=11, retry_after=0.2)
    env = dict(CIRCLE_API_BASE_URL=fake_circle.base_url, **WORKER_ENV)
    victim = start_worker(**env)
    start_worker(**env)
    emails = buyers(400)
    emit_all(api, emails)
    wait_for(lambda: statuses(runtime).get("succeeded", 0) >= 100, timeout=120, message="the burst did not start")
    kill_tree(victim.pid)  # SIGKILL, mid-action: nothing of it gets to clean up
    victim.wait(timeout=10)
    killed_at = statuses(runtime)
    start_worker(**env)  # the restart
    wait_all_final(runtime, 400, timeout=240)
    assert_exactly_once(fake_circle, emails, runtime)
    with runtime.db.session() as s:
        given_up = sum(
            1 for h in s.scalars(select(Run.history)) for a in h if "lease lapsed" in (a.get("reason") or "")
        )
    figures.update(
        events=400,
        faults_injected=fake_circle.random_faults,
        running_when_killed=killed_at.get("running", 0),
        attempts_given_up_by_lease=given_up,
        runs_succeeded=400,
        duplicates=0,
        lost=0,
    )


def test_redis_stopped_for_10_seconds_during_a_burst(store, api, runtime, fake_circle, start_worker, tmp_path, figures):
    """A Redis of this test's own, stopped and started again empty (no persistence): the jobs it held are
    gone too, and the database alone must bring every accepted event to its end."""
    proc, url = localredis.start(tmp_path / "redis", persist=False)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    local = Runtime(settings=replace(runtime.settings, redis_url=url), db=runtime.db, registry=runtime.registry)
    client = ApiClient(create_app(runtime=local), api.token, api.marketplace_id)
    env = dict(CIRCLE_API_BASE_URL=fake_circle.base_url, REDIS_URL=url, **WORKER_ENV)
    for _ in range(2):
        start_worker(**env)
    try:
        before = buyers(200)
        emit_all(client, before)
        proc.terminate()
        proc.wait(timeout=10)
        outage_began = time.monotonic()
        during = buyers(100)
        emit_all(client, during)  # every one answered 202: stored, to be enqueued later
        wait_for(lambda: time.monotonic() - outage_began >= 10, timeout=15, interval=0.2, message="outage")
        proc, _ = localredis.start(tmp_path / "redis", port=port, persist=False)
        after = buyers(100)
        emit_all(client, after)
        wait_all_final(runtime, 400, timeout=240)
        assert_exactly_once(fake_circle, before + during + after, runtime)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    figures.update(
        events=400, accepted_during_outage=len(during), outage_seconds=10, runs_succeeded=400, duplicates=0, lost=0
    )
