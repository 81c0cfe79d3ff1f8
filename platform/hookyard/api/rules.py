"""Rules: when this trigger happens (for this product, or any), run that action of an integration."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import ValidationError, fields, validate

from .. import rules as rule_service
from ..models import Rule
from .auth import api_blueprint
from .base import BaseSchema, abort_invalid, id_field, marketplace_id, owned, rt, session

blp = api_blueprint("rules", "Trigger → action rules")


class RuleSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    product_id = id_field(
        required=True, allow_none=True, metadata={"description": "Hookyard product id, or null for a global rule."}
    )
    trigger = fields.String(required=True, metadata={"description": "Trigger key, e.g. samcart.product_purchased."})
    integration_id = id_field(required=True, allow_none=False)
    action = fields.String(required=True, metadata={"description": "Action key of the integration's app."})
    params = fields.Dict(load_default=dict)
    enabled = fields.Boolean(load_default=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class RulePatchSchema(BaseSchema):
    product_id = id_field(allow_none=True)
    trigger = fields.String()
    integration_id = id_field()
    action = fields.String()
    params = fields.Dict()
    enabled = fields.Boolean()


class RuleQuerySchema(BaseSchema):
    product_id = id_field(metadata={"description": "Only this product's rules."})
    scope = fields.String(validate=validate.OneOf(["global", "product"]))
    trigger = fields.String()


class RuleOutSchema(RuleSchema):
    integration_id = fields.Integer(allow_none=True, metadata={"description": "Null once its integration is deleted."})


@blp.route("")
class Rules(MethodView):
    @blp.arguments(RuleQuerySchema, location="query")
    @blp.response(200, RuleOutSchema(many=True))
    def get(self, args):
        """List rules; filter by product, by scope (global or product) or by trigger"""
        return list(session().scalars(rule_service.listing(marketplace_id(), args)))

    @blp.arguments(RuleSchema)
    @blp.response(201, RuleOutSchema)
    def post(self, body):
        """Create a rule; parameters are checked against the action and the integration's options"""
        try:
            rule = rule_service.create(rt(), session(), marketplace_id(), body)
        except ValidationError as exc:
            abort_invalid(exc, message="The rule is not valid.")
        session().commit()
        return rule


@blp.route("/<int:rule_id>")
class RuleById(MethodView):
    @blp.response(200, RuleOutSchema)
    def get(self, rule_id):
        """Show a rule"""
        return owned(Rule, rule_id)

    @blp.arguments(RulePatchSchema)
    @blp.response(200, RuleOutSchema)
    def patch(self, body, rule_id):
        """Change a rule (enable, disable, new parameters, …); the result is validated as a whole"""
        rule = owned(Rule, rule_id)
        try:
            rule_service.update(rt(), session(), rule, body)
        except ValidationError as exc:
            abort_invalid(exc, message="The rule is not valid.")
        session().commit()
        return rule

    @blp.response(204)
    def delete(self, rule_id):
        """Delete a rule (its log entries stay)"""
        session().delete(owned(Rule, rule_id))
        session().commit()
