"""The inbound URLs, ``POST /hooks/<app>/<id>``: where a store's own webhooks (SamCart's Notify URL) arrive.

No token: the unguessable id is the credential (hookyard.inbound). The answer comes as soon as the delivery is
stored (hookyard.deliveries): 200 for a body that was read, 400 (stored as rejected) for one that is neither JSON
nor a form, 422 (stored as rejected) for one holding values that cannot be stored (NUL, huge numbers), 404 for an id that names no connection (nothing stored), 413 beyond HOOKYARD_INBOUND_MAX_BYTES. Never
the API's backpressure 429: a delivery is always stored, then processed when the workers catch up.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, jsonify, request
from werkzeug.exceptions import HTTPException

from . import deliveries, inbound
from .metrics import counters
from .requestctx import db_session, runtime

bp = Blueprint("hooks", __name__, url_prefix=inbound.PATH_PREFIX)
log = logging.getLogger(__name__)


@bp.errorhandler(HTTPException)
def _as_json(error: HTTPException):
    # The API's one error shape; senders log the body of a non-2xx answer, so it says what to do.
    body = {"code": error.code, "status": error.name, "message": error.description, "errors": {}}
    return jsonify(body), error.code


def _connection(app: str, key: str):
    integration = inbound.find(db_session(), app, key)
    if integration is None:
        abort(
            404,
            "No connection has this inbound URL: it was mistyped, rotated, or its connection was deleted. "
            "Copy the URL again from the connection's page in Hookyard.",
        )
    return integration


@bp.route("/<app>/<key>", methods=["POST"])
def receive(app: str, key: str):
    """Stores the delivery for the connection whose URL this is."""
    integration = _connection(app, key)
    limit = runtime().settings.inbound_max_bytes
    if request.content_length is not None and request.content_length > limit:
        abort(413, f"The body is larger than {limit} bytes; nothing was stored.")
    raw = request.stream.read(limit + 1)  # also bounds a body sent without Content-Length (chunked)
    if len(raw) > limit:
        abort(413, f"The body is larger than {limit} bytes; nothing was stored.")
    delivery, problem = deliveries.receive(runtime(), db_session(), integration, raw, request.mimetype or "")
    counters.delivery_received(integration.app)  # stored (and committed), rejected or not
    if problem is not None:
        log.warning("delivery %s for integration %s rejected: %s", delivery.id, integration.id, delivery.reason)
        # Stored all the same (the delivery log shows it as rejected), so the sender's log and the merchant's agree.
        name = "Bad Request" if problem.status == 400 else "Unprocessable Entity"
        return jsonify(
            {"code": problem.status, "status": name, "message": delivery.reason, "errors": {"body": [delivery.reason]}}
        ), problem.status
    log.info("delivery %s received for integration %s (%s bytes)", delivery.id, integration.id, delivery.size)
    return jsonify({"status": "received", "delivery_id": delivery.id}), 200


@bp.route("/<app>/<key>", methods=["GET", "HEAD"])
def describe(app: str, key: str):
    """Opened in a browser (or by a tunnel's health check): says the URL works, stores nothing."""
    _connection(app, key)
    return jsonify(
        {
            "message": "This inbound URL works. The store POSTs its notifications here; each one is shown "
            "in the connection's delivery log in Hookyard."
        }
    ), 200


def document(spec, url_map) -> None:
    """Adds the inbound URL to the OpenAPI document (it is a plain Flask route, not a flask-smorest one): no token,
    any JSON object or form, and the answers above. apispec's Flask plugin reads the path from the route itself."""
    rule = next(r for r in url_map.iter_rules() if r.endpoint == f"{bp.name}.receive")
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    params = [
        {
            "in": "path",
            "name": "app",
            "required": True,
            "schema": {"type": "string"},
            "description": "The app's key, e.g. samcart.",
        },
        {
            "in": "path",
            "name": "key",
            "required": True,
            "schema": {"type": "string", "pattern": inbound.KEY_PATTERN.pattern},
            "description": "The connection's inbound id (its integration's inbound_url ends with it).",
        },
    ]
    received = {
        "type": "object",
        "properties": {"status": {"type": "string", "enum": ["received"]}, "delivery_id": {"type": "integer"}},
    }
    spec.path(
        rule=rule,
        parameters=params,
        operations={
            "post": {
                "tags": ["Inbound URLs"],
                "summary": "Receive a delivery (e.g. SamCart's Notify URL POST)",
                "description": "No token: the URL is the credential. The body is stored at once and processed by a "
                "worker; see GET /api/v1/integrations/{id}/deliveries.",
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                    },
                },
                "responses": {
                    "200": {
                        "description": "Stored; a worker turns it into events.",
                        "content": {"application/json": {"schema": received}},
                    },
                    "400": {"description": "Neither a JSON object nor a form: stored as rejected.", "content": error},
                    "422": {
                        "description": "Values that cannot be stored (NUL, lone surrogates, numbers beyond 64 "
                        "bits, NaN, nesting past 32 levels): stored as rejected.",
                        "content": error,
                    },
                    "404": {"description": "No connection has this URL: nothing stored.", "content": error},
                    "413": {"description": "Larger than HOOKYARD_INBOUND_MAX_BYTES: nothing stored.", "content": error},
                    "default": {"description": "An error, in the API's shape.", "content": error},
                },
            },
            "get": {
                "tags": ["Inbound URLs"],
                "summary": "Check that an inbound URL works (stores nothing)",
                "security": [],
                "responses": {
                    "200": {
                        "description": "It names a connection.",
                        "content": {
                            "application/json": {
                                "schema": {"type": "object", "properties": {"message": {"type": "string"}}}
                            }
                        },
                    },
                    "404": {"description": "No connection has this URL.", "content": error},
                    "default": {"description": "An error, in the API's shape.", "content": error},
                },
            },
        },
    )
    spec.tag({"name": "Inbound URLs", "description": "Where a store's own webhooks arrive (App.inbound)."})
