"""Deliveries: bodies posted to a connection's inbound URL (hookyard.inbound), stored first, then turned into events.

The receiver stores each delivery as ``received`` and answers at once: nothing a sender posts is lost to a busy
queue, a slow remote or a plugin bug. The worker then processes it (``process``, an RQ job taking the delivery's
id): a redelivery is recognised (the app's identity of the delivery, or an identical body within the app's
redelivery window) and marked ``duplicate``; otherwise the app's ``Inbound.handle`` makes events of it, recorded
through the same path as ``POST /api/v1/events`` (hookyard.emit.record) in the same transaction as the delivery's
outcome: ``mapped`` (with the events), ``duplicate`` (every event it names existed already), ``unmapped``,
``rejected`` or ``failed`` (a plugin bug).

A connection's deliveries are processed one at a time, oldest first, whichever worker runs which job: each step
locks the connection's row (SQLite's write lock does the same), and a job processes the oldest waiting delivery
of its connection until its own is done. Apps that keep history between deliveries (a subscription's failed
charges) rely on this order.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta

from marshmallow import ValidationError
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import emit, inbound, inputs, logformat, runtime
from .connections import full_config
from .contract import App, InboundContext, Rejected, Unmapped
from .jobqueue import CRASH_RETRY, FAILURE_TTL, REDIS_ERRORS, RESULT_TTL, not_waiting
from .models import MAX_ID, Delivery, Integration, PluginStateRecord, utcnow
from .runtime import Runtime

log = logging.getLogger(__name__)

TEXT_KEPT = 4096  # of a body that could not be read, shown to say why
REASON_LIMIT = 4000
STATE_LIMIT = 64 * 1024  # bytes of JSON per plugin state document
MAX_STEPS = 500  # deliveries one job processes for its connection before leaving the rest to their own jobs
SWEEP_BATCH = 200
FINISHED = ("mapped", "duplicate", "unmapped")  # an earlier delivery in one of these states makes a redelivery


class NotInbound(LookupError):
    """The connection's app receives no webhooks."""


def find(session: Session, marketplace_id: int, integration_id: int, delivery_id: int) -> Delivery | None:
    """The delivery, when it was received by this connection of this store; None otherwise (either way)."""
    found = session.get(Delivery, delivery_id) if 0 < delivery_id <= MAX_ID else None
    if found is None or found.integration_id != integration_id or found.marketplace_id != marketplace_id:
        return None
    return found


# --- receiving (in the web process) ------------------------------------------------------------------------


def receive(
    rt: Runtime, session: Session, integration: Integration, raw: bytes, mimetype: str
) -> tuple[Delivery, inbound.Unreadable | None]:
    """Stores what was posted, commits, and queues its processing. A body that cannot be read is stored as
    ``rejected`` and returned with why (the caller answers its status); everything else as ``received``."""
    problem = None
    app = rt.registry.apps.get(integration.app)
    secret_fields = app.inbound.secret_fields if app and app.inbound else ()
    delivery = Delivery(
        marketplace_id=integration.marketplace_id,
        integration_id=integration.id,
        app=integration.app,
        received_at=rt_now(rt),
        content_type=mimetype[:200],
        size=len(raw),
        status="received",
        events=[],
        attempts=0,
    )
    try:
        body = inbound.parse(raw, mimetype)
    except inbound.Unreadable as exc:
        problem = exc
        delivery.status, delivery.reason = "rejected", str(exc)[:REASON_LIMIT]
        delivery.text = inputs.storable(raw[:TEXT_KEPT].decode("utf-8", "replace"))
        delivery.processed_at = delivery.received_at
    else:
        delivery.body = inbound.mask(body, secret_fields)
        delivery.body_hash = _body_hash(delivery.body)
    session.add(delivery)
    session.commit()
    if delivery.status == "received":
        try:
            enqueue(rt, delivery)
        except REDIS_ERRORS as exc:  # stored: the sweep queues it once Redis is back
            log.error("delivery %s stays received: Redis unreachable (%s)", delivery.id, exc.__class__.__name__)
    return delivery, problem


def rt_now(rt: Runtime) -> datetime:
    """Now, as the runtime tells it (tests set ``rt.clock`` to receive deliveries days apart)."""
    clock = getattr(rt, "clock", None)
    return clock() if clock else utcnow()


def _body_hash(body) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def job_id(delivery: Delivery) -> str:
    # One per processing attempt: a reprocess never collides with the job record of the first.
    return f"delivery-{delivery.id}-{delivery.attempts + 1}"


def enqueue(rt: Runtime, delivery: Delivery) -> None:
    # On the shard of its connection, like that connection's runs.
    shard = delivery.integration_id % rt.settings.queue_shards
    queue = Queue(f"{rt.settings.queue_name}-{shard}", connection=rt.redis, serializer=JSONSerializer)
    queue.enqueue(
        "hookyard.deliveries.process",
        delivery.id,
        job_id=job_id(delivery),
        job_timeout=rt.settings.job_timeout,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        retry=CRASH_RETRY,
    )


def reprocess(rt: Runtime, session: Session, delivery: Delivery) -> Delivery:
    """Processes the delivery again (after a mapping was fixed or a plugin upgraded). Events it made before are
    found again, not made twice. Commits; a delivery still waiting is left as it is."""
    if delivery.status != "received":
        delivery.status, delivery.reason, delivery.duplicate_of = "received", None, None
        session.commit()
        try:
            enqueue(rt, delivery)
        except REDIS_ERRORS as exc:
            log.error("delivery %s stays received: Redis unreachable (%s)", delivery.id, exc.__class__.__name__)
    return delivery


# --- processing (in the worker) ----------------------------------------------------------------------------


def process(delivery_id: int) -> str:
    """The job: processes the connection's waiting deliveries, oldest first, until this one is done."""
    with logformat.ids(delivery_id=delivery_id):  # on every line logged while it is processed
        return _process(delivery_id)


def _process(delivery_id: int) -> str:
    rt = runtime.current()
    for _ in range(MAX_STEPS):
        with rt.db.session() as session:
            mine = session.get(Delivery, delivery_id)
            if mine is None:
                return "gone"  # its connection was deleted, or the cap trimmed it
            if mine.status != "received":
                return mine.status
            head = session.scalar(
                select(Delivery)
                .where(Delivery.integration_id == mine.integration_id, Delivery.status == "received")
                .order_by(Delivery.id)
                .limit(1)
            )
            integration = session.get(Integration, head.integration_id)
            app = rt.registry.apps.get(integration.app)
            config = full_config(rt, integration) if app else {}
            body = head.body or {}
            session.commit()  # no transaction stays open while the app asks its remote
        looked_up = _look_up(app, config, body)
        with rt.db.session() as session:
            runs = _step(rt, session, head.id, looked_up)
            session.commit()
        emit.enqueue_runs(rt, runs)
    return "left for later"


def _look_up(app: App | None, config: dict, body: dict) -> dict:
    if app is None or app.inbound is None or app.inbound.lookup is None:
        return {}
    try:
        return dict(app.inbound.lookup(config, body) or {})
    except Exception:  # noqa: BLE001 (documented as never raising: a bug, and the delivery goes on without it)
        log.exception("app %s: its inbound lookup raised", app.key)
        return {}


def _step(rt: Runtime, session: Session, delivery_id: int, looked_up: dict) -> list:
    """Processes one delivery, if it is still waiting, under the connection's lock. Returns the runs to queue."""
    delivery = session.get(Delivery, delivery_id, populate_existing=True)
    if delivery is None:
        return []
    integration = session.scalar(select(Integration).where(Integration.id == delivery.integration_id).with_for_update())
    session.refresh(delivery)
    if integration is None or delivery.status != "received":
        return []  # another worker got there first
    delivery.attempts += 1
    delivery.processed_at = utcnow()
    runs = _outcome(rt, session, integration, delivery, looked_up)
    _trim(rt, session, delivery.integration_id)
    return runs


def _outcome(rt: Runtime, session: Session, integration: Integration, delivery: Delivery, looked_up: dict) -> list:
    """Decides what becomes of the delivery (its status, reason and events). Returns the runs to queue."""
    app = rt.registry.apps.get(integration.app)
    if app is None or app.inbound is None:
        _end(
            delivery,
            "failed",
            f"The {integration.app!r} app is not installed (or receives no webhooks) on this "
            "server; install it and process the delivery again.",
        )
        return []
    earlier = _redelivered(session, app, delivery)
    if isinstance(earlier, str):
        _end(delivery, "failed", earlier)
        return []
    if earlier is not None:
        original = earlier.duplicate_of or earlier.id
        delivery.duplicate_of = original
        when = f"{earlier.received_at:%Y-%m-%d %H:%M:%S}"
        _end(
            delivery,
            "duplicate",
            f"The same delivery as #{original} (received {when} UTC): nothing new was made of it.",
        )
        return []
    before = {item.get("event_id") for item in delivery.events or []}
    notes: list[str] = []
    try:
        with session.begin_nested():  # the handler's state writes and the events, or none of them
            made = _handle(rt, session, integration, app, delivery, looked_up, notes, before)
    except (Unmapped, Rejected) as exc:
        _end(delivery, "unmapped" if isinstance(exc, Unmapped) else "rejected", exc.reason, notes)
        return []
    except _InvalidEvent as exc:
        _end(delivery, "rejected", str(exc), notes)
        return []
    except Exception as exc:  # a plugin bug: shown on the delivery, traceback in the worker's log
        log.exception("app %s failed to handle delivery %s", app.key, delivery.id)
        _end(
            delivery,
            "failed",
            f"The {app.name} plugin failed while handling it ({exc.__class__.__name__}); the "
            "worker's log has the details. Process it again once that is fixed.",
            notes,
        )
        return []
    delivery.events = [item for item, _ in made]
    runs = [run for _, emitted in made if emitted.created for run in emitted.runs]
    all_repeated = made and all(item["duplicate"] for item, _ in made)
    if not made:
        _end(delivery, "mapped", "It made no event." + (" " + " ".join(notes) if notes else ""))
    elif all_repeated:
        ids = ", ".join(f"#{item['event_id']}" for item, _ in made)
        _end(
            delivery, "duplicate", f"Every event it names was received before (event {ids}): nothing was queued.", notes
        )
    else:
        _end(delivery, "mapped", None, notes)
    return runs


class _InvalidEvent(ValueError):
    pass


def _handle(
    rt: Runtime,
    session: Session,
    integration: Integration,
    app: App,
    delivery: Delivery,
    looked_up: dict,
    notes: list[str],
    before: set,
) -> list:
    ctx = InboundContext(
        delivery_id=delivery.id,
        body=delivery.body or {},
        received_at=delivery.received_at,
        config=full_config(rt, integration),
        info=integration.info or {},
        looked_up=looked_up,
        state=StateStore(session, integration.marketplace_id, app.key),
        marketplace_id=integration.marketplace_id,
        integration_id=integration.id,
        note=lambda text: notes.append(str(text)[:500]),
    )
    made = []
    for i, event in enumerate(app.inbound.handle(ctx)):
        try:
            emitted = emit.record(
                rt,
                session,
                integration.marketplace_id,
                event.trigger,
                dict(event.payload),
                identity=event.identity,
                fallback_identity=f"delivery:{delivery.id}:{i}",
            )
        except emit.UnknownTrigger:
            raise _InvalidEvent(f"The {app.name} plugin made an event of an unknown trigger {event.trigger!r}.")
        except ValidationError as exc:
            raise _InvalidEvent(f"Its {event.trigger} event is not valid: {exc.messages}") from None
        # An event this delivery made itself the first time (a reprocess) is not a redelivery.
        repeated = not emitted.created and emitted.event.id not in before
        made.append(
            (
                {
                    "event_id": emitted.event.id,
                    "trigger": event.trigger,
                    "note": event.note[:500],
                    "duplicate": repeated,
                },
                emitted,
            )
        )
    return made


def _redelivered(session: Session, app: App, delivery: Delivery):
    """The earlier delivery this one repeats, None, or a message when the app's identity function failed."""
    identity = None
    if app.inbound.identity is not None:
        try:
            identity = app.inbound.identity(delivery.body or {})
        except Exception as exc:  # noqa: BLE001
            log.exception("app %s: its inbound identity raised for delivery %s", app.key, delivery.id)
            return f"The {app.name} plugin failed while reading the delivery's identity ({exc.__class__.__name__})."
    same = select(Delivery).where(
        Delivery.integration_id == delivery.integration_id, Delivery.id < delivery.id, Delivery.status.in_(FINISHED)
    )
    if identity:
        delivery.identity = hashlib.sha256(f"{app.key}\0{identity}".encode()).hexdigest()
        return session.scalar(same.where(Delivery.identity == delivery.identity).order_by(Delivery.id).limit(1))
    delivery.identity = None
    window = app.inbound.redelivery_window()
    return session.scalar(
        same.where(
            Delivery.identity.is_(None),
            Delivery.body_hash == delivery.body_hash,
            Delivery.received_at >= delivery.received_at - window,
        )
        .order_by(Delivery.id.desc())
        .limit(1)
    )


def _end(delivery: Delivery, status: str, reason: str | None, notes: list[str] = ()) -> None:
    text = " ".join(part for part in [reason or "", *notes] if part) or None
    delivery.status, delivery.reason = status, text[:REASON_LIMIT] if text else None
    if status not in ("mapped", "duplicate"):
        delivery.events = []


def _trim(rt: Runtime, session: Session, integration_id: int) -> None:
    """Keeps the newest log_cap deliveries of the connection (as the log keeps its newest entries)."""
    boundary = session.scalar(
        select(Delivery.id)
        .where(Delivery.integration_id == integration_id)
        .order_by(Delivery.id.desc())
        .offset(rt.settings.log_cap)
        .limit(1)
    )
    if boundary is not None:
        session.execute(
            delete(Delivery)
            .where(Delivery.integration_id == integration_id, Delivery.id <= boundary, Delivery.status != "received")
            .execution_options(synchronize_session=False)
        )


class StateStore:
    """contract.PluginState on the plugin_state table, inside the delivery's transaction."""

    def __init__(self, session: Session, marketplace_id: int, app: str):
        self.session, self.marketplace_id, self.app = session, marketplace_id, app

    def _row(self, key: str) -> PluginStateRecord | None:
        return self.session.scalar(
            select(PluginStateRecord)
            .where(
                PluginStateRecord.marketplace_id == self.marketplace_id,
                PluginStateRecord.app == self.app,
                PluginStateRecord.key == key,
            )
            .with_for_update()
        )

    def get(self, key: str) -> dict | None:
        row = self._row(str(key)[:200])
        return json.loads(json.dumps(row.value)) if row is not None else None  # a copy the plugin may change

    def set(self, key: str, value: dict) -> None:
        if not isinstance(value, dict):
            raise TypeError("plugin state is a dict")
        encoded = json.dumps(value)  # raises TypeError for what JSON cannot hold
        if len(encoded) > STATE_LIMIT:
            raise ValueError(f"plugin state {key!r} is {len(encoded)} bytes; at most {STATE_LIMIT}")
        key = str(key)[:200]
        row = self._row(key)
        if row is not None:
            row.value = json.loads(encoded)
            return
        try:
            with self.session.begin_nested():
                self.session.add(
                    PluginStateRecord(
                        marketplace_id=self.marketplace_id, app=self.app, key=key, value=json.loads(encoded)
                    )
                )
        except IntegrityError:  # another connection of the same store wrote it first
            self._row(key).value = json.loads(encoded)


# --- recovery ----------------------------------------------------------------------------------------------


def sweep(rt: Runtime) -> int:
    """Run by every worker with hookyard.sweeper.sweep: a delivery still ``received`` after a sweep interval whose job
    is not in Redis (Redis was down when it arrived, or restarted empty) is queued again."""
    due = utcnow() - timedelta(seconds=rt.settings.sweep_interval)
    requeued = 0
    with rt.db.session() as session:
        waiting = list(
            session.scalars(
                select(Delivery)
                .where(Delivery.status == "received", Delivery.received_at < due)
                .order_by(Delivery.id)
                .limit(SWEEP_BATCH)
            )
        )
        for delivery, lost in zip(waiting, not_waiting(rt, [job_id(d) for d in waiting]), strict=True):
            if lost:
                log.warning("delivery %s was received but its job is not queued: enqueueing it again", delivery.id)
                enqueue(rt, delivery)
                requeued += 1
    return requeued
