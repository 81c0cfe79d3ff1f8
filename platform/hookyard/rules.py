"""Rule validation shared by the API and any UI: every reference must exist in the same marketplace."""

from __future__ import annotations

from marshmallow import ValidationError
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from .fields import option_list
from .models import Integration, Product, Rule
from .runtime import Runtime


def validate(rt: Runtime, session: Session, marketplace_id: int, values: dict) -> dict:
    """Checks a complete rule definition; returns it with params loaded by the action's schema."""
    errors: dict = {}
    trigger = values.get("trigger")
    if trigger not in rt.registry.trigger_types:
        errors["trigger"] = [f"Unknown trigger {trigger!r}."]
    product_id = values.get("product_id")
    if product_id is not None:
        product = session.get(Product, product_id)
        if product is None or product.marketplace_id != marketplace_id:
            errors["product_id"] = [f"Unknown product {product_id}."]
    integration_id = values.get("integration_id")
    integration = session.get(Integration, integration_id) if integration_id is not None else None
    if integration is None or integration.marketplace_id != marketplace_id:
        errors["integration_id"] = [f"Unknown integration {values.get('integration_id')}."]
        raise ValidationError(errors)
    app = rt.registry.apps.get(integration.app)
    action = app.action(values.get("action")) if app else None
    if action is None:
        known = ", ".join(a.key for a in app.actions) if app else "none (app not installed)"
        errors["action"] = [f"Unknown action {values.get('action')!r} for this integration; choose from: {known}."]
        raise ValidationError(errors)
    schema = action.params_schema()
    try:
        params = schema.load(values.get("params") or {})
    except ValidationError as exc:
        errors["params"] = exc.messages
        raise ValidationError(errors) from exc
    option_errors = _check_options(schema, params, integration)
    if option_errors:
        errors["params"] = option_errors
    if errors:
        raise ValidationError(errors)
    return {**values, "params": schema.dump(params)}


def _check_options(schema, params: dict, integration: Integration) -> dict:
    """A parameter that names an option list must hold an id from the integration's last refresh."""
    errors = {}
    for name, field in schema.fields.items():
        list_name = option_list(field)
        if not list_name or name not in params or list_name not in (integration.options or {}):
            continue
        known = {str(o.get("id")) for o in integration.options[list_name]}
        values = params[name] if isinstance(params[name], (list, tuple)) else [params[name]]
        missing = [v for v in values if str(v) not in known]
        if missing:
            errors[name] = [
                f"{', '.join(map(str, missing))} not found in the integration's {list_name}; "
                f"refresh the integration if it was added recently."
            ]
    return errors


def listing(marketplace_id: int, filters: dict) -> Select:
    """A marketplace's rules, by id; ``filters``: product_id, scope ("global" or "product"), trigger."""
    query = select(Rule).where(Rule.marketplace_id == marketplace_id)
    if filters.get("product_id") is not None:
        query = query.where(Rule.product_id == filters["product_id"])
    if filters.get("scope") == "global":
        query = query.where(Rule.product_id.is_(None))
    elif filters.get("scope") == "product":
        query = query.where(Rule.product_id.is_not(None))
    if filters.get("trigger"):
        query = query.where(Rule.trigger == filters["trigger"])
    return query.order_by(Rule.id)


def create(rt: Runtime, session: Session, marketplace_id: int, values: dict) -> Rule:
    rule = apply(Rule(marketplace_id=marketplace_id), validate(rt, session, marketplace_id, values))
    session.add(rule)
    session.flush()
    return rule


def update(rt: Runtime, session: Session, rule: Rule, changes: dict) -> Rule:
    """Applies ``changes`` when the rule they produce is valid as a whole."""
    merged = {**{k: getattr(rule, k) for k in EDITABLE}, **changes}
    if merged["integration_id"] is None:
        if set(changes) <= {"enabled"} and not merged["enabled"]:
            rule.enabled = False  # a rule orphaned by a deleted integration can still be switched off
            return rule
        raise ValidationError({"integration_id": ["Choose an integration: its old one was deleted."]})
    return apply(rule, validate(rt, session, rule.marketplace_id, merged))


EDITABLE = ("product_id", "trigger", "integration_id", "action", "params", "enabled")


def apply(rule: Rule, values: dict) -> Rule:
    for key in EDITABLE:
        if key in values:
            setattr(rule, key, values[key])
    return rule
