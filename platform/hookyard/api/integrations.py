"""Integrations: connections to an app. Secrets are write-only and come back masked, except a secret Hookyard
generated, which the answer to the create (or edit) that generated it reveals once (``revealed_secrets``)."""

from __future__ import annotations

from flask import g, request
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import ValidationError, fields, validate
from sqlalchemy import select
from werkzeug.http import http_date

from .. import connections, inbound, tasks
from ..models import Integration
from .auth import api_blueprint
from .base import BaseSchema, abort_invalid, marketplace_id, owned, rt, session
from .tasks import TaskSchema, abort_not_queued, location
from .tasks import out as task_out

blp = api_blueprint("integrations", "Connections to apps, e.g. a Circle community")


class IntegrationWarningSchema(BaseSchema):
    code = fields.String(
        metadata={
            "description": "Stable, for programs: e.g. community_url_mismatch, "
            "refresh_failed, quota_near, quota_exceeded, "
            "plan_without_admin_api."
        }
    )
    message = fields.String(metadata={"description": "For people: what is wrong and what to do."})


class IntegrationUsageSchema(BaseSchema):
    label = fields.String(metadata={"description": 'What is counted, e.g. "Circle API requests".'})
    period = fields.String(metadata={"description": 'The UTC calendar month counted, "YYYY-MM".'})
    calls = fields.Integer(
        metadata={
            "description": "Calls the remote counted this month for the account, shared "
            "by every connection (of any store) to that account."
        }
    )
    quota = fields.Integer(
        allow_none=True,
        metadata={"description": "Calls the chosen plan allows per month; null when it has none to watch."},
    )
    plan = fields.String(allow_none=True, metadata={"description": "The plan chosen on the connection, for people."})
    scope = fields.String(
        allow_none=True,
        metadata={
            "description": "The remote's account counted (Circle: the community id); null before a check named it."
        },
    )


class IntegrationSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    app = fields.String(required=True, metadata={"description": "App key, e.g. 'circle'."})
    name = fields.String(
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={"description": "Internal label, unique per marketplace."},
    )
    config = fields.Dict(required=True, metadata={"description": "The app's connection fields; secrets masked."})
    info = fields.Dict(
        dump_only=True, metadata={"description": "What the app's check learned, e.g. the community's name."}
    )
    warnings = fields.List(
        fields.Nested(IntegrationWarningSchema),
        dump_only=True,
        metadata={
            "description": "What is worth knowing about a connection that works, e.g. a Circle community URL that is "
            "not the key's community, a refresh that failed for a passing reason, or a monthly quota "
            "near (quota_near) or used up (quota_exceeded); [] when none."
        },
    )
    usage = fields.Nested(
        IntegrationUsageSchema,
        dump_only=True,
        allow_none=True,
        metadata={
            "description": "For apps whose remote meters calls (Circle's monthly request quota): this month's count; "
            "warnings has quota_near from 80% of the quota and quota_exceeded from 100%. Null for other "
            "apps."
        },
    )
    status = fields.String(dump_only=True, metadata={"description": "connected | needs_attention"})
    status_reason = fields.String(dump_only=True, allow_none=True)
    verified_at = fields.DateTime(dump_only=True, allow_none=True)
    refreshed_at = fields.DateTime(dump_only=True, allow_none=True)
    inbound_url = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={
            "description": "For apps that receive webhooks (e.g. SamCart's Notify URL): the URL to paste into the "
            "store, absolute (from HOOKYARD_PUBLIC_URL, else this request's host). It is a credential: "
            "whole for owner tokens, masked for viewers; null for other apps."
        },
    )
    created_at = fields.DateTime(dump_only=True)
    revealed_secrets = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        dump_only=True,
        metadata={
            "description": "Only in the answer to the create (or the edit) that generated them: the secret fields "
            "Hookyard generated because they were left empty, in clear, e.g. "
            '{"secret": "whsec_…"} for a Webhook connection. Shown this once (the answer is sent with '
            "Cache-Control: no-store): every later read masks them in config like any secret. Absent when "
            "nothing was generated."
        },
    )


class IntegrationPatchSchema(BaseSchema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    config = fields.Dict(
        metadata={
            "description": "Fields to change; omitted secrets (or secrets sent back masked) keep their value. A "
            "secret the app generates, sent as null or empty, is generated anew and revealed in "
            "revealed_secrets."
        }
    )


class DeletedSchema(BaseSchema):
    id = fields.Integer()
    disabled_rules = fields.List(fields.Integer(), metadata={"description": "Rules that used it, now disabled."})


# Seconds to wait before trying again when the app's remote did not answer in time (when it gave no hint).
REMOTE_RETRY_AFTER = 30
TIMED_OUT = dict(
    response="GATEWAY_TIMEOUT",
    description="The app's remote did not answer in time; nothing was saved. Retry-After says when to try again.",
)
OPTIONS_DOC = {
    "description": 'Option lists by name, e.g. {"spaces": [{"id": 1, "name": "Members"}]}; '
    "Last-Modified tells when they were loaded."
}


# The answer that reveals a generated secret is kept by no cache (a proxy's, the browser's).
NO_STORE = {"Cache-Control": "no-store"}


def out(integration: Integration) -> dict:
    used = connections.usage_of(rt(), session(), integration)
    return dict(
        id=integration.id,
        app=integration.app,
        name=integration.name,
        config=connections.masked_config(rt(), integration),
        info=connections.facts(integration),
        warnings=connections.warnings(integration, used),
        usage=used,
        status=integration.status,
        status_reason=integration.status_reason,
        verified_at=integration.verified_at,
        refreshed_at=integration.refreshed_at,
        inbound_url=_inbound_url(integration),
        created_at=integration.created_at,
    )


def _revealing(integration: Integration, revealed: dict):
    """The integration, with the secrets generated by this very request when there are some (and no-store)."""
    if not revealed:
        return out(integration)
    return {**out(integration), "revealed_secrets": revealed}, NO_STORE


def _inbound_url(integration: Integration) -> str | None:
    address = inbound.url(rt(), integration, request.host_url)
    if address is not None and g.api_token.role != "owner":
        return inbound.masked(address)
    return address


@blp.route("")
class Integrations(MethodView):
    @blp.response(200, IntegrationSchema(many=True))
    def get(self):
        """List integrations"""
        rows = session().scalars(
            select(Integration).where(Integration.marketplace_id == marketplace_id()).order_by(Integration.id)
        )
        return [out(i) for i in rows]

    @blp.arguments(IntegrationSchema)
    @blp.response(201, IntegrationSchema)
    @blp.alt_response(504, **TIMED_OUT)
    def post(self, body):
        """Connect an app: the credentials are verified with the app before anything is saved"""
        revealed: dict = {}
        try:
            integration = connections.create(
                rt(), session(), marketplace_id(), body["app"], body["name"], body["config"], revealed=revealed
            )
        except ValidationError as exc:
            _abort_refused(exc, "The integration could not be created.")
        session().commit()
        return _revealing(integration, revealed)


@blp.route("/<int:integration_id>")
class IntegrationById(MethodView):
    @blp.response(200, IntegrationSchema)
    def get(self, integration_id):
        """Show an integration"""
        return out(owned(Integration, integration_id))

    @blp.arguments(IntegrationPatchSchema)
    @blp.response(200, IntegrationSchema)
    @blp.alt_response(504, **TIMED_OUT)
    def patch(self, body, integration_id):
        """Edit the name or the connection fields (re-verified when they change)"""
        integration = owned(Integration, integration_id)
        revealed: dict = {}
        try:
            connections.update(rt(), session(), integration, body.get("name"), body.get("config"), revealed=revealed)
        except ValidationError as exc:
            _abort_refused(exc, "The integration could not be updated.")
        session().commit()
        return _revealing(integration, revealed)

    @blp.response(200, DeletedSchema)
    def delete(self, integration_id):
        """Delete an integration; the rules that used it are disabled, not deleted"""
        integration = owned(Integration, integration_id)
        disabled = connections.delete(session(), integration)
        session().commit()
        return {"id": integration_id, "disabled_rules": disabled}


TASK_HEADERS = {
    "Location": {"description": "The task: /api/v1/tasks/{id}", "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds before polling the task.", "schema": {"type": "integer"}},
}
NOT_QUEUED = dict(
    response="SERVICE_UNAVAILABLE", description="The job queue (Redis) is unreachable; the task was not started."
)


@blp.route("/<int:integration_id>/refresh")
class IntegrationRefresh(MethodView):
    @blp.response(202, TaskSchema, headers=TASK_HEADERS)
    @blp.alt_response(503, **NOT_QUEUED)
    def post(self, integration_id):
        """Start re-verifying the connection and reloading its option lists (spaces, tags, …) in the worker.

        Answers the task at once (and the same task again while it is queued or running); GET its Location to
        follow its progress. A refused connection fails the task and marks the integration needs_attention.
        """
        integration = owned(Integration, integration_id)
        try:
            task = connections.start_refresh(rt(), session(), integration)
        except tasks.TaskNotQueued as exc:
            abort_not_queued(exc)
        return task_out(task), location(task)


@blp.route("/<int:integration_id>/options")
class IntegrationOptions(MethodView):
    @blp.response(200, **OPTIONS_DOC)
    @blp.alt_response(
        202,
        schema=TaskSchema,
        headers=TASK_HEADERS,
        description="Never loaded: a refresh task was started (or is running); poll its Location.",
    )
    @blp.alt_response(503, **NOT_QUEUED)
    def get(self, integration_id):
        """The option lists cached by the last refresh (a refresh task is started if they were never loaded)"""
        integration = owned(Integration, integration_id)
        try:
            options = connections.options(rt(), session(), integration)
        except connections.OptionsNotLoaded as exc:
            if exc.task.status == "failed":
                abort_not_queued(tasks.TaskNotQueued(exc.task))
            # This route's 200 has no schema: dumped here so dates come out as ISO 8601, as in GET /tasks/{id}.
            return TaskSchema().dump(task_out(exc.task)), 202, location(exc.task)
        return options, {"Last-Modified": http_date(integration.refreshed_at)}


def _abort_refused(exc: ValidationError, default: str):
    """422 when the app refused (or the input is invalid); 504 with Retry-After when its remote timed out."""
    message = getattr(exc, "reason", None) or default
    if getattr(exc, "timed_out", False):
        session().rollback()
        retry_after = exc.retry_after if exc.retry_after is not None else REMOTE_RETRY_AFTER
        abort(
            504,
            message=message,
            errors={"json": exc.messages},
            headers={"Retry-After": str(max(1, round(retry_after)))},
        )
    abort_invalid(exc, message=message)


@blp.route("/<int:integration_id>/inbound-url/rotate")
class IntegrationInboundRotate(MethodView):
    @blp.response(200, IntegrationSchema)
    def post(self, integration_id):
        """Give the connection a new inbound URL: the old one answers 404 from now on (paste the new one into the
        store)"""
        integration = owned(Integration, integration_id)
        try:
            connections.rotate_inbound_url(rt(), session(), integration)
        except ValidationError as exc:
            abort_invalid(exc, message="This connection has no inbound URL.")
        session().commit()
        return out(integration)


@blp.route("/<int:integration_id>/products/import")
class IntegrationProductImport(MethodView):
    @blp.response(202, TaskSchema, headers=TASK_HEADERS)
    @blp.alt_response(503, **NOT_QUEUED)
    def post(self, integration_id):
        """Start importing the store's products from the app (e.g. SamCart's API) in the worker.

        Products are matched by the store's id: new ones are added, known ones take the store's name; running it
        again doubles nothing. Answers the task (the running one while it runs); GET its Location for progress.
        """
        integration = owned(Integration, integration_id)
        try:
            task = connections.start_import_products(rt(), session(), integration)
        except tasks.TaskNotQueued as exc:
            abort_not_queued(exc)
        except ValidationError as exc:
            abort_invalid(exc, message="This connection cannot import products.")
        return task_out(task), location(task)
