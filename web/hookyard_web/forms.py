"""Turning HTML forms into the values the core's schemas and services take, and their errors back."""

from __future__ import annotations

import json

from marshmallow import ValidationError

from hookyard import inputs
from hookyard.models import MAX_ID
from hookyard.schemadoc import describe


def id_or_none(text) -> int | None:
    """A form's id: None unless it is a whole number the id columns can hold."""
    text = str(text or "").strip()
    return int(text) if text.isdigit() and 0 < int(text) <= MAX_ID else None


def present(form, names) -> dict:
    """The named fields that were filled in (an empty input means "not given", as in a JSON body)."""
    return {name: form[name].strip() for name in names if form.get(name, "").strip()}


def flat_errors(messages, prefix: str = "") -> dict[str, str]:
    """marshmallow's nested messages as {"config.api_key": "…"} for showing beside each input."""
    out: dict[str, str] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            out.update(flat_errors(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(messages, list) and messages and all(isinstance(m, str) for m in messages):
        out[prefix or "_schema"] = " ".join(messages)
    elif isinstance(messages, list):
        for i, value in enumerate(messages):
            out.update(flat_errors(value, f"{prefix}.{i}"))
    else:
        out[prefix or "_schema"] = str(messages)
    return out


def schema_values(schema, form, prefix: str = "") -> dict:
    """Reads the inputs that ``fields.html`` rendered for a plugin's schema (config or action params)."""
    values: dict = {}
    for item in describe(schema):
        key = prefix + item["name"]
        if item["type"] == "boolean":
            values[item["name"]] = form.get(key) == "true"
        elif item["type"] == "array":
            chosen = [v for v in form.getlist(key) if v.strip()]
            if chosen or key + "__present" in form:
                values[item["name"]] = chosen
        elif form.get(key, "").strip():
            values[item["name"]] = form[key].strip()
    return values


def cleared_optional(schema, form, prefix: str = "") -> dict:
    """The optional, non-secret text fields whose inputs were sent empty (on an edit form: emptied on purpose), as
    the value that clears each: None where the field allows it, else "". schema_values leaves them out, which on an
    edit would keep the stored value."""
    schema = schema() if isinstance(schema, type) else schema
    cleared = {}
    for item in describe(schema):
        key = prefix + item["name"]
        if item["required"] or item.get("secret") or item["type"] in ("boolean", "array") or key not in form:
            continue
        if not form[key].strip():
            field = schema.fields.get(item["name"]) or next(
                f for f in schema.fields.values() if f.data_key == item["name"]
            )
            cleared[item["name"]] = None if field.allow_none else ""
    return cleared


def dumps(value) -> str:
    return json.dumps(value, sort_keys=True)


def loads_object(text: str | None) -> dict:
    # The wizard's hidden params_json comes back from the browser: checked as any JSON body is (hookyard.inputs:
    # nesting, lone surrogates, NUL, huge numbers), and read as "no parameters yet" when it fails.
    try:
        value = inputs.loads(text or "{}")
    except (inputs.NotJSON, ValidationError):
        return {}
    return value if isinstance(value, dict) else {}
