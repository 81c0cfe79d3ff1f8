"""What pages show instead of keys and ids: trigger and action labels, option names, product names."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from hookyard import snapshot
from hookyard.models import Integration, Product, Rule
from hookyard.requestctx import db_session as db
from hookyard.requestctx import runtime as rt
from hookyard.requestctx import store_id as marketplace_id


def marketplace_integrations() -> list[Integration]:
    """The signed-in marketplace's connections by name: the lists, wizards and filters that offer them."""
    return list(
        db().scalars(
            select(Integration).where(Integration.marketplace_id == marketplace_id()).order_by(Integration.name)
        )
    )


def trigger_label(key: str) -> str:
    trigger = rt().registry.trigger_types.get(key)
    return trigger.label if trigger else key


def action_label(app_key: str | None, action_key: str) -> str:
    app = rt().registry.apps.get(app_key or "")
    action = app.action(action_key) if app else None
    return f"{app.name}: {action.label}" if action else action_key


def describe_params(integration: Integration | None, action_key: str, params: dict) -> list[list[str]]:
    """[label, value] pairs, ids replaced by the names from the integration's last refresh."""
    return snapshot.describe_params(rt().registry, integration, action_key, params)


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
    # Within the signed-in store, whatever ids the rules hold.
    integrations = {
        i.id: i
        for i in db().scalars(
            select(Integration).where(
                Integration.id.in_(integration_ids), Integration.marketplace_id == marketplace_id()
            )
        )
    }
    products = {
        p.id: p
        for p in db().scalars(
            select(Product).where(Product.id.in_(product_ids), Product.marketplace_id == marketplace_id())
        )
    }
    rows = []
    for rule in rules:
        integration = integrations.get(rule.integration_id)
        rows.append(
            RuleRow(
                rule=rule,
                trigger=trigger_label(rule.trigger),
                action=action_label(integration.app if integration else None, rule.action),
                integration=integration,
                product=products.get(rule.product_id),
                params=describe_params(integration, rule.action, rule.params),
            )
        )
    return rows
