"""The sweeper: recovers what nothing would finish. Every worker runs it at start and with RQ's maintenance
(hookyard.worker), so recovery needs neither RQ's scheduler nor a surviving worker:
- a run still ``running`` whose lease lapsed (its worker died) or that is past the job timeout (hung);
- a ``queued`` run whose job nothing will run (not in Redis, overdue, dropped or started by a worker that died);
- events past their retention; and the same for tasks (hookyard.tasks) and inbound deliveries (hookyard.deliveries).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from rq.exceptions import InvalidJobOperation, NoSuchJobError, StopRequested
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import delete, exists, func, select, update

from . import runtime
from .contract import Outcome
from .deliveries import sweep as sweep_deliveries
from .jobqueue import LIVE_JOB_STATES, REDIS_ERRORS, dispatch_again, dropped
from .jobs import lease_key, record_outcome
from .models import Event, Run, utcnow
from .reconcile_jobs import schedule_due as schedule_reconcile
from .runtime import Runtime
from .tasks import sweep as sweep_tasks

log = logging.getLogger(__name__)

SWEEP_BATCH = 500


def sweep() -> dict:
    """Recovers runs that nothing would finish. Every worker runs it at start and with RQ's maintenance
    (hookyard.worker), so recovery needs neither RQ's scheduler nor a surviving worker. Safe to run
    anywhere, any number of times at once: each recovery is claimed with an atomic update first."""
    rt = runtime.current()
    try:
        return {
            "stuck": _recover_stuck(rt),
            "lost": _redispatch_lost(rt),
            "pruned": _prune_events(rt),
            "tasks": sweep_tasks(rt),
            "deliveries": sweep_deliveries(rt),
            "reconcile": schedule_reconcile(rt),  # scheduled access checks (HOOKYARD_RECONCILE_EVERY_HOURS)
        }
    except StopRequested:
        # RQ's SIGTERM handler raises it wherever the idle worker's main thread is, this sweep included: the worker
        # is stopping, not failing (its loop ends on it), and a half-done sweep is rolled back and done next time.
        raise
    except Exception:  # a failed sweep is retried at the next one; it must never stop the worker
        log.exception("sweep failed")
        return {}
    finally:
        rt.db.dispose()  # a forking worker's parent must not hand a pooled connection to its next job


def _recover_stuck(rt: Runtime) -> int:
    """A "running" attempt whose lease lapsed lost its worker (killed, crashed); one still running past its
    job timeout is hung. Either way that attempt failed, and the run is retried."""
    now = utcnow()
    timeout_cutoff = now - timedelta(seconds=rt.settings.job_timeout + rt.settings.stuck_grace)
    recovered = 0
    with rt.db.session() as session:
        candidates = list(
            session.execute(
                select(Run.id, Run.started_at)
                .where(Run.status == "running", Run.started_at < now - timedelta(seconds=rt.settings.lease_ttl))
                .order_by(Run.started_at)
                .limit(SWEEP_BATCH)
            )
        )
        alive = _leases_alive(rt, [run_id for run_id, _ in candidates])
        for (run_id, started_at), has_lease in zip(candidates, alive, strict=True):
            if has_lease and started_at >= timeout_cutoff:
                continue  # its worker is alive and within the job timeout
            taken = session.execute(
                update(Run)
                .where(Run.id == run_id, Run.status == "running", Run.started_at == started_at)
                .values(started_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            session.commit()
            if taken.rowcount != 1:
                continue  # it finished, or another sweeper took it
            run = session.get(Run, run_id)
            why = (
                "its lease lapsed: the worker running it stopped (killed or crashed)"
                if not has_lease
                else f"it was still running {utcnow() - started_at} after it began, past the job timeout"
            )
            log.warning("run %s: giving up attempt %s, %s", run_id, run.attempts, why)
            outcome = Outcome.failed(f"the attempt was given up: {why}", retryable=True)
            record_outcome(rt, session, run, outcome, started_at, utcnow())
            recovered += 1
    return recovered


def _leases_alive(rt: Runtime, run_ids: list[int]) -> list[bool]:
    if not run_ids:
        return []
    try:
        pipe = rt.redis.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.exists(lease_key(rt, run_id))
        return [bool(n) for n in pipe.execute()]
    except REDIS_ERRORS:
        return [True] * len(run_ids)  # unknown: leave them to the job timeout


def _redispatch_lost(rt: Runtime) -> int:
    """A queued run whose job nothing will run is enqueued again (see _lost). Several sweepers may find the same
    run: the job may vanish between their reads, and the run's atomic claim keeps a doubled job harmless."""
    now = utcnow()
    due = now - timedelta(seconds=rt.settings.sweep_interval)
    redispatched = 0
    with rt.db.session() as session:
        queued = list(
            session.scalars(
                select(Run)
                .where(Run.status == "queued", func.coalesce(Run.not_before, Run.created_at) < due)
                .order_by(Run.id)
                .limit(SWEEP_BATCH)
            )
        )
        if not queued:
            return 0
        jobs = Job.fetch_many([r.job_id for r in queued], connection=rt.redis, serializer=JSONSerializer)
        for run, job, was_dropped in zip(queued, jobs, dropped(rt, jobs), strict=True):
            why = _lost(rt, run, job, was_dropped, now)
            if why is None:
                continue
            log.warning("run %s was queued but its job %s is %s: enqueueing it again", run.id, run.job_id, why)
            if job is not None:
                try:
                    job.delete()
                except (InvalidJobOperation, NoSuchJobError):
                    pass  # another sweeper deleted it first
            run.not_before = None
            dispatch_again(rt, session, run)
            redispatched += 1
    return redispatched


def _lost(rt: Runtime, run: Run, job, was_dropped: bool, now: datetime) -> str | None:
    """Why nothing will run this queued run's job, or None when something will:
    - not in Redis: Redis was down when it was enqueued, or restarted without persistence;
    - scheduled but overdue: no scheduler runs (its lock died with a killed worker);
    - taken off its queue but never started (``was_dropped``, from jobqueue.dropped);
    - started, yet the run was never claimed: the worker that took it died first (claiming takes milliseconds,
      or a wait for SQLite's write lock); RQ would only give it up after the job timeout;
    - finished, failed or stopped without running the run."""
    if job is None:
        return "not in Redis"
    if was_dropped:
        return "in no queue (the worker that took it off died before starting it)"
    status = job.get_status(refresh=False)
    due = now - timedelta(seconds=rt.settings.sweep_interval)
    if status == "scheduled" and run.not_before and run.not_before < due:
        return "overdue"
    if status == "started":
        began = job.started_at
        if began is not None and began.tzinfo is None:
            began = began.replace(tzinfo=timezone.utc)
        dead_after = timedelta(seconds=rt.settings.lease_ttl + rt.settings.sweep_interval)
        return f"started at {began.isoformat()} but never claimed" if began and began < now - dead_after else None
    return None if status in LIVE_JOB_STATES else f"{status} without running it"


def _prune_events(rt: Runtime) -> int:
    """Forgets events older than HOOKYARD_EVENT_RETENTION_DAYS whose log entries are gone (trimmed by the
    cap) or that matched no rule; with them go their dedupe and idempotency keys. An event the log still
    shows is kept, so an entry's payload and Retry keep working."""
    cutoff = utcnow() - timedelta(days=rt.settings.event_retention_days)
    with rt.db.session() as session:
        expired = (
            select(Event.id)
            .where(Event.received_at < cutoff, ~exists().where(Run.event_id == Event.id))
            .limit(SWEEP_BATCH * 10)
        )
        result = session.execute(
            delete(Event).where(Event.id.in_(expired.scalar_subquery())).execution_options(synchronize_session=False)
        )
        session.commit()
    if result.rowcount:
        log.info("pruned %s events older than %s days", result.rowcount, rt.settings.event_retention_days)
    return result.rowcount or 0
