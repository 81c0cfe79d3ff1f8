"""The jobs of a backfill task and of its preview (hookyard.backfill), enqueued by name with the task's id only,
like the others in hookyard.taskjobs."""

from __future__ import annotations

from . import backfill, runtime
from .tasks import run as run_task


def backfill_rule(task_id: int) -> str:
    rt = runtime.current()
    return run_task(rt, task_id, lambda session, task, progress: backfill.work(rt, session, task, progress))


def preview_backfill(task_id: int) -> str:
    rt = runtime.current()
    return run_task(rt, task_id, lambda session, task, progress: backfill.preview_work(rt, session, task, progress))
