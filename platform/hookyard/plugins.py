"""Builds the plugin manager and the registry of trigger types and apps the plugins provide."""
from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass, field

import click
import pluggy
from flask import Blueprint

from . import hookspecs
from .contract import App, TriggerType

ENTRY_POINT_GROUP = "hookyard.plugins"


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


class Registry:
    """Everything the loaded plugins registered, keyed for lookup, with the registering plugin kept."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm
        self.trigger_types: dict[str, TriggerType] = {}
        self.apps: dict[str, App] = {}
        self.blueprints: dict[str, Blueprint] = {}
        self.commands: dict[str, click.Command] = {}
        self._owner: dict[tuple[str, str], str] = {}
        self._collect("trigger type", self.trigger_types, pm.hook.register_trigger_types, TriggerType)
        self._collect("app", self.apps, pm.hook.register_apps, App)
        self._collect("blueprint", self.blueprints, pm.hook.register_blueprints, Blueprint, key=lambda b: b.name)
        self._collect("command", self.commands, pm.hook.register_commands, click.Command, key=lambda c: c.name)
        for app in self.apps.values():
            seen = set()
            for action in app.actions:
                if action.key in seen:
                    raise PluginError(f"app {app.key!r} registers action {action.key!r} twice")
                seen.add(action.key)

    def _collect(self, kind, target, hook, cls, key=lambda obj: obj.key):
        # Call each implementation on its own so every registration is attributed to its plugin.
        for impl in reversed(hook.get_hookimpls()):
            plugin_name = impl.plugin_name

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

            impl.function(register=register)

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
            infos.append(PluginInfo(
                name=name,
                version=dist.version if dist else None,
                hooks=hooks,
                trigger_types=self._owned("trigger type", name),
                apps=self._owned("app", name),
                commands=self._owned("command", name),
                blueprints=self._owned("blueprint", name),
            ))
        return infos


def disabled_from_env() -> set[str]:
    return {n.strip() for n in os.environ.get("HOOKYARD_DISABLED_PLUGINS", "").split(",") if n.strip()}


def build_plugin_manager(disabled: set[str] | None = None, extra: list | None = None) -> pluggy.PluginManager:
    """A fresh plugin manager: third-party and built-in plugins from entry points, plus ``extra`` objects.

    ``disabled`` names plugins (entry point names) that are blocked before loading.
    """
    pm = pluggy.PluginManager("hookyard")
    pm.add_hookspecs(hookspecs)
    for name in sorted(disabled_from_env() if disabled is None else disabled):
        pm.set_blocked(name)
    _check_unique_entry_point_names()
    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for obj in extra or []:
        pm.register(obj)
    pm.check_pending()
    return pm


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


def load_registry(disabled: set[str] | None = None, extra: list | None = None) -> Registry:
    return Registry(build_plugin_manager(disabled=disabled, extra=extra))
