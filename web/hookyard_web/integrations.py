"""Marketplace settings → Integrations → Integration setup: connections, each connection's page (its inbound URL
for apps that receive webhooks, its delivery log, product import), the New Integration wizard, edit, refresh and
delete. Every change goes through hookyard.connections, as the API's do.

Refresh and product import start a task in the worker (hookyard.tasks) and show its page, which reloads itself (a
``Refresh`` response header: the UI's CSP allows no inline script) until the task has ended. Both kinds share one
page (TASK_KINDS says what differs)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort, flash, g, make_response, redirect, render_template, request, url_for
from marshmallow import ValidationError
from sqlalchemy import func, select

from hookyard import connections, inbound, tasks
from hookyard.models import TASK_ACTIVE_STATES, Delivery, Integration, Rule, Task
from hookyard.requestctx import db_session as db
from hookyard.requestctx import owned
from hookyard.requestctx import runtime as rt
from hookyard.requestctx import store_id as marketplace_id
from hookyard.schemadoc import describe

from .blueprint import bp, done, owner_only
from .forms import cleared_optional, flat_errors, schema_values
from .labels import marketplace_integrations, rule_rows

CONFIG_PREFIX = "config."


def _app_or_404(key: str):
    app = rt().registry.apps.get(key)
    if app is None:
        abort(404, description=f"No installed app is called {key!r}.")
    return app


# Seconds between reloads of a task's page while the task is queued or running.
TASK_PAGE_RELOAD = 2


@dataclass(frozen=True)
class TaskKind:
    """What the task page says for one kind of connection task, and where its buttons go."""

    kind: str
    page: str  # endpoint of the task's page
    cancel: str  # endpoint of its Cancel
    title: str  # "Refresh “Community”"
    running: str  # on the integrations list while it is under way
    counted: str  # the progress bar's label
    failed: str  # "“Community” could not be refreshed: <the task's message>"
    cancel_label: str


TASK_KINDS = {
    tasks.REFRESH: TaskKind(
        tasks.REFRESH,
        "web.refresh_task",
        "web.cancel_refresh_task",
        "Refresh",
        "Refreshing",
        "Records loaded",
        "could not be refreshed",
        "Cancel the refresh",
    ),
    tasks.IMPORT_PRODUCTS: TaskKind(
        tasks.IMPORT_PRODUCTS,
        "web.import_task",
        "web.cancel_import_task",
        "Import products into",
        "Importing products",
        "Products read",
        "could not import its products",
        "Cancel the import",
    ),
}


def _active_tasks() -> dict[int, list[Task]]:
    """The marketplace's tasks under way, by integration."""
    found: dict[int, list[Task]] = {}
    for task in db().scalars(
        select(Task)
        .where(Task.marketplace_id == marketplace_id(), Task.kind.in_(TASK_KINDS), Task.active_key.is_not(None))
        .order_by(Task.id)
    ):
        found.setdefault(task.target_id, []).append(task)
    return found


def _delivery_counts(integration_ids) -> dict[int, int]:
    if not integration_ids:
        return {}
    return dict(
        db()
        .execute(
            select(Delivery.integration_id, func.count())
            .where(Delivery.marketplace_id == marketplace_id(), Delivery.integration_id.in_(integration_ids))
            .group_by(Delivery.integration_id)
        )
        .all()
    )


@bp.route("/integrations")
def integrations():
    listed = marketplace_integrations()
    receiving = [i.id for i in listed if _receives(i)]
    return render_template(
        "integrations.html",
        integrations=listed,
        tab="setup",
        under_way=_active_tasks(),
        kinds=TASK_KINDS,
        delivery_counts=_delivery_counts(receiving),
    )


def _receives(integration: Integration) -> bool:
    app = rt().registry.apps.get(integration.app)
    return bool(app and app.inbound)


@bp.route("/integrations/<int:integration_id>")
def integration(integration_id):
    """One connection: its status, and for apps that receive webhooks its inbound URL (whole for owners, with
    Copy; masked for viewers, as the API shows it), the delivery log's counts, and product import."""
    return _integration_page(owned(Integration, integration_id))


def _integration_page(item: Integration, revealed: list[dict] | None = None):
    """The connection's page; ``revealed`` (``_revealed_rows``) only in the answer to the POST that generated
    those secrets, which shows them once in a banner."""
    app = rt().registry.apps.get(item.app)
    address = inbound.url(rt(), item, request.host_url) if app and app.inbound else None
    # A credential (whoever has it posts into this store): whole only for owners, as the API does.
    shown = address if address is None or g.user.role == "owner" else inbound.masked(address)
    counts = (
        dict(
            db()
            .execute(
                select(Delivery.status, func.count())
                .where(Delivery.integration_id == item.id, Delivery.marketplace_id == marketplace_id())
                .group_by(Delivery.status)
            )
            .all()
        )
        if app and app.inbound
        else {}
    )
    last_import = (
        db().scalar(
            select(Task)
            .where(
                Task.marketplace_id == marketplace_id(), Task.kind == tasks.IMPORT_PRODUCTS, Task.target_id == item.id
            )
            .order_by(Task.id.desc())
            .limit(1)
        )
        if app and app.products
        else None
    )
    used = connections.usage_of(rt(), db(), item)
    return render_template(
        "integration.html",
        integration=item,
        app=app,
        inbound_url=shown,
        usage=used,
        warnings=connections.warnings(item, used),
        public_url=rt().settings.public_url,
        delivery_counts=counts,
        under_way=_active_tasks().get(item.id, []),
        kinds=TASK_KINDS,
        last_import=last_import,
        revealed=revealed or [],
    )


def _revealed_rows(app, revealed: dict) -> list[dict]:
    """The generated secrets for the banner: each with its field's label and the same said inside a sentence
    ("Signing secret" → "signing secret", "API key" kept)."""
    labels = {item["name"]: item.get("label") or item["name"] for item in describe(app.config_schema)}
    rows = []
    for name, value in revealed.items():
        label = labels.get(name, name)
        phrase = label if label[:2].isupper() else label[:1].lower() + label[1:]
        rows.append({"id": f"revealed-{name}", "label": label, "phrase": phrase, "value": value})
    return rows


def _show_generated(app, integration: Integration, revealed: dict, message: str):
    """Shown in this response only (no redirect): a redirect would have to carry the secret to the next page, and
    the session cookie is signed, not encrypted. The page's script points the browser's history at the
    connection's own page, so a reload shows that page without the secret (without script a reload sends the
    form again, which is refused: the name is taken)."""
    flash(message, "success")
    return _integration_page(integration, _revealed_rows(app, revealed)), 201


@bp.route("/integrations/<int:integration_id>/inbound-url/rotate", methods=["GET", "POST"])
@owner_only
def rotate_inbound_url(integration_id):
    """GET: what rotating does (the old URL stops working at once), then POST does it. A connection that has no URL
    yet (made before its app received webhooks) gets its first one through the same service."""
    item = owned(Integration, integration_id)
    app = _app_or_404(item.app)
    if app.inbound is None:
        abort(404, description=f"The {app.name} app receives no webhooks: “{item.name}” has no inbound URL.")
    had_url = item.inbound_key is not None
    if request.method == "GET":
        return render_template("integration_rotate.html", integration=item, app=app, had_url=had_url)
    connections.rotate_inbound_url(rt(), db(), item)
    db().commit()
    if had_url:
        message = (
            f"“{item.name}” has a new inbound URL: the old one stopped working. Copy the new one into {app.name} now."
        )
    else:
        message = f"“{item.name}” has an inbound URL: copy it into {app.name}."
    return done(message, "web.integration", {"integration_id": item.id})


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
            revealed: dict = {}
            try:
                integration = connections.create(rt(), db(), marketplace_id(), app.key, name, config, revealed)
            except ValidationError as exc:
                db().rollback()
                errors, failure = flat_errors(exc.messages), getattr(exc, "reason", None)
            else:
                db().commit()
                message = f"{app.name} connected as “{integration.name}”. {_learned(integration)}"
                if app.inbound is not None:
                    message += f" Copy its inbound URL into {app.name}."
                if revealed:  # its page, with them, in this answer
                    return _show_generated(app, integration, revealed, message)
                if app.inbound is not None:  # the next step is pasting its URL into the app: show it
                    return done(message, "web.integration", {"integration_id": integration.id})
                return done(message, "web.integrations")
    return render_template(
        "integration_form.html",
        app=app,
        fields=describe(app.config_schema),
        name=name,
        values=_without_secrets(app, config),
        errors=errors,
        failure=failure,
        integration=None,
    ), 422 if errors else 200


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
        # An optional field emptied in the form is cleared (a blank means "not given" only for secrets).
        config.update(cleared_optional(app.config_schema, request.form, CONFIG_PREFIX))
        values = _without_secrets(app, config)
        if not name:
            errors["name"] = "Give the connection a name."
        else:
            revealed: dict = {}
            try:
                connections.update(rt(), db(), integration, name, config, revealed)
            except ValidationError as exc:
                db().rollback()
                errors, failure = flat_errors(exc.messages), getattr(exc, "reason", None)
            else:
                db().commit()
                if revealed:  # a connection saved before its app generated this secret: it has one now
                    return _show_generated(
                        app, integration, revealed, f"“{integration.name}” saved and verified with {app.name}."
                    )
                return done(f"“{integration.name}” saved and verified with {app.name}.", "web.integrations")
    return render_template(
        "integration_form.html",
        app=app,
        fields=describe(app.config_schema),
        name=name,
        values=values,
        errors=errors,
        failure=failure,
        integration=integration,
        stored_secrets=set(connections.masked_config(rt(), integration)),
    ), 422 if errors else 200


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


@bp.route("/integrations/<int:integration_id>/products/import", methods=["POST"])
@owner_only
def import_products(integration_id):
    """Starts importing the store's products in the worker (or finds the import under way) and shows its
    progress. Without what the app needs (SamCart: an API key) the task fails with the app's message."""
    integration = owned(Integration, integration_id)
    try:
        task = connections.start_import_products(rt(), db(), integration)
    except ValidationError as exc:
        db().rollback()
        flash(" ".join(flat_errors(exc.messages).values()), "error")
        return redirect(url_for("web.integration", integration_id=integration.id))
    except tasks.TaskNotQueued as exc:
        flash(f"“{integration.name}” could not import its products: {exc.task.message} Try again in a moment.", "error")
        return redirect(url_for("web.integration", integration_id=integration.id))
    return redirect(url_for("web.import_task", integration_id=integration.id, task_id=task.id))


def _task_of(kind: str, integration_id: int, task_id: int) -> tuple[Integration, Task]:
    integration = owned(Integration, integration_id)
    task = owned(Task, task_id)
    if task.kind != kind or task.target_id != integration.id:
        what = "a refresh" if kind == tasks.REFRESH else "a product import"
        abort(404, description=f"Task {task_id} is not {what} of “{integration.name}”.")
    return integration, task


def _task_page(kind: str, integration_id: int, task_id: int):
    integration, task = _task_of(kind, integration_id, task_id)
    active = task.status in TASK_ACTIVE_STATES
    response = make_response(
        render_template(
            "integration_task.html",
            integration=integration,
            task=task,
            kind=TASK_KINDS[kind],
            active=active,
            reload_every=TASK_PAGE_RELOAD,
        )
    )
    if active:
        # The browser reloads the page by itself (HTML's Refresh header, as a meta refresh would), no script.
        response.headers["Refresh"] = str(TASK_PAGE_RELOAD)
    return response


def _cancel_task(kind: str, integration_id: int, task_id: int):
    integration, task = _task_of(kind, integration_id, task_id)
    if task.status in TASK_ACTIVE_STATES:
        tasks.cancel(rt(), db(), task)
    return redirect(url_for(TASK_KINDS[kind].page, integration_id=integration.id, task_id=task.id))


@bp.route("/integrations/<int:integration_id>/refresh/<int:task_id>")
def refresh_task(integration_id, task_id):
    return _task_page(tasks.REFRESH, integration_id, task_id)


@bp.route("/integrations/<int:integration_id>/refresh/<int:task_id>/cancel", methods=["POST"])
@owner_only
def cancel_refresh_task(integration_id, task_id):
    return _cancel_task(tasks.REFRESH, integration_id, task_id)


@bp.route("/integrations/<int:integration_id>/products/import/<int:task_id>")
def import_task(integration_id, task_id):
    return _task_page(tasks.IMPORT_PRODUCTS, integration_id, task_id)


@bp.route("/integrations/<int:integration_id>/products/import/<int:task_id>/cancel", methods=["POST"])
@owner_only
def cancel_import_task(integration_id, task_id):
    return _cancel_task(tasks.IMPORT_PRODUCTS, integration_id, task_id)


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
