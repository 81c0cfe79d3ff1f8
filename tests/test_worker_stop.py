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
