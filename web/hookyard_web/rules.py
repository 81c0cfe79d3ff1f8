"""Rules: the global list (Integrations → Global rules), the New Rule wizard shared by product-level and
global rules, edit, enable/disable and delete. Validation is hookyard.rules', as for the API."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from marshmallow import ValidationError

from hookyard import connections, ruletest
from hookyard import rules as rule_service
from hookyard.models import Integration, Product, Rule
from hookyard.requestctx import db_session as db
from hookyard.requestctx import owned
from hookyard.requestctx import runtime as rt
from hookyard.requestctx import store_id as marketplace_id
from hookyard.schemadoc import describe

from .backfill import offer as offer_backfill  # "Apply to past events?" after a rule is created or enabled
from .blueprint import bp, done, owner_only
from .forms import dumps, flat_errors, id_or_none, loads_object, schema_values
from .labels import action_label, marketplace_integrations, rule_rows, trigger_label

PARAMS_PREFIX = "params."
STEPS = ("action", "params", "trigger")


@bp.route("/rules")
def global_rules():
    rules = list(db().scalars(rule_service.listing(marketplace_id(), {"scope": "global"})))
    return render_template("rules.html", rows=rule_rows(rules), tab="rules")


def _product(product_id) -> Product | None:
    if product_id in (None, "", "None"):
        return None
    return owned(Product, id_or_none(product_id) or 0)  # 0 names nothing: a 404 like any unknown id


def _triggers(product: Product | None):
    """Trigger types by category; a product's rules only offer triggers that name a product."""
    by_category: dict[str, list] = {}
    for trigger in sorted(rt().registry.trigger_types.values(), key=lambda t: t.label):
        if product is None or trigger.product_scoped:
            by_category.setdefault(trigger.category, []).append(trigger)
    return dict(sorted(by_category.items()))


def _with_actions(integrations: list[Integration]) -> list[Integration]:
    """The connections a rule can run an action of: apps with no actions (SamCart only sends events) are left out."""
    apps = rt().registry.apps
    return [i for i in integrations if i.app in apps and apps[i.app].actions]


def _action_for(integration: Integration | None, action_key: str | None):
    app = rt().registry.apps.get(integration.app) if integration else None
    return app.action(action_key) if app and action_key else None


class Wizard:
    """The New Rule wizard's state, carried between steps in the form itself (no server-side drafts)."""

    def __init__(self, form, product: Product | None):
        self.product = product
        self.integration_id = id_or_none(form.get("integration_id"))
        self.action_key = form.get("action") or None
        self.params = loads_object(form.get("params_json"))
        self.trigger = form.get("trigger") or None
        self.errors: dict[str, str] = {}
        self.failure: str | None = None

    @property
    def integration(self) -> Integration | None:
        if self.integration_id is None:
            return None
        integration = db().get(Integration, self.integration_id)
        return integration if integration and integration.marketplace_id == marketplace_id() else None

    @property
    def action(self):
        return _action_for(self.integration, self.action_key)

    def values(self) -> dict:
        return {
            "product_id": self.product.id if self.product else None,
            "trigger": self.trigger,
            "integration_id": self.integration_id,
            "action": self.action_key,
            "params": self.params,
            "enabled": True,
        }

    def check(self, *fields: str) -> bool:
        """Validates the whole draft with the core's rules and keeps the errors of this step's fields."""
        try:
            rule_service.validate(rt(), db(), marketplace_id(), self.values())
        except ValidationError as exc:
            self.errors = {k: v for k, v in flat_errors(exc.messages).items() if k.split(".")[0] in fields}
        return not self.errors


@bp.route("/rules/new", methods=["GET", "POST"])
@owner_only
def new_rule():
    product = _product(request.values.get("product_id"))
    wizard = Wizard(request.form, product)
    step = "action"
    if request.method == "POST":
        step = _advance(wizard, request.form.get("step"), request.form.get("goto"))
        if step == "created":
            rule = rule_service.create(rt(), db(), marketplace_id(), wizard.values())
            db().commit()
            return offer_backfill(rule, done("Rule created: " + _summary(rule), *_back_to(rule)))
    options = {}
    if step == "params" and wizard.integration is not None:
        options = wizard.integration.options or {}
    status = 422 if wizard.errors or wizard.failure else 200
    param_fields = describe(wizard.action.params_schema) if wizard.action else []
    return render_template(
        "rule_wizard.html",
        wizard=wizard,
        step=step,
        product=product,
        focus=_focus(wizard, step, param_fields) if request.method == "POST" else None,
        integrations=_with_actions(marketplace_integrations()),
        triggers=_triggers(product),
        options=options,
        param_fields=param_fields,
        params_json=dumps(wizard.params),
    ), status


def _focus(wizard: Wizard, step: str, param_fields: list) -> str:
    """Where a step's page puts the focus (its template sets autofocus there): the first field in error, in the
    order they are shown, else the new step's heading; without this each step starts at the top of the page."""
    order = {
        "action": ["integration_id", "action"],
        "params": [PARAMS_PREFIX + f["name"] for f in param_fields],
        "trigger": ["trigger", "product_id"],
    }.get(step, [])
    return next(
        (name for name in order if any(key == name or key.startswith(name + ".") for key in wizard.errors)), "heading"
    )


def _advance(wizard: Wizard, step: str | None, goto: str | None) -> str:
    """Checks the step just submitted; returns the step to show next, or "created"."""
    if goto in STEPS:
        return goto
    if step == "action":
        if not wizard.check("integration_id", "action"):
            return "action"
        try:
            connections.options(rt(), db(), wizard.integration)  # the lists the parameters choose from
        except ValidationError as exc:
            db().rollback()
            wizard.failure = getattr(exc, "reason", None) or "The integration's option lists could not be loaded."
            return "action"
        wizard.params = {}
        return "params" if describe(wizard.action.params_schema) else "trigger"
    if step == "params":
        wizard.params = schema_values(wizard.action.params_schema, request.form, PARAMS_PREFIX) if wizard.action else {}
        return "trigger" if wizard.check("integration_id", "action", "params") else "params"
    if step == "trigger":
        if wizard.trigger is None:
            # Said in the form's words; the core's message for a missing trigger ("Unknown trigger None.") is the API's.
            wizard.errors = {"trigger": "Choose a trigger: when should the action run?"}
            return "trigger"
        if wizard.check("integration_id", "action", "params", "product_id", "trigger"):
            return "created"
        first = next(iter(wizard.errors), "trigger").split(".")[0]
        return {"integration_id": "action", "action": "action", "params": "params"}.get(first, "trigger")
    abort(400, description="Unknown step of the New Rule wizard.")


def _summary(rule: Rule) -> str:
    integration = db().get(Integration, rule.integration_id) if rule.integration_id else None
    return (
        f"when “{trigger_label(rule.trigger)}”, {action_label(integration.app if integration else None, rule.action)}."
    )


def _back_to(rule: Rule) -> tuple:
    if rule.product_id:
        return ("web.product", {"product_id": rule.product_id})
    return ("web.global_rules", {})


@bp.route("/rules/<int:rule_id>/edit", methods=["GET", "POST"])
@owner_only
def edit_rule(rule_id):
    rule = owned(Rule, rule_id)
    product = _product(rule.product_id)
    integration = db().get(Integration, rule.integration_id) if rule.integration_id else None
    errors, failure = {}, None
    values = {
        "integration_id": rule.integration_id,
        "trigger": rule.trigger,
        "params": rule.params,
        "enabled": rule.enabled,
    }
    action = _action_for(integration, rule.action)
    if request.method == "POST":
        changes = {"trigger": request.form.get("trigger") or None, "enabled": request.form.get("enabled") == "true"}
        if id_or_none(request.form.get("integration_id")) is not None:
            changes["integration_id"] = id_or_none(request.form["integration_id"])
        if action is not None:
            changes["params"] = schema_values(action.params_schema, request.form, PARAMS_PREFIX)
        values.update(changes)
        try:
            rule_service.update(rt(), db(), rule, changes)
        except ValidationError as exc:
            db().rollback()
            errors = flat_errors(exc.messages)
        else:
            db().commit()
            return done("Rule saved: " + _summary(rule), *_back_to(rule))
    if integration is not None and integration.refreshed_at is None:
        try:
            connections.options(rt(), db(), integration)
        except ValidationError as exc:
            db().rollback()
            failure = getattr(exc, "reason", None)
    return render_template(
        "rule_edit.html",
        rule=rule,
        row=rule_rows([rule])[0],
        values=values,
        errors=errors,
        failure=failure,
        product=product,
        integrations=_with_actions(marketplace_integrations()),
        triggers=_triggers(product),
        options=(integration.options or {}) if integration else {},
        param_fields=describe(action.params_schema) if action else [],
        rule_test=_test_form(rule),  # the "Test this rule" block below the form
    ), 422 if errors else 200


@bp.route("/rules/<int:rule_id>/toggle", methods=["POST"])
@owner_only
def toggle_rule(rule_id):
    rule = owned(Rule, rule_id)
    try:
        rule_service.update(rt(), db(), rule, {"enabled": not rule.enabled})
    except ValidationError as exc:
        db().rollback()
        flash("The rule cannot be enabled: " + "; ".join(flat_errors(exc.messages).values()), "error")
        endpoint, values = _back_to(rule)
        return redirect(url_for(endpoint, **values))
    db().commit()
    response = done(f"Rule {'enabled' if rule.enabled else 'disabled'}: " + _summary(rule), *_back_to(rule))
    return offer_backfill(rule, response)


@bp.route("/rules/<int:rule_id>/delete", methods=["GET", "POST"])
@owner_only
def delete_rule(rule_id):
    """GET asks first (a deleted rule cannot be brought back; disabling it can be undone), POST deletes."""
    rule = owned(Rule, rule_id)
    target, summary = _back_to(rule), _summary(rule)
    if request.method == "GET":
        endpoint, values = target
        return render_template(
            "rule_delete.html",
            rule=rule,
            row=rule_rows([rule])[0],
            product=_product(rule.product_id),
            back=url_for(endpoint, **values),
        )
    db().delete(rule)
    db().commit()
    return done("Rule deleted: " + summary, *target)


# --- Test this rule (issue 15): a dry-run or a live test from the rule's page. Kept together, apart from the rest. ---

TEST_MODES = {"dry-run": "Dry-run: show the calls, send no change", "live": "Live: run it for real, for one email"}


def _test_form(rule: Rule, values: dict | None = None, errors: dict | None = None) -> dict:
    """What the "Test this rule" form shows: the samples (the trigger's example, the store's last events of the
    trigger), the modes (dry-run only for an action that supports it), what was chosen, and the errors."""
    integration = db().get(Integration, rule.integration_id) if rule.integration_id else None
    action = _action_for(integration, rule.action)
    trigger = rt().registry.trigger_types.get(rule.trigger)
    dry_run = bool(action and action.dry_run)
    return {
        "example": bool(trigger and trigger.example is not None),
        "events": ruletest.recent_events(db(), rule),
        "modes": {k: v for k, v in TEST_MODES.items() if dry_run or k == "live"},
        "chosen": {"mode": "dry-run" if dry_run else "live", **(values or {})},
        "errors": errors or {},
    }


@bp.route("/rules/<int:rule_id>/test", methods=["POST"])
@owner_only
def run_rule_test(rule_id):
    """Runs the test and shows its calls and outcome, with the form again to run another."""
    rule = owned(Rule, rule_id)
    sample = request.form.get("sample", "example")
    values = {"sample": sample, "mode": request.form.get("mode", ""), "email": request.form.get("email", "").strip()}
    event_id = None
    if sample != "example":
        event_id = id_or_none(sample) or 0  # 0 names nothing: answered as an unknown event
    result, errors, failure, status = None, {}, None, 200
    try:
        result = ruletest.run(rt(), db(), rule, values["mode"], event_id=event_id, email=values["email"] or None)
    except ValidationError as exc:
        db().rollback()
        errors = flat_errors(exc.messages)
        errors = {("sample" if k == "event_id" else k): v for k, v in errors.items()}
        failure = errors.pop("rule", None)
        status = 422
    except ruletest.Busy as busy:
        db().rollback()
        failure = f"Not tested: {busy.reason}. Nothing was called; try again in {max(1, round(busy.seconds))} seconds."
        status = 429
    return render_template(
        "rule_test.html",
        rule=rule,
        row=rule_rows([rule])[0],
        product=_product(rule.product_id),
        result=result,
        failure=failure,
        rule_test=_test_form(rule, values, errors),
    ), status
