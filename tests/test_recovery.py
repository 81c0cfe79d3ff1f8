"""Recovery: a run whose worker died mid-action, or whose job never reached Redis, still finishes."""

import os
import signal
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from hookyard.emit import emit
from hookyard.models import Marketplace
from hookyard.runtime import Runtime

from .conftest import purchase
from .processes import kill_tree
from .test_e2e import wait_status
from .waiting import wait_for

pytestmark = pytest.mark.e2e
FAST_SWEEPS = dict(
    HOOKYARD_JOB_TIMEOUT="1",
    HOOKYARD_STUCK_GRACE="0",
    HOOKYARD_SWEEP_INTERVAL="1",
    HOOKYARD_RETRY_BASE_DELAY="0.1",
    HOOKYARD_RETRY_MAX_DELAY="0.2",
)
# Leases of 2 s and the default 300 s job timeout: only a lapsed lease can explain a recovery.
SHORT_LEASES = dict(
    HOOKYARD_LEASE_TTL="2", HOOKYARD_SWEEP_INTERVAL="1", HOOKYARD_RETRY_BASE_DELAY="0.1", HOOKYARD_RETRY_MAX_DELAY="0.2"
)
# Each way a worker can run its jobs: in a forked child, in itself, in one of its threads (hookyard.worker_threads).
MODES = {
    "forking": dict(HOOKYARD_WORKER_FORK="1"),
    "non-forking": dict(HOOKYARD_WORKER_FORK="0"),
    "threaded": dict(HOOKYARD_WORKER_THREADS="3"),
}
modes = pytest.mark.parametrize("mode", list(MODES.values()), ids=list(MODES))


@modes
def test_a_worker_killed_mid_action_leaves_no_run_running(setup, api, recorder, start_worker, mode):
    setup.rule(setup.integration())
    recorder.holds["ada@example.com"] = 30  # the first call is still in flight when the worker dies
    first = start_worker(**SHORT_LEASES, **mode)
    event = setup.emit(purchase())
    wait_for(lambda: recorder.calls_for("ada@example.com"), message="the action never started")
    kill_tree(first.pid)  # the worker and the job it forked, as a lost machine would
    first.wait(timeout=10)
    assert [r["status"] for r in api.get(f"/api/v1/events/{event['id']}").json["runs"]] == ["running"]

    start_worker(**SHORT_LEASES)
    [run] = wait_status(api, event["id"])
    assert (run["status"], run["attempts"]) == ("succeeded", 2)
    history = api.get(f"/api/v1/logs/{run['id']}").json["history"]
    assert history[0]["status"] == "failed" and "lease lapsed" in history[0]["reason"]
    assert [c["attempt"] for c in recorder.calls_for("ada@example.com")] == [1, 2]


def test_a_long_action_keeps_its_lease_and_is_never_taken_over(setup, api, recorder, start_worker):
    """The attempt outlives its lease's TTL several times over; its worker renews it, so another worker's
    sweeps (every second) leave it alone and the action runs once."""
    setup.rule(setup.integration())
    recorder.holds["ada@example.com"] = 4.5  # under the recorder action's 5 s request timeout
    start_worker(**SHORT_LEASES)
    event = setup.emit(purchase())
    wait_for(lambda: recorder.calls_for("ada@example.com"), message="the action never started")
    start_worker(**SHORT_LEASES)
    [run] = wait_status(api, event["id"])
    assert (run["status"], run["attempts"]) == ("succeeded", 1)
    assert len(recorder.calls_for("ada@example.com")) == 1


@modes
def test_a_hung_attempt_is_given_up_at_its_job_timeout(setup, api, recorder, start_worker, mode):
    setup.rule(setup.integration())
    recorder.holds["ada@example.com"] = 30
    # The job timeout (1 s) ends the attempt; RQ kills the job. In a thread, the attempt ends when its call does (the
    # recorder action's 5 s timeout); the sweeper gives it up at the job timeout all the same.
    hung = start_worker(**FAST_SWEEPS, **mode)
    event = setup.emit(purchase())
    [run] = wait_status(api, event["id"])
    assert run["status"] == "succeeded" and run["attempts"] >= 2
    assert hung.poll() is None  # the worker itself lives on


def test_runs_accepted_while_redis_was_unreachable_are_enqueued_by_the_sweeper(
    setup, api, runtime, start_worker, caplog
):
    setup.rule(setup.integration())
    no_redis = Runtime(
        settings=replace(runtime.settings, redis_url="redis://127.0.0.1:9/0"), db=runtime.db, registry=runtime.registry
    )
    with runtime.db.session() as s:
        store = s.query(Marketplace).filter_by(name="store-a").one()
        event = emit(no_redis, s, store, "samcart.product_purchased", purchase()).event
    assert "stays queued: Redis unreachable" in caplog.text
    start_worker(**FAST_SWEEPS)
    [run] = wait_status(api, event.id)
    assert (run["status"], run["attempts"]) == ("succeeded", 1)


@modes
def test_a_worker_asked_to_stop_stops_even_though_it_outlives_redis_outages(start_worker, mode):
    """The worker starts itself again after losing Redis, but never after SIGTERM (a deploy, Ctrl-C)."""
    worker = start_worker(**mode)
    worker.terminate()
    # 0 after RQ's warm shutdown; -SIGTERM if the signal came before RQ installed its handlers.
    assert worker.wait(timeout=20) in (0, -signal.SIGTERM)


@pytest.mark.parametrize("died", ["before starting the job", "before claiming the run"])
def test_a_job_whose_worker_died_before_claiming_its_run_is_enqueued_again(
    setup, api, recorder, runtime, start_worker, died
):
    """The worker took the job off its queue and died, either before RQ marked it started (the job still says
    queued, in no queue: RQ never cleans that up for a worker of several queues) or after, but before the run
    was claimed (RQ would give the job up only after the job timeout). The sweep must count neither as alive."""
    from datetime import datetime, timedelta, timezone

    from rq.job import Job
    from rq.serializers import JSONSerializer

    from hookyard.jobqueue import run_job_id

    rule = setup.rule(setup.integration())
    event = setup.emit(purchase())  # no worker yet: its job waits in the queue
    job_id = run_job_id(event["id"], rule)
    for queue in runtime.redis.keys("rq:queue:*"):
        runtime.redis.lrem(queue, 0, job_id)  # taken off the queue by the worker that then died
    if died == "before claiming the run":
        job = Job.fetch(job_id, connection=runtime.redis, serializer=JSONSerializer)
        job.set_status("started")
        job.started_at = datetime.now(timezone.utc) - timedelta(minutes=10)
        job.save()

    start_worker(**SHORT_LEASES)
    [run] = wait_status(api, event["id"])
    assert (run["status"], run["attempts"]) == ("succeeded", 1)
    assert len(recorder.calls_for("ada@example.com")) == 1


def test_a_stop_signal_during_a_sweep_stops_the_worker_without_a_traceback(runtime, in_process, monkeypatch, caplog):
    """RQ's SIGTERM handler raises StopRequested wherever an idle worker's main thread is, a sweep included: the
    sweep lets it through (RQ's loop ends on it) instead of logging it as a failed sweep with its traceback, which
    is what Ctrl-C on `make run` printed when the signal came mid-sweep."""
    from rq.exceptions import StopRequested

    from hookyard import sweeper

    def signalled(rt):
        raise StopRequested()  # where RQ's signal handler would raise it

    monkeypatch.setattr(sweeper, "_prune_events", signalled)
    with pytest.raises(StopRequested):
        sweeper.sweep()
    assert "sweep failed" not in caplog.text


@modes
def test_a_worker_stopped_mid_action_hands_the_run_back_within_its_grace(setup, api, recorder, start_worker, mode):
    """A deploy: SIGTERM to every process of the worker (its forked job too, as a platform signals a whole dyno), and
    SIGKILL 30 s later. The job gets HOOKYARD_WORKER_STOP_TIMEOUT to end; this one does not, so its run goes back to
    the queue (not left running, not counted as an attempt) and the worker exits well before the SIGKILL."""
    setup.rule(setup.integration())
    recorder.holds["ada@example.com"] = 4  # in flight longer than the grace, under the action's 5 s timeout
    worker = start_worker(**mode, HOOKYARD_WORKER_STOP_TIMEOUT="1")
    event = setup.emit(purchase())
    wait_for(lambda: recorder.calls_for("ada@example.com"), message="the action never started")
    os.killpg(worker.pid, signal.SIGTERM)
    assert worker.wait(timeout=15) == 0  # within the grace and the hand back, far from a platform's 30 s

    [run] = api.get(f"/api/v1/events/{event['id']}").json["runs"]
    assert (run["status"], run["attempts"]) == ("queued", 0)
    assert "handed back: the worker was stopping" in api.get(f"/api/v1/logs/{run['id']}").json["reason"]

    start_worker(**mode)  # the next worker takes it from the queue, with no sweep needed
    [run] = wait_status(api, event["id"])
    assert (run["status"], run["attempts"]) == ("succeeded", 1)
    assert len(recorder.calls_for("ada@example.com")) == 2  # the interrupted call went out: at least once


def test_a_delayed_job_is_never_scheduled_before_its_time(runtime):
    """RQ's scheduled registry keeps whole seconds: a run due at 12:00:01.2 must not be run at 12:00:01."""
    from rq.registry import ScheduledJobRegistry

    from hookyard.jobqueue import enqueue_run, queue_for

    due = datetime.now(timezone.utc).replace(microsecond=200_000) + timedelta(seconds=30)
    run = SimpleNamespace(id=1, job_id="run-1-1-1", integration_id=None, not_before=due)
    enqueue_run(runtime, run)
    registry = ScheduledJobRegistry(queue=queue_for(runtime, run))
    assert registry.get_scheduled_time("run-1-1-1") >= due


def test_an_attempt_holds_its_lease_until_its_outcome_is_committed(setup, api, runtime, in_process):
    """The sweeper takes over a running attempt that has no lease: released before the outcome's commit, a finished
    attempt could be taken over in between, its outcome dropped and its call made again."""
    from sqlalchemy import event as sa_event

    from hookyard import jobs

    setup.rule(setup.integration())
    event = setup.emit(purchase())
    [run] = api.get(f"/api/v1/events/{event['id']}").json["runs"]
    lease = jobs.lease_key(runtime, run["id"])
    held_at_commit = []

    def on_commit(_conn):
        held_at_commit.append(bool(runtime.redis.exists(lease)))

    sa_event.listen(runtime.db.engine, "commit", on_commit)
    try:
        assert jobs.run_rule(run["id"]) == "succeeded"
    finally:
        sa_event.remove(runtime.db.engine, "commit", on_commit)
    assert held_at_commit[-1] is True  # the outcome's commit
    assert not runtime.redis.exists(lease)  # and released once it was done
    assert api.get(f"/api/v1/logs/{run['id']}").json["status"] == "succeeded"
