"""Integrations → Logs: the capped log, searched with hookyard.logsearch and validated with the API's
query schema; entry details; Retry through hookyard.replay."""

from __future__ import annotations

import math
from datetime import date, timedelta

from flask import flash, g, redirect, render_template, request, url_for
from marshmallow import ValidationError
from sqlalchemy import func, select

from hookyard import logsearch, replay
from hookyard.logsearch import LogQuerySchema
from hookyard.models import RUN_STATES, Product, Run
from hookyard.requestctx import db_session as db
from hookyard.requestctx import owned
from hookyard.requestctx import runtime as rt
from hookyard.requestctx import store_id as marketplace_id

from .blueprint import bp, done, owner_only
from .forms import flat_errors
from .labels import action_label, describe_params, marketplace_integrations, trigger_label

PAGE_SIZE = 25
FILTER_NAMES = ("q", "status", "origin", "trigger", "action", "product_id", "integration_id")
# Why an entry exists, for people (the log's Origin filter and the mark beside an entry that is not an event's).
ORIGIN_LABELS = {
    "event": "From events",
    "test": "Rule tests",
    "backfill": "Backfills",
    "reconcile": "Reconciliation fixes",
}


def _filters(args) -> tuple[dict, dict, dict]:
    """(the form's values, the search filters, errors). Dates are whole days: ``until`` includes its day."""
    shown = {name: args.get(name, "").strip() for name in (*FILTER_NAMES, "since", "until")}
    given = {k: v for k, v in shown.items() if v and k in FILTER_NAMES}
    errors = {}
    for name, shift in (("since", 0), ("until", 1)):
        if shown[name]:
            try:
                given[name] = (date.fromisoformat(shown[name]) + timedelta(days=shift)).isoformat() + "T00:00:00+00:00"
            except ValueError:
                errors[name] = "Use a date such as 2026-11-25."
    try:
        filters = LogQuerySchema().load(given)
    except ValidationError as exc:
        errors.update(flat_errors(exc.messages))
        filters = {}
    return shown, filters, errors


@bp.route("/logs")
def logs():
    shown, filters, errors = _filters(request.args)
    query = logsearch.search(marketplace_id(), filters)
    total = db().scalar(select(func.count()).select_from(query.subquery())) if not errors else 0
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = min(max(1, request.args.get("page", 1, type=int) or 1), pages)
    runs = (
        []
        if errors
        else list(db().scalars(query.order_by(Run.log_seq.desc()).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)))
    )
    return render_template(
        "logs.html",
        tab="logs",
        runs=runs,
        shown=shown,
        errors=errors,
        total=total,
        page=page,
        pages=pages,
        choices=_choices(),
        statuses=RUN_STATES,
        origins=ORIGIN_LABELS,
        cap=rt().settings.log_cap,
        paging={k: v for k, v in shown.items() if v},
        retry_args={k: v for k, v in shown.items() if v and k != "status"},
        filters_set=len([k for k, v in shown.items() if v and k != "q"]),
    ), 422 if errors else 200


def _choices() -> dict:
    registry = rt().registry
    return {
        "triggers": sorted(((k, t.label) for k, t in registry.trigger_types.items()), key=lambda kv: kv[1]),
        "actions": sorted(
            {(a.key, a.label) for app in registry.apps.values() for a in app.actions}, key=lambda kv: kv[1]
        ),
        "products": list(
            db().scalars(
                select(Product).where(Product.marketplace_id == marketplace_id()).order_by(Product.name).limit(500)
            )
        ),
        "integrations": marketplace_integrations(),
    }


@bp.route("/logs/<int:entry_id>")
def log_entry(entry_id):
    """What the entry ran, as it was then (hookyard.snapshot); the rule, connection and product as they are now
    only to link to them or to say they are gone."""
    run = owned(Run, entry_id)
    extra = logsearch.detail(db(), run)
    current, ran = extra["current"], run.ran or {}
    action = (
        f"{ran['app_name']}: {ran['action_label']}"
        if ran.get("app_name") and ran.get("action_label")
        else action_label(run.app, run.action)
    )
    settings = ran.get("settings")
    if settings is None:  # not attempted yet: described with the connection's option names as they are now
        settings = describe_params(current["integration"], run.action, ran.get("params") or {})
    return render_template(
        "log_entry.html",
        tab="logs",
        run=run,
        ran=ran,
        current=current,
        deleted=extra["deleted"],
        trigger=trigger_label(run.trigger),
        action=action,
        settings=settings,
        history=extra["history"],
        payload=extra["payload"],
    )


@bp.route("/logs/<int:entry_id>/retry", methods=["POST"])
@owner_only
def retry_entry(entry_id):
    run = owned(Run, entry_id)
    try:
        replay.replay(rt(), db(), run, by=g.user.email)
    except replay.NotReplayable as exc:
        flash(str(exc), "error")
        return redirect(url_for("web.log_entry", entry_id=entry_id))
    return done(
        "Retry queued: the entry runs again with the rule's current settings.", "web.log_entry", {"entry_id": entry_id}
    )


@bp.route("/logs/retry", methods=["GET", "POST"])
@owner_only
def retry_matching():
    """GET asks first, saying how many failed entries the search matches; POST queues them again."""
    shown, filters, errors = _filters(request.values)
    if errors:
        flash("Fix the search before retrying: " + "; ".join(errors.values()), "error")
        return redirect(url_for("web.logs", **{k: v for k, v in shown.items() if v}))
    if request.method == "GET":
        failed = replay.replayable(marketplace_id(), filters)
        count = db().scalar(select(func.count()).select_from(failed.subquery()))
        kept = {k: v for k, v in shown.items() if v and k != "status"}
        return render_template(
            "logs_retry.html",
            tab="logs",
            count=count,
            kept=kept,
            limit=replay.MAX_BULK,
            described=_described(shown),
            back=url_for("web.logs", **kept),
        )
    retried = replay.replay_matching(rt(), db(), marketplace_id(), filters, by=g.user.email)
    return done(
        f"{len(retried)} failed entr{'y' if len(retried) == 1 else 'ies'} queued again.",
        "web.logs",
        {k: v for k, v in shown.items() if v and k != "status"},
    )


FILTER_LABELS = {
    "q": "Search",
    "origin": "Origin",
    "trigger": "Trigger",
    "action": "Action",
    "product_id": "Product",
    "integration_id": "Integration",
    "since": "From",
    "until": "To",
}


def _described(shown: dict) -> list[tuple[str, str]]:
    """The search as the confirmation shows it: each filter by its label, and choices by name rather than id."""
    choices = _choices()
    names = {
        "origin": ORIGIN_LABELS,
        "trigger": dict(choices["triggers"]),
        "action": dict(choices["actions"]),
        "product_id": {str(p.id): p.name or p.external_id for p in choices["products"]},
        "integration_id": {str(i.id): i.name for i in choices["integrations"]},
    }
    return [
        (label, names.get(key, {}).get(shown[key], shown[key]))
        for key, label in FILTER_LABELS.items()
        if shown.get(key)
    ]
