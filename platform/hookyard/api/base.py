"""What every resource blueprint shares: the schema policy, the session, tenancy and the error helpers."""
from __future__ import annotations

from flask import current_app, g
from flask_smorest import abort
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from ..runtime import Runtime


class BaseSchema(Schema):
    class Meta:
        # Unknown fields in a request are a client bug worth a 422, not something to drop silently.
        unknown = RAISE
        ordered = True

    @validates_schema
    def _no_nul_characters(self, data, **kwargs):
        # PostgreSQL text cannot hold U+0000: refused here as the client's mistake (422), where it would
        # otherwise fail the query (500) on PostgreSQL only. Nested values too, e.g. a payload's email.
        bad = [name for name, value in data.items() if _has_nul(value)]
        if bad:
            raise ValidationError({name: ["Must not contain the NUL character (U+0000)."] for name in bad})


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


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


# Ids are INTEGER columns, 32-bit on PostgreSQL: a larger number names nothing, and sent to the database it
# fails the query (a 500 on SQLite and PostgreSQL alike) instead of finding nothing.
MAX_ID = 2**31 - 1


def id_field(**kwargs) -> fields.Integer:
    """An id in a query string or a body: out of range is the client's mistake (422), documented as such."""
    return fields.Integer(validate=validate.Range(min=1, max=MAX_ID), **kwargs)


def owned(model, object_id: int):
    """The object when it exists and belongs to the caller's marketplace; 404 otherwise (either way)."""
    obj = session().get(model, object_id) if 0 < object_id <= MAX_ID else None
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
    if p.first_item >= p.item_count:
        # Past the end: the page is empty, and an offset as large as the page number allows overflows the database.
        return []
    return list(session().scalars(query.order_by(*order_by).offset(p.first_item).limit(p.page_size)))
