"""The whole plugin contract. Each hook receives a ``register`` callable and calls it once per thing.

Receiving ``register`` (instead of returning lists) lets the host record which plugin registered
which key, so a duplicate key fails fast naming both plugins.

pluggy calls the implementations, one plugin at a time, with keyword arguments: an implementation may leave
``register`` out (it is then called without it) but may not add arguments. Hook wrappers (``wrapper=True``,
``hookwrapper=True``) are refused at load. Each hook is called once per process, when its plugins load, and
its return value is ignored. docs/plugins/hooks.md shows each signature; a test keeps it equal to the one here.
"""

import pluggy

# The version of this contract (these hooks and the objects of hookyard.contract they register), apart from the
# package's: the major number changes only when something here changes incompatibly, the minor when something is
# added. A plugin declares the range it works with as ``HOOKYARD_API = ">=1.0,<2"`` in its entry point's module,
# and one outside it is refused at load (hookyard.plugins), naming the plugin.
HOOK_API_VERSION = "1.2"

hookspec = pluggy.HookspecMarker("hookyard")


@hookspec
def register_trigger_types(register):
    """Register trigger types: ``register(TriggerType(...))`` once per type."""


@hookspec
def register_apps(register):
    """Register apps (integration types) with their actions: ``register(App(...))``."""


@hookspec
def register_blueprints(register):
    """Register Flask blueprints (pages or extra endpoints) on the server: ``register(blueprint)``.

    The web UI (``hookyard-web``) is one; without any, the server is the REST API alone."""


@hookspec
def register_commands(register):
    """Register command-line commands under ``hookyard``: ``register(click_command_or_group)``, e.g. a group named
    after the plugin (``hookyard samcart import-products``). Names may not repeat a core command's."""


@hookspec
def register_settings(register):
    """Declare the plugin's settings (environment variables with its own prefix): ``register(PluginSettings(
    Setting(name, type, default, description), ...))``, then read them as ``SETTINGS[name]``. Values are checked
    when the plugins load; ``hookyard plugins --settings`` lists them with their defaults, never their values."""
