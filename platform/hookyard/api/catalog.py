"""Read-only views of what the installed plugins provide: plugins, trigger types, apps and actions."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import fields

from ..schemadoc import describe
from .auth import api_blueprint
from .base import BaseSchema, rt

plugins_blp = api_blueprint("plugins", "Installed plugins")
triggers_blp = api_blueprint("triggers", "Trigger types")
apps_blp = api_blueprint("apps", "Apps and their actions")


class FieldDoc(BaseSchema):
    name = fields.String()
    type = fields.String()
    required = fields.Boolean()
    label = fields.String()
    description = fields.String()
    secret = fields.Boolean()
    options = fields.String(metadata={"description": "Name of the integration option list the value comes from."})
    choices = fields.List(fields.Raw())
    of = fields.Dict(metadata={"description": "For arrays: the type of the items."})
    nested_fields = fields.List(fields.Dict(), attribute="fields", data_key="fields")


class SettingDoc(BaseSchema):
    name = fields.String(metadata={"description": "The environment variable, with the plugin's own prefix."})
    type = fields.String(metadata={"description": "str, int, float, bool or list[str] (comma-separated)."})
    default = fields.Raw(allow_none=True, metadata={"description": "Used when the variable is unset or blank."})
    description = fields.String()
    secret = fields.Boolean(metadata={"description": "Its value is never echoed. No setting's value is listed."})


class PluginSchema(BaseSchema):
    name = fields.String()
    version = fields.String(allow_none=True)
    hooks = fields.List(fields.String())
    trigger_types = fields.List(fields.String())
    apps = fields.List(fields.String())
    commands = fields.List(fields.String(), metadata={"description": "Commands added to the `hookyard` CLI."})
    blueprints = fields.List(fields.String(), metadata={"description": "Flask blueprints (pages, endpoints)."})
    settings = fields.List(
        fields.Nested(SettingDoc),
        metadata={
            "description": "The settings it declares (hookyard plugins --settings): defaults and descriptions, never "
            "the values."
        },
    )
    hook_api = fields.String(
        allow_none=True,
        metadata={
            "description": "The hook API range it declares (its module's HOOKYARD_API, e.g. `>=1.0,<2`), or null "
            "when it declares none; this server's hook API is the core's HOOK_API_VERSION."
        },
    )


class TriggerSchema(BaseSchema):
    key = fields.String()
    label = fields.String()
    category = fields.String()
    description = fields.String()
    product_scoped = fields.Boolean()
    delay_seconds = fields.Integer(allow_none=True)
    plugin = fields.String()
    payload_fields = fields.List(fields.Nested(FieldDoc))


class ActionSchema(BaseSchema):
    key = fields.String()
    label = fields.String()
    description = fields.String()
    params_fields = fields.List(fields.Nested(FieldDoc))


class AppSchema(BaseSchema):
    key = fields.String()
    name = fields.String()
    description = fields.String()
    logo_url = fields.String(allow_none=True)
    plugin = fields.String()
    config_fields = fields.List(fields.Nested(FieldDoc))
    actions = fields.List(fields.Nested(ActionSchema))
    inbound = fields.Boolean(metadata={"description": "Its connections receive webhooks at an inbound URL."})
    inbound_instructions = fields.String(allow_none=True, metadata={"description": "Where to paste that URL."})
    imports_products = fields.Boolean(metadata={"description": "It can import the store's products."})


def trigger_doc(t) -> dict:
    return dict(
        key=t.key,
        label=t.label,
        category=t.category,
        description=t.description,
        product_scoped=t.product_scoped,
        delay_seconds=int(t.delay.total_seconds()) if t.delay else None,
        plugin=rt().registry.owner("trigger type", t.key),
        payload_fields=describe(t.payload_schema),
    )


def app_doc(a) -> dict:
    return dict(
        key=a.key,
        name=a.name,
        description=a.description,
        logo_url=a.logo_url,
        plugin=rt().registry.owner("app", a.key),
        config_fields=describe(a.config_schema),
        actions=[
            dict(key=x.key, label=x.label, description=x.description, params_fields=describe(x.params_schema))
            for x in a.actions
        ],
        inbound=a.inbound is not None,
        inbound_instructions=a.inbound.instructions if a.inbound else None,
        imports_products=a.products is not None,
    )


@plugins_blp.route("")
class Plugins(MethodView):
    @plugins_blp.response(200, PluginSchema(many=True))
    def get(self):
        """List installed plugins with their version, hooks, trigger types, apps and settings"""
        return [vars(p) for p in rt().registry.plugins()]


@triggers_blp.route("")
class Triggers(MethodView):
    @triggers_blp.response(200, TriggerSchema(many=True))
    def get(self):
        """List trigger types, grouped by category"""
        types = sorted(rt().registry.trigger_types.values(), key=lambda t: (t.category, t.key))
        return [trigger_doc(t) for t in types]


@triggers_blp.route("/<string:key>")
class TriggerByKey(MethodView):
    @triggers_blp.response(200, TriggerSchema)
    def get(self, key):
        """Show one trigger type with its payload fields"""
        t = rt().registry.trigger_types.get(key)
        if t is None:
            abort(404, message=f"trigger {key!r} not found")
        return trigger_doc(t)


@apps_blp.route("")
class Apps(MethodView):
    @apps_blp.response(200, AppSchema(many=True))
    def get(self):
        """List apps with their connection fields and actions"""
        return [app_doc(a) for a in sorted(rt().registry.apps.values(), key=lambda a: a.key)]


@apps_blp.route("/<string:key>")
class AppByKey(MethodView):
    @apps_blp.response(200, AppSchema)
    def get(self, key):
        """Show one app"""
        a = rt().registry.apps.get(key)
        if a is None:
            abort(404, message=f"app {key!r} not found")
        return app_doc(a)
