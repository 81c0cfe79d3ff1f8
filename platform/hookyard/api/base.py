"""What every resource blueprint shares: the schema policy, the session, tenancy and the error helpers."""
from __future__ import annotations

from flask import current_app, g
from flask_smorest import abort
from marshmallow import RAISE, Schema, ValidationError

from ..runtime import Runtime


class BaseSchema(Schema):
    class Meta:
        # Unknown fields in a request are a client bug worth a 422, not something to drop silently.
        unknown = RAISE
        ordered = True


def rt() -> Runtime:
    return current_app.extensions["hookyard"]


def session():
    if "db_session" not in g:
        g.db_session = rt().db.sessions()
    return g.db_session


def marketplace():
    return g.marketplace


def marketplace_id() -> int:
    return g.marketplace.id


def owned(model, object_id: int):
    """The object when it exists and belongs to the caller's marketplace; 404 otherwise (either way)."""
    obj = session().get(model, object_id)
    if obj is None or obj.marketplace_id != marketplace_id():
        abort(404, message=f"{model.__name__.lower()} {object_id} not found")
    return obj


def abort_invalid(exc: ValidationError, location: str = "json", message: str = "Invalid request."):
    """422 with field-level errors in the same shape webargs uses for request parsing."""
    session().rollback()
    abort(422, message=message, errors={location: exc.messages})


def page_of(query, pagination_parameters, *order_by) -> list:
    """One page of a select, with the total count set for flask-smorest's X-Pagination header."""
    from sqlalchemy import func, select

    p = pagination_parameters
    p.item_count = session().scalar(select(func.count()).select_from(query.subquery()))
    return list(session().scalars(query.order_by(*order_by).offset(p.first_item).limit(p.page_size)))
