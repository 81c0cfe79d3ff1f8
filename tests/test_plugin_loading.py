"""Loading plugins the way a deployment meets them: versioned against the hook API, refused in one line when one
cannot be imported (by the CLI and by the web process), a worker without a rule's app handing its runs back, and
processes with different plugin sets noticed.

The broken plugins are real installed distributions: a ``.dist-info`` folder with ``METADATA`` and
``entry_points.txt``, which is what pip writes and all that importlib.metadata reads, in a directory only the
subprocesses of these tests have on their path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest

from hookyard import HOOK_API_VERSION, hookimpl
from hookyard import runtime as runtime_module
from hookyard.plugin_sets import Publication, describe
from hookyard.plugins import PluginError, load_registry

from .conftest import purchase

BIN = Path(sys.executable).parent


def plugin(name: str, **attributes) -> ModuleType:
    module = ModuleType(name)
    module.register_trigger_types = hookimpl(lambda register: None)
    for key, value in attributes.items():
        setattr(module, key, value)
    return module


def test_this_core_declares_its_hook_api_and_every_first_party_plugin_a_range_it_is_in(plugin_site):
    assert HOOK_API_VERSION == "1.2"
    declared = {p.name: p.hook_api for p in load_registry(disabled=set()).plugins()}
    # Circle's and the Webhook app's actions declare how they dry-run, SamCart's triggers carry an example payload:
    # added in hook API 1.2, so they need it.
    assert {name: declared[name] for name in ("circle", "samcart", "webhook", "web", "hello")} == {
        "circle": ">=1.2,<2",
        "samcart": ">=1.2,<2",
        "webhook": ">=1.2,<2",
        "web": ">=1.0,<2",
        "hello": ">=1.0,<2",
    }
    assert declared["recorder"] is None  # declaring is optional: such a plugin loads as before


@pytest.mark.parametrize("declared", [">=1.0,<2", "~=1.1", "==1.*", ">=0.9"])
def test_a_plugin_whose_range_holds_this_hook_api_loads(declared):
    registry = load_registry(disabled=set(), extra=[plugin("fits", HOOKYARD_API=declared)])
    assert next(p for p in registry.plugins() if p.name == "fits").hook_api == declared


@pytest.mark.parametrize("declared", [">=2.0,<3", "<1.2", "==1.0"])
def test_a_plugin_made_for_another_hook_api_is_refused_naming_it(declared):
    with pytest.raises(PluginError) as refused:
        load_registry(disabled=set(), extra=[plugin("later", HOOKYARD_API=declared)])
    assert str(refused.value).startswith(
        f"plugin 'later' works with hook API {declared}, but this Hookyard (0.1.0) provides hook API 1.2: "
    )


@pytest.mark.parametrize("declared", ["version one", 1.0, ">=1.0;<2"])
def test_a_range_that_is_not_one_is_refused(declared):
    with pytest.raises(PluginError, match=r"plugin 'odd' declares HOOKYARD_API = .*, which is not a version range"):
        load_registry(disabled=set(), extra=[plugin("odd", HOOKYARD_API=declared)])


def _installed(site: Path, name: str, module_source: str, version: str = "0.3.0") -> None:
    """Installs the distribution hookyard-NAME (entry point NAME = hookyard_NAME) into ``site``."""
    package = site / f"hookyard_{name}"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(module_source)
    info = site / f"hookyard_{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: hookyard-{name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[hookyard.plugins]\n{name} = hookyard_{name}\n")


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("broken-site")
    _installed(site, "broken", "import missing_dependency_of_broken\n")
    _installed(site, "future", 'HOOKYARD_API = ">=2.0,<3"\n')
    return site


def _run(site: Path, *args, disabled: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKYARD_") and k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), HOOKYARD_DISABLED_PLUGINS=disabled)
    return subprocess.run([str(a) for a in args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_a_plugin_that_fails_to_import_stops_the_cli_with_one_line_naming_it(broken_site):
    result = _run(broken_site, BIN / "hookyard", "plugins", disabled="future")
    assert result.returncode == 1
    assert result.stderr == (
        "Error: plugin 'broken' (hookyard-broken 0.3.0) failed to import: ModuleNotFoundError: No module named "
        "'missing_dependency_of_broken'. Fix or uninstall it, or set HOOKYARD_DISABLED_PLUGINS=broken,future to "
        "start without it\n"
    )
    assert "Traceback" not in result.stdout + result.stderr


def test_a_plugin_for_another_hook_api_stops_the_cli_with_one_line_naming_it(broken_site):
    result = _run(broken_site, BIN / "hookyard", "plugins", "--json", disabled="broken")
    assert result.returncode == 1
    assert result.stderr == (
        "Error: plugin 'future' (hookyard-future 0.3.0) works with hook API >=2.0,<3, but this Hookyard (0.1.0) "
        "provides hook API 1.2: install a release of hookyard-future made for hook API 1.2, or set "
        "HOOKYARD_DISABLED_PLUGINS=broken,future to start without it\n"
    )


def test_the_disabled_plugins_are_not_even_imported(broken_site):
    result = _run(broken_site, BIN / "hookyard", "plugins", "--json", disabled="broken,future")
    assert result.returncode == 0, result.stderr
    assert {"broken", "future"}.isdisjoint(p["name"] for p in json.loads(result.stdout))


def test_the_web_process_stops_with_the_same_line_and_gunicorns_app_load_error(broken_site, tmp_path):
    """gunicorn's arbiter stops on exit code 4 ("App failed to load") instead of booting workers into the error."""
    result = _run(
        broken_site, sys.executable, "-c", "from hookyard.app import create_app; create_app()", disabled="future"
    )
    assert result.returncode == 4, result.stderr
    assert result.stderr.startswith("hookyard: plugin 'broken' (hookyard-broken 0.3.0) failed to import: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_worker_without_the_rules_app_hands_the_run_back_for_a_retry(setup, runtime, in_process):
    """A worker process not restarted after a plugin was installed must not fail the runs of its app for good."""
    from hookyard.jobs import run_rule

    setup.rule(setup.integration())
    [run] = setup.api.get(f"/api/v1/events/{setup.emit(purchase())['id']}").json["runs"]

    runtime_module.install(replace(runtime, registry=load_registry(disabled={"recorder"})))
    assert run_rule(run["id"]) == "queued"
    entry = setup.api.get(f"/api/v1/logs/{run['id']}").json
    assert entry["status"] == "queued"
    assert entry["reason"].startswith(
        f"attempt 1 failed: app 'recorder' is not installed in this worker process (pid {os.getpid()}): its plugin "
        "is missing here or disabled (HOOKYARD_DISABLED_PLUGINS); restart every web and worker process after "
        "installing or removing a plugin; retrying at "
    )

    runtime_module.install(runtime)  # the worker, restarted with the plugin, takes the retry
    assert run_rule(run["id"]) == "succeeded"
    assert len(setup.recorder.calls_for("ada@example.com")) == 1


def test_processes_with_different_plugin_sets_are_noticed_and_gone_ones_forgotten(runtime, caplog):
    web = Publication(runtime, "web")
    assert web.announce() == []
    same = Publication(replace(runtime, registry=runtime.registry), "worker")
    same.process, same.key = "worker elsewhere (pid 1)", same.key + "-1"
    assert same.announce() == []

    stale = Publication(replace(runtime, registry=load_registry(disabled={"hello"})), "worker")
    stale.process, stale.key = "worker elsewhere (pid 2)", stale.key + "-2"
    differences = sorted(stale.announce())
    assert [d.split(" on ")[0] for d in differences] == ["plugin sets differ: web", "plugin sets differ: worker"]
    assert all(d.endswith("has plugin 'hello' 0.1.0, which this process lacks") for d in differences)
    assert "restart every web and worker process after installing or removing a plugin" in caplog.text

    stale.withdraw()
    assert web.announce() == []


def test_a_difference_names_each_plugin_and_both_versions():
    assert describe({"a": "1", "b": "2"}, {"a": "1", "b": "3", "c": "1"}) == (
        "has plugin 'b' 3 where this process has 2, has plugin 'c' 1, which this process lacks"
    )
    assert describe({"a": "1"}, {}) == "lacks plugin 'a' (1 here)"
    assert describe({"a": "1"}, {"a": "1"}) == ""
