"""Deliveries: what a connection's inbound URL received, and what became of each (hookyard.deliveries)."""

from __future__ import annotations

from flask import url_for
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import fields, validate
from sqlalchemy import select

from .. import deliveries
from ..models import DELIVERY_STATES, Delivery, Integration
from .auth import api_blueprint
from .base import BaseSchema, marketplace_id, owned, page_of, rt, session

blp = api_blueprint(
    "deliveries", "What an inbound URL received (e.g. SamCart's Notify URL) and what it became", path="integrations"
)


class DeliveryEventSchema(BaseSchema):
    event_id = fields.Integer()
    trigger = fields.String()
    note = fields.String(metadata={"description": "Why the app made this event of the delivery."})
    duplicate = fields.Boolean(
        metadata={"description": "The event had been received before (it was not queued again)."}
    )
    url = fields.String(metadata={"description": "The event: GET it for its payload and log entries."})


class DeliverySchema(BaseSchema):
    id = fields.Integer()
    integration_id = fields.Integer()
    received_at = fields.DateTime()
    status = fields.String(
        metadata={
            "description": " | ".join(DELIVERY_STATES) + ". received: waiting for a "
            "worker; mapped: it made the events listed (or none, reason says why); "
            "duplicate: a redelivery, or every event it names existed already; "
            "unmapped: the app does not know its kind (kept; process it again once "
            "mapped); rejected: unusable (reason says why); failed: the plugin failed."
        }
    )
    reason = fields.String(allow_none=True)
    content_type = fields.String()
    size = fields.Integer(metadata={"description": "Bytes received."})
    body = fields.Dict(
        allow_none=True,
        metadata={"description": "The body as read (JSON, or form fields), with the app's secret fields masked."},
    )
    text = fields.String(allow_none=True, metadata={"description": "The start of a body that could not be read."})
    events = fields.List(fields.Nested(DeliveryEventSchema))
    duplicate_of = fields.Integer(allow_none=True, metadata={"description": "The delivery this one repeats."})
    attempts = fields.Integer(metadata={"description": "Times it was processed."})
    processed_at = fields.DateTime(allow_none=True)


class DeliveryQuerySchema(BaseSchema):
    status = fields.String(validate=validate.OneOf(DELIVERY_STATES))


def out(delivery: Delivery) -> dict:
    items = [
        {**item, "url": url_for("events.EventById", event_id=item["event_id"])}
        for item in delivery.events or []
        if isinstance(item, dict) and item.get("event_id")
    ]
    return {**{name: getattr(delivery, name) for name in DeliverySchema().fields if name != "events"}, "events": items}


def _delivery(integration_id: int, delivery_id: int) -> Delivery:
    integration = owned(Integration, integration_id)
    found = deliveries.find(session(), marketplace_id(), integration.id, delivery_id)
    if found is None:
        abort(404, message=f"delivery {delivery_id} not found")
    return found


@blp.route("/<int:integration_id>/deliveries")
class Deliveries(MethodView):
    @blp.arguments(DeliveryQuerySchema, location="query")
    @blp.response(200, DeliverySchema(many=True))
    @blp.paginate()
    def get(self, args, integration_id, pagination_parameters):
        """List what the connection's inbound URL received, newest first (the newest log-cap deliveries are kept)"""
        integration = owned(Integration, integration_id)
        query = select(Delivery).where(
            Delivery.integration_id == integration.id, Delivery.marketplace_id == marketplace_id()
        )
        if args.get("status"):
            query = query.where(Delivery.status == args["status"])
        return [out(d) for d in page_of(query, pagination_parameters, Delivery.id.desc())]


@blp.route("/<int:integration_id>/deliveries/<int:delivery_id>")
class DeliveryById(MethodView):
    @blp.response(200, DeliverySchema)
    def get(self, integration_id, delivery_id):
        """Show a delivery: the body received and what became of it"""
        return out(_delivery(integration_id, delivery_id))


@blp.route("/<int:integration_id>/deliveries/<int:delivery_id>/reprocess")
class DeliveryReprocess(MethodView):
    @blp.response(202, DeliverySchema)
    @blp.alt_response(409, response="CONFLICT", description="The body could not be read: there is nothing to process.")
    def post(self, integration_id, delivery_id):
        """Process a delivery again, e.g. once an unmapped type is mapped; events it made before are not made twice"""
        delivery = _delivery(integration_id, delivery_id)
        if delivery.body is None:
            abort(
                409,
                message=f"Delivery {delivery.id} could not be read ({delivery.reason}); there is nothing to "
                "process. Fix the sender and let it deliver again.",
            )
        return out(deliveries.reprocess(rt(), session(), delivery))
