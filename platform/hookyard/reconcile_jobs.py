"""The worker's side of access reconciliation (hookyard.reconcile): the task that reads who holds what in the
app's remote and writes the report, and the schedule (HOOKYARD_RECONCILE_EVERY_HOURS) that starts such checks."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select

from . import connections, reconcile, runtime, tasks, usage
from .contract import Cancelled, ConnectionFailed
from .jobqueue import REDIS_ERRORS
from .models import Integration, ReconcileReport, utcnow
from .pacing import pacer
from .runtime import Runtime
from .tasks import TaskFailed
from .tasks import run as run_task

log = logging.getLogger(__name__)


def reconcile_integration(task_id: int) -> str:
    """Compares who should hold each governed target with who holds it, and fills in the task's report."""
    rt = runtime.current()

    def work(session, task, progress) -> str:
        report_id = (task.params or {}).get("report_id")
        spent = {"calls": 0}
        try:
            return _check(rt, session, task, report_id, progress, spent)
        except Cancelled:
            session.rollback()
            reconcile.end(rt, report_id, "cancelled", "Cancelled before it finished.", calls=spent["calls"])
            raise
        except TaskFailed as exc:
            session.rollback()
            reconcile.end(rt, report_id, "failed", str(exc), calls=spent["calls"])
            raise
        except Exception as exc:
            session.rollback()
            reconcile.end(
                rt,
                report_id,
                "failed",
                f"It failed inside Hookyard ({exc.__class__.__name__}); the worker's log has the details.",
                calls=spent["calls"],
            )
            raise

    return run_task(rt, task_id, work)


def _check(rt: Runtime, session, task, report_id, progress, spent: dict) -> str:
    report = session.get(ReconcileReport, report_id) if report_id else None
    if report is None or report.marketplace_id != task.marketplace_id:
        raise TaskFailed("Its report was deleted before the check could start.")
    integration = session.get(Integration, task.target_id)
    if integration is None or integration.marketplace_id != task.marketplace_id:
        raise TaskFailed("The integration was deleted before it could be checked.")
    app = reconcile.members_of(rt, integration)
    if app is None:
        raise TaskFailed(f"The {integration.app} app cannot list who holds access.")
    the_plan = reconcile.plan(rt, session, integration)
    if not the_plan.governing:
        raise TaskFailed("No enabled rule of this integration grants or revokes access any more.")
    config, info = connections.full_config(rt, integration), dict(integration.info or {})
    if report.scheduled:
        refused = refusal(
            rt, session, app, integration, config, info, reconcile.estimate(session, integration, the_plan)
        )
        if refused:
            log.warning("integration %s, scheduled access check: %s", integration.id, refused)
            raise TaskFailed(refused)
    session.commit()  # no transaction open while the remote is read (SQLite's write lock; usage's own count)
    progress(0, None, f"Reading who holds each of {len(the_plan.targets)} governed targets from {app.name}.")
    with usage.metered(rt, app, info) as meter:
        try:
            # Paced under the connection's share of the budget its runs use: a check never starves the runs, nor
            # runs into the remote's rate limit itself.
            pace = pacer(rt.redis, f"integration-{integration.id}", defer=False)
            holders = app.members.read(config, info, the_plan.candidates(), progress=progress, pace=pace)
        except Cancelled:
            spent["calls"] = meter.calls
            raise
        except ConnectionFailed as exc:
            spent["calls"] = meter.calls
            raise TaskFailed(exc.message) from exc
        except Exception as exc:  # a plugin bug: the report says so, the log has the traceback
            spent["calls"] = meter.calls
            log.exception("app %s failed while listing members", app.key)
            raise TaskFailed(
                f"The {app.name} plugin failed while listing members ({exc.__class__.__name__}); the worker's log "
                "has the details."
            ) from exc
        spent["calls"] = meter.calls
    differences, counts = reconcile.compare(rt, session, integration, app, the_plan, holders)
    now = utcnow()
    found = counts["counts"]
    message = (
        f"{found['missing']} missing, {found['should_be_gone']} should be gone, {found['untouched']} untouched; "
        f"{spent['calls']} {app.usage.label if app.usage else 'calls'} made."
    )
    report = session.get(ReconcileReport, report_id)
    report.status = "ready"
    report.differences = differences
    report.calls = spent["calls"]
    report.finished_at = now
    report.summary = {
        **counts,
        "message": message,
        "calls": spent["calls"],
        "rules": [g.rule.id for g in the_plan.governing],
        "events_read": the_plan.events_read,
        "oldest_event_at": the_plan.oldest_event_at.isoformat() if the_plan.oldest_event_at else None,
        "event_retention_days": rt.settings.event_retention_days,
        "checked_at": now.isoformat(),
    }
    session.commit()
    return message


def refusal(rt: Runtime, session, app, integration, config, info, estimate: int) -> str | None:
    """Why a scheduled check must not run: this month's calls plus its estimate would pass the share of the quota
    that HOOKYARD_RECONCILE_QUOTA_SHARE allows. None when it may run (or the plan has no quota)."""
    used = usage.summary(rt, session, app, config, info)
    if not used or not used.get("quota"):
        return None
    share, quota = rt.settings.reconcile_quota_share, used["quota"]
    if used["calls"] + estimate <= share * quota:
        return None
    month = datetime.strptime(used["period"], "%Y-%m").strftime("%B %Y")
    return (
        f"Not run: this scheduled check would make about {estimate:,} {used['label']}, and with the "
        f"{used['calls']:,} already used in {month} (UTC) that is over {share:.0%} of the monthly quota of "
        f"{quota:,} (HOOKYARD_RECONCILE_QUOTA_SHARE). A check started by hand still runs."
    )


def schedule_key(rt: Runtime) -> str:
    return f"{rt.settings.queue_name}:reconcile-schedule"


def schedule_due(rt: Runtime) -> int:
    """Starts a scheduled check of every integration whose last one is older than HOOKYARD_RECONCILE_EVERY_HOURS.
    Run by every worker's sweep; a lock in Redis, held for a sweep interval, lets one worker look per interval, and
    the task's unique active key keeps two from starting the same check. Never raises."""
    hours = rt.settings.reconcile_every_hours
    if hours <= 0:
        return 0
    try:
        if not rt.redis.set(schedule_key(rt), "1", nx=True, ex=max(1, rt.settings.sweep_interval)):
            return 0  # another worker looked within this interval
    except REDIS_ERRORS:
        return 0
    apps = [key for key, app in rt.registry.apps.items() if app.members is not None]
    if not apps:
        return 0
    started = 0
    due = utcnow() - timedelta(hours=hours)
    try:
        with rt.db.session() as session:
            last = (
                select(func.max(ReconcileReport.created_at))
                .where(
                    ReconcileReport.integration_id == Integration.id,
                    ReconcileReport.marketplace_id == Integration.marketplace_id,
                    ReconcileReport.scheduled.is_(True),
                )
                .scalar_subquery()
            )
            ids = list(
                session.scalars(select(Integration.id).where(Integration.app.in_(apps), last.is_(None) | (last < due)))
            )
            session.commit()
            for integration_id in ids:
                integration = session.get(Integration, integration_id)
                if integration is None:
                    continue
                try:
                    reconcile.start(rt, session, integration, scheduled=True)
                    started += 1
                except reconcile.NotReconcilable:
                    session.rollback()  # no rule governs anything: nothing to check
                except tasks.TaskNotQueued:
                    log.warning("integration %s: the scheduled access check could not be queued", integration_id)
    except Exception:  # the schedule must never stop the sweep
        log.exception("scheduling access checks failed")
    return started
