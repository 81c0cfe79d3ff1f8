"""Marketplace settings → Integrations → Integration setup: connections, the New Integration wizard,
edit, refresh and delete. Every change goes through hookyard.connections, as the API's do.

Refresh starts a task in the worker (hookyard.tasks) and shows its page, which reloads itself (a ``Refresh``
response header: the UI's CSP allows no inline script) until the task has ended."""
from __future__ import annotations

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from marshmallow import ValidationError
from sqlalchemy import select

from hookyard import connections, tasks
from hookyard.api.base import marketplace_id, owned, rt
from hookyard.api.base import session as db
from hookyard.models import TASK_ACTIVE_STATES, Integration, Rule, Task
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



# Seconds between reloads of a task's page while the task is queued or running.
TASK_PAGE_RELOAD = 2


@bp.route("/integrations")
def integrations():
    refreshing = {task.target_id: task for task in db().scalars(select(Task).where(
        Task.marketplace_id == marketplace_id(), Task.kind == tasks.REFRESH, Task.active_key.is_not(None)))}
    return render_template("integrations.html", integrations=marketplace_integrations(), tab="setup",
                           refreshing=refreshing)


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
    """Starts the refresh in the worker (or finds the one already under way) and shows its progress."""
    integration = owned(Integration, integration_id)
    try:
        task = connections.start_refresh(rt(), db(), integration)
    except tasks.TaskNotQueued as exc:
        flash(f"“{integration.name}” could not be refreshed: {exc.task.message} Try again in a moment.", "error")
        return redirect(url_for("web.integrations"))
    return redirect(url_for("web.refresh_task", integration_id=integration.id, task_id=task.id))


def _refresh_task(integration_id: int, task_id: int) -> tuple[Integration, Task]:
    integration = owned(Integration, integration_id)
    task = owned(Task, task_id)
    if task.kind != tasks.REFRESH or task.target_id != integration.id:
        abort(404, description=f"Task {task_id} is not a refresh of “{integration.name}”.")
    return integration, task


@bp.route("/integrations/<int:integration_id>/refresh/<int:task_id>")
def refresh_task(integration_id, task_id):
    integration, task = _refresh_task(integration_id, task_id)
    active = task.status in TASK_ACTIVE_STATES
    response = make_response(render_template("integration_refresh.html", integration=integration, task=task,
                                             active=active, reload_every=TASK_PAGE_RELOAD))
    if active:
        # The browser reloads the page by itself (HTML's Refresh header, as a meta refresh would), no script.
        response.headers["Refresh"] = str(TASK_PAGE_RELOAD)
    return response


@bp.route("/integrations/<int:integration_id>/refresh/<int:task_id>/cancel", methods=["POST"])
@owner_only
def cancel_refresh_task(integration_id, task_id):
    integration, task = _refresh_task(integration_id, task_id)
    if task.status in TASK_ACTIVE_STATES:
        tasks.cancel(rt(), db(), task)
    return redirect(url_for("web.refresh_task", integration_id=integration.id, task_id=task.id))


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
