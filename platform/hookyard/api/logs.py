"""The log: one entry per (event, rule) run, newest first, capped per marketplace, searchable."""
from __future__ import annotations

from flask.views import MethodView
from marshmallow import fields, validate
from sqlalchemy import func, or_, select

from ..models import RUN_STATES, Event, Product, Rule, Run
from .auth import api_blueprint
from .base import BaseSchema, page_of, marketplace_id, owned, session
from .runs import LogEntryDetailSchema, LogEntrySchema

blp = api_blueprint("logs", "The integration log")


class LogQuerySchema(BaseSchema):
    q = fields.String(metadata={"description": "Search email, product (id or name), trigger, action and reason."})
    status = fields.String(validate=validate.OneOf(RUN_STATES))
    trigger = fields.String()
    action = fields.String()
    product_id = fields.Integer()
    integration_id = fields.Integer()
    since = fields.DateTime(metadata={"description": "Created at or after (ISO 8601)."})
    until = fields.DateTime(metadata={"description": "Created before (ISO 8601)."})


def _aware(dt):
    from datetime import timezone

    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


@blp.route("")
class Logs(MethodView):
    @blp.arguments(LogQuerySchema, location="query")
    @blp.response(200, LogEntrySchema(many=True))
    @blp.paginate(page_size=50, max_page_size=200)
    def get(self, args, pagination_parameters):
        """Search the log, newest first"""
        query = select(Run).where(Run.marketplace_id == marketplace_id())
        for name in ("status", "trigger", "action", "product_id", "integration_id"):
            if name in args:
                query = query.where(getattr(Run, name) == args[name])
        if "since" in args:
            query = query.where(Run.created_at >= _aware(args["since"]))
        if "until" in args:
            query = query.where(Run.created_at < _aware(args["until"]))
        if args.get("q"):
            like = f"%{args['q'].strip().lower()}%"
            query = query.outerjoin(Product, Product.id == Run.product_id).where(or_(
                func.lower(Run.email).like(like), func.lower(Run.trigger).like(like),
                func.lower(Run.action).like(like), func.lower(Run.reason).like(like),
                func.lower(Product.name).like(like), func.lower(Product.external_id).like(like),
            ))
        return page_of(query, pagination_parameters, Run.log_seq.desc())


@blp.route("/<int:entry_id>")
class LogEntryById(MethodView):
    @blp.response(200, LogEntryDetailSchema)
    def get(self, entry_id):
        """Show a log entry: the trigger payload, the rule's parameters and every attempt"""
        run = owned(Run, entry_id)
        event = session().get(Event, run.event_id)
        rule = session().get(Rule, run.rule_id) if run.rule_id else None
        out = {c: getattr(run, c) for c in LogEntrySchema().fields}
        return {**out, "history": run.history or [], "payload": event.payload, "params": rule.params if rule else None}
