"""Plugins (owners only): what each loaded plugin provides, read from the same listing as ``GET /api/v1/plugins``
(``Registry.plugins()``): its version, triggers and apps by the names the other pages use, its commands, and the
settings it declares with their defaults, never their values. Installing or removing one is a server operation
(``hookyard plugins install``/``uninstall`` and a restart), so the page only says how."""

from __future__ import annotations

from flask import render_template

from hookyard.requestctx import runtime as rt

from .blueprint import bp, owner_only


def _default_text(setting: dict) -> str | None:
    """A setting's default as the operator would write it in the environment ("" for an empty one); None when it
    has none."""
    default = setting.get("default")
    if default is None:
        return None
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, list):
        return ",".join(str(item) for item in default)
    return str(default)


@bp.route("/plugins")
@owner_only
def plugins():
    registry = rt().registry
    listed = [
        {
            "name": info.name,
            "version": info.version,
            # By key in the listing; a key the registry does not hold (cannot happen once loaded) is shown as is.
            "triggers": [
                registry.trigger_types[key].label if key in registry.trigger_types else key
                for key in info.trigger_types
            ],
            "apps": [registry.apps[key].name if key in registry.apps else key for key in info.apps],
            "commands": list(info.commands),
            "hook_api": info.hook_api,
            "settings": [{**setting, "default_text": _default_text(setting)} for setting in info.settings],
        }
        for info in registry.plugins()
    ]
    return render_template("plugins.html", plugins=listed)
