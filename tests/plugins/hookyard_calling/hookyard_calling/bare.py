"""Implementations that leave out ``register``, which docs/plugins/hooks.md allows: the host must call them anyway
(pluggy passes only the arguments an implementation names). One that takes it registers a trigger type, so a
listing shows the plugin's load went through every hook."""

from marshmallow import Schema

from hookyard import TriggerType, hookimpl

# Hook names in the order they were called, for a test that loads this plugin in its own process.
CALLS: list[str] = []


@hookimpl
def register_apps():
    CALLS.append("register_apps")


@hookimpl
def register_commands():
    CALLS.append("register_commands")


@hookimpl
def register_trigger_types(register):
    CALLS.append("register_trigger_types")
    register(
        TriggerType(
            key="bare.noticed",
            label="Noticed",
            category="Test",
            description="",
            payload_schema=Schema,
            product_scoped=False,
        )
    )  # a product-scoped trigger's schema must load product.id
