"""A new-style hook wrapper around register_apps. Hookyard calls each plugin's implementation on its own, so a
wrapper could never wrap another plugin's: the host must refuse it at load, naming the plugin and the hook."""

from hookyard import hookimpl


@hookimpl(wrapper=True)
def register_apps(register):
    return (yield)
