"""How the host calls hook implementations: pluggy calls them, one plugin at a time, so an implementation may
leave its argument out; hook wrappers are refused at load, naming the plugin and the hook; and
HOOKYARD_TRACE_PLUGINS=1 logs every hook call.

The installed-plugin tests use tests/plugins/hookyard_calling (plugins ``bare`` and ``wrapping``), pip-installed
into a directory of its own that only their subprocesses have on their path: with ``wrapping`` installed, every
other test's plugin load would be refused."""

import json
import logging
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pluggy
import pytest
from marshmallow import Schema

from hookyard import TriggerType, hookimpl
from hookyard.plugins import PluginError, build_plugin_manager, load_registry

from .plugin_sites import install_into

ROOT = Path(__file__).resolve().parents[1]
HOOKYARD = Path(sys.executable).parent / "hookyard"
WRAPPER_REFUSED = (
    "hook wrapper refused: plugin 'wrapping' implements register_apps with wrapper=True; Hookyard "
    "calls each plugin's implementation on its own, so a wrapper cannot wrap the others': "
    "use a plain @hookimpl"
)


@pytest.fixture(scope="module")
def calling_site(tmp_path_factory) -> Path:
    return install_into(tmp_path_factory.mktemp("calling-site"), ROOT / "tests" / "plugins" / "hookyard_calling")


def run(site, *args, disabled="wrapping", trace=None):
    """``args`` run in a fresh process that has the calling plugins installed, ``disabled`` blocked."""
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOOKYARD_DISABLED_PLUGINS": disabled}
    if trace is not None:
        env["HOOKYARD_TRACE_PLUGINS"] = trace
    return subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True, timeout=120, check=False)


def plugin(name, **hooks):
    module = ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(module, hook_name, fn)
    return module


def test_an_installed_plugin_whose_implementations_take_no_argument_loads(calling_site):
    listed = run(calling_site, HOOKYARD, "plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    bare = next(p for p in json.loads(listed.stdout) if p["name"] == "bare")
    assert bare["hooks"] == ["register_apps", "register_commands", "register_trigger_types"]
    assert bare["trigger_types"] == ["bare.noticed"]
    # Each implementation was called, once, in the order the registry collects.
    called = run(
        calling_site,
        sys.executable,
        "-c",
        "from hookyard.plugins import load_registry; from hookyard_calling import bare; "
        "load_registry(); print(bare.CALLS)",
    )
    assert called.returncode == 0, called.stderr
    assert called.stdout.strip() == "['register_trigger_types', 'register_apps', 'register_commands']"


def test_every_hook_may_be_implemented_without_its_argument():
    calls = []
    hooks = ["register_trigger_types", "register_apps", "register_blueprints", "register_commands", "register_settings"]
    quiet = plugin("quiet", **{name: hookimpl(lambda name=name: calls.append(name)) for name in hooks})
    registry = load_registry(disabled=set(), extra=[quiet])
    assert calls == hooks  # each called once (a parameter with a default is not one pluggy passes)
    assert next(p for p in registry.plugins() if p.name == "quiet").hooks == sorted(hooks)


def test_an_implementation_may_not_add_an_argument():
    greedy = plugin("greedy", register_apps=hookimpl(lambda register, settings: None))
    with pytest.raises(pluggy.PluginValidationError, match="settings"):
        build_plugin_manager(disabled=set(), extra=[greedy])


def test_an_installed_hook_wrapper_is_refused_at_load_naming_the_plugin_and_the_hook(calling_site):
    refused = run(calling_site, HOOKYARD, "plugins", disabled="")
    assert refused.returncode == 1
    assert refused.stderr == f"Error: {WRAPPER_REFUSED}\n"  # one line, not a traceback


def test_an_old_style_hookwrapper_is_refused_too():
    def register_commands(register):
        yield

    old = plugin("old", register_commands=hookimpl(hookwrapper=True)(register_commands))
    with pytest.raises(PluginError) as refused:
        build_plugin_manager(disabled=set(), extra=[old])
    assert str(refused.value).startswith(
        "hook wrapper refused: plugin 'old' implements register_commands with hookwrapper=True;"
    )


def test_tracing_logs_every_hook_call_to_stderr(calling_site):
    traced = run(calling_site, HOOKYARD, "plugins", "--json", trace="1")
    assert traced.returncode == 0, traced.stderr
    plugins = json.loads(traced.stdout)  # the trace stays off stdout
    log = traced.stderr
    for p in plugins:
        for hook in p["hooks"]:
            assert f"DEBUG hookyard.plugins: hook {hook}: calling plugin {p['name']!r}: " in log, (p["name"], hook)
            assert f"DEBUG hookyard.plugins: hook {hook}: plugin {p['name']!r} returned in " in log, (p["name"], hook)
    # The implementation is named with the arguments it takes, and what it registered is said.
    assert "hook register_apps: calling plugin 'bare': hookyard_calling.bare.register_apps()\n" in log
    assert (
        "hook register_trigger_types: calling plugin 'bare': hookyard_calling.bare.register_trigger_types(register)\n"
    ) in log
    assert "plugin 'bare' registered trigger type 'bare.noticed'" in log
    assert "plugin 'samcart' registered app 'samcart'" in log

    untraced = run(calling_site, HOOKYARD, "plugins", "--json", trace="0")
    assert untraced.returncode == 0 and "calling plugin" not in untraced.stderr, untraced.stderr


def test_tracing_logs_a_hook_call_that_raised(caplog):
    caplog.set_level(logging.DEBUG, logger="hookyard.plugins")  # and restores it afterwards

    def register_trigger_types(register):
        register(TriggerType(key="flaky.one", label="One", category="Test", description="", payload_schema=Schema))
        raise RuntimeError("upstream said no")

    flaky = plugin("flaky", register_trigger_types=hookimpl(register_trigger_types))
    with pytest.raises(RuntimeError, match="upstream said no"):
        load_registry(disabled=set(), extra=[flaky], trace=True)
    messages = [r.getMessage() for r in caplog.records if r.name == "hookyard.plugins"]
    assert any(m.startswith("hook register_trigger_types: calling plugin 'flaky': ") for m in messages), messages
    assert "plugin 'flaky' registered trigger type 'flaky.one'" in messages
    assert any(
        m.startswith("hook register_trigger_types: plugin 'flaky' raised RuntimeError after ")
        and m.endswith(" ms: upstream said no")
        for m in messages
    ), messages


def test_a_malformed_trace_setting_is_refused(monkeypatch):
    monkeypatch.setenv("HOOKYARD_TRACE_PLUGINS", "loud")
    with pytest.raises(PluginError, match=r"HOOKYARD_TRACE_PLUGINS must be 1 \(log every hook call\) or 0, not 'loud'"):
        build_plugin_manager(disabled=set())


def test_an_unhashable_plugin_object_is_refused_with_a_message():
    # pluggy keeps plugins in sets: a SimpleNamespace would otherwise fail mid-load with a bare TypeError.
    loose = SimpleNamespace(__name__="loose", register_apps=hookimpl(lambda register: None))
    with pytest.raises(PluginError, match="plugin 'loose' is a SimpleNamespace, which is not hashable"):
        load_registry(disabled=set(), extra=[loose])
