"""The request-scoped core: what any blueprint needs while it serves a request (the REST API, the web UI, the
inbound receiver, a plugin's own blueprint), in one public place, so none of them reaches into another's internals.

- ``runtime()``: the server's Runtime (settings, database, Redis, plugin registry).
- ``db_session()``: this request's database session, opened on first use and closed when the request ends
  (``hookyard.app``'s teardown).
- ``store()``: the store (marketplace) the request acts for, set by whoever authenticated it (an API token, the
  signed-in user); ``store_id()`` its id.
- ``owned(Model, id)``: the row when it exists and belongs to that store, else ``NotFound``, the same answer for
  "no such row" and "another store's row" (and for an id of a deleted row), so ids reveal nothing. ``NotFound`` is
  werkzeug's 404, neutral: the API answers it in its JSON error shape and the UI with its HTML page."""

from __future__ import annotations

from flask import current_app, g
from werkzeug.exceptions import NotFound as _HttpNotFound

from .models import MAX_ID, Marketplace
from .runtime import Runtime


class NotFound(_HttpNotFound):
    """A 404 naming what was asked for; ``data["message"]`` is what flask-smorest's error shape shows."""

    def __init__(self, message: str):
        super().__init__(description=message)
        self.data = {"message": message}


def runtime() -> Runtime:
    return current_app.extensions["hookyard"]


def db_session():
    if "db_session" not in g:
        g.db_session = runtime().db.sessions()
    return g.db_session


def store() -> Marketplace:
    return g.marketplace


def store_id() -> int:
    return g.marketplace.id


def owned(model, object_id: int):
    obj = db_session().get(model, object_id) if 0 < object_id <= MAX_ID else None
    if obj is None or obj.marketplace_id != store_id():
        raise NotFound(f"{model.__name__.lower()} {object_id} not found")
    return obj
