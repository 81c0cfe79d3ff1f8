"""Emit: validate against the trigger's schema, persist the event, match rules, create runs, enqueue."""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from marshmallow import Schema, ValidationError
from sqlalchemy import bindparam, insert, or_, select, text, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import inputs, logcap, snapshot
from .contract import TriggerType
from .db import reading
from .jobqueue import REDIS_ERRORS, enqueue_run, run_job_id
from .metrics import counters
from .models import (
    CANCELLED,
    EVENT_SOURCES,
    ONCE_PER_EVENT_ORIGINS,
    Event,
    Integration,
    Marketplace,
    Product,
    Rule,
    Run,
    utcnow,
)
from .runtime import Runtime

log = logging.getLogger(__name__)

# Event.source: sent by the store (or an API client), or read from the store's API by a backfill.
DELIVERY, STORE_API = EVENT_SOURCES


class UnknownTrigger(ValueError):
    pass


@dataclass
class Emitted:
    event: Event
    created: bool  # False when an Idempotency-Key or the trigger's dedupe key repeated an earlier event
    runs: list[Run]


@functools.cache
def _schema_of(schema_class) -> Schema:
    return schema_class()


def payload_schema(trigger: TriggerType) -> Schema:
    """The trigger's payload schema, one instance per class for the process's life: building a marshmallow schema
    (its fields, its nested schemas) cost more than loading a payload with it, and load and dump do not change it."""
    return _schema_of(trigger.payload_schema)


def validate_payload(trigger: TriggerType, payload) -> dict:
    """Loads the payload with the trigger's schema; raises ValidationError with field-level messages."""
    if not isinstance(payload, dict):
        raise ValidationError({"_schema": ["Must be an object."]})
    # Whatever the plugin's schema lets through, and whoever calls: nesting, text and numbers the database can
    # store (hookyard.inputs), before the schema walks it; then the instants the schema parsed (any offset).
    inputs.check(payload)
    data = payload_schema(trigger).load(payload)
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


def _rules_for(product_clause):
    return (
        select(Rule, Integration.app, Integration.name)
        .outerjoin(
            Integration,
            (Integration.id == Rule.integration_id) & (Integration.marketplace_id == Rule.marketplace_id),
        )
        .where(
            Rule.marketplace_id == bindparam("mp"),
            Rule.trigger == bindparam("trigger"),
            Rule.enabled.is_(True),
            product_clause,
        )
    )


def _orm_rows(query):
    return select(Rule, Integration.app, Integration.name).from_statement(query)


# Built once: the statements of the intake path take bound values only (building one cost as much as running it).
# Two lookups in ix_rules_match, one per product_id: ``product_id = ? OR product_id IS NULL`` would walk every rule
# of the trigger (at 100,000 rules, 50 times slower).
_GLOBAL_RULES = _orm_rows(_rules_for(Rule.product_id.is_(None)))
_PRODUCT_AND_GLOBAL_RULES = _orm_rows(
    union_all(_rules_for(Rule.product_id == bindparam("product")), _rules_for(Rule.product_id.is_(None)))
)
_PRODUCT = select(Product).where(Product.marketplace_id == bindparam("mp"), Product.external_id == bindparam("ext"))


def matching_rules(
    session: Session, marketplace_id: int, trigger: str, product_id: int | None
) -> list[tuple[Rule, str | None, str | None]]:
    """(rule, app key, connection name), in rule order: the product's rules plus the global ones."""
    if product_id is None:
        rows = session.execute(_GLOBAL_RULES, {"mp": marketplace_id, "trigger": trigger}).all()
    else:
        params = {"mp": marketplace_id, "trigger": trigger, "product": product_id}
        rows = session.execute(_PRODUCT_AND_GLOBAL_RULES, params).all()
    return sorted(rows, key=lambda row: row[0].id)


def _known_product(session: Session, marketplace_id: int, product: dict | None) -> Product | None:
    if not product or not product.get("id"):
        return None
    return session.scalar(_PRODUCT, {"mp": marketplace_id, "ext": str(product["id"])})


def product_for(session: Session, marketplace_id: int, product: dict | None) -> Product | None:
    if not product or not product.get("id"):
        return None
    external_id = str(product["id"])
    found = _known_product(session, marketplace_id, product)
    if found is None:
        # A sale of a product we have never seen: create it so merchants can attach rules to it.
        found = Product(
            marketplace_id=marketplace_id, external_id=external_id, name=product.get("name") or "", auto_created=True
        )
        try:
            with session.begin_nested():
                session.add(found)
        except IntegrityError:  # a concurrent first sale of the same product created it
            found = session.scalar(_PRODUCT, {"mp": marketplace_id, "ext": external_id})
    return found


def emit(
    rt: Runtime,
    session: Session,
    marketplace: Marketplace,
    trigger_key: str,
    payload,
    idempotency_key: str | None = None,
) -> Emitted:
    """Records the event and its runs, commits, then queues the runs (POST /api/v1/events).

    Two transactions: the look-ups (an earlier event, the product, the matching rules) in one that only reads, then
    the writes. On SQLite every writing transaction holds the database's one write lock from its first statement to
    its commit, so the reads are kept out of it (a reader takes no lock in WAL mode) and the lock is held for the
    inserts only. What changed in between is caught by the constraints: a concurrent delivery of the same event
    fails the insert (IntegrityError), and the whole is then done again in one transaction, which finds the winner's
    event. A rule edited in between acts as if the event had come a moment earlier."""
    prepared = prepare(rt, trigger_key, payload, idempotency_key)
    try:
        reading(session)
        found = look_up(session, marketplace.id, prepared)
        session.commit()
        emitted = write(rt, session, marketplace.id, prepared, found, savepoint=False, count=False)
    except IntegrityError:
        session.rollback()
        found = look_up(session, marketplace.id, prepared)
        emitted = write(rt, session, marketplace.id, prepared, found, count=False)
    session.commit()
    if emitted.created:
        enqueue_runs(rt, emitted.runs, accepted=emitted.event)
    return emitted


@dataclass(frozen=True)
class Prepared:
    """An event's payload, validated, and the keys it is deduplicated by: what needs no database."""

    trigger: TriggerType
    payload: dict  # as sent
    data: dict  # as the trigger's schema loaded it
    idempotency_key: str | None
    dedupe: str | None


@dataclass
class Found:
    """What the event's write needs from the database, read before it."""

    earlier: Event | None
    product: Product | None  # None: no product, or one never seen (created by the write)
    rules: list | None  # matching_rules(); None when the product is new (matched by the write)


def prepare(
    rt: Runtime,
    trigger_key: str,
    payload,
    idempotency_key: str | None = None,
    identity: str | None = None,
    fallback_identity: str | None = None,
) -> Prepared:
    """Raises UnknownTrigger, or ValidationError with field-level messages."""
    trigger = rt.registry.trigger_types.get(trigger_key)
    if trigger is None:
        raise UnknownTrigger(trigger_key)
    data = validate_payload(trigger, payload)
    dedupe = _hashed(trigger, identity) if identity else _dedupe_key(trigger, data)
    if dedupe is None and fallback_identity:
        dedupe = _hashed(trigger, fallback_identity)
    return Prepared(trigger, payload, data, idempotency_key, dedupe)


def look_up(session: Session, marketplace_id: int, prepared: Prepared) -> Found:
    earlier = _earlier(session, marketplace_id, prepared.idempotency_key, prepared.dedupe)
    if earlier is not None:
        return Found(earlier, None, None)
    product = _known_product(session, marketplace_id, prepared.data.get("product"))
    has_product = bool((prepared.data.get("product") or {}).get("id"))
    if has_product and product is None:
        return Found(None, None, None)
    rules = matching_rules(session, marketplace_id, prepared.trigger.key, product.id if product else None)
    return Found(None, product, rules)


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
    prepared = prepare(rt, trigger_key, payload, idempotency_key, identity, fallback_identity)
    return write(rt, session, marketplace_id, prepared, look_up(session, marketplace_id, prepared))


def write(
    rt: Runtime,
    session: Session,
    marketplace_id: int,
    prepared: Prepared,
    found: Found,
    savepoint: bool = True,
    count: bool = True,
    source: str = DELIVERY,
) -> Emitted:
    """The event and its runs, or the earlier event counted as a duplicate. ``savepoint=False``: the caller has
    nothing else in the transaction and, on a concurrent duplicate's IntegrityError, rolls it all back.
    ``count=False``: the caller counts the new event for /metrics itself once committed (``enqueue_runs``).
    ``source``: Event.source; an event stored from the store's API (STORE_API) is adopted by its first delivery."""
    if found.earlier is not None:
        return _repeated(rt, session, marketplace_id, prepared, found.earlier, source, count)
    trigger, data, dedupe = prepared.trigger, prepared.data, prepared.dedupe
    product = found.product or product_for(session, marketplace_id, data.get("product"))
    occurred_at = data.get("occurred_at") or datetime.now(timezone.utc)
    email = ((data.get("customer") or {}).get("email") or "").strip().lower() or None
    rules = found.rules
    if rules is None:
        rules = matching_rules(session, marketplace_id, trigger.key, product.id if product else None)
    event_values = dict(
        matched_rules=len(rules),  # known before the insert: no UPDATE after it
        marketplace_id=marketplace_id,
        trigger=trigger.key,
        idempotency_key=prepared.idempotency_key,
        dedupe_key=dedupe,
        product_id=product.id if product else None,
        email=email,
        payload=payload_schema(trigger).dump(data),
        raw_payload=prepared.payload,
        occurred_at=occurred_at,
        source=source,
    )
    if not savepoint:
        # Alone in the transaction: inserted as Core statements, the rows' ids RETURNed, with Event and Run objects
        # outside the session for the caller to read (the ORM's unit of work was a quarter of an event's CPU).
        connection = session.connection()
        event = Event(id=connection.execute(_INSERT_EVENT, event_values).scalar_one(), **event_values)
    else:
        event = Event(**event_values)
        try:
            with session.begin_nested():
                session.add(event)
        except IntegrityError:
            # Another delivery of the same event won the race: answer with its event.
            earlier = _earlier(session, marketplace_id, prepared.idempotency_key, dedupe)
            return _repeated(rt, session, marketplace_id, prepared, earlier, source, count)

    run_values = _run_rows(rt, session, marketplace_id, event, trigger, product, rules)
    if not savepoint:
        ids = connection.execute(_INSERT_RUNS, run_values).scalars().all() if run_values else []
        runs = [Run(id=run_id, **values) for run_id, values in zip(ids, run_values, strict=True)]
    else:
        runs = [Run(**values) for values in run_values]
        session.add_all(runs)
    if count:
        counters.event_accepted(rt, session, event)  # counted when the caller's transaction commits, if it does
    # No trim here: new entries are unfinished, and every run trims the log when it finishes.
    session.flush()
    return Emitted(event, True, runs)


def _run_rows(
    rt: Runtime, session: Session, marketplace_id: int, event: Event, trigger: TriggerType, product, rules: list
) -> list[dict]:
    """The values of the event's new queued runs, one per (rule, app key, connection name), log numbers reserved."""
    not_before = event.occurred_at + trigger.delay if trigger.delay else None
    first_seq = logcap.reserve_log_seqs(session, marketplace_id, len(rules)) if rules else 0
    return [
        dict(
            marketplace_id=marketplace_id,
            event_id=event.id,
            rule_id=rule.id,
            log_seq=first_seq + i,
            trigger=trigger.key,
            app=app_key,
            action=rule.action,
            integration_id=rule.integration_id,
            product_id=event.product_id,
            email=event.email,
            status="queued",
            product_name=product.name if product else None,
            product_external_id=product.external_id if product else None,
            ran=snapshot.planned(rt.registry, rule, app_key, integration_name, snapshot.product_name(product)),
            job_id=run_job_id(event.id, rule.id),
            dispatches=1,
            not_before=not_before,
            history=[],
        )
        for i, (rule, app_key, integration_name) in enumerate(rules)
    ]


def insert_runs_once(session: Session):
    """INSERT of runs where a conflicting event or backfill run (uq_run_event_rule) skips its row, not the batch."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(Run.__table__).on_conflict_do_nothing(
        index_elements=["event_id", "rule_id"], index_where=text("origin IN ('event', 'backfill')")
    )


_INSERT_EVENT = insert(Event.__table__).returning(Event.__table__.c.id)
# Several rows in one statement (insertmanyvalues), their ids RETURNed in the order of the rows given.
_INSERT_RUNS = insert(Run.__table__).returning(Run.__table__.c.id, sort_by_parameter_order=True)


def enqueue_runs(rt: Runtime, runs: list[Run], accepted: Event | None = None) -> None:
    """The runs' jobs, after the commit, so a worker never picks up a run the database does not have yet; and
    ``accepted``, an event just committed, counted for /metrics. One round trip for all of them. With Redis
    unreachable the runs stay queued, and the sweeper enqueues them once it is back (the count is lost)."""
    if not runs and (accepted is None or not rt.settings.redis_url):
        return  # nothing to queue, and nowhere to count
    try:
        with rt.redis.pipeline() as pipe:
            for run in runs:
                enqueue_run(rt, run, pipeline=pipe)
            if accepted is not None:
                counters.count_accepted(rt, pipe, accepted.trigger)
            pipe.execute()
    except REDIS_ERRORS as exc:
        if runs:
            log.error(
                "run%s %s stay%s queued: Redis unreachable (%s)",
                "s" if len(runs) > 1 else "",
                ", ".join(str(run.id) for run in runs),
                "" if len(runs) > 1 else "s",
                exc.__class__.__name__,
            )
        else:
            counters.lost("events accepted", exc)


def _dedupe_key(trigger: TriggerType, data: dict) -> str | None:
    natural = trigger.dedupe_key(data) if trigger.dedupe_key else None
    return _hashed(trigger, natural) if natural else None


def _hashed(trigger: TriggerType, natural: str) -> str:
    # Hashed with the trigger: fixed length whatever the ids, and one trigger's key never meets another's.
    return hashlib.sha256(f"{trigger.key}\0{natural}".encode()).hexdigest()


def _earlier_by(*clauses):
    return (
        select(Event).where(Event.marketplace_id == bindparam("mp"), or_(*clauses)).order_by(Event.id).limit(1)
        if len(clauses) > 1
        else select(Event).where(Event.marketplace_id == bindparam("mp"), *clauses).order_by(Event.id).limit(1)
    )


_BY_KEY = Event.idempotency_key == bindparam("key")
_BY_DEDUPE = Event.dedupe_key == bindparam("dedupe")
_EARLIER = {(True, False): _earlier_by(_BY_KEY), (False, True): _earlier_by(_BY_DEDUPE)}
_EARLIER[True, True] = _earlier_by(_BY_KEY, _BY_DEDUPE)


def earlier(session: Session, marketplace_id: int, prepared: Prepared) -> Event | None:
    """The event received before with the prepared one's Idempotency-Key or identity, if any."""
    return _earlier(session, marketplace_id, prepared.idempotency_key, prepared.dedupe)


def _earlier(session: Session, marketplace_id: int, idempotency_key: str | None, dedupe: str | None) -> Event | None:
    if not idempotency_key and not dedupe:
        return None
    query = _EARLIER[bool(idempotency_key), bool(dedupe)]
    return session.scalar(query, {"mp": marketplace_id, "key": idempotency_key, "dedupe": dedupe})


def _repeated(
    rt: Runtime, session: Session, marketplace_id: int, prepared: Prepared, earlier: Event, source: str, count: bool
) -> Emitted:
    """An event received before: the first delivery of one a backfill read from the store's API adopts it (_adopt);
    anything else is a duplicate."""
    if source == DELIVERY and earlier.source == STORE_API:
        adopted = _adopt(rt, session, marketplace_id, prepared, earlier, count)
        if adopted is not None:
            return adopted
    return _duplicate(session, earlier)


def _adopt(
    rt: Runtime, session: Session, marketplace_id: int, prepared: Prepared, earlier: Event, count: bool
) -> Emitted | None:
    """The store's own delivery of an event a backfill read from its API before the delivery came (an order placed
    while the backfill read, or one SamCart delivers again once the server is reachable): the backfill ran one
    rule for it, and this delivery runs every other matching rule, as if it had come first. A rule that already ran
    for the event is not run again (uq_run_event_rule); one whose backfill run was cancelled before running runs
    now. The event keeps the delivered payload (what the store sent, not its reconstruction from the API). None
    when a concurrent delivery adopted it first: the conditional UPDATE lets one through (then a duplicate)."""
    claimed = session.execute(
        update(Event)
        .where(Event.id == earlier.id, Event.source == STORE_API)
        .values(
            source=DELIVERY,
            payload=payload_schema(prepared.trigger).dump(prepared.data),
            raw_payload=prepared.payload,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        return None
    # The columns read below (id, trigger, product, email, occurred_at) are not the ones the UPDATE changed.
    product = session.get(Product, earlier.product_id) if earlier.product_id is not None else None
    if product is not None and product.marketplace_id != marketplace_id:
        product = None  # never another store's row, whatever an id names
    ran: set[int] = set()
    cancelled: dict[int, tuple[int, int]] = {}  # rule id -> (run id, dispatches) of a backfill run cancelled unrun
    for run_id, rule_id, origin, status, reason, dispatches in session.execute(
        select(Run.id, Run.rule_id, Run.origin, Run.status, Run.reason, Run.dispatches).where(
            Run.event_id == earlier.id, Run.origin.in_(ONCE_PER_EVENT_ORIGINS)
        )
    ):
        ran.add(rule_id)
        if (origin, status, reason) == ("backfill", "skipped", CANCELLED):
            cancelled[rule_id] = (run_id, dispatches)
    rules = matching_rules(session, marketplace_id, earlier.trigger, earlier.product_id)
    fresh = [row for row in rules if row[0].id not in ran]
    revived = [row for row in rules if row[0].id in cancelled]
    # One reservation of log numbers for both: the new runs first, then the ones taken up again.
    rows = _run_rows(rt, session, marketplace_id, earlier, prepared.trigger, product, fresh + revived)
    if fresh:
        session.execute(insert_runs_once(session), rows[: len(fresh)])
    for values in rows[len(fresh) :]:
        run_id, dispatches = cancelled[values["rule_id"]]
        session.execute(
            update(Run)
            .where(Run.id == run_id, Run.status == "skipped", Run.reason == CANCELLED)
            .values(
                origin="event",
                task_id=None,
                status="queued",
                reason=None,
                finished_at=None,
                log_seq=values["log_seq"],
                ran=values["ran"],
                not_before=values["not_before"],
                dispatches=dispatches + 1,
                job_id=run_job_id(earlier.id, values["rule_id"], dispatches + 1),
            )
            .execution_options(synchronize_session=False)
        )
    made = len(fresh) + len(revived)
    if made:
        session.execute(
            update(Event)
            .where(Event.id == earlier.id)
            .values(matched_rules=Event.matched_rules + made)
            .execution_options(synchronize_session=False)
        )
    session.flush()
    runs = list(
        session.scalars(
            select(Run)
            .where(Run.event_id == earlier.id, Run.origin == "event", Run.status == "queued")
            .order_by(Run.id)
        )
    )
    session.refresh(earlier)
    if count:
        counters.event_accepted(rt, session, earlier)
    log.info(
        "event %s, read from the store's API, delivered: %s more rule%s run", earlier.id, made, "" if made == 1 else "s"
    )
    return Emitted(earlier, True, runs)


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
