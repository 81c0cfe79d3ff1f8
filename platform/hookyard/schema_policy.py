"""The policy every request schema follows, in the API, the web UI and plugins' blueprints alike: unknown fields are
refused, values no database stores are refused at their field (hookyard.inputs), ids are checked against MAX_ID."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate, validates_schema

from . import inputs
from .models import MAX_ID


class BaseSchema(Schema):
    class Meta:
        # Unknown fields in a request are a client bug worth a 422, not something to drop silently.
        unknown = RAISE
        ordered = True

    @validates_schema
    def _storable_values(self, data, **kwargs):
        # Whatever the location (body, query string, headers) and however deep (a payload's email): text with
        # NUL or a lone surrogate, out-of-range numbers, instants with no UTC equivalent and too much nesting
        # are the client's mistake (422 at the field), where they would otherwise fail in the database (500).
        inputs.check(data)


def id_field(**kwargs) -> fields.Integer:
    """An id in a query string or a body: out of range is the client's mistake (422), documented as such."""
    return fields.Integer(validate=validate.Range(min=1, max=MAX_ID), **kwargs)
