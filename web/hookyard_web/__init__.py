"""Hookyard's browser UI, a plugin like any other: its pages reach the server through the
``register_blueprints`` hook and use the core's services, so nothing is validated twice."""

from hookyard import hookimpl

from . import (  # noqa: F401 (routes)
    account_views,
    backfill,
    dashboard,
    deliveries,
    integrations,
    logs,
    plugins,
    products,
    reconcile,
    rules,
    settings,
)
from .blueprint import bp

# The hook API this plugin is written for: one outside the range is refused at load (docs/plugins/loading.md).
HOOKYARD_API = ">=1.0,<2"


@hookimpl
def register_blueprints(register):
    register(bp)
