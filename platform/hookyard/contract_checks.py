"""Startup checks of what the plugins registered, for the promises the core cannot check later: a mistake here would
otherwise turn a check off without a word (an option list no refresh ever loads, a secret that is stored in clear,
a product-scoped trigger whose events never name a product). Each refusal names the plugin; the deprecated
metadata spellings (``metadata={"options": …}``, ``metadata={"secret": True}``) are accepted with a
DeprecationWarning.

An app that declares ``option_lists`` (the names its ``refresh`` returns) has every option list a parameter names
checked against them, so a misspelt ``Option("spcaes")`` stops startup. An app that does not declare them is not
checked (``refresh`` only runs with a live connection): its misspelt list is found only when nothing is validated.
"""

from __future__ import annotations

import difflib
import warnings
from typing import Iterator, Mapping

from marshmallow import INCLUDE, Schema, ValidationError
from marshmallow import fields as ma

from .contract import App, PastEvents, TriggerType
from .fields import Option, Secret, is_secret, option_list

# What the core reads from a trigger's loaded payload, and which TriggerType setting makes it a promise.
PRODUCT_ID = ("product", "id")  # product_scoped: each event is filed under the store's product (hookyard.emit)
CUSTOMER_EMAIL = ("customer", "email")  # cancelled_by: a later event cancels a run for the same email (hookyard.jobs)

# The metadata keys the core reads; a key this close to one of them is a misspelling that silently does nothing.
_MEANINGFUL_KEYS = ("options", "secret")


def check(registry, error: type[Exception]) -> None:
    """Raises ``error`` (the plugin loader's PluginError) for the first broken promise, naming the plugin; warns
    (DeprecationWarning) for each field that uses a deprecated metadata spelling. ``registry`` is a
    plugins.Registry whose trigger types and apps are all registered."""
    for key, trigger in sorted(registry.trigger_types.items()):
        where = f"plugin {registry.owner('trigger type', key)!r}: trigger {key!r}"
        _check_trigger(where, trigger, error)
    for key, app in sorted(registry.apps.items()):
        _check_app(f"plugin {registry.owner('app', key)!r}: app {key!r}", app, error)
        _check_past_events(f"plugin {registry.owner('app', key)!r}: app {key!r}", app, registry.trigger_types, error)


def _check_past_events(where: str, app: App, trigger_types: Mapping, error: type[Exception]) -> None:
    """The triggers an app's PastEvents says it brings in are registered ones: a misspelt key would hide the read
    from every backfill without a word."""
    past = app.past_events
    if past is None:
        return
    if not isinstance(past, PastEvents) or not callable(past.read):
        raise error(f"{where} past_events must be hookyard.PastEvents(read, triggers=(…)), not {past!r}")
    if not past.triggers:
        raise error(f"{where} past_events names no trigger: list the trigger keys its read can make")
    for key in past.triggers:
        if key not in trigger_types:
            close = difflib.get_close_matches(key, list(trigger_types), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise error(f"{where} past_events names trigger {key!r}, which no plugin registers{hint}")


def _check_trigger(where: str, trigger: TriggerType, error: type[Exception]) -> None:
    schema = _instance(where, "payload schema", trigger.payload_schema, error)
    name = type(schema).__name__
    if trigger.product_scoped and not _loads(schema, PRODUCT_ID):
        raise error(
            f"{where} is product_scoped, but its payload schema {name} has no product.id (each of its events "
            "is filed under that product): declare product = fields.Nested(…) with an id field, or set "
            "product_scoped=False"
        )
    if trigger.cancelled_by and not trigger.delay:
        raise error(
            f"{where} has cancelled_by={trigger.cancelled_by!r} but no delay: only a delayed run can be "
            "cancelled by a later event; set delay=timedelta(…) or drop cancelled_by"
        )
    if trigger.cancelled_by and not _loads(schema, CUSTOMER_EMAIL):
        raise error(
            f"{where} has cancelled_by, which cancels a run when the same customer.email has a later event, "
            f"but its payload schema {name} has no customer.email"
        )
    for path, field in _walk(schema):
        _check_metadata_keys(where, f"payload field {_shown(path)!r}", field, error)
        _refuse_misplaced(where, f"payload field {_shown(path)!r}", field, error)
    if trigger.example is not None:
        _check_example(where, trigger, schema, error)


def _check_example(where: str, trigger: TriggerType, schema: Schema, error: type[Exception]) -> None:
    """The example is what a rule test runs on when no stored event is chosen: one its own schema refuses would
    only fail there, in front of a merchant, so it fails here."""
    name = type(schema).__name__
    if not isinstance(trigger.example, Mapping):
        raise error(f"{where} has an example that is a {type(trigger.example).__name__}, not a payload (a dict)")
    try:
        loaded = schema.load(dict(trigger.example))
    except ValidationError as exc:
        raise error(f"{where} has an example that its payload schema {name} refuses: {exc.messages}") from None
    except Exception as exc:  # a plugin bug inside its own schema, met with its own example
        raise error(f"{where}: loading its example raised {exc.__class__.__name__}: {exc}") from exc
    if trigger.product_scoped and not (loaded.get("product") or {}).get("id"):
        raise error(f"{where} is product_scoped, but its example has no product.id")


def _check_app(where: str, app: App, error: type[Exception]) -> None:
    config = _instance(where, "config schema", app.config_schema, error)
    for path, field in _walk(config):
        what = f"connection field {_shown(path)!r}"
        _check_metadata_keys(where, what, field, error)
        if _top_level(path) and is_secret(field):
            if not isinstance(field, Secret):
                _deprecated(
                    f"{where} {what} is marked secret with metadata={{'secret': True}}, a deprecated "
                    "spelling: use hookyard.fields.Secret()"
                )
            continue
        _refuse_misplaced(where, what, field, error)
    for action in app.actions:
        params = _instance(f"{where} action {action.key!r}", "params schema", action.params_schema, error)
        for path, field in _walk(params):
            what = f"action {action.key!r} parameter {_shown(path)!r}"
            _check_metadata_keys(where, what, field, error)
            if _item_of_top_level_list(path) and isinstance(field, Option):
                continue  # checked as its list, the parameter itself
            list_name = option_list(field) if _top_level(path) else None
            if not list_name or isinstance(field, Secret):
                _refuse_misplaced(where, what, field, error)
                continue
            if app.refresh is None:
                raise error(
                    f"{where} {what} takes a value from option list {list_name!r}, but the app has no "
                    "refresh() to load its option lists: give the App a refresh, or make it a plain field"
                )
            if app.option_lists and list_name not in app.option_lists:
                raise error(
                    f"{where} {what} takes a value from option list {list_name!r}, which the app does not "
                    f"declare: its option_lists are {', '.join(map(repr, app.option_lists))}"
                )
            if not isinstance(field, Option) and not _is_list_of_options(field):
                _deprecated(
                    f"{where} {what} names option list {list_name!r} with metadata={{'options': …}}, a "
                    f"deprecated spelling: use hookyard.fields.Option({list_name!r}, …)"
                )


def _top_level(path: tuple[str, ...]) -> bool:
    return len(path) == 1


def _item_of_top_level_list(path: tuple[str, ...]) -> bool:
    return len(path) == 2 and path[1] == "[]"


def _refuse_misplaced(where: str, what: str, field: ma.Field, error: type[Exception]) -> None:
    """An Option is validated only as an action's top-level parameter (or a List of them), a Secret is encrypted and
    masked only as a top-level connection field: anywhere else the promise would silently not be kept."""
    if isinstance(field, Option) or _is_list_of_options(field):
        raise error(
            f"{where} {what} is an Option, but option lists are checked only for an action's top-level "
            "parameters (a value, or a fields.List of them)"
        )
    if isinstance(field, Secret):
        raise error(
            f"{where} {what} is a Secret, but only an app's top-level connection fields (config_schema) "
            "are encrypted and masked"
        )


def _check_metadata_keys(where: str, what: str, field: ma.Field, error: type[Exception]) -> None:
    for key in field.metadata:
        if key in _MEANINGFUL_KEYS or not isinstance(key, str):
            continue
        close = difflib.get_close_matches(key.lower(), _MEANINGFUL_KEYS, n=1, cutoff=0.8)
        if close:
            typed = "hookyard.fields.Option('…')" if close[0] == "options" else "hookyard.fields.Secret()"
            raise error(
                f"{where} {what} has metadata key {key!r}, which the core does not read: did you mean "
                f"{close[0]!r}? Better, use {typed}"
            )


def _is_list_of_options(field: ma.Field) -> bool:
    return isinstance(field, ma.List) and isinstance(field.inner, Option)


def _walk(
    schema: Schema, prefix: tuple[str, ...] = (), seen: frozenset = frozenset()
) -> Iterator[tuple[tuple[str, ...], ma.Field]]:
    """Every field of the schema with its path (("customer", "email"); ("items", "[]", "id") inside a list), nested
    schemas included, each schema class once per branch (a schema may nest itself)."""
    seen = seen | {type(schema)}
    for name, field in schema.fields.items():
        path = (*prefix, field.data_key or name)
        yield path, field
        inner = field.inner if isinstance(field, ma.List) else None
        if inner is not None:
            yield (*path, "[]"), inner
        nested = inner if isinstance(inner, ma.Nested) else field if isinstance(field, ma.Nested) else None
        if nested is not None and type(nested.schema) not in seen:
            below = (*path, "[]") if nested is inner or nested.many else path
            yield from _walk(nested.schema, below, seen)


def _shown(path: tuple[str, ...]) -> str:
    """("items", "[]", "id") as 'items[].id', for messages."""
    return ".".join(path).replace(".[]", "[]")


def _loads(schema: Schema, path: tuple[str, ...], unknown: str | None = None) -> bool:
    """Whether loading with ``schema`` can give data[path[0]][path[1]]…: a field whose loaded name (attribute) is
    the key, down a Nested (not many) or into a Dict/Raw, which hold whatever they are sent; or a schema that lets
    unknown keys through (INCLUDE)."""
    for name, field in schema.fields.items():
        if (field.attribute or name) != path[0] or field.dump_only:
            continue
        if len(path) == 1:
            return True
        if isinstance(field, ma.Nested) and not field.many:
            return _loads(field.schema, path[1:], field.unknown)
        return isinstance(field, (ma.Dict, ma.Raw))
    return (unknown or schema.unknown) == INCLUDE


def _instance(where: str, what: str, schema, error: type[Exception]) -> Schema:
    try:
        instance = schema() if isinstance(schema, type) else schema
    except Exception as exc:  # a plugin bug (a Nested naming an unknown schema…): refuse it with its plugin's name
        raise error(f"{where}: its {what} cannot be built ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(instance, Schema):
        raise error(f"{where}: its {what} is {schema!r}, not a marshmallow Schema")
    return instance


def _deprecated(message: str) -> None:
    warnings.warn(message, DeprecationWarning, stacklevel=2)
