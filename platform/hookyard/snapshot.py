"""What a log entry ran, as it was: the names and parameters of its rule, connection and product, copied
when the run is created and again at each attempt. Deleting or renaming any of them later never changes
what the history says, and a deleted object reads as it was, not as a raw key such as
``add_member_to_space_group`` / ``space_group_id: 1004``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .models import Integration, Product, Rule
from .schemadoc import describe

if TYPE_CHECKING:
    from .plugins import Registry


def action_label(registry: Registry, app_key: str | None, action_key: str) -> tuple[str | None, str]:
    """(the app's name, the action's label); the keys themselves when the plugin is not installed."""
    app = registry.apps.get(app_key or "")
    action = app.action(action_key) if app else None
    return (app.name if app else app_key), (action.label if action else action_key)


def describe_params(
    registry: Registry, integration: Integration | None, action_key: str, params: dict
) -> list[list[str]]:
    """[label, value] pairs, option ids replaced by the names from the connection's last refresh."""
    app = registry.apps.get(integration.app) if integration else None
    action = app.action(action_key) if app else None
    if action is None:
        return [[k, str(v)] for k, v in (params or {}).items()]
    options = integration.options or {}
    out = []
    for item in describe(action.params_schema):
        value = (params or {}).get(item["name"])
        if value in (None, [], ""):
            continue
        if item.get("options"):
            names = {str(o.get("id")): o.get("name") for o in options.get(item["options"], [])}
            values = value if isinstance(value, list) else [value]
            value = ", ".join(names.get(str(v)) or f"#{v}" for v in values)
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        out.append([item.get("label") or item["name"].replace("_", " ").capitalize(), str(value)])
    return out


def planned(
    registry: Registry, rule: Rule, app_key: str | None, integration_name: str | None, product_name: str | None
) -> dict:
    """At the event's arrival, from what rule matching already loaded (no option lists: kept off the emit path)."""
    app_name, label = action_label(registry, app_key, rule.action)
    return {
        "app_name": app_name,
        "action_label": label,
        "integration_name": integration_name,
        "product_name": product_name,
        "params": dict(rule.params or {}),
    }


def attempted(registry: Registry, rule: Rule, integration: Integration, product_name: str | None) -> dict:
    """At an attempt, from the rows it runs with: ``planned``'s keys plus the described settings."""
    return {
        **planned(registry, rule, integration.app, integration.name, product_name),
        "settings": describe_params(registry, integration, rule.action, rule.params or {}),
    }


def product_name(product: Product | None) -> str | None:
    if product is None:
        return None
    return product.name or product.external_id
