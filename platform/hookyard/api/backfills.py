"""Backfills: apply a rule to past events (stored ones), as a task whose runs are ordinary, deduplicated runs."""

from __future__ import annotations

from flask import jsonify
from flask.views import MethodView
from marshmallow import ValidationError, fields

from .. import backfill, tasks
from ..models import Rule
from .auth import api_blueprint
from .base import BaseSchema, abort_invalid, owned, rt, session
from .integrations import NOT_QUEUED, TASK_HEADERS
from .tasks import TaskSchema, abort_not_queued, location
from .tasks import out as task_out

blp = api_blueprint("backfills", "Applying a rule to past events", path="rules")


class BackfillSchema(BaseSchema):
    since = fields.DateTime(
        required=True, metadata={"description": "Events that occurred at or after this instant (with a time zone)."}
    )
    until = fields.DateTime(
        required=True, metadata={"description": "…and before this one; not in the future, after since."}
    )
    preview = fields.Boolean(
        load_default=False, metadata={"description": "true: answer the counts (200) and start nothing."}
    )
    include_store_api = fields.Boolean(
        load_default=False,
        metadata={
            "description": "true: the task first reads the range's past events from the store's API (SamCart's "
            "orders, and its subscriptions that are live now, with an API key) and stores those not received yet. "
            "With preview: true, the counts need that read too: the answer is a 202 with a task of kind "
            "rule.backfill_preview, which stores and runs nothing and ends with the counts as its result."
        },
    )


class StoreApiCountsSchema(BaseSchema):
    read = fields.Integer(
        metadata={
            "description": "Events of the rule (its trigger, and product for a product rule) that the store's API "
            "reports in the range."
        }
    )
    not_stored = fields.Integer(
        metadata={"description": "Of those, the ones never received: a start stores them and runs the rule for them."}
    )


class BackfillPreviewSchema(BaseSchema):
    candidates = fields.Integer(
        metadata={
            "description": "Stored events of the rule's trigger (and product, for a product rule) in the range, plus "
            "store_api.not_stored."
        }
    )
    would_run = fields.Integer(metadata={"description": "Candidates the rule has not run for: the runs a start makes."})
    already_run = fields.Integer(
        metadata={
            "description": "Candidates skipped: the rule already ran for them (a run in the log, or the rule's "
            "ledger once the log cap trimmed it)."
        }
    )
    oldest_event_at = fields.DateTime(
        allow_none=True,
        metadata={"description": "The oldest event the store still holds (any trigger); null when it holds none."},
    )
    retention_days = fields.Integer(
        metadata={
            "description": "HOOKYARD_EVENT_RETENTION_DAYS: events older than this whose log entries were trimmed are "
            "pruned, so a backfill cannot reach them."
        }
    )
    store_api = fields.Nested(
        StoreApiCountsSchema,
        allow_none=True,
        metadata={"description": "What the store's API adds (a rule.backfill_preview task's result); null otherwise."},
    )


@blp.route("/<int:rule_id>/backfill")
class RuleBackfill(MethodView):
    @blp.arguments(BackfillSchema)
    @blp.response(202, TaskSchema, headers=TASK_HEADERS)
    @blp.alt_response(
        200, schema=BackfillPreviewSchema, description="preview (stored events only): the counts; nothing was started."
    )
    @blp.alt_response(503, **NOT_QUEUED)
    def post(self, body, rule_id):
        """Apply the rule to past events: preview the counts, or start a backfill task (owner tokens).

        A preview with include_store_api answers 202 too: a task of kind rule.backfill_preview reads the store's
        API (as long as a start would), stores and runs nothing, and ends with the counts (this route's 200 body,
        store_api included) as its `result`.

        Only this rule runs (the events are not emitted again), once per event: events it already ran for are
        skipped, also after the log cap trimmed those runs. The runs go through the worker at the connection's
        pace. Answers the task (the running one, while the rule has one); GET its Location for progress and the
        runs' states (`runs`), POST …/cancel to stop it and skip its queued runs.
        """
        rule = owned(Rule, rule_id)
        since, until = body["since"], body["until"]
        try:
            backfill.check(rt(), session(), rule, since, until, body["include_store_api"])
        except ValidationError as exc:
            abort_invalid(exc, message="This backfill cannot run.")
        if body["preview"] and body["include_store_api"]:
            try:
                task = backfill.start_preview(rt(), session(), rule, since, until)
            except tasks.TaskNotQueued as exc:
                abort_not_queued(exc)
            return task_out(task), location(task)
        if body["preview"]:
            counts = backfill.preview(rt(), session(), rule, since, until)
            # A response of its own: the route's declared one (202) would dump it as a task.
            return jsonify(BackfillPreviewSchema().dump(counts))
        try:
            task = backfill.start(rt(), session(), rule, since, until, body["include_store_api"])
        except tasks.TaskNotQueued as exc:
            abort_not_queued(exc)
        return task_out(task), location(task)
