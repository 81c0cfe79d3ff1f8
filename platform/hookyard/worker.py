"""The worker process: RQ's worker over the shard queues, round robin, forking or not, sweeping with RQ's
maintenance (hookyard.sweeper) and taking over a dead worker's scheduler locks (hookyard.scheduler_locks); and the
loop that outlives a Redis outage."""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import contextmanager

from rq.exceptions import ShutDownImminentException, StopRequested
from rq.serializers import JSONSerializer
from rq.worker import HerokuWorker, RoundRobinWorker, SimpleWorker, WorkerStatus

from . import plugin_sets
from .jobqueue import REDIS_ERRORS, shard_queues
from .runtime import Runtime
from .scheduler_locks import reclaim
from .sweeper import sweep

log = logging.getLogger(__name__)


class Sweeping:
    """Sweeps with RQ's maintenance, which every worker runs between jobs and while idle, and keeps its process's
    plugin set published (hookyard.plugin_sets)."""

    plugin_set: plugin_sets.Publication | None = None
    _beat_at = 0.0

    def heartbeat(self, timeout=None, pipeline=None):
        """RQ's worker heartbeat (an HSET and two EXPIREs) in one round trip, and at most once a second between jobs,
        rather than three round trips three times per job. What it extends lives worker_ttl + 60 s, so a beat
        skipped within a second of the last one loses nothing."""
        if pipeline is not None:
            return super().heartbeat(timeout, pipeline=pipeline)
        if timeout is None and time.monotonic() - self._beat_at < 1.0:
            return
        with self.connection.pipeline(transaction=False) as pipe:
            super().heartbeat(timeout, pipeline=pipe)
            pipe.execute()
        if timeout is None:
            self._beat_at = time.monotonic()

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        try:
            reclaim(self)  # a killed worker's scheduler locks, which RQ would leave idle for a minute or more
        except REDIS_ERRORS as exc:
            log.warning("could not check the scheduler locks (%s)", exc.__class__.__name__)
        sweep()
        if self.plugin_set is not None:
            self.plugin_set.refresh()
        if self._shutdown_requested_date is not None:
            # A SIGTERM that came during maintenance was swallowed by it (RQ raises StopRequested wherever the
            # main thread is); without this the worker would block on its queues and never stop.
            raise StopRequested()


class StopsListeningAtOnce:
    """RQ's unsubscribe from its command channel, without its wait of up to a minute. RQ sends UNSUBSCRIBE, then
    stops the thread listening on the channel (which waits for a message 60 s at a time); redis-py 8's stop() joins
    that thread with no timeout, and the thread, woken by the reply to UNSUBSCRIBE just before the stop, is back in
    its wait: a stopping worker hung for a minute (most often under load, when the two steps are far apart). Here
    the thread is told to stop first, so the reply is what wakes it to end, and the join is bounded."""

    def unsubscribe(self):
        thread = self.pubsub_thread
        if not thread:
            return
        self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
        try:
            thread.stop(timeout=0)  # redis-py 8: clears the flag, joins for no time
        except TypeError:
            thread.stop()  # redis-py 5 to 7: clears the flag only
        self.pubsub.unsubscribe()
        thread.join(timeout=2)
        self.pubsub.close()


class StopsBetweenSteps:
    """A stop signal that loses no job. RQ's worker, signalled while idle, raises StopRequested wherever its main
    thread is; between the pop of a job (BLPOP) and its start, that leaves the job off its queue and still "queued",
    found only by a later sweep (hookyard.jobqueue.dropped). A deploy during a backlog hit that window most times: a
    worker with jobs waiting spends a round trip per job in it. Here the signal interrupts the wait on the queues
    alone; anywhere else it is noted, and the worker stops at its next step: before it waits again, or, holding a job
    it has just taken, once it has put that job back at the head of its queue for the next worker."""

    _waiting = False  # blocked on the queues: the one place where a stop may interrupt

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        worker = self

        class MarksTheWait(self.queue_class):
            @classmethod
            def lpop(cls, queue_keys, timeout, connection=None):
                with worker._wait():
                    return super().lpop(queue_keys, timeout, connection=connection)

            @classmethod
            def lmove(cls, connection, queue_key, timeout):
                with worker._wait():
                    return super().lmove(connection, queue_key, timeout)

        self.queue_class = MarksTheWait

    @contextmanager
    def _wait(self):
        self._waiting = True  # before the check: a signal from here on either raises or is seen by it
        try:
            if self._stop_requested:
                raise StopRequested()
            yield
        finally:
            self._waiting = False

    def _shutdown(self):
        if self.get_state() == WorkerStatus.BUSY or self._waiting:
            return super()._shutdown()  # RQ's own: after the job, or out of the wait at once
        self._stop_requested = True

    def execute_job(self, job, queue):
        if self._stop_requested:
            # Taken off the queue just as the stop came: not started, so it goes back where it was.
            with self.connection.pipeline() as pipe:
                pipe.lrem(queue.intermediate_queue_key, 1, job.id)
                queue.push_job_id(job.id, pipeline=pipe, at_front=True)
                pipe.execute()
            log.info("job %s: back at the head of %s, this worker is stopping", job.id, queue.name)
            raise StopRequested()
        return super().execute_job(job, queue)


class ForkingWorker(StopsBetweenSteps, StopsListeningAtOnce, Sweeping, HerokuWorker):
    """Each job in a forked horse that ignores the platform's SIGTERM (sent to every process of a dyno). On SIGTERM
    the worker stops taking jobs, and the horse's job gets ``imminent_shutdown_delay`` seconds
    (HOOKYARD_WORKER_STOP_TIMEOUT) to end; then it is interrupted with ShutDownImminentException and hands its run
    back to the queue (hookyard.jobs.run_rule), all before the platform's SIGKILL."""

    reorder_queues = RoundRobinWorker.reorder_queues


class NonForkingWorker(StopsBetweenSteps, StopsListeningAtOnce, Sweeping, SimpleWorker):
    """The job runs in the worker itself: on SIGTERM during a job, the same grace, then the same interruption."""

    reorder_queues = RoundRobinWorker.reorder_queues
    imminent_shutdown_delay = 20

    def handle_warm_shutdown_request(self):
        super().handle_warm_shutdown_request()
        if self.get_state() == WorkerStatus.BUSY:
            # RQ's job timeout in this process is a SIGALRM too: this one replaces it, the stop coming sooner.
            signal.signal(signal.SIGALRM, _interrupt_job)
            signal.alarm(self.imminent_shutdown_delay)


class Interrupted(ShutDownImminentException):
    """The worker is stopping and its job outlasted its grace: the run goes back to the queue (hookyard.jobs). Built
    with no argument, so that it can also be raised in another thread (hookyard.worker_threads), where
    PyThreadState_SetAsyncExc takes a class."""

    def __init__(
        self, msg="the worker is stopping and the job outlasted HOOKYARD_WORKER_STOP_TIMEOUT", extra_info=None
    ):
        super().__init__(msg, extra_info or {})


def _interrupt_job(signum, frame):
    raise Interrupted()


def make_worker(rt: Runtime, fork: bool, worker_class=None):
    """Forking isolates each job in a child; not forking runs several times faster (warm caches and
    connections). Both serve the shard queues round robin and sweep every HOOKYARD_SWEEP_INTERVAL.
    ``worker_class`` is another worker's class (hookyard.worker_threads) set up the same way."""
    interval = rt.settings.sweep_interval
    worker = (worker_class or (ForkingWorker if fork else NonForkingWorker))(
        shard_queues(rt),
        connection=rt.redis,
        serializer=JSONSerializer,
        maintenance_interval=interval,
        # An idle worker waits on the queues for worker_ttl - 15 s between maintenance runs.
        worker_ttl=interval + 15,
        job_monitoring_interval=max(1, min(30, (interval + 15) // 3)),
    )
    worker.imminent_shutdown_delay = rt.settings.worker_stop_timeout
    return worker


def work(rt: Runtime, fork: bool, burst: bool = False) -> None:
    """Runs a worker until it is asked to stop. RQ's worker quits when Redis goes away while it finishes
    a job; this waits for Redis to come back and starts a fresh one, so an outage needs no restart by
    hand (and does not end `make run`, where one process exiting stops them all)."""
    plugin_set = plugin_sets.publish(rt, "worker")
    while True:
        worker = make_worker(rt, fork)
        worker.plugin_set = plugin_set
        try:
            worker.work(with_scheduler=True, burst=burst)
        except REDIS_ERRORS as exc:  # its teardown could not reach Redis either
            log.error("the worker lost Redis (%s)", exc.__class__.__name__)
        # RQ notes a SIGTERM/SIGINT here whether the worker was busy or idle when it came.
        if burst or worker._shutdown_requested_date is not None:
            plugin_set.withdraw()
            return
        log.error("the worker stopped after an error (see above); waiting for Redis, then starting a new one")
        wait_for_redis(rt)


def wait_for_redis(
    rt: Runtime, first_wait: float = 0.5, longest_wait: float = 10.0, stopping: threading.Event | None = None
) -> None:
    """Returns once Redis answers, or once ``stopping`` is set (hookyard.worker_threads)."""
    stopping = stopping or threading.Event()
    wait = first_wait
    while not stopping.is_set():
        try:
            rt.redis.ping()
            return
        except REDIS_ERRORS as exc:
            log.warning("Redis is unreachable (%s); trying again in %.1f s", exc.__class__.__name__, wait)
            stopping.wait(wait)  # nothing to wait on but time (or a stop): Redis itself is what is missing
            wait = min(wait * 2, longest_wait)
