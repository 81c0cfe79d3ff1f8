"""Hookyard's browser UI, a plugin like any other: its pages reach the server through the
``register_blueprints`` hook and use the core's services, so nothing is validated twice."""

from hookyard import hookimpl

from . import account_views, dashboard, deliveries, integrations, logs, products, rules, settings  # noqa: F401 (routes)
from .blueprint import bp


@hookimpl
def register_blueprints(register):
    register(bp)
