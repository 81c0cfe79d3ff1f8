"""Tasks: long work the worker does for the marketplace (a connection's refresh), with its progress and outcome."""

from __future__ import annotations

from flask import url_for
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import fields

from .. import backfill, tasks
from ..models import TASK_STATES, Task
from .auth import api_blueprint
from .base import BaseSchema, owned, rt, session

blp = api_blueprint("tasks", "Long work done in the background: its progress and outcome, and cancelling it")

# Seconds a client should wait before polling a queued or running task again.
POLL_AFTER = 2


class TaskSchema(BaseSchema):
    id = fields.Integer()
    kind = fields.String(metadata={"description": "What it does, e.g. integration.refresh."})
    status = fields.String(metadata={"description": " | ".join(TASK_STATES)})
    done = fields.Integer(metadata={"description": "Units of work done so far (for a refresh: records loaded)."})
    total = fields.Integer(allow_none=True, metadata={"description": "Units in all; null while not known."})
    message = fields.String(metadata={"description": "What it is doing, or how it ended (why it failed)."})
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    params = fields.Dict(
        allow_none=True,
        metadata={
            "description": "What it was asked to do, e.g. a backfill's {since, until}; null for kinds that need nothing."
        },
    )
    result = fields.Dict(
        allow_none=True,
        metadata={
            "description": "What it found, once succeeded, for a kind that answers something: a rule.backfill_preview's "
            "counts (as POST /rules/{id}/backfill with preview answers them, store_api included); null otherwise."
        },
    )
    runs = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        allow_none=True,
        metadata={
            "description": "A backfill's runs by state ({queued, running, succeeded, skipped, failed}): they keep "
            "running at the connection's pace after the task created them; absent for other kinds."
        },
    )


def out(task: Task) -> dict:
    shown = {name: getattr(task, name) for name in TaskSchema().fields if name != "runs"}
    if task.kind == backfill.KIND:  # other kinds leave it out
        shown["runs"] = backfill.runs_summary(session(), task)
    return shown


def location(task: Task) -> dict:
    """The headers of a 202 that started (or joined) a task."""
    return {"Location": url_for("tasks.TaskById", task_id=task.id), "Retry-After": str(POLL_AFTER)}


def abort_not_queued(exc: tasks.TaskNotQueued):
    abort(503, message=f"{exc.task.message} Retry in a few seconds.", headers={"Retry-After": "5"})


@blp.route("/<int:task_id>")
class TaskById(MethodView):
    @blp.response(200, TaskSchema)
    def get(self, task_id):
        """Show a task: its status, progress (done of total) and message"""
        return out(owned(Task, task_id))


@blp.route("/<int:task_id>/cancel")
class TaskCancel(MethodView):
    @blp.response(200, TaskSchema)
    @blp.alt_response(409, response="CONFLICT", description="The task had already finished.")
    def post(self, task_id):
        """Cancel a task: a queued one at once, a running one at its next step (its status says when)"""
        task = owned(Task, task_id)
        if task.kind == backfill.KIND:  # its queued runs are skipped whatever the task's own status
            return out(backfill.cancel(rt(), session(), task))
        if task.status in ("succeeded", "failed"):
            abort(409, message=f"Task {task.id} has already {task.status}; there is nothing to cancel.")
        return out(tasks.cancel(rt(), session(), task))
