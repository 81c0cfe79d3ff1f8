"""``GET /metrics``: the Prometheus text format, for the operator's Prometheus, behind its own bearer token.

Not part of the REST API (no store, no API token, not in openapi.json): HOOKYARD_METRICS_TOKEN unset, the route
answers 404 as if it did not exist; a missing or wrong ``Authorization: Bearer <token>`` answers 401.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from ..requestctx import runtime
from . import collect, counters

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    rt = runtime()
    expected = rt.settings.metrics_token
    if expected is None:
        abort(404)  # answered as any unknown URL is (the web UI's page, or JSON without it)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Compared in constant time, as bytes (compare_digest refuses non-ASCII str).
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        # Answered here, in plain text for a scraper's log: not a web page, not an API error.
        return Response(
            "Send the metrics token (HOOKYARD_METRICS_TOKEN) as 'Authorization: Bearer <token>'.\n",
            401,
            {"WWW-Authenticate": 'Bearer realm="metrics"'},
            mimetype="text/plain",
        )
    registry = CollectorRegistry()
    # This host's web processes, from their files under gunicorn; this process alone elsewhere (flask run, tests).
    registry.register(MultiProcessCollector(None, counters.MULTIPROC_DIR) if counters.MULTIPROC_DIR else counters.LOCAL)
    registry.register(collect.Scrape(rt))
    return Response(generate_latest(registry), mimetype=None, content_type=CONTENT_TYPE_LATEST)
