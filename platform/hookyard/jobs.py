"""The job the worker runs for each (event, rule): ``run_rule``, taking only the run's id; what an attempt's
outcome does to its run (``record_outcome``: finished, or retried with backoff). The sweeper, which recovers runs
nothing would finish, is hookyard.sweeper."""

from __future__ import annotations

import logging
import os
import random
import threading
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from marshmallow import ValidationError
from rq.exceptions import ShutDownImminentException
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, aliased

from . import inputs, logcap, logformat, runtime, snapshot, usage
from .contract import Action, App, Deferred, Outcome, RunContext
from .jobqueue import REDIS_ERRORS, dispatch_again
from .metrics import counters
from .models import Event, Integration, Product, Rule, Run, utcnow
from .pacing import pacer
from .runtime import Runtime

log = logging.getLogger(__name__)


def run_rule(run_id: int) -> str:
    with logformat.ids(run_id=run_id):  # on every line logged while the run is processed
        return _run_rule(run_id)


def _run_rule(run_id: int) -> str:
    rt = runtime.current()
    with rt.db.session() as session:
        started = _claim(session, run_id)
        if started is None:
            # Someone else has it, it already finished, or the log cap trimmed it: never run twice.
            return "not claimed"
        # The lease lives until the outcome is committed: an attempt seen running without one is taken over by the
        # sweeper as dead, and a lease released before the commit would let a finished attempt's outcome be dropped
        # and its call made again. Its release goes with the run's counts, in one round trip as the job ends.
        with counters.batched(rt) as batch, Lease(rt, run_id, release_with=batch):
            return _attempt(rt, session, run_id, started)


def _attempt(rt: Runtime, session: Session, run_id: int, started: datetime) -> str:
    """The claimed attempt: its action run, its outcome (or its deferral) committed."""
    ran = None
    pending: list[usage.Count] = []  # the remote's counted calls, written with the outcome
    loaded = _load(session, run_id)  # held: the session's identity map keeps only what is referenced
    run = loaded[0] if loaded else None
    logformat.bind(event_id=run.event_id if run is not None else None)
    try:
        outcome, ran = _execute(rt, session, run, pending)
    except Deferred as deferred:
        outcome = deferred
    except ShutDownImminentException:
        # The worker was told to stop (a deploy: SIGTERM, then SIGKILL 30 s later) and this attempt outlasted
        # its grace (hookyard.worker): back on the queue for the next worker, not left running. Not counted
        # as an attempt; like any interrupted attempt, its remote call may have gone out (at least once).
        session.rollback()
        log.warning("run %s: handed back to the queue, its worker is stopping", run_id)
        outcome = Deferred(0, "handed back: the worker was stopping (a deploy or a restart) before it ended")
    except Exception as exc:  # our own failure after the claim must not leave the run "running"
        log.exception("run %s failed inside Hookyard", run_id)
        session.rollback()
        outcome = Outcome.failed(f"internal error: {exc.__class__.__name__}", retryable=True)
    if not _still_ours(session, run_id, started):
        log.warning(
            "run %s: an attempt finished after the sweeper had given it up (its worker looked dead); "
            "its outcome is dropped: %s",
            run_id,
            getattr(outcome, "reason", outcome),
        )
        session.rollback()
        usage.write(session, pending)  # the calls were made all the same
        session.commit()
        return "superseded"
    usage.write(session, pending)
    run = session.get(Run, run_id)
    if isinstance(outcome, Deferred):
        return _defer(rt, session, run, outcome)
    return record_outcome(rt, session, run, outcome, started, utcnow(), ran)


def _claim(session: Session, run_id: int) -> datetime | None:
    """Marks the run running; returns the claim's start time, which identifies this attempt."""
    started = utcnow()
    result = session.execute(_CLAIM, {"run_id": run_id, "started": started})
    session.commit()
    return started if result.rowcount == 1 else None


# The statements every run executes, built once (building one costs more CPU than running it).
_CLAIM = (
    update(Run)
    .where(Run.id == bindparam("run_id"), Run.status == "queued")
    .values(status="running", attempts=Run.attempts + 1, started_at=bindparam("started"))
    .execution_options(synchronize_session=False)
)
_STILL_OURS = select(Run.status, Run.started_at).where(Run.id == bindparam("run_id")).with_for_update()


def _load_statement():
    event_product, rule_product = aliased(Product), aliased(Product)
    return (
        select(Run, Event, Rule, Integration, event_product, rule_product)
        .outerjoin(Event, Event.id == Run.event_id)
        .outerjoin(Rule, Rule.id == Run.rule_id)
        .outerjoin(Integration, Integration.id == Rule.integration_id)
        .outerjoin(event_product, event_product.id == Event.product_id)
        .outerjoin(rule_product, rule_product.id == Rule.product_id)
        .where(Run.id == bindparam("run_id"))
    )


_LOAD = _load_statement()


def _load(session: Session, run_id: int) -> tuple | None:
    """The run and every row its attempt reads, in one statement. They land in the session's identity map, where
    each ``session.get`` of _prepare finds its row without a query of its own: one query instead of six, about half a
    CPU-millisecond less per run (docs/performance.md). A row that is not there (a deleted rule, an unknown product)
    is looked up again by its get, and found missing, as before. The caller holds the row while the attempt runs:
    the identity map references its objects weakly."""
    row = session.execute(_LOAD, {"run_id": run_id}).first()
    return tuple(row) if row is not None else None


def _still_ours(session: Session, run_id: int, started: datetime) -> bool:
    """The sweeper takes over an attempt by moving its started_at; the row lock (BEGIN IMMEDIATE on SQLite)
    keeps it from doing so between this check and the outcome's commit."""
    row = session.execute(_STILL_OURS, {"run_id": run_id}).one_or_none()
    return row is not None and row.status == "running" and row.started_at == started


def lease_key(rt: Runtime, run_id: int) -> str:
    return f"{rt.settings.queue_name}:lease:{run_id}"


class Lease:
    """A key in Redis that lives while an attempt runs: renewed by a thread every third of its TTL, so it
    lapses within HOOKYARD_LEASE_TTL seconds of its process dying (SIGKILL, OOM, a lost machine). The
    sweeper gives up attempts whose lease lapsed without waiting for the job timeout."""

    def __init__(self, rt: Runtime, run_id: int, release_with: counters.Batch | None = None):
        self.redis, self.key, self.ttl = rt.redis, lease_key(rt, run_id), rt.settings.lease_ttl
        self.release_with = release_with  # released in that batch's round trip, else by a command of its own
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"lease-{run_id}")

    def _renew(self) -> None:
        try:
            self.redis.set(self.key, os.getpid(), ex=self.ttl)
        except REDIS_ERRORS as exc:
            # Without Redis the sweeper cannot see leases either; the job timeout stays the backstop.
            log.warning("could not renew %s: Redis unreachable (%s)", self.key, exc.__class__.__name__)

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            self._renew()

    def __enter__(self) -> "Lease":
        self._renew()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        if self.release_with is not None:
            key = self.key
            self.release_with.also.append(lambda pipe: pipe.delete(key))
            return
        try:
            self.redis.delete(self.key)
        except REDIS_ERRORS:
            pass


@dataclass
class Prepared:
    """An attempt ready to call its action: everything it runs with was loaded within the run's own store."""

    action: object
    context: RunContext
    integration: Integration
    ran: dict


def _execute(rt: Runtime, session: Session, run: Run, pending: list[usage.Count]) -> tuple[Outcome, dict | None]:
    """The attempt's outcome, and what it ran (None when it stopped before calling anything). The calls its remote
    counts against a quota are added to ``pending``, for the outcome's transaction."""
    prepared = _prepare(rt, session, run)
    if isinstance(prepared, Outcome):
        return prepared, None
    run.ran = prepared.ran
    # End the read transaction before the remote call: no database lock is held while the action waits
    # on the network (with SQLite, that lock would stall every other worker and the API).
    session.commit()
    app = rt.registry.apps.get(prepared.integration.app)
    try:
        # Counted when it returns, even by raising (hookyard.usage); written with the outcome, in a savepoint, so a
        # failure to count fails nothing.
        with usage.metered(rt, app, prepared.context.info, pending) if app is not None else nullcontext():
            outcome = prepared.action.run(prepared.context)
    except Deferred:
        raise
    except Exception as exc:  # a plugin bug must not leave the run "running"
        log.exception("action %s.%s raised on run %s", prepared.integration.app, prepared.action.key, run.id)
        return Outcome.failed(f"the action raised {exc.__class__.__name__}: {exc}", retryable=True), prepared.ran
    if not isinstance(outcome, Outcome):
        return Outcome.failed(f"the action returned {type(outcome).__name__}, not an Outcome"), prepared.ran
    if outcome.needs_attention:
        prepared.integration.status = "needs_attention"
        prepared.integration.status_reason = inputs.storable(outcome.reason)
    return outcome, prepared.ran


def _foreign(run: Run, what: str, row) -> Outcome:
    """A row of another store named by a run: refused, whatever put the id there (a reused id, a bug, an
    edited database). Nothing is called; the operator sees it in the server log."""
    log.warning(
        "run %s (store %s) names %s %s of store %s: refused, nothing was called",
        run.id,
        run.marketplace_id,
        what,
        row.id,
        row.marketplace_id,
    )
    return Outcome.failed(f"the {what} this entry names belongs to another store; nothing was called")


def _prepare(rt: Runtime, session: Session, run: Run) -> Prepared | Outcome:
    """Loads the event, rule, connection and products of a run, each checked against the run's store."""
    if run.origin == "test":
        # A test ran once, in the request that asked for it (hookyard.ruletest), for an email that may not be its
        # event's: run by the worker (a retry from the log), it would act on the event's customer instead.
        return Outcome.failed("a rule test is not run again from the log; nothing was called: test the rule again")
    event = session.get(Event, run.event_id)
    if event.marketplace_id != run.marketplace_id:
        return _foreign(run, "event", event)
    rule = session.get(Rule, run.rule_id) if run.rule_id is not None else None
    if rule is None:
        return Outcome.skipped("the rule was deleted before it ran")
    if rule.marketplace_id != run.marketplace_id:
        return _foreign(run, "rule", rule)
    if not rule.enabled:
        return Outcome.skipped("the rule was disabled before it ran")
    products = {pid: session.get(Product, pid) for pid in {event.product_id, rule.product_id} - {None}}
    for product in products.values():
        if product is not None and product.marketplace_id != run.marketplace_id:
            return _foreign(run, "product", product)
    trigger = rt.registry.trigger_types.get(event.trigger)
    if trigger is not None and trigger.delay and trigger.cancelled_by:
        cancelled = _cancelling_event(session, event, trigger.cancelled_by)
        if cancelled is not None:
            return Outcome.skipped(
                f"{event.email} had a {cancelled.trigger} for the same product at "
                f"{cancelled.occurred_at.isoformat()}, within the {trigger.delay} delay"
            )
    integration = session.get(Integration, rule.integration_id) if rule.integration_id else None
    if integration is None:
        return Outcome.failed("the rule's integration was deleted; edit the rule to choose another")
    if integration.marketplace_id != run.marketplace_id:
        return _foreign(run, "integration", integration)
    bound = bind_action(
        rt,
        rule,
        integration,
        run_id=run.id,
        attempt=run.attempts,
        trigger=event.trigger,
        email=event.email,
        payload=event.payload,
    )
    if isinstance(bound, Outcome):
        return bound
    action, context = bound.action, bound.context
    # A product deleted since the event arrived keeps the name the entry was created with.
    product_name = snapshot.product_name(products.get(event.product_id)) or run.product_name
    ran = snapshot.attempted(rt.registry, rule, integration, product_name)
    return Prepared(action=action, context=context, integration=integration, ran=ran)


@dataclass
class Bound:
    """A rule's action, ready to run against its connection."""

    app: App
    action: Action
    context: RunContext


def bind_action(
    rt: Runtime,
    rule: Rule,
    integration: Integration,
    *,
    run_id: int,
    attempt: int,
    trigger: str,
    email,
    payload,
    **extra,
) -> Bound | Outcome:
    """The rule's action and the RunContext it runs with on ``integration`` (already checked to be the rule's store's):
    its parameters loaded through the action's schema, the connection's config with its secrets decrypted, its info
    and options, and pacing by connection. An Outcome when it cannot run. ``extra``: further RunContext fields (a
    test's dry_run and report_call). Shared by the worker's runs and the rule tests (hookyard.ruletest), so a test
    runs exactly what a run would."""
    app = rt.registry.apps.get(integration.app)
    if app is None:
        # This process may be one that was not restarted after the plugin was installed (its web process made the
        # connection), so the run goes back for a retry, which another worker, or this one restarted, can take:
        # a permanent failure here would lose runs to a deployment's mismatched processes.
        log.warning(
            "run %s: app %r is not installed in this worker process (pid %s)", run_id, integration.app, os.getpid()
        )
        return Outcome.failed(
            f"app {integration.app!r} is not installed in this worker process (pid {os.getpid()}): its plugin is missing "
            "here or disabled (HOOKYARD_DISABLED_PLUGINS); restart every web and worker process after installing "
            "or removing a plugin",
            retryable=True,
        )
    action = app.action(rule.action)
    if action is None:
        return Outcome.failed(f"app {app.name!r} has no action {rule.action!r}")
    try:
        params = action.params_schema().load(rule.params or {})
    except ValidationError as exc:
        return Outcome.failed(f"the rule's parameters are no longer valid: {exc.messages}")
    context = RunContext(
        run_id=run_id,
        attempt=attempt,
        trigger=trigger,
        email=email,
        payload=payload,
        params=params,
        config={**integration.config, **rt.secret_box.open(integration.secrets)},
        info=integration.info or {},
        options=integration.options or {},
        marketplace_id=rule.marketplace_id,
        integration_id=integration.id,
        pace=pacer(rt.redis, f"integration-{integration.id}"),
        **extra,
    )
    return Bound(app=app, action=action, context=context)


def _cancelling_event(session: Session, event: Event, triggers: tuple[str, ...]) -> Event | None:
    if not event.email:
        return None
    return session.scalar(
        select(Event)
        .where(
            Event.marketplace_id == event.marketplace_id,
            Event.email == event.email,
            Event.trigger.in_(triggers),
            Event.product_id == event.product_id,
            Event.occurred_at >= event.occurred_at,
            Event.id != event.id,
        )
        .order_by(Event.occurred_at)
        .limit(1)
    )


def retry_delay(rt: Runtime, attempt: int, hint: float | None) -> float:
    """Exponential backoff with full jitter, never sooner than the remote asked for."""
    cap = min(rt.settings.retry_max_delay, rt.settings.retry_base_delay * (2 ** (attempt - 1)))
    delay = random.uniform(0, cap)
    return max(delay, hint or 0.0)


def _defer(rt: Runtime, session: Session, run: Run, deferred: Deferred) -> str:
    """Back on the queue for later; a deferral is not an attempt and leaves no history entry."""
    run.attempts -= 1
    run.status = "queued"
    run.reason = f"waiting {deferred.seconds:.1f} s: {deferred.reason}"
    run.not_before = utcnow() + timedelta(seconds=deferred.seconds)
    dispatch_again(rt, session, run)
    counters.run_deferred(rt)
    return "deferred"


def attempts_since_replay(run: Run) -> int:
    """Attempts that count against the retry budget: a replay (hookyard.replay) starts a fresh one."""
    for entry in reversed(run.history or []):
        if "replayed_at" in entry:
            return run.attempts - entry["after_attempt"]
    return run.attempts


def record_outcome(
    rt: Runtime, session: Session, run: Run, outcome: Outcome, started, finished, ran: dict | None = None
) -> str:
    outcome = replace(outcome, reason=inputs.storable(outcome.reason))
    entry = {
        "attempt": run.attempts,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "status": outcome.status,
        "reason": outcome.reason,
        "retryable": outcome.retryable,
    }
    if outcome.details:
        entry["details"] = dict(outcome.details)
    if ran is not None:
        entry["ran"] = ran  # each attempt shows what it ran: a retry runs the rule as it is by then
    used = attempts_since_replay(run)
    if outcome.status == "failed" and outcome.retryable and used < rt.settings.retry_max_attempts:
        delay = retry_delay(rt, used, outcome.retry_after)
        entry["retry_in"] = round(delay, 3)
        run.history = [*(run.history or []), entry]
        run.status = "queued"
        run.not_before = finished + timedelta(seconds=delay)
        run.reason = f"attempt {run.attempts} failed: {outcome.reason}; retrying at {run.not_before.isoformat()}"
        log.info("run %s attempt %s failed, retrying in %.1f s: %s", run.id, run.attempts, delay, outcome.reason)
        dispatch_again(rt, session, run)
        counters.run_retried(rt)  # after the commit, like the count of a finished run below; never raises
        return run.status
    run.history = [*(run.history or []), entry]
    run.status = outcome.status
    run.reason = outcome.reason
    if outcome.status == "failed" and outcome.retryable:
        run.reason = f"gave up after {used} attempt{'s' if used != 1 else ''}: {outcome.reason}"
    run.finished_at = finished
    # Renumbered on finishing: a delayed or retried run shows up among the newest entries and is kept.
    run.log_seq = logcap.reserve_log_seqs(session, run.marketplace_id, 1)
    logcap.trim(session, run.marketplace_id, rt.settings.log_cap)
    session.commit()
    counters.run_finished(rt, run.status)
    log.info("run %s %s (attempt %s): %s", run.id, run.status, run.attempts, run.reason or "")
    return run.status
