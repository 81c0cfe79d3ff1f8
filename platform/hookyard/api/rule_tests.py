"""Rule tests: run a rule once, now, on a sample event, in dry-run (the calls it would make, nothing sent) or live for one
email (the calls it made, and a log entry). The work is hookyard.ruletest's; this is its HTTP face."""

from __future__ import annotations

from flask import url_for
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import ValidationError, fields, validate

from .. import ruletest
from ..models import Rule
from .auth import api_blueprint
from .base import BaseSchema, abort_invalid, id_field, owned, rt, session

blp = api_blueprint("rule-tests", "Testing a rule on a sample event, in dry-run or live", path="rules")


class RuleTestSchema(BaseSchema):
    # Checked by hookyard.ruletest (one message for the API, the UI and the CLI), so not a OneOf here.
    mode = fields.String(required=True, metadata={"description": "dry-run | live"})
    event_id = id_field(
        metadata={
            "description": "A stored event of this store, of the rule's trigger, to run on; without it, the "
            "trigger's example payload."
        }
    )
    email = fields.String(
        validate=validate.Length(max=320),
        metadata={
            "description": "Required for live: the one customer the test runs for (it replaces the sample's "
            "customer.email). For a dry-run, optional, the same."
        },
    )


class TestedEventSchema(BaseSchema):
    id = fields.Integer(allow_none=True, metadata={"description": "The stored event used; null for the example."})
    example = fields.Boolean(metadata={"description": "true: the trigger's example payload was used."})


class OutcomeSchema(BaseSchema):
    status = fields.String(metadata={"description": "succeeded | skipped | failed"})
    reason = fields.String(metadata={"description": "What the action did, or in a dry-run would have done."})


class RemoteCallSchema(BaseSchema):
    method = fields.String()
    url = fields.String()
    query = fields.Dict(allow_none=True, metadata={"description": "The query parameters, or null."})
    body = fields.Raw(allow_none=True, metadata={"description": "The JSON body, or null."})
    headers = fields.Dict(
        allow_none=True, metadata={"description": "Headers the app reports (never credentials: masked), or null."}
    )
    sent = fields.Boolean(metadata={"description": "false: a dry-run's write, which was not sent."})
    status = fields.Integer(allow_none=True, metadata={"description": "The remote's answer; null when not sent."})


class TestedRunSchema(BaseSchema):
    id = fields.Integer()
    url = fields.String(metadata={"description": "The log entry: /api/v1/logs/{id}."})


class RuleTestResultSchema(BaseSchema):
    mode = fields.String()
    rule_id = fields.Integer()
    event = fields.Nested(TestedEventSchema)
    payload = fields.Dict(metadata={"description": "The payload the action ran on (customer.email replaced)."})
    outcome = fields.Nested(OutcomeSchema)
    calls = fields.List(
        fields.Nested(RemoteCallSchema),
        metadata={
            "description": "Every remote call, in order: made (sent) or, in a dry-run, not sent. Secrets masked."
        },
    )
    run = fields.Nested(
        TestedRunSchema,
        allow_none=True,
        metadata={"description": "A live test's log entry (origin test); null for a dry-run, which stores nothing."},
    )


def out(result: ruletest.Result) -> dict:
    return ruletest.answer(result, run_url=lambda run_id: url_for("logs.LogEntryById", entry_id=run_id))


@blp.route("/<int:rule_id>/test")
class RuleTest(MethodView):
    @blp.arguments(RuleTestSchema)
    @blp.response(200, RuleTestResultSchema)
    @blp.alt_response(429, description="The connection's request budget is in use: nothing was called; Retry-After.")
    def post(self, body, rule_id):
        """Test the rule now on a sample event: dry-run answers the calls it would make (reads made, writes not
        sent, nothing stored); live runs it for one email and logs it (origin test). Secrets are masked."""
        rule = owned(Rule, rule_id)
        try:
            result = ruletest.run(
                rt(), session(), rule, body["mode"], event_id=body.get("event_id"), email=body.get("email")
            )
        except ValidationError as exc:
            abort_invalid(exc, message="The rule cannot be tested this way.")
        except ruletest.Busy as busy:
            session().rollback()
            wait = max(1, round(busy.seconds))
            abort(
                429,
                message=f"Not tested: {busy.reason}. Nothing was called; try again in {wait} seconds.",
                headers={"Retry-After": str(wait)},
            )
        return out(result)
