"""Several workers in one process, one per thread (`hookyard worker --threads N`, HOOKYARD_WORKER_THREADS): while one
job waits on a slow remote, the others run theirs, in one process's memory. Each thread is an RQ worker of its own
(its own registration, heartbeat and claim of each run, as separate processes would have); the process's main thread
only holds the signals and hands a stop to every one of them.

What a thread cannot have, and what stands in for it:
- Signals reach the main thread alone: SIGTERM/SIGINT stop every worker from there (a second one stops the process at
  once, as RQ's cold shutdown does; the runs in flight are recovered by their leases).
- SIGALRM is the main thread's too: the job timeout is RQ's TimerDeathPenalty, which raises in the job's thread when
  it next runs Python code, so a call blocked on the network ends at its own read timeout first (the sweeper gives the
  attempt up at the job timeout either way, and its late outcome is dropped: hookyard.jobs._still_ours).
- An idle thread blocked on its queues cannot be interrupted: it waits on them a second at a time and notices the stop
  between two waits.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
import time

from rq.exceptions import StopRequested
from rq.timeouts import TimerDeathPenalty
from rq.utils import now
from rq.worker import RoundRobinWorker, SimpleWorker

from . import plugin_sets
from .jobqueue import REDIS_ERRORS
from .runtime import Runtime
from .worker import Interrupted, StopsListeningAtOnce, Sweeping, make_worker, wait_for_redis

log = logging.getLogger(__name__)


class ThreadWorker(StopsListeningAtOnce, Sweeping, SimpleWorker):
    """An RQ worker running in a thread of a ThreadedWorkers process."""

    reorder_queues = RoundRobinWorker.reorder_queues
    death_penalty_class = TimerDeathPenalty
    maintains = False  # the first thread's worker sweeps and runs the scheduler for the whole process

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._job_lock = threading.Lock()
        self._job_thread: int | None = None  # the ident of the thread running a job, while it runs one
        self._interrupt: threading.Timer | None = None
        self._stop_by: float | None = None  # once stopped: the monotonic time by which a job must have ended

    @property
    def dequeue_timeout(self) -> int:
        return 1

    @property
    def should_run_maintenance_tasks(self):
        return self.maintains and super().should_run_maintenance_tasks

    def _install_signal_handlers(self):
        pass  # the main thread's (ThreadedWorkers.run)

    def heartbeat(self, timeout=None, pipeline=None):
        # Called between two waits on the queues and after each job: where an idle thread sees the stop.
        if pipeline is None and self._stop_requested:
            raise StopRequested()
        return super().heartbeat(timeout, pipeline=pipeline)

    def execute_job(self, job, queue):
        with self._job_lock:
            self._job_thread = threading.get_ident()
            self._arm()  # a job taken off the queue just as the stop came gets what is left of the grace
        try:
            return super().execute_job(job, queue)
        finally:
            with self._job_lock:
                self._job_thread = None
                if self._interrupt is not None:
                    self._interrupt.cancel()
                    self._interrupt = None

    def stop(self) -> None:
        """A warm stop, from the main thread: no new job, and the current one gets ``imminent_shutdown_delay`` seconds
        (HOOKYARD_WORKER_STOP_TIMEOUT, set by make_worker) to end before it is interrupted and hands its run back to
        the queue (hookyard.jobs.run_rule)."""
        self._shutdown_requested_date = now()
        self._stop_requested = True
        with self._job_lock:
            self._stop_by = time.monotonic() + self.imminent_shutdown_delay
            self._arm()

    def _arm(self) -> None:
        """With the job lock held: the interruption of the current job at the stop's deadline."""
        if self._stop_by is not None and self._job_thread is not None and self._interrupt is None:
            wait = max(0.0, self._stop_by - time.monotonic())
            self._interrupt = threading.Timer(wait, self._interrupt_job, args=(self._job_thread,))
            self._interrupt.daemon = True
            self._interrupt.start()

    def _interrupt_job(self, thread_id: int) -> None:
        with self._job_lock:
            if self._job_thread == thread_id:  # still in the job it was stopped in, not after it
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(Interrupted))


class ThreadedWorkers:
    """``count`` ThreadWorkers in this process, each restarted after losing Redis (as hookyard.worker.work does for
    one), until a signal stops them all."""

    def __init__(self, rt: Runtime, count: int, burst: bool = False):
        self.rt, self.count, self.burst = rt, count, burst
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._workers: dict[int, ThreadWorker] = {}

    def run(self) -> None:
        plugin_set = plugin_sets.publish(self.rt, "worker")
        signal.signal(signal.SIGTERM, self._signalled)
        signal.signal(signal.SIGINT, self._signalled)
        threads = [
            threading.Thread(target=self._serve, args=(index, plugin_set), name=f"worker-{index}", daemon=True)
            for index in range(self.count)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)  # a timed join, so that the signal handlers run in this thread meanwhile
        plugin_set.withdraw()

    def _serve(self, index: int, plugin_set) -> None:
        while not self.stopping.is_set():
            worker = make_worker(self.rt, False, ThreadWorker)
            worker.maintains = index == 0
            if index == 0:
                worker.plugin_set = plugin_set
            with self._lock:
                self._workers[index] = worker
            if self.stopping.is_set():  # stopped between the check above and its registration here
                return
            try:
                worker.work(with_scheduler=index == 0, burst=self.burst)
            except REDIS_ERRORS as exc:
                log.error("worker thread %s lost Redis (%s)", index, exc.__class__.__name__)
            except Exception:
                log.exception("worker thread %s failed", index)
            if self.burst or self.stopping.is_set():
                return
            log.error("worker thread %s stopped after an error (see above); waiting for Redis, then a new one", index)
            wait_for_redis(self.rt, stopping=self.stopping)

    def _signalled(self, signum, frame) -> None:
        if self.stopping.is_set():
            # RQ's cold shutdown. Not SystemExit: the interpreter would wait for the job timers' threads.
            log.warning("a second stop signal: stopping now, the jobs in flight are recovered by their leases")
            self._stop_schedulers()
            for handler in logging.getLogger().handlers:
                handler.flush()
            os._exit(1)
        log.info("stopping %s worker threads (signal %s)", self.count, signal.Signals(signum).name)
        self.stopping.set()
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.stop()

    def _stop_schedulers(self) -> None:
        """The RQ scheduler is a process of its own, which os._exit does not end: left running, it would hold the
        queues' scheduler locks with a live heartbeat, and no other worker would move a retry or a delayed job. A
        SIGTERM, not waited for: it releases its locks and exits by itself."""
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            process = getattr(getattr(worker, "scheduler", None), "_process", None)
            if process is not None and process.pid is not None:
                try:
                    os.kill(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass


def work_in_threads(rt: Runtime, count: int, burst: bool = False) -> None:
    ThreadedWorkers(rt, count, burst).run()
