"""Describes a plugin's marshmallow schema as plain JSON, for clients that build forms from it."""

from __future__ import annotations

from marshmallow import Schema, fields

from .fields import option_list, value_field

_TYPES = [
    (fields.Email, "email"),
    (fields.Url, "url"),
    (fields.String, "string"),
    (fields.Integer, "integer"),
    (fields.Float, "number"),
    (fields.Decimal, "number"),
    (fields.Boolean, "boolean"),
    (fields.DateTime, "datetime"),
    (fields.Date, "date"),
    (fields.List, "array"),
    (fields.Nested, "object"),
    (fields.Dict, "object"),
]


def _type_name(field) -> str:
    field = value_field(field)  # an Option is described by the type of its value
    for cls, name in _TYPES:
        if isinstance(field, cls):
            return name
    return "string"


def describe(schema: Schema | type[Schema]) -> list[dict]:
    schema = schema() if isinstance(schema, type) else schema
    out = []
    for name, field in schema.fields.items():
        if field.dump_only:
            continue
        item = {"name": field.data_key or name, "type": _type_name(field), "required": field.required}
        for key in ("label", "description", "secret", "options", "multiline"):
            if key in field.metadata:
                item[key] = field.metadata[key]
        if option_list(field):  # also a List of Options, whose list name is on its inner field
            item["options"] = option_list(field)
        choices = getattr(field.validators[0], "choices", None) if field.validators else None
        if choices is not None:
            item["choices"] = list(choices)
            if isinstance(field.load_default, str):  # what an omitted choice becomes, e.g. Circle's plan
                item["default"] = field.load_default
        if isinstance(field, fields.Nested):
            item["fields"] = describe(field.schema)
        if isinstance(field, fields.List) and isinstance(field.inner, fields.Nested):
            item["of"] = {"type": "object", "fields": describe(field.inner.schema)}
        elif isinstance(field, fields.List):
            item["of"] = {"type": _type_name(field.inner)}
        out.append(item)
    return out
