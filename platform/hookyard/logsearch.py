"""Searching the log, shared by the REST API, the web UI and replays of "every failed entry like these"."""

from __future__ import annotations

from datetime import timezone

from marshmallow import fields, validate
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from .models import RUN_ORIGINS, RUN_STATES, Event, Integration, Product, Rule, Run
from .schema_policy import BaseSchema, id_field

FILTERS = ("status", "origin", "trigger", "action", "product_id", "integration_id")


class LogQuerySchema(BaseSchema):
    """The search's query, as the API's query string and the web UI's filter form both send it."""

    q = fields.String(metadata={"description": "Search email, product (id or name), trigger, action and reason."})
    status = fields.String(validate=validate.OneOf(RUN_STATES))
    origin = fields.String(
        validate=validate.OneOf(RUN_ORIGINS),
        metadata={"description": "Why the entries exist: " + " | ".join(RUN_ORIGINS) + "."},
    )
    trigger = fields.String()
    action = fields.String()
    product_id = id_field()
    integration_id = id_field()
    since = fields.DateTime(metadata={"description": "Created at or after (ISO 8601)."})
    until = fields.DateTime(metadata={"description": "Created before (ISO 8601)."})


def search(marketplace_id: int, filters: dict) -> Select:
    """Runs of a marketplace matching ``filters`` (the keys of FILTERS, ``since``, ``until`` and ``q``);
    order it by ``Run.log_seq.desc()`` for newest first."""
    query = select(Run).where(Run.marketplace_id == marketplace_id)
    for name in FILTERS:
        if filters.get(name) is not None:
            query = query.where(getattr(Run, name) == filters[name])
    if filters.get("since"):
        query = query.where(Run.created_at >= _aware(filters["since"]))
    if filters.get("until"):
        query = query.where(Run.created_at < _aware(filters["until"]))
    text = (filters.get("q") or "").strip().lower()
    if text:
        # The product as the entry recorded it: no join, so nothing of another store's (or of a product
        # deleted since) can make an entry match.
        like = f"%{text}%"
        query = query.where(
            or_(
                func.lower(Run.email).like(like),
                func.lower(Run.trigger).like(like),
                func.lower(Run.action).like(like),
                func.lower(Run.reason).like(like),
                func.lower(Run.product_name).like(like),
                func.lower(Run.product_external_id).like(like),
            )
        )
    return query


def detail(session: Session, run: Run) -> dict:
    """What a log entry's detail view shows besides the run: the trigger payload, the rule's current parameters
    (None once it is deleted) and which of the objects it names are gone. Every row is read within the entry's
    own store: an id that names another store's row reads as deleted."""
    event = session.get(Event, run.event_id) if run.event_id is not None else None
    if event is not None and event.marketplace_id != run.marketplace_id:
        event = None  # never another store's payload, whatever the id names
    current = {
        "rule": _own(session, Rule, run.rule_id, run),
        "integration": _own(session, Integration, run.integration_id, run),
        "product": _own(session, Product, run.product_id, run),
    }
    rule = current["rule"]
    return {
        "history": run.history or [],
        # A test of a trigger's example names no stored event: its run kept the payload it ran with.
        "payload": event.payload if event is not None else (run.ran or {}).get("payload") or {},
        "params": rule.params if rule else None,
        "deleted": [name for name, row in current.items() if row is None and getattr(run, f"{name}_id")],
        "current": current,
    }


def _own(session: Session, model, object_id: int | None, run: Run):
    row = session.get(model, object_id) if object_id else None
    return row if row is not None and row.marketplace_id == run.marketplace_id else None


def _aware(dt):
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
