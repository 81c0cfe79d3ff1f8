"""Marketplace settings → Integrations → Integration setup: connections, the New Integration wizard,
edit, refresh and delete. Every change goes through hookyard.connections, as the API's do."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from marshmallow import ValidationError
from sqlalchemy import select

from hookyard import connections
from hookyard.api.base import marketplace_id, owned, rt
from hookyard.api.base import session as db
from hookyard.models import Integration, Rule
from hookyard.schemadoc import describe

from .blueprint import bp, done, owner_only
from .forms import flat_errors, schema_values
from .labels import marketplace_integrations, rule_rows

CONFIG_PREFIX = "config."


def _app_or_404(key: str):
    app = rt().registry.apps.get(key)
    if app is None:
        abort(404, description=f"No installed app is called {key!r}.")
    return app



@bp.route("/integrations")
def integrations():
    return render_template("integrations.html", integrations=marketplace_integrations(), tab="setup")


@bp.route("/integrations/new")
@owner_only
def new_integration():
    apps = sorted(rt().registry.apps.values(), key=lambda a: a.name.lower())
    return render_template("integration_new.html", apps=apps)


@bp.route("/integrations/new/<app_key>", methods=["GET", "POST"])
@owner_only
def configure_integration(app_key):
    app = _app_or_404(app_key)
    errors, failure, name = {}, None, request.form.get("name", "").strip()
    config = schema_values(app.config_schema, request.form, CONFIG_PREFIX) if request.method == "POST" else {}
    if request.method == "POST":
        if not name:
            errors["name"] = "Give the connection a name."
        else:
            try:
                integration = connections.create(rt(), db(), marketplace_id(), app.key, name, config)
            except ValidationError as exc:
                db().rollback()
                errors, failure = flat_errors(exc.messages), getattr(exc, "reason", None)
            else:
                db().commit()
                return done(f"{app.name} connected as “{integration.name}”. {_learned(integration)}",
                            "web.integrations")
    return render_template("integration_form.html", app=app, fields=describe(app.config_schema), name=name,
                           values=_without_secrets(app, config), errors=errors, failure=failure,
                           integration=None), 422 if errors else 200


@bp.route("/integrations/<int:integration_id>/edit", methods=["GET", "POST"])
@owner_only
def edit_integration(integration_id):
    integration = owned(Integration, integration_id)
    app = _app_or_404(integration.app)
    errors, failure, name = {}, None, integration.name
    values = dict(integration.config)
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        # An empty secret input keeps the stored secret: secrets are never sent to the browser.
        config = schema_values(app.config_schema, request.form, CONFIG_PREFIX)
        values = _without_secrets(app, config)
        if not name:
            errors["name"] = "Give the connection a name."
        else:
            try:
                connections.update(rt(), db(), integration, name, config)
            except ValidationError as exc:
                db().rollback()
                errors, failure = flat_errors(exc.messages), getattr(exc, "reason", None)
            else:
                db().commit()
                return done(f"“{integration.name}” saved and verified with {app.name}.", "web.integrations")
    return render_template("integration_form.html", app=app, fields=describe(app.config_schema), name=name,
                           values=values, errors=errors, failure=failure, integration=integration,
                           stored_secrets=set(connections.masked_config(rt(), integration))), 422 if errors else 200


@bp.route("/integrations/<int:integration_id>/refresh", methods=["POST"])
@owner_only
def refresh_integration(integration_id):
    integration = owned(Integration, integration_id)
    try:
        connections.refresh(rt(), db(), integration)
    except ValidationError as exc:
        db().rollback()
        flash(f"“{integration.name}” could not be refreshed: {getattr(exc, 'reason', None) or exc.messages}",
              "error")
        return redirect(url_for("web.integrations"))
    db().commit()
    counts = ", ".join(f"{len(items)} {name.replace('_', ' ')}" for name, items in sorted(integration.options.items()))
    return done(f"“{integration.name}” refreshed{': ' + counts if counts else ''}.", "web.integrations")


@bp.route("/integrations/<int:integration_id>/delete", methods=["GET", "POST"])
@owner_only
def delete_integration(integration_id):
    integration = owned(Integration, integration_id)
    if request.method == "POST":
        name = integration.name
        disabled = connections.delete(db(), integration)
        db().commit()
        extra = f" {len(disabled)} rule(s) that used it are disabled." if disabled else ""
        return done(f"“{name}” deleted.{extra}", "web.integrations")
    rules = list(db().scalars(select(Rule).where(Rule.integration_id == integration.id).order_by(Rule.id)))
    return render_template("integration_delete.html", integration=integration, rules=rule_rows(rules))


def _without_secrets(app, config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in app.secret_fields}


def _learned(integration: Integration) -> str:
    info = integration.info or {}
    label = info.get("community_name") or info.get("name")
    return f"Verified: {label}." if label else "Verified."
