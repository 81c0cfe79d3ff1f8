"""Searching the log, shared by the REST API, the web UI and replays of "every failed entry like these"."""
from __future__ import annotations

from datetime import timezone

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from .models import Event, Product, Rule, Run

FILTERS = ("status", "trigger", "action", "product_id", "integration_id")


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
        like = f"%{text}%"
        query = query.outerjoin(Product, Product.id == Run.product_id).where(or_(
            func.lower(Run.email).like(like), func.lower(Run.trigger).like(like),
            func.lower(Run.action).like(like), func.lower(Run.reason).like(like),
            func.lower(Product.name).like(like), func.lower(Product.external_id).like(like),
        ))
    return query


def detail(session: Session, run: Run) -> dict:
    """What a log entry's detail view shows besides the run: the trigger payload and the rule's parameters."""
    event = session.get(Event, run.event_id)
    rule = session.get(Rule, run.rule_id) if run.rule_id else None
    return {"history": run.history or [], "payload": event.payload, "params": rule.params if rule else None}


def _aware(dt):
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
