"""`hookyard plugins install / uninstall`: pip into the server's own environment, and what that changed.

What is installed is read from distribution metadata in a fresh interpreter (no plugin is imported, and this
process's import caches would not see what pip just wrote); whether the new plugin set loads is then checked the way
the server would, by `hookyard plugins --json` in another fresh interpreter, so a plugin that installs but would stop
the server is said at once, naming it, rather than at the next restart.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

from .plugins import ENTRY_POINT_GROUP

# Run in a fresh interpreter: {entry point name: [distribution, version]} of every installed plugin.
_LIST = f"""
import importlib.metadata, json
found = {{}}
for dist in importlib.metadata.distributions():
    for ep in dist.entry_points:
        if ep.group == {ENTRY_POINT_GROUP!r}:
            found.setdefault(ep.name, [dist.metadata["name"], dist.version])
print(json.dumps(found))
"""

RESTART = (
    "Restart every web and worker process (with `make run`, stop it and start it again): each loads its plugins only "
    "when it starts, and a worker without a rule's app hands its runs back until it is restarted."
)


class InstallError(RuntimeError):
    """pip failed, or the name given is no installed plugin: one line for the operator."""


@dataclass(frozen=True)
class Installed:
    name: str  # the entry point's name: the plugin's name
    distribution: str
    version: str


def installed() -> dict[str, Installed]:
    out = subprocess.run([sys.executable, "-c", _LIST], capture_output=True, text=True, check=True).stdout
    return {name: Installed(name, dist, version) for name, (dist, version) in json.loads(out).items()}


def pip(*args: str) -> None:
    """pip of this interpreter's environment, the server's; its output goes to the operator's terminal."""
    result = subprocess.run([sys.executable, "-m", "pip", *args, "--disable-pip-version-check"])
    if result.returncode != 0:
        raise InstallError(f"pip {args[0]} failed (exit code {result.returncode}): see its output above")


def distribution_of(name: str, plugins: dict[str, Installed]) -> str:
    """The distribution to uninstall for NAME: a plugin's name (its entry point) or its distribution's name."""
    if name in plugins:
        return plugins[name].distribution
    wanted = _normalized(name)
    for plugin in plugins.values():
        if _normalized(plugin.distribution) == wanted:
            return plugin.distribution
    known = ", ".join(f"{p.name} ({p.distribution})" for p in sorted(plugins.values(), key=lambda p: p.name))
    raise InstallError(f"no installed plugin is named {name!r}: installed are {known or 'none'}")


def _normalized(distribution: str) -> str:
    # PEP 503: names differing only in case, '-', '_' and '.' are one distribution.
    return distribution.lower().replace("_", "-").replace(".", "-")


@dataclass(frozen=True)
class Change:
    kind: str  # added, upgraded or removed
    name: str
    line: str


def changes(before: dict[str, Installed], after: dict[str, Installed]) -> list[Change]:
    found = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old is None:
            found.append(Change("added", name, f"added plugin {name!r}: {new.distribution} {new.version}"))
        elif new is None:
            found.append(Change("removed", name, f"removed plugin {name!r}: {old.distribution} {old.version}"))
        elif old.version != new.version:
            line = f"upgraded plugin {name!r}: {new.distribution} {old.version} -> {new.version}"
            found.append(Change("upgraded", name, line))
    return found


def load_check() -> tuple[list[dict] | None, str]:
    """What `hookyard plugins --json` lists in a fresh interpreter, or None and the line the server would stop
    with."""
    result = subprocess.run(
        [sys.executable, "-m", "hookyard", "plugins", "--json"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        return None, lines[-1] if lines else f"exit code {result.returncode}"
    return json.loads(result.stdout), ""
