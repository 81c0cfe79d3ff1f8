"""A rule's "Apply to past events" (hookyard.backfill): a date range with a preview of the counts, Start, then the
backfill's progress (its runs by state, reloaded by the browser) with Cancel. And the prompt offered after a rule
is created or enabled."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from markupsafe import Markup, escape
from marshmallow import ValidationError

from hookyard import backfill, tasks
from hookyard.models import Rule, Task, utcnow
from hookyard.requestctx import db_session as db
from hookyard.requestctx import owned
from hookyard.requestctx import runtime as rt

from .blueprint import bp, owner_only
from .forms import flat_errors
from .labels import rule_rows

# Seconds between the progress page's reloads while runs are left (HTML's Refresh header: no script).
RELOAD_EVERY = 2
# The range offered first: as far back as stored events are kept anyway.
DEFAULT_DAYS = 30


def offer(rule: Rule, response):
    """After a rule is created or enabled: "Apply to past events?", linking to this page. Returns ``response``."""
    if rule.enabled:
        link = url_for("web.rule_backfill", rule_id=rule.id)
        flash(
            Markup('Apply it to past events too? <a href="{}">Apply to past events…</a>').format(escape(link)),
            "info",
        )
    return response


def _range(form) -> tuple[date | None, date | None, dict]:
    """The form's days (UTC); a missing or malformed one is a field error."""
    errors, days = {}, {}
    for name in ("since", "until"):
        try:
            days[name] = date.fromisoformat(form.get(name, ""))
        except ValueError:
            errors[name] = "Choose a day (YYYY-MM-DD)."
            days[name] = None
    return days["since"], days["until"], errors


def _instants(since: date, until: date) -> tuple[datetime, datetime]:
    """From the start of ``since`` to the end of ``until`` (UTC), never past now."""
    start, now = datetime.combine(since, time.min, tzinfo=timezone.utc), utcnow()
    if until >= now.date():  # today or later (9999-12-31 has no next day): up to now
        return start, now
    return start, datetime.combine(until + timedelta(days=1), time.min, tzinfo=timezone.utc)


def _preview_url(rule: Rule, task: Task) -> str:
    """The page following the preview task ``task``, its form filled with the range the task counts."""
    params = task.params or {}
    since = datetime.fromisoformat(params["since"]).astimezone(timezone.utc)
    until = datetime.fromisoformat(params["until"]).astimezone(timezone.utc)
    return url_for(
        "web.rule_backfill",
        rule_id=rule.id,
        since=since.date().isoformat(),
        until=(until - timedelta(microseconds=1)).date().isoformat(),  # the end of a day, or now: the day included
        include_store_api="true",
        preview_task=task.id,
    )


def _preview_task_of(rule: Rule, task_id) -> Task:
    """The rule's preview task ``task_id`` (a query parameter); 404 for anything else."""
    try:
        task = owned(Task, int(task_id))
    except ValueError:
        abort(404)
    if task.kind != backfill.PREVIEW_KIND or task.target_id != rule.id:
        abort(404)
    return task


@bp.route("/rules/<int:rule_id>/backfill", methods=["GET", "POST"])
@owner_only
def rule_backfill(rule_id):
    rule = owned(Rule, rule_id)
    today = utcnow().date()
    preview_task = None
    if request.method == "POST":
        form = request.form
    elif "preview_task" in request.args:  # following a preview that reads the store's API: its range, from the query
        preview_task = _preview_task_of(rule, request.args["preview_task"])
        form = request.args
    else:
        form = {}
    since_day, until_day, errors = _range(
        form or {"since": (today - timedelta(days=DEFAULT_DAYS)).isoformat(), "until": today.isoformat()}
    )
    counts = None
    store_api = backfill.store_api_connections(rt(), db(), rule.marketplace_id, rule.trigger)
    include_store_api = bool(store_api) and form.get("include_store_api") == "true"
    if not errors:
        since, until = _instants(since_day, until_day)
        if since_day > until_day:
            errors["until"] = "Must be on or after the first day."
        else:
            try:
                backfill.check(rt(), db(), rule, since, until, include_store_api)
            except ValidationError as exc:
                errors = flat_errors(exc.messages)
    if not errors:
        action = request.form.get("action")
        if action == "start":
            try:
                task = backfill.start(rt(), db(), rule, since, until, include_store_api)
            except tasks.TaskNotQueued as exc:
                flash(f"The backfill could not start: {exc.task.message} Try again in a few seconds.", "error")
            else:
                return redirect(url_for("web.rule_backfill_task", rule_id=rule.id, task_id=task.id))
        if action == "preview" and include_store_api:
            # Counting what the store's API adds takes as long as reading it: the worker does it, this page follows.
            try:
                task = backfill.start_preview(rt(), db(), rule, since, until)
            except tasks.TaskNotQueued as exc:
                flash(f"The preview could not start: {exc.task.message} Try again in a few seconds.", "error")
            else:
                return redirect(_preview_url(rule, task), code=303)
        elif preview_task is not None:
            if preview_task.status == "succeeded" and preview_task.result:
                counts = preview_task.result  # the stored events' counts plus the API's (Preview.as_result)
        else:
            counts = backfill.preview(rt(), db(), rule, since, until)
    # Reloaded by the browser (no script) while the worker reads, unless the form has errors to fix first.
    preview_active = preview_task is not None and preview_task.status in tasks.TASK_ACTIVE_STATES
    response = make_response(
        render_template(
            "rule_backfill.html",
            rule=rule,
            row=rule_rows([rule])[0],
            since=since_day.isoformat() if since_day else form.get("since", ""),
            until=until_day.isoformat() if until_day else form.get("until", ""),
            today=today.isoformat(),
            errors=errors,
            counts=counts,
            store_api=store_api,
            store_api_apps=sorted({rt().registry.apps[i.app].name for i in store_api}),
            include_store_api=include_store_api,
            preview_task=preview_task,
            preview_active=preview_active,
            reload_every=RELOAD_EVERY,
            running=tasks.active(db(), rule.marketplace_id, backfill.KIND, rule.id),
        ),
        422 if errors else 200,
    )
    if preview_active and not errors:
        response.headers["Refresh"] = str(RELOAD_EVERY)
    return response


@bp.route("/rules/<int:rule_id>/backfill/preview/<int:task_id>/cancel", methods=["POST"])
@owner_only
def cancel_rule_backfill_preview(rule_id, task_id):
    rule = owned(Rule, rule_id)
    task = _preview_task_of(rule, task_id)
    if task.status in tasks.TASK_ACTIVE_STATES:
        tasks.cancel(rt(), db(), task)
    return redirect(_preview_url(rule, task))


def _task_of(rule_id: int, task_id: int) -> tuple[Rule, Task]:
    rule, task = owned(Rule, rule_id), owned(Task, task_id)
    if task.kind != backfill.KIND or task.target_id != rule.id:
        abort(404)
    return rule, task


@bp.route("/rules/<int:rule_id>/backfill/<int:task_id>")
def rule_backfill_task(rule_id, task_id):
    rule, task = _task_of(rule_id, task_id)
    summary = backfill.runs_summary(db(), task)
    left = summary["queued"] + summary["running"]
    active = task.status in tasks.TASK_ACTIVE_STATES or left > 0
    response = make_response(
        render_template(
            "rule_backfill_task.html",
            rule=rule,
            row=rule_rows([rule])[0],
            task=task,
            runs=summary,
            final=summary["succeeded"] + summary["skipped"] + summary["failed"],
            total=sum(summary.values()),
            active=active,
            cancellable=active and (summary["queued"] > 0 or task.status in tasks.TASK_ACTIVE_STATES),
            reload_every=RELOAD_EVERY,
        )
    )
    if active:
        response.headers["Refresh"] = str(RELOAD_EVERY)
    return response


@bp.route("/rules/<int:rule_id>/backfill/<int:task_id>/cancel", methods=["POST"])
@owner_only
def cancel_rule_backfill(rule_id, task_id):
    rule, task = _task_of(rule_id, task_id)
    backfill.cancel(rt(), db(), task)
    return redirect(url_for("web.rule_backfill_task", rule_id=rule.id, task_id=task.id))
