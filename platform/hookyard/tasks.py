"""Tasks: long work done in the worker for a marketplace, as one resource (``GET /api/v1/tasks/{id}``).

A request starts a task and answers 202 at once; the worker runs the task's job (a module-level function taking
the task's id, hookyard.taskjobs), which reports progress as it goes and stops at the next report once the task
is cancelled. Starting the same work (kind and target) while it is queued or running gives back that task: the
unique ``active_key`` settles two simultaneous clicks in the database.

A running task holds a lease in Redis, as a run does (hookyard.jobs.Lease). The worker's sweep (and the next start
of the same work) fails a task whose lease lapsed (its worker was killed) or that ran past the job timeout, so no
task stays ``running`` forever; a queued task whose job is not in Redis is queued again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import logformat
from .contract import Cancelled
from .jobqueue import CRASH_RETRY, FAILURE_TTL, REDIS_ERRORS, RESULT_TTL, not_waiting, shard_queues
from .jobs import Lease
from .models import TASK_ACTIVE_STATES, Task, utcnow
from .runtime import Runtime

log = logging.getLogger(__name__)

REFRESH = "integration.refresh"
IMPORT_PRODUCTS = "integration.import_products"
# The job that does each kind of task, enqueued by name (hookyard.jobqueue's policy: JSON, ids only).
JOBS = {REFRESH: "hookyard.taskjobs.refresh_integration", IMPORT_PRODUCTS: "hookyard.taskjobs.import_products"}
JOBS["rule.backfill"] = "hookyard.backfill_jobs.backfill_rule"  # hookyard.backfill.KIND
JOBS["rule.backfill_preview"] = "hookyard.backfill_jobs.preview_backfill"  # hookyard.backfill.PREVIEW_KIND
JOBS["integration.reconcile"] = "hookyard.reconcile_jobs.reconcile_integration"  # hookyard.reconcile.RECONCILE
MESSAGE_LIMIT = 2000
SWEEP_BATCH = 200
# Finished tasks are kept this long (for whoever polls their Location late), then pruned by the sweep.
KEEP_FINISHED = timedelta(days=7)


class TaskNotQueued(Exception):
    """Redis was unreachable, so the task could not be put on the queue; it is recorded as failed."""

    def __init__(self, task: Task):
        super().__init__(f"task {task.id} could not be queued")
        self.task = task


class TaskFailed(Exception):
    """Raised by a task's work with the message the task ends with."""


@dataclass(frozen=True)
class Outcome:
    """What a task's work may return instead of its message: the message and a result kept on the task
    (Task.result), for a kind that answers something (a backfill preview's counts)."""

    message: str
    result: dict


def job_id(task_id: int) -> str:
    return f"task-{task_id}"


def lease_key(rt: Runtime, task_id: int) -> str:
    return f"{rt.settings.queue_name}:task-lease:{task_id}"


def _active_key(kind: str, target_id: int) -> str:
    return f"{kind}:{target_id}"


def active(session: Session, marketplace_id: int, kind: str, target_id: int) -> Task | None:
    return session.scalar(
        select(Task).where(Task.marketplace_id == marketplace_id, Task.active_key == _active_key(kind, target_id))
    )


def start(
    rt: Runtime, session: Session, marketplace_id: int, kind: str, target_id: int, params: dict | None = None
) -> Task:
    """The queued or running task doing ``kind`` for ``target_id``, or a new one, queued now, with what it was asked
    to do (``params``, e.g. a backfill's time range; the running one's stand when it is found). Commits."""
    existing = active(session, marketplace_id, kind, target_id)
    if existing is not None and not give_up_if_dead(rt, session, existing):
        return existing
    task = Task(
        marketplace_id=marketplace_id,
        kind=kind,
        target_id=target_id,
        status="queued",
        done=0,
        message="Waiting for a worker.",
        active_key=_active_key(kind, target_id),
        cancel_requested=False,
        params=params,
    )
    session.add(task)
    try:
        session.commit()
    except IntegrityError:  # the same work was started at the same moment: answer with that task
        session.rollback()
        existing = active(session, marketplace_id, kind, target_id)
        if existing is None:
            raise
        return existing
    try:
        enqueue(rt, task)
    except REDIS_ERRORS as exc:
        log.error("task %s could not be queued: Redis unreachable (%s)", task.id, exc.__class__.__name__)
        _finish(session, task.id, None, "failed", "It could not be queued: the job queue (Redis) is unreachable.")
        session.refresh(task)
        raise TaskNotQueued(task) from exc
    return task


def enqueue(rt: Runtime, task: Task) -> None:
    # On the shard of its target, like the runs of that integration, so the round-robin worker keeps other
    # connections' work moving while this one runs.
    queues = shard_queues(rt)
    queues[task.target_id % len(queues)].enqueue(
        JOBS[task.kind],
        task.id,
        job_id=job_id(task.id),
        job_timeout=rt.settings.job_timeout,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        retry=CRASH_RETRY,
    )


def cancel(rt: Runtime, session: Session, task: Task) -> Task:
    """A queued task is cancelled at once; a running one stops at its next progress report. Commits."""
    now = utcnow()
    dequeued = session.execute(
        update(Task)
        .where(Task.id == task.id, Task.status == "queued")
        .values(
            status="cancelled",
            cancel_requested=True,
            finished_at=now,
            active_key=None,
            message="Cancelled before it started.",
        )
        .execution_options(synchronize_session=False)
    )
    if dequeued.rowcount != 1:
        session.execute(
            update(Task)
            .where(Task.id == task.id, Task.status == "running")
            .values(cancel_requested=True, message="Cancelling: it stops at its next step.")
            .execution_options(synchronize_session=False)
        )
    session.commit()
    session.refresh(task)
    if dequeued.rowcount == 1:
        try:  # the job would find the task cancelled and do nothing; this only saves it the trip
            Job.fetch(job_id(task.id), connection=rt.redis, serializer=JSONSerializer).cancel()
        except Exception:  # noqa: BLE001 (gone already, or Redis down: harmless either way)
            pass
    return task


# --- running a task (in the worker) ---------------------------------------------------------------


class TaskLease(Lease):
    """hookyard.jobs.Lease under the task's own key."""

    def __init__(self, rt: Runtime, task_id: int):
        super().__init__(rt, task_id)
        self.key = lease_key(rt, task_id)


class Progress:
    """The ``progress(done, total=None, message=None)`` a task's work calls: each call is written to the task (and
    so shown to whoever polls it); it raises Cancelled once the task was cancelled or given up by the sweep."""

    def __init__(self, rt: Runtime, task_id: int, started: datetime):
        self.rt, self.task_id, self.started = rt, task_id, started

    def __call__(self, done: int, total: int | None = None, message: str | None = None) -> None:
        values = {"done": max(0, int(done))}
        if total is not None:
            values["total"] = max(0, int(total))
        if message is not None:
            values["message"] = str(message)[:MESSAGE_LIMIT]
        with self.rt.db.session() as session:
            ours = session.execute(
                update(Task)
                .where(
                    Task.id == self.task_id,
                    Task.status == "running",
                    Task.started_at == self.started,
                    Task.cancel_requested.is_(False),
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            session.commit()
        if ours.rowcount != 1:
            raise Cancelled(f"task {self.task_id} was cancelled")


def run(rt: Runtime, task_id: int, work) -> str:
    """Claims the task, runs ``work(session, task, progress)`` under a lease and records how it ended: the message
    ``work`` returns, or its Outcome (succeeded), TaskFailed's (failed), Cancelled (cancelled). Never leaves it
    running."""
    with logformat.ids(task_id=task_id):  # on every line logged while the task runs
        return _run(rt, task_id, work)


def _run(rt: Runtime, task_id: int, work) -> str:
    with rt.db.session() as session:
        started = _claim(session, task_id)
        if started is None:
            return "not claimed"  # cancelled while queued, already run, or delivered twice
        task = session.get(Task, task_id)
        session.commit()  # no transaction left open: on SQLite it would hold the write lock that progress needs
        with TaskLease(rt, task_id):
            progress = Progress(rt, task_id, started)
            result = None
            try:
                status, message = "succeeded", work(session, task, progress)
                if isinstance(message, Outcome):
                    message, result = message.message, message.result
            except Cancelled:
                session.rollback()
                status, message = "cancelled", "Cancelled."
            except TaskFailed as exc:
                session.rollback()
                status, message = "failed", str(exc)
            except Exception as exc:  # our own bug or a lost database must not leave the task running
                log.exception("task %s (%s) failed inside Hookyard", task_id, task.kind)
                session.rollback()
                status, message = (
                    "failed",
                    f"It failed inside Hookyard ({exc.__class__.__name__}); the worker's log has the details.",
                )
            if not _finish(session, task_id, started, status, message, result):
                log.warning("task %s ended (%s) after it had been given up; its outcome is dropped", task_id, status)
                return "superseded"
    log.info("task %s %s: %s", task_id, status, message)
    return status


def _claim(session: Session, task_id: int) -> datetime | None:
    started = utcnow()
    claimed = session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status == "queued", Task.cancel_requested.is_(False))
        .values(status="running", started_at=started, message="Started.")
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return started if claimed.rowcount == 1 else None


def _finish(
    session: Session, task_id: int, started: datetime | None, status: str, message: str, result: dict | None = None
) -> bool:
    """Ends the task, only if it is still the attempt that ``started`` it (when given). Work that completed after a
    cancel was asked for (it made no progress report in between) ends as it really did: succeeded."""
    query = update(Task).where(Task.id == task_id, Task.status.in_(TASK_ACTIVE_STATES))
    if started is not None:
        query = query.where(Task.started_at == started)
    ended = session.execute(
        query.values(
            status=status, message=message[:MESSAGE_LIMIT], result=result, finished_at=utcnow(), active_key=None
        ).execution_options(synchronize_session=False)
    )
    session.commit()
    return ended.rowcount == 1


# --- recovery -------------------------------------------------------------------------------------


def give_up_if_dead(rt: Runtime, session: Session, task: Task) -> bool:
    """Fails a running task whose worker died (lease lapsed) or that ran past the job timeout. True if it did."""
    if task.status != "running" or task.started_at is None:
        return False
    now = utcnow()
    if task.started_at > now - timedelta(seconds=rt.settings.lease_ttl):
        return False  # too young to judge: its lease may not be written yet
    hung = task.started_at < now - timedelta(seconds=rt.settings.job_timeout + rt.settings.stuck_grace)
    try:
        has_lease = bool(rt.redis.exists(lease_key(rt, task.id)))
    except REDIS_ERRORS:
        has_lease = True  # unknown: leave it to the job timeout
    if has_lease and not hung:
        return False
    why = (
        "its worker stopped (killed or crashed) before it finished" if not has_lease else "it ran past the job timeout"
    )
    given_up = _finish(session, task.id, task.started_at, "failed", f"It was given up: {why}. Start it again.")
    if given_up:
        log.warning("task %s (%s): given up, %s", task.id, task.kind, why)
    session.refresh(task)
    return given_up


def sweep(rt: Runtime) -> dict:
    """Run by every worker with hookyard.sweeper.sweep: dead running tasks fail, queued ones whose job is lost are
    queued again, and tasks finished more than KEEP_FINISHED ago are pruned. Each change is a conditional update,
    so overlapping sweeps are harmless."""
    now = utcnow()
    given_up = requeued = 0
    with rt.db.session() as session:
        running = list(
            session.scalars(
                select(Task)
                .where(Task.status == "running", Task.started_at < now - timedelta(seconds=rt.settings.lease_ttl))
                .order_by(Task.id)
                .limit(SWEEP_BATCH)
            )
        )
        for task in running:
            given_up += give_up_if_dead(rt, session, task)
        due = now - timedelta(seconds=rt.settings.sweep_interval)
        queued = list(
            session.scalars(
                select(Task).where(Task.status == "queued", Task.created_at < due).order_by(Task.id).limit(SWEEP_BATCH)
            )
        )
        for task, lost in zip(queued, not_waiting(rt, [job_id(t.id) for t in queued]), strict=True):
            if lost:
                log.warning("task %s was queued but its job is not in Redis: enqueueing it again", task.id)
                enqueue(rt, task)
                requeued += 1
        pruned = session.execute(
            delete(Task).where(Task.finished_at < now - KEEP_FINISHED).execution_options(synchronize_session=False)
        ).rowcount
        session.commit()
    return {"given_up": given_up, "requeued": requeued, "pruned": pruned}
