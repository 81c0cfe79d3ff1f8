"""Builds the plugin manager and the registry of trigger types and apps the plugins provide."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import time
from dataclasses import dataclass, field

import click
import pluggy
from flask import Blueprint
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from . import __version__, contract_checks, hookspecs
from .contract import App, Setting, TriggerType
from .plugin_settings import PluginSettings, SettingError, declaration_problem

ENTRY_POINT_GROUP = "hookyard.plugins"
TRACE_ENV = "HOOKYARD_TRACE_PLUGINS"
# The attribute of a plugin's module that declares the hook API range it works with (hookspecs.HOOK_API_VERSION).
API_ATTRIBUTE = "HOOKYARD_API"

log = logging.getLogger(__name__)


class PluginError(RuntimeError):
    """A plugin set that the server refuses to start with (duplicate keys, bad registrations)."""


@dataclass
class PluginInfo:
    name: str
    version: str | None
    hooks: list[str]
    trigger_types: list[str] = field(default_factory=list)
    apps: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    blueprints: list[str] = field(default_factory=list)
    settings: list[dict] = field(default_factory=list)  # name, type, default, description, secret: never the value
    hook_api: str | None = None  # the HOOKYARD_API range it declares, None when it declares none


class Registry:
    """Everything the loaded plugins registered, keyed for lookup, with the registering plugin kept."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm
        self.trigger_types: dict[str, TriggerType] = {}
        self.apps: dict[str, App] = {}
        self.blueprints: dict[str, Blueprint] = {}
        self.commands: dict[str, click.Command] = {}
        self.settings: dict[str, Setting] = {}
        self._setting_groups: dict[str, list[PluginSettings]] = {}  # plugin name -> what it registered
        self._owner: dict[tuple[str, str], str] = {}
        self._collect("trigger type", self.trigger_types, "register_trigger_types", TriggerType)
        self._collect("app", self.apps, "register_apps", App)
        self._collect("blueprint", self.blueprints, "register_blueprints", Blueprint, key=lambda b: b.name)
        self._collect("command", self.commands, "register_commands", click.Command, key=lambda c: c.name)
        self._collect_settings()
        for app in self.apps.values():
            seen = set()
            for action in app.actions:
                if action.key in seen:
                    raise PluginError(f"app {app.key!r} registers action {action.key!r} twice")
                seen.add(action.key)
        contract_checks.check(self, PluginError)  # typed fields and payload promises, naming the plugin
        self._check_setting_values()

    def _collect_settings(self) -> None:
        # Like _collect, but one registration (a PluginSettings) declares several names, each owned by the plugin.
        hook = self.pm.hook.register_settings
        for plugin, plugin_name in _implementers(hook):

            def register(group, _plugin=plugin_name):
                if not isinstance(group, PluginSettings):
                    raise PluginError(
                        f"plugin {_plugin!r} registered {group!r}; expected PluginSettings(Setting(...), ...)"
                    )
                for setting in group:
                    problem = declaration_problem(setting, _plugin)
                    if problem:
                        raise PluginError(problem)
                    owner = self._owner.get(("setting", setting.name))
                    if owner is not None:
                        raise PluginError(
                            f"duplicate setting {setting.name!r}: declared by plugin {owner!r} and by "
                            f"plugin {_plugin!r}"
                        )
                    self._owner[("setting", setting.name)] = _plugin
                    self.settings[setting.name] = setting
                    log.debug("plugin %r registered setting %r", _plugin, setting.name)
                group.plugin = _plugin
                self._setting_groups.setdefault(_plugin, []).append(group)

            _caller_for(self.pm, hook, plugin)(register=register)

    def _check_setting_values(self) -> None:
        # An operator's mistake, not a plugin's: stop with one line naming the variable and the plugin, the way the
        # core's own malformed variables do (hookyard.settings), rather than with a traceback.
        for groups in self._setting_groups.values():
            for group in groups:
                try:
                    group.check()
                except SettingError as exc:
                    raise SystemExit(str(exc)) from None

    def _collect(self, kind, target, hook_name, cls, key=lambda obj: obj.key):
        # pluggy calls the implementations, so it passes each only the arguments it takes (argnames) and its
        # hook-call monitoring (HOOKYARD_TRACE_PLUGINS) sees every call; one plugin at a time, through a subset
        # caller without the others, so every registration is attributed to its plugin.
        hook = getattr(self.pm.hook, hook_name)
        for plugin, plugin_name in _implementers(hook):

            def register(obj, _plugin=plugin_name):
                if not isinstance(obj, cls):
                    raise PluginError(f"plugin {_plugin!r} registered {obj!r}; expected {cls.__name__}(...)")
                owner = self._owner.get((kind, key(obj)))
                if owner is not None:
                    raise PluginError(
                        f"duplicate {kind} key {key(obj)!r}: registered by plugin {owner!r} and by plugin {_plugin!r}"
                    )
                self._owner[(kind, key(obj))] = _plugin
                target[key(obj)] = obj
                log.debug("plugin %r registered %s %r", _plugin, kind, key(obj))

            _caller_for(self.pm, hook, plugin)(register=register)

    def owner(self, kind: str, key: str) -> str | None:
        return self._owner.get((kind, key))

    def _owned(self, kind: str, plugin: str) -> list[str]:
        return sorted(k for (kd, k), owner in self._owner.items() if kd == kind and owner == plugin)

    def plugins(self) -> list[PluginInfo]:
        infos = []
        dists = {id(p): d for p, d in self.pm.list_plugin_distinfo()}
        for name, plugin in sorted(self.pm.list_name_plugin(), key=lambda np: np[0]):
            if plugin is None:  # blocked by HOOKYARD_DISABLED_PLUGINS
                continue
            dist = dists.get(id(plugin))
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            infos.append(
                PluginInfo(
                    name=name,
                    version=dist.version if dist else None,
                    hooks=hooks,
                    trigger_types=self._owned("trigger type", name),
                    apps=self._owned("app", name),
                    commands=self._owned("command", name),
                    blueprints=self._owned("blueprint", name),
                    settings=[doc for group in self._setting_groups.get(name, []) for doc in group.describe()],
                    hook_api=getattr(plugin, API_ATTRIBUTE, None),
                )
            )
        return infos


def _implementers(hook: pluggy.HookCaller) -> list[tuple[object, str]]:
    """The plugins implementing ``hook``, each once, with its name, in the order pluggy calls them."""
    found: list[tuple[object, str]] = []
    for impl in reversed(hook.get_hookimpls()):
        if not any(impl.plugin is plugin for plugin, _ in found):
            found.append((impl.plugin, impl.plugin_name))
    return found


def _caller_for(pm: pluggy.PluginManager, hook: pluggy.HookCaller, plugin: object) -> pluggy.HookCaller:
    """A caller of ``hook`` that runs ``plugin``'s implementations only."""
    others = [impl.plugin for impl in hook.get_hookimpls() if impl.plugin is not plugin]
    caller = pm.subset_hook_caller(hook.name, remove_plugins=others)
    # pluggy before 1.7 picked the plugins to leave out by an attribute named like the hook, so it kept calling an
    # implementation declared under another name (@hookimpl(specname=...)): refuse rather than misattribute.
    stray = sorted({impl.plugin_name for impl in caller.get_hookimpls() if impl.plugin is not plugin})
    if stray:
        raise PluginError(
            f"plugin {stray[0]!r} implements {hook.name} under another name (specname=), which pluggy "
            f"{importlib.metadata.version('pluggy')} cannot call one plugin at a time: upgrade pluggy to 1.7 or later"
        )
    return caller


def trace_from_env() -> bool:
    value = os.environ.get(TRACE_ENV, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise PluginError(f"{TRACE_ENV} must be 1 (log every hook call) or 0, not {value!r}")


def _trace_hook_calls(pm: pluggy.PluginManager) -> None:
    """Log every hook call (pluggy's hook-call monitoring) to the ``hookyard.plugins`` logger, at DEBUG: the plugin,
    the implementation with the arguments it takes, and how the call ended."""
    if not logging.getLogger().handlers:
        # Plugins load before anything configures logging in `hookyard plugins` and in the web app (create_app
        # configures it after building the runtime): configure it as they would, so the trace reaches stderr.
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The operator asked for the trace: show it whatever level the root logger is at.
    log.setLevel(logging.DEBUG)
    started: list[float] = []

    def before(hook_name, impls, kwargs):
        started.append(time.perf_counter())
        for impl in impls:
            function = impl.function
            log.debug(
                "hook %s: calling plugin %r: %s.%s(%s)",
                hook_name,
                impl.plugin_name,
                getattr(function, "__module__", "?"),
                getattr(function, "__qualname__", repr(function)),
                ", ".join(impl.argnames),
            )

    def after(outcome, hook_name, impls, kwargs):
        elapsed_ms = (time.perf_counter() - started.pop()) * 1000
        plugins = ", ".join(repr(impl.plugin_name) for impl in impls)
        if outcome.exception is None:
            log.debug("hook %s: plugin %s returned in %.1f ms", hook_name, plugins, elapsed_ms)
        else:
            log.debug(
                "hook %s: plugin %s raised %s after %.1f ms: %s",
                hook_name,
                plugins,
                type(outcome.exception).__name__,
                elapsed_ms,
                outcome.exception,
            )

    pm.add_hookcall_monitoring(before, after)


def disabled_from_env() -> set[str]:
    return {n.strip() for n in os.environ.get("HOOKYARD_DISABLED_PLUGINS", "").split(",") if n.strip()}


def build_plugin_manager(
    disabled: set[str] | None = None, extra: list | None = None, trace: bool | None = None
) -> pluggy.PluginManager:
    """A fresh plugin manager: third-party and built-in plugins from entry points, plus ``extra`` objects.

    ``disabled`` names plugins (entry point names) that are blocked before loading. ``trace`` logs every hook
    call (default: ``HOOKYARD_TRACE_PLUGINS``).
    """
    pm = pluggy.PluginManager("hookyard")
    pm.add_hookspecs(hookspecs)
    if trace_from_env() if trace is None else trace:
        _trace_hook_calls(pm)
    disabled = disabled_from_env() if disabled is None else set(disabled)
    for name in sorted(disabled):
        pm.set_blocked(name)
    _load_entry_points(pm, disabled)
    for obj in extra or []:
        try:
            hash(obj)
        except TypeError:
            # pluggy keeps plugins in sets (subset_hook_caller): say so here, not as a TypeError mid-load.
            raise PluginError(
                f"plugin {getattr(obj, '__name__', obj)!r} is a {type(obj).__name__}, which is not "
                "hashable: register a module, a class or an instance"
            ) from None
        _check_hook_api(obj, f"plugin {getattr(obj, '__name__', obj)!r}", None, disabled)
        pm.register(obj)
    pm.check_pending()
    _refuse_wrappers(pm)
    return pm


def _load_entry_points(pm: pluggy.PluginManager, disabled: set[str]) -> None:
    """Each installed plugin's module, imported and checked against the hook API before pluggy registers it. A
    plugin that cannot be imported, or that declares a range the core is not in, stops the load with one line
    naming it and how to start without it: the operator's fix, not the core's traceback."""
    _check_unique_entry_point_names()
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or pm.is_blocked(ep.name) or pm.get_plugin(ep.name) is not None:
                continue
            label = f"plugin {ep.name!r} ({dist.metadata['name']} {dist.version})"
            try:
                module = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"{label} failed to import: {type(exc).__name__}: {exc}. Fix or uninstall it, or "
                    f"{_without(ep.name, disabled)}"
                ) from exc
            _check_hook_api(module, label, ep.name, disabled, dist.metadata["name"])
            # pluggy registers it (the module is imported already) and keeps its distribution for the version.
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=ep.name)


def _without(name: str | None, disabled: set[str]) -> str:
    if name is None:
        return "leave it out"
    return f"set HOOKYARD_DISABLED_PLUGINS={','.join(sorted(disabled | {name}))} to start without it"


def _check_hook_api(plugin: object, label: str, name: str | None, disabled: set[str], dist: str | None = None) -> None:
    declared = getattr(plugin, API_ATTRIBUTE, None)
    if declared is None:  # nothing declared: assumed to work with this hook API, as before versioning existed
        return
    try:
        if not isinstance(declared, str):
            raise InvalidSpecifier(repr(declared))
        compatible = SpecifierSet(declared).contains(hookspecs.HOOK_API_VERSION, prereleases=True)
    except InvalidSpecifier:
        raise PluginError(
            f"{label} declares {API_ATTRIBUTE} = {declared!r}, which is not a version range such as '>=1.0,<2': "
            f"fix it, or {_without(name, disabled)}"
        ) from None
    if not compatible:
        release = f"a release of {dist}" if dist else "a release of it"
        raise PluginError(
            f"{label} works with hook API {declared}, but this Hookyard ({__version__}) provides hook API "
            f"{hookspecs.HOOK_API_VERSION}: install {release} made for hook API {hookspecs.HOOK_API_VERSION}, or "
            f"{_without(name, disabled)}"
        )


def _refuse_wrappers(pm: pluggy.PluginManager) -> None:
    # Each plugin's implementation is called on its own (Registry._collect), so a wrapper would only ever wrap its
    # own plugin's call, never the others': refuse it at load rather than let it silently not do what it says.
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda np: np[0]):
        if plugin is None:  # blocked
            continue
        for caller in pm.get_hookcallers(plugin) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper):
                    option = "wrapper=True" if impl.wrapper else "hookwrapper=True"
                    raise PluginError(
                        f"hook wrapper refused: plugin {name!r} implements {caller.name} with {option}; Hookyard "
                        "calls each plugin's implementation on its own, so a wrapper cannot wrap the others': "
                        "use a plain @hookimpl"
                    )


def _check_unique_entry_point_names() -> None:
    # pluggy's loader silently skips a second entry point with a name already seen; refuse instead.
    seen: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP:
                continue
            dist_name = dist.metadata["name"]
            if seen.setdefault(ep.name, dist_name) != dist_name:
                raise PluginError(
                    f"duplicate plugin name {ep.name!r}: distributions {seen[ep.name]!r} and {dist_name!r}"
                )


def load_registry(disabled: set[str] | None = None, extra: list | None = None, trace: bool | None = None) -> Registry:
    return Registry(build_plugin_manager(disabled=disabled, extra=extra, trace=trace))
