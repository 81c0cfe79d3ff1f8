"""The REST API: one flask-smorest blueprint per resource under /api/v1, one error shape."""

from __future__ import annotations

import logging

import sqlalchemy.exc
from flask import Flask, jsonify, request
from flask_smorest import Api

from .. import __version__
from . import (
    backfills,
    catalog,
    deliveries,
    docs_ui,
    events,
    integrations,
    logs,
    products,
    reconciliations,
    rule_tests,
    rules,
    tasks,
)
from .base import text_without_nul

log = logging.getLogger(__name__)

BLUEPRINTS = (
    catalog.plugins_blp,
    catalog.triggers_blp,
    catalog.apps_blp,
    integrations.blp,
    deliveries.blp,
    products.blp,
    rules.blp,
    rule_tests.blp,
    backfills.blp,
    events.blp,
    logs.blp,
    tasks.blp,
    *reconciliations.BLUEPRINTS,
)

API_CONFIG = {
    "API_TITLE": "Hookyard",
    "API_VERSION": __version__,
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api",
    "OPENAPI_JSON_PATH": "openapi.json",
    # No OPENAPI_SWAGGER_UI_*: flask-smorest's page loads Swagger UI from a CDN with an inline script; /api/docs is
    # served by .docs_ui instead, from the pinned swagger-ui-bundle package, under its own CSP.
    "API_SPEC_OPTIONS": {
        "info": {
            "description": "Store triggers in, app actions out. Every /api/v1 route takes "
            "`Authorization: Bearer <token>`; tokens are scoped to one marketplace."
        },
        "security": [{"bearerAuth": []}],
        "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
    },
}


class HookyardApi(Api):
    def handle_http_exception(self, error):
        # One error shape: every error carries a readable message, including webargs' 422s and Flask's 404s.
        payload, code, headers = super().handle_http_exception(error)
        # The exception's own headers belong to the answer too (a 405's Allow: RFC 9110 requires it); only its
        # HTML body and Content-Type are replaced by the JSON shape.
        headers = dict(headers or {})
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                headers.setdefault(name, value)
        if "message" not in payload:
            errors = payload.get("errors")
            payload["message"] = (
                "The request is not valid; see errors for each field." if errors and code == 422 else error.description
            )
        return payload, code, headers


# The database refused or dropped the connection (down, restarting, out of connections, locked):
# the request stored nothing, and a client that retries later loses nothing.
DATABASE_UNAVAILABLE = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.TimeoutError)
DATABASE_RETRY_AFTER = 5


def database_unavailable(error):
    log.error(
        "database unavailable while serving %s %s: %s",
        request.method,
        request.path,
        error.__class__.__name__ + (f" ({error.orig.__class__.__name__})" if getattr(error, "orig", None) else ""),
    )
    headers = {"Retry-After": str(DATABASE_RETRY_AFTER)}
    message = "The database is unavailable, so nothing was stored. Retry in a few seconds."
    if request.path.startswith("/api/"):
        body = {"code": 503, "status": "Service Unavailable", "message": message, "errors": {}}
        return jsonify(body), 503, headers
    return message, 503, {**headers, "Content-Type": "text/plain; charset=utf-8"}


def init_api(app: Flask) -> Api:
    for key, value in API_CONFIG.items():
        app.config.setdefault(key, value)
    for error in DATABASE_UNAVAILABLE:
        app.register_error_handler(error, database_unavailable)
    api = HookyardApi(app)
    api.ma_plugin.converter.add_attribute_function(text_without_nul)
    for blp in BLUEPRINTS:
        api.register_blueprint(blp)
    app.register_blueprint(docs_ui.blp)  # a plain blueprint: the docs page is not part of the API's own spec
    return api
