"""Typed fields for plugin schemas: a value from one of the app's option lists, and a connection secret.

They replace strings in field metadata (``metadata={"options": "spaces"}``, ``metadata={"secret": True}``), where a
misspelling silently turned the check or the encryption off. Both are ordinary marshmallow fields (``required``,
``load_default``, ``allow_none``, ``validate``, ``metadata`` and ``fields.List(Option(...))`` work as usual), and
both still set the metadata key the core has always read, so everything that reads a schema sees them alike::

    from marshmallow import Schema, fields
    from hookyard.fields import Option, Secret

    class Config(Schema):
        api_key = Secret(required=True, metadata={"label": "API key"})

    class Params(Schema):
        space_id = Option("spaces", fields.Integer(), required=True, metadata={"label": "Space"})
        tag_ids = fields.List(Option("member_tags", fields.Integer()), load_default=list)

A secret the app can make itself (a webhook signing secret) is ``Secret(generate=new_secret)``: when a connection is
created without it, the core (hookyard.connections, through ``generated_secrets``) stores ``generate()``'s value,
and the answer to that create shows it once (``revealed_secrets`` in the API, a banner in the UI); no read returns
it afterwards.

The metadata spelling keeps working as a deprecated alias (``hookyard.contract_checks`` warns at registration).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from marshmallow import Schema, fields


class Option(fields.Field):
    """A value that must be the ``id`` of an entry in the option list ``list_name``, which the app's ``refresh``
    returns (``{"spaces": [{"id": 1, "name": "Members"}, …]}``). The schema loads it with ``value`` (a field
    instance or class; ``fields.String`` when not given); membership is checked when a rule is saved, against
    the integration's last refresh, by the same check as the metadata spelling (hookyard.rules)."""

    def __init__(self, list_name: str, value: fields.Field | type[fields.Field] | None = None, **kwargs: Any):
        if not isinstance(list_name, str) or not list_name.strip():
            raise TypeError(f"Option() needs the name of an option list, e.g. Option('spaces'); got {list_name!r}")
        metadata = dict(kwargs.pop("metadata", None) or {})
        if metadata.setdefault("options", list_name) != list_name:
            raise TypeError(f"Option({list_name!r}) has metadata options={metadata['options']!r}: name one list")
        super().__init__(metadata=metadata, **kwargs)
        self.list_name = list_name
        value = fields.String if value is None else value
        self.value = value() if isinstance(value, type) else value
        if not isinstance(self.value, fields.Field) or isinstance(self.value, (Option, fields.List, fields.Nested)):
            raise TypeError(
                f"Option({list_name!r}, value) takes a scalar marshmallow field such as fields.Integer(); "
                f"got {value!r} (for several values use fields.List(Option(...)))"
            )

    def _bind_to_schema(self, field_name, parent):
        super()._bind_to_schema(field_name, parent)
        self.value._bind_to_schema(field_name, self)

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else self.value._serialize(value, attr, obj, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        # deserialize (not _deserialize): the value field's own validators and allow_none apply too.
        return self.value.deserialize(value, attr, data, **kwargs)


class Secret(fields.String):
    """A connection field that is a secret (an API key, a signing secret): encrypted at rest, never returned (the
    API and the UI show a mask), kept when an edit leaves it out. Meaningful in an ``App.config_schema`` only.

    ``generate``: a function of no arguments returning a fresh secret, for a secret the app can make itself. Left
    empty on a create, the field gets ``generate()``'s value (then validated like a pasted one), and the create's
    answer reveals it once; ``load_default`` would generate one too but reveal it to nobody, so the two are
    exclusive, and so is ``required`` (the client need not send it)."""

    def __init__(self, *, generate: Callable[[], str] | None = None, **kwargs: Any):
        metadata = dict(kwargs.pop("metadata", None) or {})
        if metadata.get("secret", True) is not True:
            raise TypeError("Secret() with metadata secret=False is not a secret: use fields.String()")
        if generate is not None:
            if not callable(generate):
                raise TypeError(f"Secret(generate=...) takes a function returning a new secret; got {generate!r}")
            if kwargs.get("required") or "load_default" in kwargs:
                raise TypeError(
                    "Secret(generate=...) is filled in when left empty: it cannot be required=True or have a "
                    "load_default (which would generate a secret that nobody is ever shown)"
                )
        super().__init__(metadata={**metadata, "secret": True}, **kwargs)
        self.generate = generate


def generated_secrets(schema: type[Schema] | Schema, config: Mapping[str, Any]) -> dict[str, str]:
    """For each ``Secret(generate=...)`` of ``schema`` that ``config`` (input, keyed as a client sends it) leaves
    out, null or empty: a freshly generated value, under that key. Nothing else is touched."""
    schema = schema() if isinstance(schema, type) else schema
    made = {}
    for name, field in schema.fields.items():
        key = field.data_key or name
        if isinstance(field, Secret) and field.generate is not None and config.get(key) in (None, ""):
            value = field.generate()
            if not isinstance(value, str) or not value:
                raise TypeError(f"{field.generate!r} (Secret(generate=...) of field {key!r}) returned no string")
            made[key] = value
    return made


def option_list(field: fields.Field) -> str | None:
    """The option list a top-level field's value (or each item of a list value) comes from, or None: an Option,
    a List of Options, or the deprecated ``metadata={"options": …}`` spelling."""
    if isinstance(field, Option):
        return field.list_name
    if isinstance(field, fields.List) and isinstance(field.inner, Option):
        return field.inner.list_name
    return field.metadata.get("options") or None


def is_secret(field: fields.Field) -> bool:
    """A Secret, or the deprecated ``metadata={"secret": True}`` spelling."""
    return isinstance(field, Secret) or bool(field.metadata.get("secret"))


def value_field(field: fields.Field) -> fields.Field:
    """The field that says what type an Option's value is (itself for any other field), for schema descriptions."""
    return field.value if isinstance(field, Option) else field
