"""The log entry shape (a run), shared by the events and logs resources."""

from __future__ import annotations

from marshmallow import fields

from .base import BaseSchema


class RanSchema(BaseSchema):
    app_name = fields.String(allow_none=True)
    action_label = fields.String()
    integration_name = fields.String(allow_none=True, metadata={"description": "The connection's name then."})
    product_name = fields.String(allow_none=True)
    params = fields.Dict(metadata={"description": "The rule's parameters then."})
    settings = fields.List(
        fields.List(fields.String()),
        metadata={
            "description": "[label, value] pairs of the parameters, option ids named as the connection named them "
            "then (attempts only)."
        },
    )


RAN = (
    "What the entry ran, as it was then: deleting or renaming the rule, connection or product later does not change it."
)


class AttemptSchema(BaseSchema):
    attempt = fields.Integer()
    started_at = fields.String()
    finished_at = fields.String()
    status = fields.String()
    reason = fields.String(allow_none=True)
    retryable = fields.Boolean()
    retry_in = fields.Float(metadata={"description": "Seconds until the next attempt, when one was scheduled."})
    details = fields.Dict(metadata={"description": 'What the action reported, e.g. {"circle_calls": 1}.'})
    ran = fields.Nested(RanSchema, metadata={"description": "What this attempt ran. " + RAN})
    # An entry with these marks a replay rather than an attempt: the attempts after it are the replay's.
    replayed_at = fields.String(metadata={"description": "Set on replay entries: when a retry was requested."})
    replayed_by = fields.String(metadata={"description": "Who requested it (a user's email, or 'the API')."})
    after_attempt = fields.Integer(metadata={"description": "The number of attempts made before the replay."})


class LogEntrySchema(BaseSchema):
    id = fields.Integer()
    event_id = fields.Integer(
        allow_none=True, metadata={"description": "Null only for a test of the trigger's example payload."}
    )
    origin = fields.String(
        metadata={
            "description": "Why the entry exists: event (an event matched the rule), test (a live rule test), "
            "backfill (the rule applied to past events), reconcile (a reconciliation report's fix)."
        }
    )
    task_id = fields.Integer(
        allow_none=True,
        metadata={"description": "The task (GET /api/v1/tasks/{id}) of the backfill or fix that made the entry."},
    )
    rule_id = fields.Integer(allow_none=True)
    trigger = fields.String()
    app = fields.String(allow_none=True)
    action = fields.String()
    integration_id = fields.Integer(allow_none=True)
    product_id = fields.Integer(allow_none=True)
    product_name = fields.String(
        allow_none=True, metadata={"description": "The product's name when the event arrived."}
    )
    ran = fields.Nested(
        RanSchema,
        allow_none=True,
        metadata={
            "description": "What the latest attempt ran, or what the entry was set to run when it was created. " + RAN
        },
    )
    email = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "queued | running | succeeded | skipped | failed"})
    reason = fields.String(allow_none=True)
    attempts = fields.Integer()
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    not_before = fields.DateTime(allow_none=True, metadata={"description": "Earliest time of the next attempt."})


class LogEntryDetailSchema(LogEntrySchema):
    history = fields.List(fields.Nested(AttemptSchema))
    payload = fields.Dict(metadata={"description": "The trigger payload, as validated."})
    params = fields.Dict(
        allow_none=True, metadata={"description": "The rule's current parameters (null once it is deleted)."}
    )
    deleted = fields.List(
        fields.String(),
        metadata={"description": "Which of the rule, integration and product the entry names no longer exist."},
    )
