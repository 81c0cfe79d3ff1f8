"""Plugins' own settings: declared as ``Setting``s in a ``PluginSettings`` that the plugin registers and reads its
values through, so a setting read is always a setting declared, listed and checked at start (docs/plugins/settings.md).
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, Iterator

from .contract import Setting
from .settings import CORE_VARIABLES

TYPE_NAMES = {str: "str", int: "int", float: "float", bool: "bool", list: "list[str]"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}
_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


class SettingError(ValueError):
    """A value that does not convert, or that ``parse`` refused; the message names the variable and the plugin."""


class PluginSettings:
    """A plugin's settings: ``SETTINGS = PluginSettings(Setting("SHOP_TIMEOUT", float, 10.0, "…"), …)``, registered
    with ``register_settings`` and read as ``SETTINGS["SHOP_TIMEOUT"]``.

    Only declared names can be read (any other is a KeyError). Each read looks the variable up in the environment and
    converts it once per distinct value, so a restart (or a test's ``monkeypatch.setenv``) with a new value is
    seen; the registry reads every setting when the plugins load, so a value that does not convert stops the server
    at start, not a run later."""

    def __init__(self, *settings: Setting):
        declared: dict[str, Setting] = {}
        for setting in settings:
            if not isinstance(setting, Setting):
                raise TypeError(f"PluginSettings takes Setting(...) arguments, not {setting!r}")
            if setting.name in declared:
                raise ValueError(f"setting {setting.name!r} is declared twice")
            declared[setting.name] = setting
        self._declared = declared
        self.plugin: str | None = None  # the registering plugin's name, set by the registry
        self._read: dict[str, tuple[str | None, Any]] = {}  # name -> (the raw value, what it converted to)

    def __iter__(self) -> Iterator[Setting]:
        return iter(self._declared.values())

    def __len__(self) -> int:
        return len(self._declared)

    def __contains__(self, name: object) -> bool:
        return name in self._declared

    def __repr__(self) -> str:
        return f"PluginSettings({', '.join(self._declared)})"

    def __getitem__(self, name: str) -> Any:
        setting = self._declared.get(name)
        if setting is None:
            raise KeyError(
                f"{name!r} is not a declared setting of {_plugin(self.plugin)}: declare it with "
                f"Setting({name!r}, …) in the plugin's PluginSettings"
            )
        raw = os.environ.get(name)
        last = self._read.get(name)
        if last is not None and last[0] == raw:
            return last[1]
        value = value_of(setting, raw, self.plugin)
        self._read[name] = (raw, value)
        return value

    def check(self) -> None:
        """Reads every setting; raises SettingError for the first value that does not convert."""
        for setting in self:
            self[setting.name]

    def describe(self) -> list[dict]:
        """The settings as listed (``hookyard plugins --settings``, ``GET /api/v1/plugins``): never their values."""
        return [
            dict(
                name=s.name,
                type=TYPE_NAMES.get(s.type, getattr(s.type, "__name__", str(s.type))),
                default=list(s.default) if isinstance(s.default, tuple) else s.default,
                description=s.description,
                secret=s.secret,
            )
            for s in self
        ]


# Parses every plugin needs for durations, so that each does not write its own (``parse=positive``). A parse gets
# the converted value and returns it (or what it becomes); a ValueError's text is the operator's one-line reason.
def positive(seconds: float) -> float:
    """A number of seconds that must be more than 0 (a timeout, an interval)."""
    if not seconds > 0:
        raise ValueError("must be more than 0 seconds")
    return seconds


def not_negative(seconds: float) -> float:
    """A number of seconds that may be 0 (a wait that can be turned off)."""
    if not seconds >= 0:
        raise ValueError("must be 0 or more seconds")
    return seconds


def _plugin(plugin: str | None) -> str:
    return f"plugin {plugin!r}" if plugin else "this plugin"


def value_of(setting: Setting, raw: str | None, plugin: str | None = None) -> Any:
    """What the plugin reads for ``raw`` (the variable's text, None when unset): converted to the setting's type,
    then through its parse."""
    try:
        if raw is None or not raw.strip():
            value = tuple(setting.default) if isinstance(setting.default, list) else setting.default
        else:
            value = _from_text(setting.type, raw)
        return value if value is None or setting.parse is None else setting.parse(value)
    except ValueError as exc:
        shown = "a value not shown (the setting is secret)" if setting.secret else repr(raw)
        given = shown if raw is not None and raw.strip() else f"its default {setting.default!r}"
        raise SettingError(f"{setting.name} (a setting of {_plugin(plugin)}) {exc}, got {given}") from None


def _from_text(kind: type, raw: str) -> Any:
    text = raw.strip()
    if kind is str:
        return raw
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError("must be 1 or 0 (or true/false, yes/no, on/off)")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError("must be a whole number") from None
    if kind is float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("must be a number") from None
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value
    if kind is list:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    raise ValueError(f"has a type Hookyard cannot read ({kind!r})")


def prefixes(plugin: str) -> tuple[str, str]:
    """The prefixes a plugin's settings may have: ``CIRCLE_`` and ``HOOKYARD_CIRCLE_`` for the plugin "circle"."""
    own = re.sub(r"[^A-Z0-9]+", "_", plugin.upper()).strip("_")
    return f"{own}_", f"HOOKYARD_{own}_"


def declaration_problem(setting: Setting, plugin: str) -> str | None:
    """Why the registry refuses ``plugin``'s declaration of ``setting`` (a plugin bug), or None."""
    name = setting.name
    if not isinstance(name, str) or not _NAME.match(name):
        return (
            f"plugin {plugin!r} declares setting {name!r}: a name is an environment variable in capitals, digits and _"
        )
    if name in CORE_VARIABLES:
        return f"plugin {plugin!r} declares setting {name!r}, a variable the core reads itself: choose another name"
    own = prefixes(plugin)
    if not any(name.startswith(prefix) and len(name) > len(prefix) for prefix in own):
        return f"plugin {plugin!r} declares setting {name!r} without its own prefix: name it {own[0]}… (or {own[1]}…)"
    if setting.type not in TYPE_NAMES:
        return (
            f"plugin {plugin!r} declares setting {name!r} of type {setting.type!r}: use str, int, float, bool "
            "or list (and parse= for anything more)"
        )
    if not isinstance(setting.description, str) or not setting.description.strip():
        return f"plugin {plugin!r} declares setting {name!r} without a description"
    if not _is_of(setting.default, setting.type):
        return (
            f"plugin {plugin!r} declares setting {name!r} with the default {setting.default!r}, which is not a "
            f"{TYPE_NAMES[setting.type]}"
        )
    try:
        value_of(setting, None, plugin)
    except SettingError as exc:
        return f"plugin {plugin!r} declares a default its parse refuses: {exc}"
    return None


def _is_of(default: Any, kind: type) -> bool:
    if default is None:
        return True
    if kind is list:
        return isinstance(default, (list, tuple)) and all(isinstance(item, str) for item in default)
    if kind is float:
        return isinstance(default, (int, float)) and not isinstance(default, bool) and math.isfinite(default)
    if kind is int:
        return isinstance(default, int) and not isinstance(default, bool)
    return isinstance(default, kind)
