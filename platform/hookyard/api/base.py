"""What every resource blueprint shares: the schema policy, the session, tenancy and the error helpers."""

from __future__ import annotations

from flask_smorest import Blueprint, abort
from flask_smorest.pagination import PaginationMetadataSchema
from flask_smorest.utils import resolve_schema_instance
from marshmallow import ValidationError, fields
from webargs.flaskparser import FlaskParser, is_json_request

from .. import inputs
from ..models import MAX_ID  # noqa: F401 (re-exported for the resource modules)
from ..requestctx import db_session, owned, runtime, store, store_id  # noqa: F401 (owned: re-exported)
from ..schema_policy import BaseSchema, id_field  # noqa: F401 (re-exported)

# Text never holds NUL (see hookyard.inputs), and the document says so: clients and request generators know that
# "\x00" is refused rather than discovering it from a 422. (A lone surrogate has no pattern: patterns match
# characters, and it is not one.)
TEXT_PATTERN = "^[^\\x00]*$"


def text_without_nul(converter, field, ret, **kwargs) -> dict:
    """An apispec attribute function (registered in hookyard.api.init_api): every string field gets TEXT_PATTERN."""
    if isinstance(field, fields.String) and "pattern" not in ret:
        return {"pattern": TEXT_PATTERN}
    return {}


class JsonBodyParser(FlaskParser):
    """webargs' parser, with one reader for every JSON request body.

    The body must be there (every body the API documents is required; a bodiless POST or PATCH is refused, not
    read as ``{}``), be JSON (415 for another media type, 400 for broken JSON), and pass ``hookyard.inputs``
    while it is parsed: a 5,000-digit number or 900 levels of nesting are refused at their field (422) before
    anything converts or walks them."""

    def load_json(self, req, schema):
        body = req.get_data(cache=True)
        if not body:
            raise ValidationError(["A JSON body is required (Content-Type: application/json)."])
        if not is_json_request(req):
            abort(
                415,
                message="The body must be JSON.",
                errors={"headers": {"Content-Type": [f"Must be application/json, not {req.mimetype or 'missing'}."]}},
            )
        try:
            return inputs.loads(body)
        except inputs.NotJSON as exc:
            abort(400, message=f"The body is not valid JSON: {exc}.", errors={"json": [f"Invalid JSON body: {exc}."]})


# X-Pagination is JSON text, so it is documented as content, not as a "simple"-style object header (which a
# client reading the document would expect as `total,1000,page,2,…`).
PAGINATION_HEADER = {
    "description": "Pagination metadata, as a JSON object.",
    "content": {"application/json": {"schema": PaginationMetadataSchema}},
}


class ApiBlueprint(Blueprint):
    ARGUMENTS_PARSER = JsonBodyParser()

    def arguments(self, schema, *args, **kwargs):
        # One instance per route, not per request: webargs instantiates a schema given as a class on every call
        # (deep-copying its fields), which cost more than loading a small body with it; loading changes nothing in it.
        return super().arguments(resolve_schema_instance(schema), *args, **kwargs)

    def _document_pagination_metadata(self, spec, resp_doc):
        resp_doc.setdefault("headers", {})[self.PAGINATION_HEADER_NAME] = PAGINATION_HEADER


# The request-scoped core under the names the resource modules use (hookyard.requestctx is the public home).
rt, session, marketplace, marketplace_id = runtime, db_session, store, store_id


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
