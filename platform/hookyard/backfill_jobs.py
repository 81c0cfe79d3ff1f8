"""The job of a backfill task (hookyard.backfill), enqueued by name with the task's id only, like the others in
hookyard.taskjobs."""

from __future__ import annotations

from . import backfill, runtime
from .tasks import run as run_task


def backfill_rule(task_id: int) -> str:
    rt = runtime.current()
    return run_task(rt, task_id, lambda session, task, progress: backfill.work(rt, session, task, progress))
