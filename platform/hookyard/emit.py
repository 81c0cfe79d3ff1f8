"""Emit: validate against the trigger's schema, persist the event, match rules, create runs, enqueue."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from marshmallow import ValidationError
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import inputs, logcap, snapshot
from .contract import TriggerType
from .jobqueue import REDIS_ERRORS, enqueue_run, run_job_id
from .metrics import counters
from .models import Event, Integration, Marketplace, Product, Rule, Run, utcnow
from .runtime import Runtime

log = logging.getLogger(__name__)


class UnknownTrigger(ValueError):
    pass


@dataclass
class Emitted:
    event: Event
    created: bool  # False when an Idempotency-Key or the trigger's dedupe key repeated an earlier event
    runs: list[Run]


def validate_payload(trigger: TriggerType, payload) -> dict:
    """Loads the payload with the trigger's schema; raises ValidationError with field-level messages."""
    if not isinstance(payload, dict):
        raise ValidationError({"_schema": ["Must be an object."]})
    # Whatever the plugin's schema lets through, and whoever calls: nesting, text and numbers the database can
    # store (hookyard.inputs), before the schema walks it; then the instants the schema parsed (any offset).
    inputs.check(payload)
    data = trigger.payload_schema().load(payload)
    inputs.check(data)
    if trigger.product_scoped and not (data.get("product") or {}).get("id"):
        raise ValidationError({"product": {"id": ["Required for this trigger."]}})
    _check_delay(trigger, data.get("occurred_at"))
    return data


def _check_delay(trigger: TriggerType, occurred_at) -> None:
    """A delayed trigger's runs are due at occurred_at + delay (see emit): that instant must exist too."""
    if not trigger.delay or not isinstance(occurred_at, datetime):
        return
    try:
        due = occurred_at + trigger.delay
        if due.tzinfo is not None:
            due.astimezone(timezone.utc)
    except OverflowError:
        hours = trigger.delay.total_seconds() / 3600
        raise ValidationError(
            {
                "occurred_at": [
                    f"Too late for this trigger: its rules run {hours:g} h after it, which would be after "
                    "9999-12-31T23:59:59Z, the last instant Hookyard can store."
                ]
            }
        ) from None


def matching_rules(
    session: Session, marketplace_id: int, trigger: str, product_id: int | None
) -> list[tuple[Rule, str | None, str | None]]:
    """(rule, app key, connection name). Served by ix_rules_match: the product's rules plus the global ones."""
    product_clause = Rule.product_id.is_(None)
    if product_id is not None:
        product_clause = or_(Rule.product_id == product_id, Rule.product_id.is_(None))
    return list(
        session.execute(
            select(Rule, Integration.app, Integration.name)
            .outerjoin(
                Integration,
                (Integration.id == Rule.integration_id) & (Integration.marketplace_id == Rule.marketplace_id),
            )
            .where(
                Rule.marketplace_id == marketplace_id, Rule.trigger == trigger, Rule.enabled.is_(True), product_clause
            )
            .order_by(Rule.id)
        ).all()
    )


def product_for(session: Session, marketplace_id: int, product: dict | None) -> Product | None:
    if not product or not product.get("id"):
        return None
    external_id = str(product["id"])
    found = session.scalar(
        select(Product).where(Product.marketplace_id == marketplace_id, Product.external_id == external_id)
    )
    if found is None:
        # A sale of a product we have never seen: create it so merchants can attach rules to it.
        found = Product(
            marketplace_id=marketplace_id, external_id=external_id, name=product.get("name") or "", auto_created=True
        )
        try:
            with session.begin_nested():
                session.add(found)
        except IntegrityError:  # a concurrent first sale of the same product created it
            found = session.scalar(
                select(Product).where(Product.marketplace_id == marketplace_id, Product.external_id == external_id)
            )
    return found


def emit(
    rt: Runtime,
    session: Session,
    marketplace: Marketplace,
    trigger_key: str,
    payload,
    idempotency_key: str | None = None,
) -> Emitted:
    """Records the event and its runs, commits, then queues the runs (POST /api/v1/events)."""
    emitted = record(rt, session, marketplace.id, trigger_key, payload, idempotency_key)
    session.commit()
    if emitted.created:
        enqueue_runs(rt, emitted.runs)
    return emitted


def record(
    rt: Runtime,
    session: Session,
    marketplace_id: int,
    trigger_key: str,
    payload,
    idempotency_key: str | None = None,
    identity: str | None = None,
    fallback_identity: str | None = None,
) -> Emitted:
    """Validates and writes the event and its runs in the session's transaction, without committing: the caller
    commits (with whatever else belongs to the same change, e.g. the delivery that made the event), then calls
    ``enqueue_runs``. ``identity`` replaces the trigger's dedupe_key (an inbound handler's InboundEvent.identity);
    ``fallback_identity`` is used when there is neither (the delivery and the event's place in it, so that processing
    a delivery again finds its events instead of making them twice).
    A repeated event (same Idempotency-Key or identity) is answered with the earlier event, counted as a duplicate.
    Raises UnknownTrigger, or ValidationError with field-level messages."""
    trigger = rt.registry.trigger_types.get(trigger_key)
    if trigger is None:
        raise UnknownTrigger(trigger_key)
    data = validate_payload(trigger, payload)

    dedupe = _hashed(trigger, identity) if identity else _dedupe_key(trigger, data)
    if dedupe is None and fallback_identity:
        dedupe = _hashed(trigger, fallback_identity)
    earlier = _earlier(session, marketplace_id, idempotency_key, dedupe)
    if earlier is not None:
        return _duplicate(session, earlier)

    product = product_for(session, marketplace_id, data.get("product"))
    occurred_at = data.get("occurred_at") or datetime.now(timezone.utc)
    email = ((data.get("customer") or {}).get("email") or "").strip().lower() or None
    event = Event(
        marketplace_id=marketplace_id,
        trigger=trigger.key,
        idempotency_key=idempotency_key,
        dedupe_key=dedupe,
        product_id=product.id if product else None,
        email=email,
        payload=trigger.payload_schema().dump(data),
        raw_payload=payload,
        occurred_at=occurred_at,
    )
    try:
        with session.begin_nested():
            session.add(event)
    except IntegrityError:
        # Another delivery of the same event won the race: answer with its event.
        return _duplicate(session, _earlier(session, marketplace_id, idempotency_key, dedupe))

    rules = matching_rules(session, marketplace_id, trigger.key, event.product_id)
    runs = []
    not_before = occurred_at + trigger.delay if trigger.delay else None
    first_seq = logcap.reserve_log_seqs(session, marketplace_id, len(rules)) if rules else 0
    for i, (rule, app_key, integration_name) in enumerate(rules):
        runs.append(
            Run(
                marketplace_id=marketplace_id,
                event_id=event.id,
                rule_id=rule.id,
                log_seq=first_seq + i,
                trigger=trigger.key,
                app=app_key,
                action=rule.action,
                integration_id=rule.integration_id,
                product_id=event.product_id,
                email=email,
                status="queued",
                product_name=product.name if product else None,
                product_external_id=product.external_id if product else None,
                ran=snapshot.planned(rt.registry, rule, app_key, integration_name, snapshot.product_name(product)),
                job_id=run_job_id(event.id, rule.id),
                dispatches=1,
                not_before=not_before,
                history=[],
            )
        )
    session.add_all(runs)
    event.matched_rules = len(runs)
    counters.event_accepted(rt, session, event)  # counted when the caller's transaction commits, if it does
    # No trim here: new entries are unfinished, and every run trims the log when it finishes.
    session.flush()
    return Emitted(event, True, runs)


def enqueue_runs(rt: Runtime, runs: list[Run]) -> None:
    # After the commit, so a worker never picks up a run the database does not have yet.
    for run in runs:
        try:
            enqueue_run(rt, run)
        except REDIS_ERRORS as exc:
            log.error("run %s stays queued: Redis unreachable (%s)", run.id, exc.__class__.__name__)


def _dedupe_key(trigger: TriggerType, data: dict) -> str | None:
    natural = trigger.dedupe_key(data) if trigger.dedupe_key else None
    return _hashed(trigger, natural) if natural else None


def _hashed(trigger: TriggerType, natural: str) -> str:
    # Hashed with the trigger: fixed length whatever the ids, and one trigger's key never meets another's.
    return hashlib.sha256(f"{trigger.key}\0{natural}".encode()).hexdigest()


def _earlier(session: Session, marketplace_id: int, idempotency_key: str | None, dedupe: str | None) -> Event | None:
    same = [Event.idempotency_key == idempotency_key] if idempotency_key else []
    same += [Event.dedupe_key == dedupe] if dedupe else []
    if not same:
        return None
    return session.scalar(
        select(Event).where(Event.marketplace_id == marketplace_id, or_(*same)).order_by(Event.id).limit(1)
    )


def _duplicate(session: Session, earlier: Event) -> Emitted:
    """Answers a repeated delivery with the first event, and counts it (suppressed, never lost from view)."""
    session.execute(
        update(Event)
        .where(Event.id == earlier.id)
        .values(duplicates=Event.duplicates + 1, last_duplicate_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.refresh(earlier)
    log.info("event %s delivered again: suppressed as a duplicate (%s so far)", earlier.id, earlier.duplicates)
    return Emitted(earlier, False, _runs_of(session, earlier))


def _runs_of(session: Session, event: Event) -> list[Run]:
    return list(session.scalars(select(Run).where(Run.event_id == event.id).order_by(Run.id)))
