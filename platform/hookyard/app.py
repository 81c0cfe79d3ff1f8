"""The Flask application factory: gunicorn runs ``hookyard.app:create_app()``."""

from __future__ import annotations

import atexit
import logging
import sys

from flask import Flask, g, request
from werkzeug.exceptions import BadRequest

from . import health, logformat, plugin_sets, receiver, request_ids, security
from .api import init_api
from .metrics import view as metrics
from .plugins import PluginError, Registry
from .runtime import Runtime, build_runtime
from .settings import Settings

APP_LOAD_ERROR = 4  # gunicorn's exit code for an app that cannot load (gunicorn.arbiter.Arbiter.APP_LOAD_ERROR)


def create_app(
    settings: Settings | None = None, registry: Registry | None = None, runtime: Runtime | None = None
) -> Flask:
    deployed = runtime is None and registry is None  # built from the environment: a real web process
    if runtime is None:
        try:
            runtime = build_runtime(settings or Settings.from_env(), registry=registry)
        except PluginError as exc:
            # One line naming the plugin, then gunicorn's "app failed to load" exit code: its arbiter stops, rather
            # than booting one worker after another into the same error.
            print(f"hookyard: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(APP_LOAD_ERROR) from None
    app = Flask(__name__, instance_path=str(runtime.settings.instance_path))
    app.config["SECRET_KEY"] = runtime.settings.secret_key
    # Sessions signed with an earlier key stay valid while it is listed (see `hookyard keys rotate`).
    app.config["SECRET_KEY_FALLBACKS"] = list(runtime.settings.old_secret_keys)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024  # a trigger payload is a few KiB
    app.extensions["hookyard"] = runtime
    _configure_logging()
    request_ids.init_app(app)  # first of all hooks: every answer, an early refusal too, carries X-Request-ID
    # Next, before every other hook, so that none of them (nor a view) meets an undecodable query string.
    app.before_request(_query_string_is_text)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)  # GET /metrics, behind HOOKYARD_METRICS_TOKEN; not in the OpenAPI document
    app.register_blueprint(receiver.bp)
    security.init_app(app)
    receiver.document(init_api(app).spec, app.url_map)
    # Plugins' pages and endpoints (the web UI among them) after the core's, so theirs cannot shadow it.
    for blueprint in runtime.registry.blueprints.values():
        app.register_blueprint(blueprint)

    if deployed:
        _publish_plugin_set(app, runtime)

    @app.teardown_appcontext
    def _close_session(_exc):
        db_session = g.pop("db_session", None)
        if db_session is not None:
            db_session.close()

    return app


def _publish_plugin_set(app: Flask, runtime: Runtime) -> None:
    """This web process's plugin set, compared with the other processes' (hookyard.plugin_sets), kept fresh by the
    requests it serves and withdrawn when it exits."""
    publication = plugin_sets.publish(runtime, "web")
    app.before_request(lambda: publication.refresh(at_most_every=plugin_sets.REFRESH_EVERY))
    atexit.register(publication.withdraw)


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
    # Under gunicorn its logger class (hookyard.access_log) has configured the root logger already; a test's or a
    # host application's own logging is left alone too.
    if not logging.getLogger().handlers:
        logformat.configure(sys.stdout, logformat.chosen())
