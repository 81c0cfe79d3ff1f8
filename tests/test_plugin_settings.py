"""Plugins' own settings (hookyard.Setting in a PluginSettings, registered with register_settings): read through the
declaration only, converted and checked at start (one line naming the variable and the plugin), listed with their
defaults and never their values, refused when unprefixed or declared by two plugins."""

import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from hookyard import PluginSettings, Setting, hookimpl
from hookyard.plugin_settings import SettingError
from hookyard.plugins import PluginError, load_registry

from .conftest import worker_env

HOOKYARD = Path(sys.executable).parent / "hookyard"
OPERATORS_DOC = Path(__file__).resolve().parents[1] / "docs" / "operators.md"

# The first-party plugins' variables and defaults, exactly as they were before the declarations (docs and deployments
# depend on them).
FIRST_PARTY = {
    "circle": {
        "CIRCLE_API_BASE_URL": "https://app.circle.so/api/admin/v2",
        "CIRCLE_RATE_LIMIT": "1800/300",
        "CIRCLE_TIMEOUT": 30,
        "CIRCLE_CONNECT_TIMEOUT": 5,
        "CIRCLE_VERIFY_TIMEOUT": 10,
    },
    "samcart": {
        "SAMCART_API_BASE_URL": "https://api.samcart.com/v1",
        "SAMCART_TIMEOUT": 10,
        "SAMCART_CONNECT_TIMEOUT": 5,
        "SAMCART_VERIFY_TIMEOUT": 10,
        "SAMCART_RATE_LIMIT_WAIT": 30,
        "HOOKYARD_SAMCART_REDELIVERY_WINDOW": "1h",
    },
    "webhook": {"WEBHOOK_ALLOWED_HOSTS": [], "WEBHOOK_TIMEOUT": 10, "WEBHOOK_CONNECT_TIMEOUT": 5},
}
# Set in the listing tests: none of these may show up anywhere in what is listed.
SENTINELS = {
    "CIRCLE_API_BASE_URL": "http://sentinel-circle.invalid/api",
    "CIRCLE_TIMEOUT": "31.5",
    "SAMCART_API_BASE_URL": "http://sentinel-samcart.invalid/v1",
    "WEBHOOK_ALLOWED_HOSTS": "sentinel.internal",
}


def plugin(name, settings):
    module = ModuleType(name)
    module.register_settings = hookimpl(lambda register: register(settings))
    return module


def cli(plugin_site, *args, **env):
    full_env = {"PYTHONPATH": str(plugin_site), "PATH": "/usr/bin:/bin", **env}
    return subprocess.run([str(HOOKYARD), *args], env=full_env, capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------------------------------- reading a setting


def test_values_convert_to_the_declared_type_and_blank_means_the_default(monkeypatch):
    settings = PluginSettings(
        Setting("SHOP_NAME", str, "shop", "A name."),
        Setting("SHOP_PAGE", int, 50, "Records per page."),
        Setting("SHOP_WAIT", float, 2.5, "Seconds."),
        Setting("SHOP_LOUD", bool, False, "Log more."),
        Setting("SHOP_HOSTS", list, ["a"], "Hosts."),
        Setting("SHOP_KEY", str, None, "An API key.", secret=True),
    )
    assert [settings[s.name] for s in settings] == ["shop", 50, 2.5, False, ("a",), None]
    for name, raw in [
        ("SHOP_NAME", " x "),
        ("SHOP_PAGE", " 7 "),
        ("SHOP_WAIT", "0.25"),
        ("SHOP_LOUD", "Yes"),
        ("SHOP_HOSTS", " b, ,c "),
        ("SHOP_KEY", "k"),
    ]:
        monkeypatch.setenv(name, raw)
    assert [settings[s.name] for s in settings] == [" x ", 7, 0.25, True, ("b", "c"), "k"]
    monkeypatch.setenv("SHOP_PAGE", "  ")  # blank: the default, as unset
    assert settings["SHOP_PAGE"] == 50


def test_only_declared_names_can_be_read():
    settings = PluginSettings(Setting("SHOP_PAGE", int, 50, "Records per page."))
    with pytest.raises(KeyError, match="'SHOP_PAGES' is not a declared setting of this plugin"):
        settings["SHOP_PAGES"]
    assert "SHOP_PAGE" in settings and "SHOP_PAGES" not in settings


def test_parse_shapes_the_value_and_runs_once_per_distinct_value(monkeypatch):
    seen = []

    def rate(text):
        seen.append(text)
        limit, window = text.split("/")
        return int(limit), float(window)

    settings = PluginSettings(Setting("SHOP_RATE", str, "10/60", "requests/seconds", parse=rate))
    assert settings["SHOP_RATE"] == settings["SHOP_RATE"] == (10, 60.0)
    monkeypatch.setenv("SHOP_RATE", "5/1")  # a new value is seen at the next read
    assert settings["SHOP_RATE"] == (5, 1.0) and seen == ["10/60", "5/1"]


@pytest.mark.parametrize(
    "kind, raw, reason",
    [
        (int, "1.5", "must be a whole number"),
        (float, "soon", "must be a number"),
        (float, "inf", "must be a finite number"),
        (bool, "maybe", "must be 1 or 0 (or true/false, yes/no, on/off)"),
    ],
)
def test_a_value_that_does_not_convert_names_the_variable_and_the_plugin(plugin_site, monkeypatch, kind, raw, reason):
    settings = PluginSettings(Setting("SHOP_VALUE", kind, kind(1), "A value."))
    monkeypatch.setenv("SHOP_VALUE", raw)
    with pytest.raises(SettingError, match=re.escape(f"SHOP_VALUE (a setting of this plugin) {reason}")):
        settings["SHOP_VALUE"]
    # At load, the registry reads every setting: the process stops there, with that one line, naming the plugin.
    with pytest.raises(SystemExit) as stopped:
        load_registry(disabled=set(), extra=[plugin("shop", settings)])
    assert str(stopped.value.code) == f"SHOP_VALUE (a setting of plugin 'shop') {reason}, got {raw!r}"


def test_a_refused_secret_is_not_echoed(plugin_site, monkeypatch):
    def key(text):
        if not text.startswith("sk_"):
            raise ValueError("must start with sk_")
        return text

    settings = PluginSettings(Setting("SHOP_KEY", str, None, "An API key.", secret=True, parse=key))
    monkeypatch.setenv("SHOP_KEY", "hunter2-leaked")
    with pytest.raises(SystemExit) as stopped:
        load_registry(disabled=set(), extra=[plugin("shop", settings)])
    assert str(stopped.value.code) == (
        "SHOP_KEY (a setting of plugin 'shop') must start with sk_, got a value not shown (the setting is secret)"
    )


# ------------------------------------------------------------------------------------------------ declaring


def test_two_plugins_declaring_one_variable_refuse_startup_naming_both(plugin_site):
    twin = plugin("twin", PluginSettings(Setting("CIRCLE_TIMEOUT", float, 1.0, "Mine too.")))
    with pytest.raises(PluginError) as refused:
        load_registry(disabled=set(), extra=[twin])
    # "circle" cannot have declared TWIN_…, and "twin" may not declare CIRCLE_…: the prefix check comes first.
    assert str(refused.value) == (
        "plugin 'twin' declares setting 'CIRCLE_TIMEOUT' without its own prefix: name it TWIN_… (or HOOKYARD_TWIN_…)"
    )
    # Two plugins whose names share a prefix ("shop" and "shop.extra" both give SHOP_…) are the clash left.
    first = plugin("shop", PluginSettings(Setting("SHOP_PAGE", int, 1, "Page.")))
    second = plugin("shop-", PluginSettings(Setting("SHOP_PAGE", int, 2, "Page.")))
    with pytest.raises(PluginError) as refused:
        load_registry(disabled=set(), extra=[first, second])
    message = str(refused.value)  # in the order pluggy calls them (the later registered first)
    assert message.startswith("duplicate setting 'SHOP_PAGE': declared by plugin ")
    assert "plugin 'shop' " in message + " " and "plugin 'shop-'" in message


@pytest.mark.parametrize(
    "setting, problem",
    [
        (Setting("TIMEOUT", float, 1.0, "Seconds."), "without its own prefix: name it SHOP_… (or HOOKYARD_SHOP_…)"),
        (Setting("SHOP_", float, 1.0, "Seconds."), "without its own prefix"),
        (Setting("shop_timeout", float, 1.0, "Seconds."), "a name is an environment variable in capitals"),
        (Setting("SHOP_WHEN", dict, {}, "When."), "of type <class 'dict'>: use str, int, float, bool or list"),
        (Setting("SHOP_PAGE", int, "50", "Page."), "with the default '50', which is not a int"),
        (Setting("SHOP_ON", int, True, "On."), "with the default True, which is not a int"),
        (Setting("SHOP_PAGE", int, 50, " "), "without a description"),
        (
            Setting("SHOP_WAIT", float, 0.0, "Seconds.", parse=lambda v: v if v > 0 else int("x")),
            "declares a default its parse refuses: SHOP_WAIT (a setting of plugin 'shop')",
        ),
    ],
)
def test_a_bad_declaration_is_refused_naming_the_plugin(plugin_site, setting, problem):
    with pytest.raises(PluginError) as refused:
        load_registry(disabled=set(), extra=[plugin("shop", PluginSettings(setting))])
    assert str(refused.value).startswith("plugin 'shop' ") and problem in str(refused.value), str(refused.value)


@pytest.mark.parametrize("name, variable", [("queue", "HOOKYARD_QUEUE_SHARDS"), ("database", "DATABASE_URL")])
def test_a_plugin_may_not_declare_a_variable_the_core_reads(plugin_site, name, variable):
    with pytest.raises(PluginError) as refused:
        load_registry(disabled=set(), extra=[plugin(name, PluginSettings(Setting(variable, str, "", "Mine.")))])
    assert str(refused.value) == (
        f"plugin {name!r} declares setting {variable!r}, a variable the core reads itself: choose another name"
    )


def test_the_core_variables_list_names_every_variable_the_core_reads():
    """What the check above relies on: a variable added to the core without joining CORE_VARIABLES fails here."""
    from hookyard.plugins import API_ATTRIBUTE
    from hookyard.settings import CORE_VARIABLES

    core = Path(__file__).resolve().parents[1] / "platform" / "hookyard"
    pattern = re.compile(r"\"((?:HOOKYARD_[A-Z0-9_]+)|DATABASE_URL|REDIS_URL|SECRET_KEY|PORT|WEB_CONCURRENCY)\"")
    read = {name for path in core.rglob("*.py") for name in pattern.findall(path.read_text())}
    read -= {API_ATTRIBUTE}  # a plugin module's attribute, not a variable
    assert read and read <= CORE_VARIABLES, sorted(read - CORE_VARIABLES)


def test_the_hookyard_prefix_form_is_the_plugins_own_too(plugin_site):
    settings = PluginSettings(Setting("HOOKYARD_SHOP_WINDOW", str, "1h", "A window."))
    registry = load_registry(disabled=set(), extra=[plugin("shop", settings)])
    assert registry.owner("setting", "HOOKYARD_SHOP_WINDOW") == "shop"


def test_a_declaration_may_not_repeat_a_name():
    with pytest.raises(ValueError, match="setting 'SHOP_PAGE' is declared twice"):
        PluginSettings(Setting("SHOP_PAGE", int, 1, "Page."), Setting("SHOP_PAGE", int, 2, "Page."))


# ------------------------------------------------------------------------------- the first-party plugins, listed


def test_the_first_party_plugins_declare_their_variables_with_the_defaults_they_had(plugin_site):
    registry = load_registry(disabled=set())
    listed = {p.name: {s["name"]: s["default"] for s in p.settings} for p in registry.plugins()}
    assert {name: listed[name] for name in FIRST_PARTY} == FIRST_PARTY
    documented = OPERATORS_DOC.read_text()
    for name in (n for settings in FIRST_PARTY.values() for n in settings):
        assert f"`{name}`" in documented, f"docs/operators.md does not list {name}"


def test_the_plugins_read_their_values_through_the_declarations(monkeypatch):
    from hookyard_circle import client as circle
    from hookyard_samcart import client as samcart
    from hookyard_samcart.inbound import redelivery_window
    from hookyard_webhook import settings as webhook

    monkeypatch.setenv("CIRCLE_RATE_LIMIT", "8/1")
    monkeypatch.setenv("CIRCLE_API_BASE_URL", "http://127.0.0.1:9/api/")
    monkeypatch.setenv("SAMCART_RATE_LIMIT_WAIT", "0")
    monkeypatch.setenv("HOOKYARD_SAMCART_REDELIVERY_WINDOW", "90m")
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "Crm.Internal, [::1]")
    assert circle.rate_limit() == (8, 1.0) and circle.base_url() == "http://127.0.0.1:9/api"
    assert samcart.rate_limit_wait() == 0 and redelivery_window().total_seconds() == 90 * 60
    assert webhook.allowed_hosts() == {"crm.internal", "::1"}


def test_hookyard_plugins_settings_lists_defaults_and_descriptions_never_values(plugin_site):
    text = cli(plugin_site, "plugins", "--settings", **SENTINELS)
    assert text.returncode == 0, text.stderr
    assert 'circle\n  CIRCLE_API_BASE_URL (str; default "https://app.circle.so/api/admin/v2")\n' in text.stdout
    assert "  CIRCLE_TIMEOUT (float; default 30.0)\n      Seconds to wait for each answer in the worker" in text.stdout
    assert "  WEBHOOK_ALLOWED_HOSTS (list[str]; default empty)\n" in text.stdout
    as_json = cli(plugin_site, "plugins", "--settings", "--json", **SENTINELS)
    assert as_json.returncode == 0, as_json.stderr
    listed = json.loads(as_json.stdout)
    assert {s["plugin"] for s in listed} == set(FIRST_PARTY)  # hello and recorder declare none
    assert {s["name"]: s["default"] for s in listed if s["plugin"] == "samcart"} == FIRST_PARTY["samcart"]
    assert set(listed[0]) == {"plugin", "name", "type", "default", "description", "secret"}
    everything = cli(plugin_site, "plugins", "--json", **SENTINELS)
    for out in (text, as_json, everything):
        for value in SENTINELS.values():
            assert value not in out.stdout + out.stderr, value


def test_the_plugins_endpoint_lists_the_settings_never_their_values(api, monkeypatch):
    for name, value in SENTINELS.items():
        monkeypatch.setenv(name, value)
    response = api.get("/api/v1/plugins")
    assert response.status_code == 200
    plugins = {p["name"]: p for p in response.json}
    assert plugins["webhook"]["settings"][1] == dict(
        name="WEBHOOK_TIMEOUT",
        type="float",
        default=10.0,
        description="Seconds to wait for the receiver's answer. Worker.",
        secret=False,
    )
    assert {s["name"]: s["default"] for s in plugins["circle"]["settings"]} == FIRST_PARTY["circle"]
    for value in SENTINELS.values():
        assert value not in response.text


# --------------------------------------------------------------------------------- a bad value, in a real process


def test_a_bad_value_stops_the_cli_with_one_line(plugin_site):
    stopped = cli(plugin_site, "plugins", "--settings", CIRCLE_TIMEOUT="soon")
    assert stopped.returncode == 1 and stopped.stdout == ""
    assert stopped.stderr == "CIRCLE_TIMEOUT (a setting of plugin 'circle') must be a number, got 'soon'\n"


def test_a_bad_value_stops_the_worker_at_start_with_one_line(settings, plugin_site, runtime):
    env = worker_env(settings, plugin_site, HOOKYARD_SAMCART_REDELIVERY_WINDOW="a while")
    stopped = subprocess.run([str(HOOKYARD), "worker"], env=env, capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 1
    assert stopped.stderr.splitlines() == [
        "HOOKYARD_SAMCART_REDELIVERY_WINDOW (a setting of plugin 'samcart') must be a duration such as 3600, 90m or "
        "1h, got 'a while'"
    ], stopped.stderr
