"""The plugin host: entry points, the disable list, check_pending, duplicate keys, introspection."""

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pluggy
import pytest
from marshmallow import Schema

from hookyard import App, TriggerType, hookimpl, hookspecs
from hookyard.plugins import PluginError, build_plugin_manager, load_registry


def trigger(key):
    # Not product_scoped: a product-scoped trigger's schema must load product.id (tests/test_typed_fields.py).
    return TriggerType(key=key, label=key, category="Test", description="", payload_schema=Schema, product_scoped=False)


def plugin(name, **hooks):
    ns = ModuleType(name)  # hashable, as pluggy needs a plugin object to be
    for hook_name, fn in hooks.items():
        setattr(ns, hook_name, hookimpl(fn))
    return ns


def test_built_in_and_installed_plugins_load_from_entry_points(plugin_site):
    registry = load_registry(disabled=set())
    names = {p.name for p in registry.plugins()}
    assert {"samcart", "recorder", "hello"} <= names
    assert registry.owner("trigger type", "samcart.product_purchased") == "samcart"
    assert registry.owner("app", "hello") == "hello"


def test_disabled_plugins_are_not_loaded(plugin_site, monkeypatch):
    monkeypatch.setenv("HOOKYARD_DISABLED_PLUGINS", "hello, recorder")
    registry = load_registry()
    assert {"hello", "recorder"}.isdisjoint(p.name for p in registry.plugins())
    assert "hello" not in registry.apps and "samcart.product_purchased" in registry.trigger_types


def test_a_duplicate_trigger_key_refuses_to_start_naming_both_plugins(plugin_site):
    twin = plugin("twin", register_trigger_types=lambda register: register(trigger("samcart.product_purchased")))
    with pytest.raises(PluginError) as exc:
        load_registry(disabled=set(), extra=[twin])
    assert "'samcart.product_purchased'" in str(exc.value)
    assert "'samcart'" in str(exc.value) and "'twin" in str(exc.value)


def test_a_duplicate_app_key_refuses_to_start(plugin_site):
    app = App(key="hello", name="Other hello", config_schema=Schema, verify=lambda c: {}, actions=())
    with pytest.raises(PluginError, match="duplicate app key 'hello'"):
        load_registry(disabled=set(), extra=[plugin("other", register_apps=lambda register: register(app))])


def test_a_misspelled_hook_is_caught_by_check_pending(plugin_site):
    typo = plugin("typo", register_trigger_type=lambda register: None)
    with pytest.raises(pluggy.PluginValidationError):
        build_plugin_manager(disabled=set(), extra=[typo])


def test_registering_the_wrong_type_is_an_error(plugin_site):
    wrong = plugin("wrong", register_apps=lambda register: register({"key": "x"}))
    with pytest.raises(PluginError, match=r"expected App\(...\)"):
        load_registry(disabled=set(), extra=[wrong])


def test_plugins_endpoint_lists_version_hooks_triggers_and_apps(api):
    plugins = {p["name"]: p for p in api.get("/api/v1/plugins").json}
    assert plugins["samcart"]["version"] == "0.1.0"
    assert plugins["samcart"]["hooks"] == [
        "register_apps",
        "register_commands",
        "register_settings",
        "register_trigger_types",
    ]
    assert len(plugins["samcart"]["trigger_types"]) == 17 and plugins["samcart"]["apps"] == ["samcart"]
    assert plugins["samcart"]["commands"] == ["samcart"]
    assert plugins["recorder"] == {
        "name": "recorder",
        "version": "0.0.1",
        "hooks": ["register_apps"],
        "trigger_types": [],
        "apps": ["inbox", "recorder"],
        "commands": [],
        "blueprints": [],
        "settings": [],
        "hook_api": None,
    }
    assert plugins["samcart"]["hook_api"] == ">=1.2,<2"


def test_plugins_cli_lists_the_same(plugin_site):
    env = {"PYTHONPATH": str(plugin_site), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [str(Path(sys.executable).parent / "hookyard"), "plugins", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = {p["name"]: p for p in json.loads(out)}
    assert names["hello"]["apps"] == ["hello"] and names["hello"]["version"] == "0.1.0"


HOOKS = [name for name in dir(hookspecs) if name.startswith("register_")]


def test_every_hook_has_a_docstring():
    assert HOOKS == [
        "register_apps",
        "register_blueprints",
        "register_commands",
        "register_settings",
        "register_trigger_types",
    ]
    for name in HOOKS:
        assert getattr(hookspecs, name).__doc__, name


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_its_own_test(hook):
    assert f"test_hook_{hook}" in globals(), f"write test_hook_{hook} in tests/test_plugins.py"


def test_hook_register_trigger_types(plugin_site):
    """A plugin's trigger type is registered under its key and attributed to it."""
    custom = plugin("shop", register_trigger_types=lambda register: register(trigger("shop.order_placed")))
    registry = load_registry(disabled=set(), extra=[custom])
    assert registry.trigger_types["shop.order_placed"].category == "Test"
    assert registry.owner("trigger type", "shop.order_placed") == "shop"
    assert "register_trigger_types" in next(p for p in registry.plugins() if p.name == "shop").hooks


def test_hook_register_apps(plugin_site):
    """A plugin's app and its actions are registered and looked up by key."""
    from hookyard import Action, Outcome

    action = Action("ping", "Ping", Schema, lambda ctx: Outcome.succeeded())
    app = App(key="pinger", name="Pinger", config_schema=Schema, verify=lambda c: {}, actions=(action,))
    registry = load_registry(disabled=set(), extra=[plugin("pinger", register_apps=lambda register: register(app))])
    assert registry.apps["pinger"].action("ping") is action
    assert registry.owner("app", "pinger") == "pinger"


def test_hook_register_commands(plugin_site):
    """A plugin's click command is served under `hookyard`; one named like a core command is hidden (and said so);
    something that is not a click command is refused."""
    import click
    from click.testing import CliRunner

    from hookyard import cli

    @click.command("greet")
    @click.option("--name", default="world")
    def greet(name):
        click.echo(f"hello {name}")

    @click.command("plugins")
    def impostor():
        click.echo("not the core's")

    registry = load_registry(
        disabled=set(),
        extra=[plugin("greeter", register_commands=lambda register: (register(greet), register(impostor)))],
    )
    assert registry.owner("command", "greet") == "greeter"
    assert next(p for p in registry.plugins() if p.name == "greeter").commands == ["greet", "plugins"]
    cli.WithPluginCommands._plugin_commands = None
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("hookyard.plugins.load_registry", lambda: registry)
            result = CliRunner().invoke(cli.main, ["greet", "--name", "Ada"])
            assert result.exit_code == 0 and result.output.endswith("hello Ada\n"), result.output
            assert "hidden by the core's own" in result.output
            listed = CliRunner().invoke(cli.main, ["--help"]).output
            assert "greet" in listed and "samcart" in listed
            core = CliRunner().invoke(cli.main, ["plugins", "--json"])
            assert "not the core's" not in core.output
    finally:
        cli.WithPluginCommands._plugin_commands = None
    with pytest.raises(PluginError, match="expected Command"):
        load_registry(disabled=set(), extra=[plugin("bad", register_commands=lambda register: register(print))])


def test_hook_register_blueprints(plugin_site, settings):
    """A plugin's blueprint is served by the app; a second blueprint of the same name is refused."""
    from flask import Blueprint

    from hookyard.app import create_app

    pages = Blueprint("pages", __name__)
    pages.add_url_rule("/hello-page", "hello", lambda: "hello from a plugin")
    registry = load_registry(
        disabled=set(), extra=[plugin("pages", register_blueprints=lambda register: register(pages))]
    )
    assert registry.owner("blueprint", "pages") == "pages"
    assert next(p for p in registry.plugins() if p.name == "pages").blueprints == ["pages"]
    response = create_app(settings, registry=registry).test_client().get("/hello-page")
    assert response.status_code == 200 and response.text == "hello from a plugin"
    twin = plugin("twin", register_blueprints=lambda register: register(Blueprint("pages", __name__)))
    with pytest.raises(PluginError, match="duplicate blueprint key 'pages'") as refused:
        load_registry(
            disabled=set(), extra=[plugin("pages", register_blueprints=lambda register: register(pages)), twin]
        )
    assert "plugin 'pages'" in str(refused.value) and "plugin 'twin'" in str(refused.value)


def test_hook_register_settings(plugin_site, monkeypatch):
    """A plugin's settings are listed under it (defaults, never values) and read through its PluginSettings;
    anything else registered is refused. tests/test_plugin_settings.py has the rest."""
    from hookyard import PluginSettings, Setting

    settings = PluginSettings(Setting("SHOP_PAGE_SIZE", int, 50, "Records per page."))
    monkeypatch.setenv("SHOP_PAGE_SIZE", "20")
    registry = load_registry(
        disabled=set(), extra=[plugin("shop", register_settings=lambda register: register(settings))]
    )
    assert registry.owner("setting", "SHOP_PAGE_SIZE") == "shop" and settings["SHOP_PAGE_SIZE"] == 20
    assert next(p for p in registry.plugins() if p.name == "shop").settings == [
        dict(name="SHOP_PAGE_SIZE", type="int", default=50, description="Records per page.", secret=False)
    ]
    with pytest.raises(PluginError, match=r"expected PluginSettings\(Setting\(...\), ...\)"):
        load_registry(
            disabled=set(),
            extra=[
                plugin(
                    "loose", register_settings=lambda register: register(Setting("LOOSE_X", str, "", "A lone setting."))
                )
            ],
        )


def test_an_app_with_two_actions_of_one_key_is_refused(plugin_site):
    from hookyard import Action, Outcome

    action = Action("ping", "Ping", Schema, lambda ctx: Outcome.succeeded())
    app = App(key="pinger", name="Pinger", config_schema=Schema, verify=lambda c: {}, actions=(action, action))
    with pytest.raises(PluginError, match="registers action 'ping' twice"):
        load_registry(disabled=set(), extra=[plugin("pinger", register_apps=lambda register: register(app))])
