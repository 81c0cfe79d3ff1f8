"""The Flask application factory: gunicorn runs ``hookyard.app:create_app()``."""

from __future__ import annotations

import logging

from flask import Flask, g, request
from werkzeug.exceptions import BadRequest

from . import health, receiver, security
from .api import init_api
from .plugins import Registry
from .runtime import Runtime, build_runtime
from .settings import Settings


def create_app(
    settings: Settings | None = None, registry: Registry | None = None, runtime: Runtime | None = None
) -> Flask:
    if runtime is None:
        runtime = build_runtime(settings or Settings.from_env(), registry=registry)
    app = Flask(__name__, instance_path=str(runtime.settings.instance_path))
    app.config["SECRET_KEY"] = runtime.settings.secret_key
    # Sessions signed with an earlier key stay valid while it is listed (see `hookyard keys rotate`).
    app.config["SECRET_KEY_FALLBACKS"] = list(runtime.settings.old_secret_keys)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024  # a trigger payload is a few KiB
    app.extensions["hookyard"] = runtime
    _configure_logging()
    # First of all before_request hooks, so that none of them (nor a view) meets an undecodable query string.
    app.before_request(_query_string_is_text)
    app.register_blueprint(health.bp)
    app.register_blueprint(receiver.bp)
    security.init_app(app)
    receiver.document(init_api(app).spec, app.url_map)
    # Plugins' pages and endpoints (the web UI among them) after the core's, so theirs cannot shadow it.
    for blueprint in runtime.registry.blueprints.values():
        app.register_blueprint(blueprint)

    @app.teardown_appcontext
    def _close_session(_exc):
        db_session = g.pop("db_session", None)
        if db_session is not None:
            db_session.close()

    return app


def _query_string_is_text():
    """Werkzeug decodes the query string as UTF-8 when it is first read, and raw bytes that are not UTF-8
    (``?q=\xed\xa0\x80``, sent unencoded) raise UnicodeDecodeError there: a 500 on any page. Refused as a 400,
    in the API's error shape (the web UI renders the description)."""
    try:
        request.args
    except UnicodeDecodeError:
        message = "The query string is not valid UTF-8; percent-encode its characters as UTF-8."
        error = BadRequest(description=message)
        error.data = {"message": message, "errors": {"query": [message]}}
        raise error from None


def _configure_logging():
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
