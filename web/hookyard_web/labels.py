"""What pages show instead of keys and ids: trigger and action labels, option names, product names."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from hookyard.api.base import marketplace_id, rt
from hookyard.api.base import session as db
from hookyard.models import Integration, Product, Rule
from hookyard.schemadoc import describe


def marketplace_integrations() -> list[Integration]:
    """The signed-in marketplace's connections by name: the lists, wizards and filters that offer them."""
    return list(db().scalars(select(Integration).where(Integration.marketplace_id == marketplace_id())
                             .order_by(Integration.name)))


def trigger_label(key: str) -> str:
    trigger = rt().registry.trigger_types.get(key)
    return trigger.label if trigger else key


def action_label(app_key: str | None, action_key: str) -> str:
    app = rt().registry.apps.get(app_key or "")
    action = app.action(action_key) if app else None
    return f"{app.name}: {action.label}" if action else action_key


def describe_params(integration: Integration | None, action_key: str, params: dict) -> list[tuple[str, str]]:
    """(label, value) pairs, ids replaced by the names from the integration's last refresh."""
    app = rt().registry.apps.get(integration.app) if integration else None
    action = app.action(action_key) if app else None
    if action is None:
        return [(k, str(v)) for k, v in (params or {}).items()]
    options = integration.options or {}
    out = []
    for item in describe(action.params_schema):
        value = (params or {}).get(item["name"])
        if value in (None, [], ""):
            continue
        if item.get("options"):
            names = {str(o.get("id")): o.get("name") for o in options.get(item["options"], [])}
            values = value if isinstance(value, list) else [value]
            value = ", ".join(names.get(str(v), f"#{v}") for v in values)
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        out.append((item.get("label") or item["name"].replace("_", " ").capitalize(), str(value)))
    return out


@dataclass
class RuleRow:
    rule: Rule
    trigger: str
    action: str
    integration: Integration | None
    product: Product | None
    params: list[tuple[str, str]]


def rule_rows(rules: list[Rule]) -> list[RuleRow]:
    integration_ids = {r.integration_id for r in rules if r.integration_id}
    product_ids = {r.product_id for r in rules if r.product_id}
    integrations = {i.id: i for i in db().scalars(select(Integration).where(Integration.id.in_(integration_ids)))}
    products = {p.id: p for p in db().scalars(select(Product).where(Product.id.in_(product_ids)))}
    rows = []
    for rule in rules:
        integration = integrations.get(rule.integration_id)
        rows.append(RuleRow(rule=rule, trigger=trigger_label(rule.trigger),
                            action=action_label(integration.app if integration else None, rule.action),
                            integration=integration, product=products.get(rule.product_id),
                            params=describe_params(integration, rule.action, rule.params)))
    return rows
