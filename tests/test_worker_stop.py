"""A stop signal that reaches an idle worker loses no job (hookyard.worker.StopsBetweenSteps): RQ's own handler raises
wherever the worker is, and one that lands between the pop of a job and its start leaves the job off its queue.

The signal's three places, each reached here with a real Redis and a real worker object, the handler called where
the signal would land (a signal's timing cannot be chosen; the deploy test, tests/faults/test_deployment_smoke.py,
sends real SIGTERMs during a backlog)."""

from __future__ import annotations

import pytest
from rq.exceptions import StopRequested
from rq.job import Job
from rq.serializers import JSONSerializer

from hookyard.jobqueue import shard_queues
from hookyard.worker import make_worker


@pytest.fixture(params=[False, True], ids=["non-forking", "forking"])
def worker(request, runtime):
    return make_worker(runtime, fork=request.param)


def _enqueue(runtime, count=3):
    queue = shard_queues(runtime)[0]
    return queue, [queue.enqueue("time.sleep", 0, job_id=f"stop-{n}") for n in range(count)]


def test_a_stop_while_waiting_on_the_queues_ends_the_wait_at_once(worker):
    with pytest.raises(StopRequested):
        with worker._wait():
            worker._shutdown()


def test_a_stop_between_two_steps_is_noted_and_no_job_is_taken_after_it(worker, runtime):
    queue, jobs = _enqueue(runtime)
    worker._shutdown()  # idle, not waiting: during a heartbeat, say
    assert worker._stop_requested
    with pytest.raises(StopRequested):
        worker.queue_class.dequeue_any(worker.queues, None, connection=runtime.redis, serializer=JSONSerializer)
    assert queue.job_ids == [job.id for job in jobs]


def test_a_job_taken_just_as_the_stop_came_goes_back_to_the_head_of_its_queue(worker, runtime):
    queue, jobs = _enqueue(runtime)
    job, taken_from = worker.queue_class.dequeue_any(
        worker.queues, None, connection=runtime.redis, serializer=JSONSerializer
    )
    assert job.id == jobs[0].id and queue.job_ids == [j.id for j in jobs[1:]]
    worker._shutdown()  # the signal lands after the pop, before the job starts
    with pytest.raises(StopRequested):
        worker.execute_job(job, taken_from)
    assert queue.job_ids == [j.id for j in jobs]
    assert Job.fetch(job.id, connection=runtime.redis, serializer=JSONSerializer).get_status() == "queued"


@pytest.mark.parametrize("kind", ["non-forking", "forking", "threaded"])
def test_a_stopping_worker_stops_listening_on_its_command_channel_at_once(runtime, kind):
    """RQ's teardown sent UNSUBSCRIBE and then stopped the thread listening on the worker's command channel, which
    redis-py 8 joins with no timeout: when the thread took the reply first (a loaded machine), it was back in its
    60 s wait, and the worker took a minute to exit. That interleaving is forced here (the UNSUBSCRIBE returns only
    once the thread has taken its reply), with a real Redis and the real listening thread."""
    import time

    from hookyard.worker_threads import ThreadWorker

    from .waiting import wait_for

    worker = make_worker(runtime, fork=kind == "forking", worker_class=ThreadWorker if kind == "threaded" else None)
    worker.subscribe()
    wait_for(lambda: worker.pubsub.subscribed, message="the worker never subscribed to its channel")
    sent = worker.pubsub.unsubscribe

    def unsubscribe_then_let_the_listener_take_the_reply(*args):
        sent(*args)
        wait_for(lambda: not worker.pubsub.subscribed, message="the listening thread never took the reply")

    worker.pubsub.unsubscribe = unsubscribe_then_let_the_listener_take_the_reply
    started = time.monotonic()
    worker.unsubscribe()
    assert time.monotonic() - started < 5, "the listening thread kept the stopping worker waiting"
    assert not worker.pubsub_thread.is_alive()
