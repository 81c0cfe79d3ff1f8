"""A connection's delivery log: what its inbound URL received (hookyard.deliveries), what became of each delivery,
links to the log entries of the events it made, and Process again (hookyard.deliveries.reprocess, as the API's)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from sqlalchemy import func, select

from hookyard import deliveries as delivery_service
from hookyard.models import DELIVERY_STATES, Delivery, Event, Integration, Run
from hookyard.requestctx import db_session as db
from hookyard.requestctx import owned
from hookyard.requestctx import runtime as rt
from hookyard.requestctx import store_id as marketplace_id

from .blueprint import bp, done, owner_only
from .labels import trigger_label

PAGE_SIZE = 25
# Seconds between reloads of a delivery's page while it waits for a worker (as a task's page does).
WAITING_RELOAD = 2
# What each status means, for the filter's legend and the detail page.
MEANINGS = {
    "mapped": "made the events listed (or, when none is listed, the reason says why it made none)",
    "duplicate": "a redelivery of an earlier delivery, or every event it names had been received before",
    "unmapped": "the app does not know this kind of notification: kept, and can be processed again once mapped",
    "rejected": "unusable as it is (the reason says why)",
    "failed": "the plugin failed while handling it: process it again once that is fixed",
    "received": "waiting for a worker to process it",
}


@dataclass
class MadeEvent:
    """One event a delivery made, with the log entries (runs) it started, as the page links them."""

    event_id: int
    trigger: str
    note: str
    duplicate: bool
    event: Event | None = None  # None once the log cap has trimmed it
    runs: list[Run] = field(default_factory=list)


def _made(items: list[Delivery]) -> dict[int, list[MadeEvent]]:
    """The events each delivery made, by delivery id, with their runs: two queries for the whole page, and only
    within the signed-in store whatever ids a delivery's record holds."""
    listed = {d.id: [item for item in d.events or [] if isinstance(item, dict) and item.get("event_id")] for d in items}
    ids = {item["event_id"] for made in listed.values() for item in made}
    events = (
        {
            e.id: e
            for e in db().scalars(select(Event).where(Event.id.in_(ids), Event.marketplace_id == marketplace_id()))
        }
        if ids
        else {}
    )
    runs: dict[int, list[Run]] = {}
    if ids:
        for run in db().scalars(
            select(Run).where(Run.event_id.in_(ids), Run.marketplace_id == marketplace_id()).order_by(Run.id)
        ):
            runs.setdefault(run.event_id, []).append(run)
    return {
        delivery_id: [
            MadeEvent(
                event_id=item["event_id"],
                trigger=trigger_label(item.get("trigger") or ""),
                note=item.get("note") or "",
                duplicate=bool(item.get("duplicate")),
                event=events.get(item["event_id"]),
                runs=runs.get(item["event_id"], []),
            )
            for item in made
        ]
        for delivery_id, made in listed.items()
    }


@bp.route("/integrations/<int:integration_id>/deliveries")
def deliveries(integration_id):
    """Newest first, paged, filtered by status; a status that is not one answers 422 with the filter marked."""
    integration = owned(Integration, integration_id)
    app = rt().registry.apps.get(integration.app)
    status = request.args.get("status", "").strip()
    errors = {}
    if status and status not in DELIVERY_STATES:
        errors["status"] = f"Choose one of: {', '.join(DELIVERY_STATES)}."
    query = select(Delivery).where(
        Delivery.integration_id == integration.id, Delivery.marketplace_id == marketplace_id()
    )
    if status and not errors:
        query = query.where(Delivery.status == status)
    total = 0 if errors else db().scalar(select(func.count()).select_from(query.subquery()))
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = min(max(1, request.args.get("page", 1, type=int) or 1), pages)
    items = (
        []
        if errors
        else list(db().scalars(query.order_by(Delivery.id.desc()).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)))
    )
    return render_template(
        "deliveries.html",
        integration=integration,
        app=app,
        items=items,
        made=_made(items),
        status=status,
        statuses=DELIVERY_STATES,
        meanings=MEANINGS,
        errors=errors,
        total=total,
        page=page,
        pages=pages,
        cap=rt().settings.log_cap,
        paging={"status": status} if status and not errors else {},
    ), 422 if errors else 200


def _delivery(integration_id: int, delivery_id: int) -> tuple[Integration, Delivery]:
    integration = owned(Integration, integration_id)
    found = delivery_service.find(db(), marketplace_id(), integration.id, delivery_id)
    if found is None:
        abort(
            404,
            description=f"“{integration.name}” has no delivery {delivery_id} (the log keeps the newest "
            f"{rt().settings.log_cap:,}).",
        )
    return integration, found


@bp.route("/integrations/<int:integration_id>/deliveries/<int:delivery_id>")
def delivery(integration_id, delivery_id):
    integration, item = _delivery(integration_id, delivery_id)
    app = rt().registry.apps.get(integration.app)
    # Pretty-printed here rather than with |tojson, which escapes <, > and & as \u003c… (a body's URLs have &).
    body = json.dumps(item.body, indent=2, ensure_ascii=False) if item.body is not None else None
    waiting = item.status == "received"
    response = make_response(
        render_template(
            "delivery.html",
            integration=integration,
            app=app,
            delivery=item,
            body=body,
            made=_made([item])[item.id],
            meanings=MEANINGS,
            waiting=waiting,
            reload_every=WAITING_RELOAD,
        )
    )
    if waiting:  # reloads itself until a worker has processed it (no script: the CSP allows none inline)
        response.headers["Refresh"] = str(WAITING_RELOAD)
    return response


@bp.route("/integrations/<int:integration_id>/deliveries/<int:delivery_id>/reprocess", methods=["POST"])
@owner_only
def reprocess_delivery(integration_id, delivery_id):
    integration, item = _delivery(integration_id, delivery_id)
    back = {"integration_id": integration.id, "delivery_id": item.id}
    if item.body is None:
        flash(
            f"Delivery {item.id} could not be read ({item.reason}), so there is nothing to process. Fix the "
            "sender and let it deliver again.",
            "error",
        )
        return redirect(url_for("web.delivery", **back))
    if item.status == "received":
        return done(
            f"Delivery {item.id} is already queued: it is processed as soon as a worker is free.", "web.delivery", back
        )
    delivery_service.reprocess(rt(), db(), item)
    return done(
        f"Delivery {item.id} is queued to be processed again; this page shows what it became once a "
        "worker has done it. Events it made before are found again, not made twice.",
        "web.delivery",
        back,
    )
