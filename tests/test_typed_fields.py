"""Typed fields (hookyard.fields.Option and Secret), the deprecated metadata spelling they replace, and the checks
at registration that refuse a plugin whose schemas promise what the core could not keep."""

from datetime import timedelta
from types import ModuleType

import pytest
import requests
from marshmallow import INCLUDE, Schema, ValidationError, fields

import hookyard
from hookyard import Action, App, Outcome, TriggerType, hookimpl
from hookyard.app import create_app
from hookyard.fields import Option, Secret
from hookyard.models import Integration
from hookyard.plugins import PluginError, load_registry
from hookyard.tokens import create_token, get_or_create_marketplace

from .conftest import ApiClient
from .recorder import TOKEN
from .tasking import refresh


def plugin(name, **hooks):
    ns = ModuleType(name)  # hashable, as pluggy needs a plugin object to be
    for hook_name, fn in hooks.items():
        setattr(ns, hook_name, hookimpl(fn))
    return ns


def app_plugin(name, *apps):
    return plugin(name, register_apps=lambda register: [register(a) for a in apps])


def trigger_plugin(name, *triggers):
    return plugin(name, register_trigger_types=lambda register: [register(t) for t in triggers])


def noop(ctx):
    return Outcome.succeeded()


# --- a test app written with the typed fields, talking to the recorder server (tests/recorder.py) ---------------


class TypedConfig(Schema):
    endpoint = fields.Url(required=True, require_tld=False)
    token = Secret(required=True, metadata={"label": "Token"})


class PickParams(Schema):
    channel = Option("channels", required=True, metadata={"label": "Channel"})
    also = fields.List(Option("channels"), load_default=list)


def _get(config, path):
    return requests.get(config["endpoint"] + path, headers={"Authorization": f"Bearer {config['token']}"}, timeout=5)


TYPED = App(
    key="typed",
    name="Typed",
    config_schema=TypedConfig,
    verify=lambda config: _get(config, "/verify").json(),
    refresh=lambda config, info: _get(config, "/options").json(),
    actions=(Action("pick", "Pick a channel", PickParams, noop),),
)


@pytest.fixture
def typed_api(runtime, monkeypatch):
    """The API of a server that has the typed app installed too (as a plugin named "typed")."""
    monkeypatch.setattr(runtime, "registry", load_registry(disabled=set(), extra=[app_plugin("typed", TYPED)]))
    with runtime.db.session() as session:
        store = get_or_create_marketplace(session, "store-a")
        token = create_token(session, store, "tests")
        session.commit()
        return ApiClient(create_app(runtime=runtime), token, store.id)


def connect(api, recorder) -> int:
    r = api.post(
        "/api/v1/integrations", json={"app": "typed", "name": "T", "config": {"endpoint": recorder.url, "token": TOKEN}}
    )
    assert r.status_code == 201, r.json
    return r.json["id"]


def rule(iid, **params) -> dict:
    return {
        "product_id": None,
        "trigger": "samcart.product_purchased",
        "integration_id": iid,
        "action": "pick",
        "params": params,
    }


# --- Option ------------------------------------------------------------------------------------------------------


def test_an_option_and_a_list_of_options_take_ids_from_the_integrations_list(typed_api, recorder, runtime):
    iid = connect(typed_api, recorder)
    refresh(typed_api, runtime, iid)  # the recorder's lists: channels general and vip
    r = typed_api.post("/api/v1/rules", json=rule(iid, channel="gone"))
    assert r.status_code == 422
    assert r.json["errors"]["json"]["params"] == {
        "channel": ["gone not found in the integration's channels; refresh the integration if it was added recently."]
    }
    # Each item of a List of Options is checked too (the list name is on the inner field).
    r = typed_api.post("/api/v1/rules", json=rule(iid, channel="general", also=["vip", "nope"]))
    assert r.status_code == 422
    assert r.json["errors"]["json"]["params"]["also"][0].startswith("nope not found in the integration's channels")
    r = typed_api.post("/api/v1/rules", json=rule(iid, channel="general", also=["vip"]))
    assert r.status_code == 201, r.json
    assert r.json["params"] == {"channel": "general", "also": ["vip"]}
    assert typed_api.post("/api/v1/rules", json=rule(iid)).json["errors"]["json"]["params"] == {
        "channel": ["Missing data for required field."]
    }


def test_clients_see_an_option_and_a_secret_as_they_saw_the_metadata_spelling(typed_api):
    typed = typed_api.get("/api/v1/apps/typed").json
    assert typed["config_fields"][1] == {
        "name": "token",
        "type": "string",
        "required": True,
        "label": "Token",
        "secret": True,
    }
    assert typed["actions"][0]["params_fields"] == [
        {"name": "channel", "type": "string", "required": True, "label": "Channel", "options": "channels"},
        {"name": "also", "type": "array", "required": False, "options": "channels", "of": {"type": "string"}},
    ]
    # Circle's fields, now typed, are described exactly as with metadata={"options": …} / {"secret": True}.
    circle = typed_api.get("/api/v1/apps/circle").json
    assert circle["config_fields"][0]["secret"] is True
    actions = {a["key"]: a["params_fields"] for a in circle["actions"]}
    assert actions["invite_member"][0] == {
        "name": "space_ids",
        "type": "array",
        "required": False,
        "label": "Spaces",
        "options": "spaces",
        "of": {"type": "integer"},
    }
    assert actions["add_member_to_space"] == [
        {"name": "space_id", "type": "integer", "required": True, "label": "Space", "options": "spaces"}
    ]


def test_an_option_loads_with_its_value_field_and_keeps_marshmallow_semantics():
    class Params(Schema):
        space_id = Option("spaces", fields.Integer(), required=True)
        maybe = Option("spaces", fields.Integer(), load_default=None, allow_none=True)
        space_ids = fields.List(Option("spaces", fields.Integer()), load_default=list)

    schema = Params()
    assert schema.load({"space_id": "12", "space_ids": [1, "2"]}) == {
        "space_id": 12,
        "maybe": None,
        "space_ids": [1, 2],
    }
    with pytest.raises(ValidationError) as refused:
        schema.load({"space_id": "twelve", "space_ids": ["x"]})
    assert refused.value.messages == {"space_id": ["Not a valid integer."], "space_ids": {0: ["Not a valid integer."]}}
    assert schema.dump({"space_id": 12, "space_ids": [1]}) == {"space_id": 12, "space_ids": [1]}
    with pytest.raises(TypeError, match="needs the name of an option list"):
        Option("")
    with pytest.raises(TypeError, match=r"for several values use fields.List\(Option"):
        Option("spaces", fields.List(fields.Integer()))


# --- Secret ------------------------------------------------------------------------------------------------------


def test_a_secret_is_encrypted_at_rest_and_masked_like_the_metadata_spelling(typed_api, recorder, runtime):
    iid = connect(typed_api, recorder)
    shown = typed_api.get(f"/api/v1/integrations/{iid}").json
    assert shown["config"] == {"endpoint": recorder.url, "token": "********"}
    with runtime.db.session() as session:
        row = session.get(Integration, iid)
        assert TOKEN not in (row.secrets or "") and "token" not in row.config
        assert runtime.secret_box.open(row.secrets) == {"token": TOKEN}
    assert TYPED.secret_fields == ("token",)
    # An edit that leaves the secret out (or sends the mask back) keeps it: the refresh still authenticates.
    assert typed_api.patch(f"/api/v1/integrations/{iid}", json={"config": {"token": "********"}}).status_code == 200
    refresh(typed_api, runtime, iid)


# --- the deprecated metadata spelling ------------------------------------------------------------------------------


def test_the_metadata_spelling_still_works_and_warns_naming_the_plugin_and_field(plugin_site):
    with pytest.warns(DeprecationWarning) as caught:
        registry = load_registry(disabled=set())
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert (
        "plugin 'recorder': app 'recorder' connection field 'token' is marked secret with "
        "metadata={'secret': True}, a deprecated spelling: use hookyard.fields.Secret()"
    ) in messages
    assert (
        "plugin 'recorder': app 'recorder' action 'record' parameter 'channel' names option list 'channels' "
        "with metadata={'options': …}, a deprecated spelling: use hookyard.fields.Option('channels', …)"
    ) in messages
    # The first-party plugins and the example use the typed fields: only the test plugin keeps the old spelling.
    assert not [m for m in messages if "plugin 'recorder'" not in m]
    # ...and it still does what it did: the recorder's token is a secret, its channel is checked
    # (tests/test_api_rules_products.py: "gone not found in the integration's channels").
    assert registry.apps["recorder"].secret_fields == ("token",)
    assert hookyard.Option is Option and hookyard.Secret is Secret


# --- registration checks -------------------------------------------------------------------------------------------


def test_an_option_on_an_app_without_refresh_is_refused_naming_the_plugin(plugin_site):
    lonely = App(
        key="lonely",
        name="Lonely",
        config_schema=Schema,
        verify=lambda config: {},
        actions=(Action("pick", "Pick", PickParams, noop),),
    )
    with pytest.raises(PluginError) as refused:
        load_registry(disabled=set(), extra=[app_plugin("mine", lonely)])
    assert str(refused.value) == (
        "plugin 'mine': app 'lonely' action 'pick' parameter 'channel' takes a value from option list 'channels', "
        "but the app has no refresh() to load its option lists: give the App a refresh, or make it a plain field"
    )


def test_an_option_naming_a_list_the_app_does_not_declare_is_refused(plugin_site):
    """The misspelling that silently turned validation off: "spcaes" for "spaces" stops startup."""
    careless = App(
        key="lists",
        name="Lists",
        config_schema=Schema,
        verify=lambda config: {},
        refresh=lambda config, info: {"spaces": []},
        option_lists=("spaces",),
        actions=(Action("pick", "Pick", Schema.from_dict({"space": Option("spcaes")}), noop),),
    )
    with pytest.raises(PluginError) as refused:
        load_registry(disabled=set(), extra=[app_plugin("mine", careless)])
    assert str(refused.value) == (
        "plugin 'mine': app 'lists' action 'pick' parameter 'space' takes a value from "
        "option list 'spcaes', which the app does not declare: its option_lists are "
        "'spaces'"
    )
    fixed = App(
        key="lists",
        name="Lists",
        config_schema=Schema,
        verify=lambda config: {},
        refresh=lambda config, info: {"spaces": []},
        option_lists=("spaces",),
        actions=(Action("pick", "Pick", Schema.from_dict({"space": Option("spaces")}), noop),),
    )
    assert "lists" in load_registry(disabled=set(), extra=[app_plugin("mine", fixed)]).apps


class AliasParams(Schema):
    channel = fields.String(metadata={"options": "channels"})


@pytest.mark.parametrize(
    "schema, field, message",
    [
        # The deprecated spelling on an app without refresh: refused as the typed field is.
        (AliasParams, "channel", "takes a value from option list 'channels', but the app has no refresh()"),
        # A misspelt metadata key is what silently turned validation (or encryption) off: refused.
        (
            Schema.from_dict({"channel": fields.String(metadata={"option": "channels"})}),
            "channel",
            "has metadata key 'option', which the core does not read: did you mean 'options'? Better, use "
            "hookyard.fields.Option('…')",
        ),
        (
            Schema.from_dict({"key": fields.String(metadata={"secrets": True})}),
            "key",
            "did you mean 'secret'? Better, use hookyard.fields.Secret()",
        ),
        # Where they would not be kept: an Option inside a nested schema, a Secret among an action's parameters.
        (
            Schema.from_dict({"where": fields.Nested(Schema.from_dict({"space": Option("spaces")}))}),
            "where.space",
            "is an Option, but option lists are checked only for an action's top-level parameters",
        ),
        (
            Schema.from_dict({"key": Secret()}),
            "key",
            "is a Secret, but only an app's top-level connection fields (config_schema) are encrypted and masked",
        ),
    ],
)
def test_misspelt_or_misplaced_fields_are_refused_naming_the_plugin(plugin_site, schema, field, message):
    app = App(
        key="careless",
        name="Careless",
        config_schema=Schema,
        verify=lambda config: {},
        actions=(Action("do", "Do", schema, noop),),
    )
    with pytest.raises(PluginError) as refused:
        load_registry(disabled=set(), extra=[app_plugin("careless", app)])
    assert str(refused.value).startswith(f"plugin 'careless': app 'careless' action 'do' parameter {field!r} ")
    assert message in str(refused.value)


def test_a_secret_inside_a_nested_connection_field_is_refused(plugin_site):
    config = Schema.from_dict({"auth": fields.Nested(Schema.from_dict({"key": Secret()}))})
    app = App(key="deep", name="Deep", config_schema=config, verify=lambda c: {}, actions=())
    with pytest.raises(PluginError, match=r"plugin 'deep': app 'deep' connection field 'auth.key' is a Secret"):
        load_registry(disabled=set(), extra=[app_plugin("deep", app)])


class Customer(Schema):
    email = fields.Email(required=True)


class Product(Schema):
    id = fields.String()


def trigger(key, payload, **kwargs):
    return TriggerType(key=key, label=key, category="Test", description="", payload_schema=payload, **kwargs)


@pytest.mark.parametrize(
    "promise, payload, message",
    [
        (
            dict(product_scoped=True),
            Schema.from_dict({"customer": fields.Nested(Customer)}),
            "is product_scoped, but its payload schema GeneratedSchema has no product.id (each of its events is filed "
            "under that product): declare product = fields.Nested(…) with an id field, or set product_scoped=False",
        ),
        (
            dict(product_scoped=True),
            Schema.from_dict({"product": fields.Nested(Schema.from_dict({"sku": fields.Str()}))}),
            "has no product.id",
        ),
        (
            dict(product_scoped=True),
            Schema.from_dict({"product": fields.Nested(Product, many=True)}),
            "has no product.id",
        ),
        (
            dict(product_scoped=False, delay=timedelta(hours=1), cancelled_by=("shop.order_paid",)),
            Schema.from_dict({"buyer": fields.Nested(Customer)}),
            "has cancelled_by, which cancels a run when the same customer.email has a later event, but its payload "
            "schema GeneratedSchema has no customer.email",
        ),
        (
            dict(product_scoped=False, cancelled_by=("shop.order_paid",)),
            Schema.from_dict({"customer": fields.Nested(Customer)}),
            "has cancelled_by=('shop.order_paid',) but no delay: only a delayed run can be cancelled by a later event",
        ),
    ],
)
def test_a_trigger_missing_a_key_it_promises_is_refused_at_load(plugin_site, promise, payload, message):
    with pytest.raises(PluginError) as refused:
        load_registry(disabled=set(), extra=[trigger_plugin("shop", trigger("shop.order_placed", payload, **promise))])
    assert str(refused.value).startswith("plugin 'shop': trigger 'shop.order_placed' ")
    assert message in str(refused.value)


class Included(Schema):
    class Meta:
        unknown = INCLUDE


@pytest.mark.parametrize(
    "payload",
    [
        Schema.from_dict({"customer": fields.Nested(Customer), "product": fields.Nested(Product)}),
        Schema.from_dict(
            {"item": fields.Nested(Product, attribute="product"), "customer": fields.Dict()}
        ),  # loaded name
        Schema.from_dict({"product": fields.Dict(), "customer": fields.Raw()}),  # hold whatever they are sent
        Included,  # lets every key through
    ],
)
def test_a_trigger_that_can_load_its_promised_keys_registers(plugin_site, payload):
    kept = trigger("shop.order_placed", payload, delay=timedelta(hours=1), cancelled_by=("shop.order_paid",))
    registry = load_registry(disabled=set(), extra=[trigger_plugin("shop", kept)])
    assert registry.owner("trigger type", "shop.order_placed") == "shop"


def test_past_events_naming_a_trigger_no_plugin_registers_is_refused(plugin_site):
    """A misspelt trigger key in PastEvents would hide the read from every backfill: it stops startup instead, and
    so does a bare function where the declaration belongs."""
    from hookyard import PastEvents

    def reader(config, info, since, until, progress=None, triggers=None):
        yield []

    def store(past_events):
        return App(
            key="store",
            name="Store",
            config_schema=Schema,
            verify=lambda config: {},
            actions=(),
            past_events=past_events,
        )

    with pytest.raises(PluginError) as refused:
        load_registry(
            disabled=set(), extra=[app_plugin("mine", store(PastEvents(reader, ("samcart.product_purchsed",))))]
        )
    assert str(refused.value) == (
        "plugin 'mine': app 'store' past_events names trigger 'samcart.product_purchsed', which no plugin registers "
        "(did you mean 'samcart.product_purchased'?)"
    )
    with pytest.raises(PluginError) as refused:
        load_registry(disabled=set(), extra=[app_plugin("mine", store(reader))])
    assert str(refused.value).startswith("plugin 'mine': app 'store' past_events must be hookyard.PastEvents(read")
    with pytest.raises(PluginError, match="past_events names no trigger"):
        load_registry(disabled=set(), extra=[app_plugin("mine", store(PastEvents(reader, ())))])
    registry = load_registry(
        disabled=set(), extra=[app_plugin("mine", store(PastEvents(reader, ("samcart.product_purchased",))))]
    )
    assert registry.apps["store"].past_events.triggers == ("samcart.product_purchased",)
