"""The log: one entry per (event, rule) run, newest first, capped per marketplace, searchable."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import fields

from .. import logsearch, replay
from ..logsearch import LogQuerySchema
from ..models import Run
from .auth import api_blueprint
from .base import BaseSchema, marketplace_id, owned, page_of, rt, session
from .runs import LogEntryDetailSchema, LogEntrySchema

blp = api_blueprint("logs", "The integration log")


@blp.route("")
class Logs(MethodView):
    @blp.arguments(LogQuerySchema, location="query")
    @blp.response(200, LogEntrySchema(many=True))
    @blp.paginate(page_size=50, max_page_size=200)
    def get(self, args, pagination_parameters):
        """Search the log, newest first"""
        query = logsearch.search(marketplace_id(), args)
        return page_of(query, pagination_parameters, Run.log_seq.desc())


@blp.route("/<int:entry_id>")
class LogEntryById(MethodView):
    @blp.response(200, LogEntryDetailSchema)
    def get(self, entry_id):
        """Show a log entry: the trigger payload, the rule's parameters and every attempt"""
        run = owned(Run, entry_id)
        return {**{c: getattr(run, c) for c in LogEntrySchema().fields}, **logsearch.detail(session(), run)}


class RetriedSchema(BaseSchema):
    retried = fields.List(fields.Integer(), metadata={"description": "The entries put back on the queue."})


@blp.route("/<int:entry_id>/retry")
class LogEntryRetry(MethodView):
    @blp.response(202, LogEntrySchema)
    @blp.alt_response(409, response="CONFLICT", description="The entry is not failed (nothing to retry).")
    def post(self, entry_id):
        """Retry a failed entry: the stored payload, the rule's current parameters, a fresh retry budget"""
        run = owned(Run, entry_id)
        try:
            replay.replay(rt(), session(), run, by="the API")
        except replay.NotReplayable as exc:
            abort(409, message=str(exc))
        return run


@blp.route("/retry")
class LogRetryMatching(MethodView):
    @blp.arguments(LogQuerySchema)
    @blp.response(202, RetriedSchema)
    def post(self, args):
        """Retry every failed entry matching a log filter (the same fields as the search), up to 1,000 a call"""
        return {"retried": replay.replay_matching(rt(), session(), marketplace_id(), args, by="the API")}
