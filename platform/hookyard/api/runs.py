"""The log entry shape (a run), shared by the events and logs resources."""
from __future__ import annotations

from marshmallow import fields

from .base import BaseSchema


class AttemptSchema(BaseSchema):
    attempt = fields.Integer()
    started_at = fields.String()
    finished_at = fields.String()
    status = fields.String()
    reason = fields.String(allow_none=True)
    retryable = fields.Boolean()
    retry_in = fields.Float(metadata={"description": "Seconds until the next attempt, when one was scheduled."})
    details = fields.Dict(metadata={"description": "What the action reported, e.g. {\"circle_calls\": 1}."})
    # An entry with these marks a replay rather than an attempt: the attempts after it are the replay's.
    replayed_at = fields.String(metadata={"description": "Set on replay entries: when a retry was requested."})
    replayed_by = fields.String(metadata={"description": "Who requested it (a user's email, or 'the API')."})
    after_attempt = fields.Integer(metadata={"description": "The number of attempts made before the replay."})


class LogEntrySchema(BaseSchema):
    id = fields.Integer()
    event_id = fields.Integer()
    rule_id = fields.Integer(allow_none=True)
    trigger = fields.String()
    app = fields.String(allow_none=True)
    action = fields.String()
    integration_id = fields.Integer(allow_none=True)
    product_id = fields.Integer(allow_none=True)
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
    params = fields.Dict(allow_none=True, metadata={"description": "The rule's current parameters."})
