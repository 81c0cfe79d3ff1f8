"""Events: emit a trigger (the ingest point) and see what it caused."""

from __future__ import annotations

import logging

from flask import request
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import ValidationError, fields
from sqlalchemy import select

from .. import backpressure, inputs
from ..emit import UnknownTrigger, emit
from ..models import Event, Run
from .auth import api_blueprint, reads_first
from .base import BaseSchema, abort_invalid, marketplace, marketplace_id, owned, page_of, rt, session
from .runs import LogEntrySchema

blp = api_blueprint("events", "Emit triggers")
log = logging.getLogger(__name__)


class EmitSchema(BaseSchema):
    trigger = fields.String(required=True, metadata={"description": "Trigger key, e.g. samcart.product_purchased."})
    payload = fields.Dict(required=True, metadata={"description": "Validated against the trigger's payload schema."})


class EmittedSchema(BaseSchema):
    id = fields.Integer()
    status = fields.String(
        metadata={
            "description": "accepted, or duplicate for a repeated delivery (the same "
            "Idempotency-Key, or the trigger's dedupe key): the first event"
        }
    )
    matched_rules = fields.Integer()


class EventSummarySchema(BaseSchema):
    id = fields.Integer()
    trigger = fields.String()
    idempotency_key = fields.String(allow_none=True)
    product_id = fields.Integer(allow_none=True)
    email = fields.String(allow_none=True)
    payload = fields.Dict()
    occurred_at = fields.DateTime()
    received_at = fields.DateTime()
    matched_rules = fields.Integer()
    duplicates = fields.Integer(metadata={"description": "Later deliveries of this event, answered with it."})
    last_duplicate_at = fields.DateTime(allow_none=True)
    source = fields.String(
        metadata={
            "description": "delivery (sent by the store or an API client), or store_api: read from the store's API "
            "by a backfill, not delivered yet (its first delivery runs the other matching rules)."
        }
    )


class EventSchema(EventSummarySchema):
    runs = fields.List(fields.Nested(LogEntrySchema))


class EventQuerySchema(BaseSchema):
    trigger = fields.String()
    email = fields.String()


IDEMPOTENCY_HEADER = {
    "Idempotency-Key": {
        "description": "Repeat it to make a retry of the same event harmless.",
        "schema": {"type": "string", "maxLength": 255},
    }
}


@blp.route("")
class Events(MethodView):
    @blp.arguments(EmitSchema)
    @blp.response(202, EmittedSchema, description="Accepted: the matching rules are queued.")
    @blp.alt_response(
        200,
        schema=EmittedSchema,
        description="A repeated delivery (the same Idempotency-Key, or "
        "the trigger's dedupe key): the first event, nothing "
        "new queued.",
    )
    @blp.alt_response(
        429,
        response="TOO_MANY_REQUESTS",
        description="The workers are behind: nothing was stored; retry after Retry-After seconds.",
    )
    @blp.alt_response(
        503,
        response="SERVICE_UNAVAILABLE",
        description="The database is unavailable: nothing was stored; retry after Retry-After seconds.",
    )
    @blp.doc(parameters=[{"in": "header", "name": k, **v} for k, v in IDEMPOTENCY_HEADER.items()])
    @reads_first  # emit() reads, commits, then writes
    def post(self, body):
        """Emit a trigger: validated, stored, matched against rules and queued"""
        key = request.headers.get("Idempotency-Key") or None
        if key is not None and len(key) > 255:
            abort(
                422,
                message="Idempotency-Key is too long.",
                errors={"headers": {"Idempotency-Key": ["At most 255 characters."]}},
            )
        problem = inputs.text_problem(key) if key is not None else None  # it is stored: NUL fails on PostgreSQL
        if problem:
            abort(422, message="Idempotency-Key is not valid.", errors={"headers": {"Idempotency-Key": [problem]}})
        refused = backpressure.refusal(rt())
        if refused:
            log.warning("refused an event of marketplace %s: %s", marketplace_id(), refused)
            abort(429, message=refused, headers={"Retry-After": str(backpressure.RETRY_AFTER)})
        try:
            result = emit(rt(), session(), marketplace(), body["trigger"], body["payload"], key)
        except UnknownTrigger:
            abort_invalid(
                ValidationError({"trigger": [f"Unknown trigger {body['trigger']!r}; see GET /api/v1/triggers."]}),
                message="Unknown trigger.",
            )
        except ValidationError as exc:
            abort_invalid(
                ValidationError({"payload": exc.messages}), message="The payload is not valid for this trigger."
            )
        event = result.event
        status = "accepted" if result.created else "duplicate"
        return {"id": event.id, "status": status, "matched_rules": event.matched_rules}, 202 if result.created else 200

    @blp.arguments(EventQuerySchema, location="query")
    @blp.response(200, EventSummarySchema(many=True))
    @blp.paginate()
    def get(self, args, pagination_parameters):
        """List events, newest first"""
        query = select(Event).where(Event.marketplace_id == marketplace_id())
        if args.get("trigger"):
            query = query.where(Event.trigger == args["trigger"])
        if args.get("email"):
            query = query.where(Event.email == args["email"].strip().lower())
        return page_of(query, pagination_parameters, Event.id.desc())


@blp.route("/<int:event_id>")
class EventById(MethodView):
    @blp.response(200, EventSchema)
    def get(self, event_id):
        """Show an event with its runs (log entries)"""
        event = owned(Event, event_id)
        runs = list(session().scalars(select(Run).where(Run.event_id == event.id).order_by(Run.id)))
        return {**{c: getattr(event, c) for c in EventSchema().fields if c != "runs"}, "runs": runs}
