"""Integrations: connections to an app. Secrets are write-only and come back masked."""
from __future__ import annotations

from flask.views import MethodView
from werkzeug.http import http_date
from marshmallow import ValidationError, fields, validate
from sqlalchemy import select

from .. import connections
from ..models import Integration
from .auth import api_blueprint
from .base import BaseSchema, abort_invalid, marketplace_id, owned, rt, session

blp = api_blueprint("integrations", "Connections to apps, e.g. a Circle community")


class IntegrationSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    app = fields.String(required=True, metadata={"description": "App key, e.g. 'circle'."})
    name = fields.String(required=True, validate=validate.Length(min=1, max=200),
                         metadata={"description": "Internal label, unique per marketplace."})
    config = fields.Dict(required=True, metadata={"description": "The app's connection fields; secrets masked."})
    info = fields.Dict(dump_only=True, metadata={"description": "What the app's check learned, e.g. the "
                                                                 "community's name."})
    status = fields.String(dump_only=True, metadata={"description": "connected | needs_attention"})
    status_reason = fields.String(dump_only=True, allow_none=True)
    verified_at = fields.DateTime(dump_only=True, allow_none=True)
    refreshed_at = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)


class IntegrationPatchSchema(BaseSchema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    config = fields.Dict(metadata={"description": "Fields to change; omitted secrets keep their value."})


class DeletedSchema(BaseSchema):
    id = fields.Integer()
    disabled_rules = fields.List(fields.Integer(), metadata={"description": "Rules that used it, now disabled."})


OPTIONS_DOC = {"description": "Option lists by name, e.g. {\"spaces\": [{\"id\": 1, \"name\": \"Members\"}]}; "
                             "Last-Modified tells when they were loaded."}


def out(integration: Integration) -> dict:
    return dict(id=integration.id, app=integration.app, name=integration.name,
                config=connections.masked_config(rt(), integration), info=integration.info or {},
                status=integration.status,
                status_reason=integration.status_reason, verified_at=integration.verified_at,
                refreshed_at=integration.refreshed_at, created_at=integration.created_at)


@blp.route("")
class Integrations(MethodView):
    @blp.response(200, IntegrationSchema(many=True))
    def get(self):
        """List integrations"""
        rows = session().scalars(select(Integration).where(Integration.marketplace_id == marketplace_id())
                                 .order_by(Integration.id))
        return [out(i) for i in rows]

    @blp.arguments(IntegrationSchema)
    @blp.response(201, IntegrationSchema)
    def post(self, body):
        """Connect an app: the credentials are verified with the app before anything is saved"""
        try:
            integration = connections.create(rt(), session(), marketplace_id(), body["app"], body["name"],
                                             body["config"])
        except ValidationError as exc:
            abort_invalid(exc, message=_message(exc, "The integration could not be created."))
        session().commit()
        return out(integration)


@blp.route("/<int:integration_id>")
class IntegrationById(MethodView):
    @blp.response(200, IntegrationSchema)
    def get(self, integration_id):
        """Show an integration"""
        return out(owned(Integration, integration_id))

    @blp.arguments(IntegrationPatchSchema)
    @blp.response(200, IntegrationSchema)
    def patch(self, body, integration_id):
        """Edit the name or the connection fields (re-verified when they change)"""
        integration = owned(Integration, integration_id)
        try:
            connections.update(rt(), session(), integration, body.get("name"), body.get("config"))
        except ValidationError as exc:
            abort_invalid(exc, message=_message(exc, "The integration could not be updated."))
        session().commit()
        return out(integration)

    @blp.response(200, DeletedSchema)
    def delete(self, integration_id):
        """Delete an integration; the rules that used it are disabled, not deleted"""
        integration = owned(Integration, integration_id)
        disabled = connections.delete(session(), integration)
        session().commit()
        return {"id": integration_id, "disabled_rules": disabled}


@blp.route("/<int:integration_id>/refresh")
class IntegrationRefresh(MethodView):
    @blp.response(200, IntegrationSchema)
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY", description="The app refused the connection.")
    def post(self, integration_id):
        """Re-verify the connection and reload its option lists (spaces, tags, …)"""
        integration = owned(Integration, integration_id)
        try:
            connections.refresh(rt(), session(), integration)
        except ValidationError as exc:
            abort_invalid(exc, message=_message(exc, "The integration could not be refreshed."))
        session().commit()
        return out(integration)


@blp.route("/<int:integration_id>/options")
class IntegrationOptions(MethodView):
    @blp.response(200, **OPTIONS_DOC)
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY", description="The app refused the connection.")
    def get(self, integration_id):
        """The option lists cached by the last refresh (refreshed once if never loaded)"""
        integration = owned(Integration, integration_id)
        try:
            options = connections.options(rt(), session(), integration)
        except ValidationError as exc:
            abort_invalid(exc, message=_message(exc, "The options could not be loaded."))
        return options, {"Last-Modified": http_date(integration.refreshed_at)}



def _message(exc: ValidationError, default: str) -> str:
    return getattr(exc, "reason", None) or default
