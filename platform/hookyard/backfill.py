"""Backfill: apply one rule to events already stored, as ordinary runs of that rule (origin "backfill").

A backfill never re-emits an event (every other rule matching it would fire again): it creates runs for its own
rule only, each one deduplicated against what that rule already did for the event, twice over:
- a run of origin event or backfill for the (event, rule) pair, while the log still holds it; the partial unique
  index uq_run_event_rule settles a live event run created at the same moment (the insert skips that row);
- the rule's ledger (RuleLedger), written by the log cap (hookyard.logcap.trim) for the runs it deletes, so the
  pair is remembered after its log entry is gone.
A backfill run that was cancelled is neither: a later backfill takes it up again (it never ran the rule).

The runs are created by a task (hookyard.tasks, kind ``rule.backfill``) in pages, one short transaction each, and
go through the ordinary worker, so the action's pacing (Circle's budget) applies to them as to any run. Cancelling
the task stops it creating runs and skips every run of it still queued, also after it finished creating them.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta, timezone

from marshmallow import ValidationError
from sqlalchemy import String, and_, bindparam, case, cast, exists, func, literal, not_, or_, select, update
from sqlalchemy.orm import Session

from . import connections, emit, logcap, snapshot, tasks
from .contract import Cancelled, ConnectionFailed, InboundEvent
from .emit import enqueue_runs
from .jobqueue import run_job_id
from .models import (
    CANCELLED,
    ONCE_PER_EVENT_ORIGINS,
    RUN_STATES,
    Event,
    Integration,
    Product,
    Rule,
    RuleLedger,
    Run,
    Task,
    utcnow,
)
from .runtime import Runtime

log = logging.getLogger(__name__)

KIND = "rule.backfill"
# Counting what the store's API would add, which takes as long as reading it: a task of its own, answering the counts.
PREVIEW_KIND = "rule.backfill_preview"
# Runs created per transaction: on SQLite each page holds the one write lock for a few milliseconds only.
PAGE = 200
# A client's clock may run a little ahead of ours: an "until" of "now" sent from a browser is not "the future".
CLOCK_SKEW = timedelta(minutes=2)


@dataclass(frozen=True)
class Preview:
    candidates: int  # stored events of the rule's trigger (and product) in the range, + store_api's not_stored
    would_run: int
    already_run: int  # a run of this rule for the event exists, or the ledger remembers one
    oldest_event_at: datetime | None  # the oldest event the store still holds, any trigger
    retention_days: int
    # A preview that read the store's API (a PREVIEW_KIND task): {"read": the rule's events the API reports in the
    # range, "not_stored": those never received, which a start stores and runs the rule for}; None otherwise.
    store_api: dict | None = None

    def as_result(self) -> dict:
        """As a task keeps it (Task.result, JSON) and the API shows it."""
        shown = asdict(self)
        shown["oldest_event_at"] = self.oldest_event_at.isoformat() if self.oldest_event_at else None
        return shown


# --- what a backfill may be asked -----------------------------------------------------------------


def check(
    rt: Runtime, session: Session, rule: Rule, since: datetime, until: datetime, include_store_api: bool = False
) -> None:
    """Raises ValidationError with field-level messages for a range or a rule a backfill cannot run with."""
    errors: dict[str, list[str]] = {}
    if include_store_api and not store_api_connections(rt, session, rule.marketplace_id, rule.trigger):
        readers = store_api_connections(rt, session, rule.marketplace_id)
        if readers:
            apps = {rt.registry.apps[i.app] for i in readers}
            names = sorted({_trigger_name(rt, key) for app in apps for key in app.past_events.triggers}, key=str.lower)
            errors["include_store_api"] = [
                f"The store's API brings in {_listed(names)} events only: this rule's trigger "
                f"({_trigger_name(rt, rule.trigger)}) comes from the store's notifications alone."
            ]
        else:
            errors["include_store_api"] = [
                "No connection of this store can read past events from its store's API (SamCart can, with an API key)."
            ]
    now = utcnow()
    for name, value in (("since", since), ("until", until)):
        if value.tzinfo is None:
            errors[name] = ["Must include a time zone (e.g. 2026-01-31T00:00:00Z)."]
            continue
        try:
            value.astimezone(timezone.utc)  # as the database stores it
        except OverflowError:
            errors[name] = ["Out of range: it is before 0001-01-01 in UTC."]
            continue
        if value > now + CLOCK_SKEW:
            errors[name] = ["Must not be in the future: a backfill applies the rule to events already received."]
    if "since" not in errors and "until" not in errors and since >= until:
        errors["until"] = ["Must be after since."]
    if not rule.enabled:
        errors["rule"] = ["The rule is disabled: enable it first, so its runs are not all skipped."]
    elif _integration(session, rule) is None:
        errors["rule"] = ["The rule has no connection (its integration was deleted): edit the rule to choose one."]
    if errors:
        raise ValidationError(errors)


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _trigger_name(rt: Runtime, key: str) -> str:
    trigger = rt.registry.trigger_types.get(key)
    return trigger.label if trigger is not None else key


def _integration(session: Session, rule: Rule) -> Integration | None:
    integration = session.get(Integration, rule.integration_id) if rule.integration_id else None
    if integration is None or integration.marketplace_id != rule.marketplace_id:
        return None
    return integration


# --- the candidates and their dedupe --------------------------------------------------------------


def _event_key():
    # RuleLedger.event_key of an event: its dedupe key, else its id (see RuleLedger).
    return func.coalesce(Event.dedupe_key, literal("id:", String) + cast(Event.id, String))


def _in_range(rule: Rule, since: datetime, until: datetime):
    clauses = [
        Event.marketplace_id == rule.marketplace_id,
        Event.trigger == rule.trigger,
        Event.occurred_at >= since,
        Event.occurred_at < until,
    ]
    if rule.product_id is not None:  # a product rule matches that product's events; a global rule all of them
        clauses.append(Event.product_id == rule.product_id)
    return and_(*clauses)


def _already_run(rule: Rule):
    """True for an event this rule already ran for (a cancelled backfill run does not count: it never ran)."""
    ran = exists().where(
        Run.event_id == Event.id,
        Run.rule_id == rule.id,
        Run.origin.in_(ONCE_PER_EVENT_ORIGINS),
        not_(and_(Run.origin == "backfill", Run.status == "skipped", Run.reason == CANCELLED)),
    )
    ledgered = exists().where(RuleLedger.rule_id == rule.id, RuleLedger.event_key == _event_key())
    return or_(ran, ledgered)


def preview(rt: Runtime, session: Session, rule: Rule, since: datetime, until: datetime) -> Preview:
    done = _already_run(rule)
    counts = session.execute(
        select(func.count(), func.coalesce(func.sum(case((done, 1), else_=0)), 0)).where(_in_range(rule, since, until))
    ).one()
    oldest = session.scalar(select(func.min(Event.occurred_at)).where(Event.marketplace_id == rule.marketplace_id))
    candidates, already = int(counts[0]), int(counts[1])
    return Preview(candidates, candidates - already, already, oldest, rt.settings.event_retention_days)


# --- starting, following and cancelling -----------------------------------------------------------


def start(
    rt: Runtime, session: Session, rule: Rule, since: datetime, until: datetime, include_store_api: bool = False
) -> Task:
    """The rule's backfill task: the one queued or running (whatever its range), or a new one. Commits.
    ``include_store_api``: first store the past events the store's API reports (App.past_events). Raises
    tasks.TaskNotQueued when Redis is unreachable."""
    params = {
        "since": since.astimezone(timezone.utc).isoformat(),
        "until": until.astimezone(timezone.utc).isoformat(),
        "include_store_api": bool(include_store_api),
    }
    return tasks.start(rt, session, rule.marketplace_id, KIND, rule.id, params=params)


def start_preview(rt: Runtime, session: Session, rule: Rule, since: datetime, until: datetime) -> Task:
    """The task counting what a backfill with ``include_store_api`` would do: the stored events' preview plus the
    events the store's API reports that were never received; it stores nothing and runs nothing, and ends with
    the counts as its result (Preview.as_result). The rule's one queued or running preview, or a new one. Commits.
    Raises tasks.TaskNotQueued when Redis is unreachable."""
    params = {"since": since.astimezone(timezone.utc).isoformat(), "until": until.astimezone(timezone.utc).isoformat()}
    return tasks.start(rt, session, rule.marketplace_id, PREVIEW_KIND, rule.id, params=params)


def preview_work(rt: Runtime, session: Session, task: Task, progress) -> tasks.Outcome:
    """A PREVIEW_KIND task's work (in the worker): reads the store's API as a start would, counts, stores nothing."""
    rule = session.get(Rule, task.target_id)
    if rule is None or rule.marketplace_id != task.marketplace_id:
        raise tasks.TaskFailed("The rule was deleted before its preview started.")
    params = task.params or {}
    since, until = datetime.fromisoformat(params["since"]), datetime.fromisoformat(params["until"])
    read, not_stored = count_past_events(rt, session, rule, since, until, progress)
    stored = preview(rt, session, rule, since, until)
    session.commit()
    counts = replace(
        stored,
        candidates=stored.candidates + not_stored,
        would_run=stored.would_run + not_stored,
        store_api={"read": read, "not_stored": not_stored},
    )
    message = (
        f"The store's API reports {read} past event{'s' if read != 1 else ''} of this rule in the range, "
        f"{not_stored} never received; a start would make {counts.would_run} run{'s' if counts.would_run != 1 else ''}."
    )
    return tasks.Outcome(message, counts.as_result())


def runs_summary(session: Session, task: Task) -> dict[str, int]:
    """How many of the task's runs are in each state (ix_runs_task)."""
    counts = dict.fromkeys(RUN_STATES, 0)
    rows = session.execute(
        select(Run.status, func.count())
        .where(Run.task_id == task.id, Run.marketplace_id == task.marketplace_id)
        .group_by(Run.status)
    )
    for status, count in rows:
        counts[status] = int(count)
    return counts


def finished(session: Session, task: Task) -> bool:
    """The task ended and none of its runs is still queued or running."""
    if task.status in tasks.TASK_ACTIVE_STATES:
        return False
    summary = runs_summary(session, task)
    return summary["queued"] == 0 and summary["running"] == 0


def cancel(rt: Runtime, session: Session, task: Task) -> Task:
    """Stops creating runs (a running task stops at its next page) and skips every run of the backfill still queued,
    whether or not the task has finished creating them; running ones finish. The task ends cancelled. Commits."""
    if task.status in tasks.TASK_ACTIVE_STATES:
        task = tasks.cancel(rt, session, task)
    skipped = skip_queued(rt, session, task.marketplace_id, task.id)
    if task.status in ("succeeded", "failed") or (task.status == "cancelled" and skipped):
        session.execute(
            update(Task)
            .where(Task.id == task.id, Task.status.not_in(tasks.TASK_ACTIVE_STATES))
            .values(
                status="cancelled", message=f"Cancelled: {skipped} queued run{'s' if skipped != 1 else ''} skipped."
            )
            .execution_options(synchronize_session=False)
        )
        session.commit()
    session.refresh(task)
    return task


def skip_queued(rt: Runtime, session: Session, marketplace_id: int, task_id: int) -> int:
    """One conditional UPDATE: the task's queued runs end skipped ("cancelled"); a worker's claim (an UPDATE of a
    queued run) then never runs them, and the sweeper only re-dispatches queued runs. Commits; returns the count.

    Each gets a new log number, as a finishing run does, so the log shows them among the newest and the cap can
    trim them later (numbers below the last trim are never looked at again). The marketplace's counter is locked
    first, so no page of the backfill (which reserves numbers too) slips runs in between."""
    logcap.reserve_log_seqs(session, marketplace_id, 0)
    low, high = session.execute(
        select(func.min(Run.id), func.max(Run.id)).where(Run.task_id == task_id, Run.status == "queued")
    ).one()
    if low is None:
        session.commit()
        return 0
    first = logcap.reserve_log_seqs(session, marketplace_id, high - low + 1)
    result = session.execute(
        update(Run)
        .where(
            Run.task_id == task_id,
            Run.marketplace_id == marketplace_id,
            Run.status == "queued",
            Run.id.between(low, high),
        )
        .values(
            status="skipped",
            reason=CANCELLED,
            finished_at=utcnow(),
            not_before=None,
            log_seq=first + (Run.id - low),
        )
        .execution_options(synchronize_session=False)
    )
    logcap.trim(session, marketplace_id, rt.settings.log_cap)
    session.commit()
    return result.rowcount or 0


# --- the task's work (in the worker) --------------------------------------------------------------


def work(rt: Runtime, session: Session, task: Task, progress) -> str:
    """Creates the runs page by page, reporting done/total; the task's message says what it did."""
    rule = session.get(Rule, task.target_id)
    if rule is None or rule.marketplace_id != task.marketplace_id:
        raise tasks.TaskFailed("The rule was deleted before its backfill started.")
    params = task.params or {}
    since, until = datetime.fromisoformat(params["since"]), datetime.fromisoformat(params["until"])
    integration = _integration(session, rule)
    if not rule.enabled or integration is None:
        raise tasks.TaskFailed("The rule was disabled, or lost its connection, before its backfill started.")
    planned = _Planned(rt, rule, integration)
    imported = ""
    if params.get("include_store_api"):
        imported = import_past_events(rt, session, rule, since, until, progress)
    total = preview(rt, session, rule, since, until).would_run
    session.commit()
    progress(0, total, f"Applying the rule to {total} past event{'s' if total != 1 else ''}.")
    created = done = 0
    after = 0
    try:
        while True:
            page = _next_page(session, rule, since, until, after)
            if not page:
                break
            after = page[-1].id
            runs = _write_page(rt, session, task, rule, planned, page)
            enqueue_runs(rt, runs)
            created, done = created + len(runs), done + len(page)
            progress(done, max(total, done), f"{created} run{'s' if created != 1 else ''} created.")
    except Cancelled:
        # A page committed after the cancel's own skip would leave its runs queued: skip them too.
        skip_queued(rt, session, task.marketplace_id, task.id)
        raise
    progress(done, done, "All runs created; they run at the connection's pace.")
    log.info("backfill task %s: rule %s, %s runs created", task.id, rule.id, created)
    message = imported + f"{created} run{'s' if created != 1 else ''} created for past events."
    if total > created:  # their own event runs (or another backfill) got there between the count and the page
        message += f" {total - created} had been run meanwhile."
    return message


class _Planned:
    """What every run of the backfill is set to do (hookyard.snapshot.planned), per product."""

    def __init__(self, rt: Runtime, rule: Rule, integration: Integration):
        self.rt, self.rule, self.integration = rt, rule, integration
        self.trigger = rt.registry.trigger_types.get(rule.trigger)
        self._by_product: dict[int | None, tuple] = {}

    def of(self, session: Session, product_id: int | None) -> tuple[Product | None, dict]:
        if product_id not in self._by_product:
            product = session.get(Product, product_id) if product_id is not None else None
            if product is not None and product.marketplace_id != self.rule.marketplace_id:
                product = None  # never another store's row, whatever an id names
            ran = snapshot.planned(
                self.rt.registry, self.rule, self.integration.app, self.integration.name, snapshot.product_name(product)
            )
            self._by_product[product_id] = (product, ran)
        return self._by_product[product_id]

    def not_before(self, occurred_at: datetime, now: datetime) -> datetime | None:
        # A delayed trigger's run is due at occurred_at + delay, as emit sets it; long past, it is due now (None:
        # the worker takes it at once, and the sweeper does not take an old not_before for an overdue schedule).
        if self.trigger is None or not self.trigger.delay:
            return None
        due = occurred_at + self.trigger.delay
        return due if due > now else None


def _next_page(session: Session, rule: Rule, since: datetime, until: datetime, after: int) -> list:
    from .db import reading

    reading(session)  # the reads take no lock on SQLite; the page's write transaction is kept short
    rows = list(
        session.execute(
            select(Event.id, Event.product_id, Event.email, Event.occurred_at)
            .where(_in_range(rule, since, until), Event.id > after, not_(_already_run(rule)))
            .order_by(Event.id)
            .limit(PAGE)
        )
    )
    session.commit()
    return rows


def _write_page(rt: Runtime, session: Session, task: Task, rule: Rule, planned: _Planned, page: list) -> list[Run]:
    """One transaction: the page's runs (new ones, and cancelled backfill runs taken up again); their jobs are
    enqueued by the caller after the commit, so a worker never picks up a run the database does not have yet."""
    now = utcnow()
    ids = [row.id for row in page]
    revived = {
        event_id: (run_id, dispatches)
        for run_id, event_id, dispatches in session.execute(
            select(Run.id, Run.event_id, Run.dispatches).where(
                Run.event_id.in_(ids),
                Run.rule_id == rule.id,
                Run.origin == "backfill",
                Run.status == "skipped",
                Run.reason == CANCELLED,
            )
        )
    }
    first = logcap.reserve_log_seqs(session, rule.marketplace_id, len(page))
    # Read after the counter's lock, which a cancel's skip_queued takes too: a cancel either comes after this page
    # (and skips its runs) or is seen here, and the page is not written.
    if session.scalar(select(Task.cancel_requested).where(Task.id == task.id)):
        session.rollback()
        raise Cancelled(f"task {task.id} was cancelled")
    fresh, again = [], []
    for i, row in enumerate(page):
        product, ran = planned.of(session, row.product_id)
        values = dict(
            log_seq=first + i,
            task_id=task.id,
            status="queued",
            ran=ran,
            not_before=planned.not_before(row.occurred_at, now),
        )
        if row.id in revived:
            run_id, dispatches = revived[row.id]
            again.append(
                dict(
                    values,
                    b_id=run_id,
                    reason=None,
                    finished_at=None,
                    dispatches=dispatches + 1,
                    job_id=run_job_id(row.id, rule.id, dispatches + 1),
                )
            )
            continue
        email = (row.email or "").strip().lower() or None
        fresh.append(
            dict(
                values,
                marketplace_id=rule.marketplace_id,
                event_id=row.id,
                rule_id=rule.id,
                origin="backfill",
                trigger=rule.trigger,
                app=planned.integration.app,
                action=rule.action,
                integration_id=rule.integration_id,
                product_id=row.product_id,
                email=email,
                product_name=product.name if product else None,
                product_external_id=product.external_id if product else None,
                job_id=run_job_id(row.id, rule.id),
                dispatches=1,
                history=[],
                attempts=0,
                created_at=now,
            )
        )
    if fresh:
        session.execute(emit.insert_runs_once(session), fresh)
    if again:
        table = Run.__table__
        # Executemany binds may not be named as the columns they set: "b_" before each.
        names = [name for name in again[0] if name != "b_id"]
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.status == "skipped", table.c.reason == CANCELLED)
            .values({name: bindparam(f"b_{name}") for name in names}),
            [{"b_id": row["b_id"], **{f"b_{name}": row[name] for name in names}} for row in again],
        )
    runs = list(
        session.scalars(select(Run).where(Run.task_id == task.id, Run.event_id.in_(ids), Run.status == "queued"))
    )
    session.commit()
    return runs


# --- past events from the store's API (App.past_events) -------------------------------------------


def store_api_connections(
    rt: Runtime, session: Session, marketplace_id: int, trigger: str | None = None
) -> list[Integration]:
    """The store's connections whose app can list past events (SamCart: its orders and subscriptions, with an API
    key), of ``trigger`` when given (App.past_events.triggers)."""
    found = session.scalars(
        select(Integration).where(Integration.marketplace_id == marketplace_id).order_by(Integration.id)
    )
    readers = []
    for integration in found:
        past = getattr(rt.registry.apps.get(integration.app), "past_events", None)
        if past is not None and (trigger is None or trigger in past.triggers):
            readers.append(integration)
    return readers


def import_past_events(rt: Runtime, session: Session, rule: Rule, since: datetime, until: datetime, progress) -> str:
    """Stores the events of the rule's trigger that the store's API reports in the range, page by page (one
    transaction each, none open while the app asks its remote), without matching any rule: the backfill then runs
    this rule for them like any stored event. An event already received (the same identity: the Notify URL's
    delivery of the same order) is found and left as it is. Returns what it did, for the task's message."""
    new = known = 0

    def store(inbound: InboundEvent) -> None:
        nonlocal new, known
        stored = store_past_event(rt, session, rule.marketplace_id, inbound)
        new, known = new + (stored is True), known + (stored is False)

    _each_past_event(rt, session, rule, since, until, progress, store, "Nothing was backfilled.")
    return f"{new} past event{'s' if new != 1 else ''} read from the store's API ({known} already received). "


def count_past_events(
    rt: Runtime, session: Session, rule: Rule, since: datetime, until: datetime, progress
) -> tuple[int, int]:
    """(read, not stored): the events of the rule (its trigger, and its product for a product rule) that the store's
    API reports in the range, and how many of those were never received, so a backfill's start would store them and
    run the rule for them. Stores nothing."""
    product = session.get(Product, rule.product_id) if rule.product_id is not None else None
    if product is not None and product.marketplace_id != rule.marketplace_id:
        product = None
    seen: set[str] = set()
    read = not_stored = 0

    def count(inbound: InboundEvent) -> None:
        nonlocal read, not_stored
        try:
            prepared = emit.prepare(rt, inbound.trigger, dict(inbound.payload), identity=inbound.identity)
        except (ValidationError, emit.UnknownTrigger):
            return  # left out by a start too (store_past_event)
        if rule.product_id is not None:
            named = str((prepared.data.get("product") or {}).get("id") or "")
            if product is None or named != product.external_id:
                return  # another product's event: stored by a start, never run by this rule
        if prepared.dedupe is not None:
            if prepared.dedupe in seen:
                return  # listed twice by the API: one event
            seen.add(prepared.dedupe)
        read += 1
        not_stored += emit.earlier(session, rule.marketplace_id, prepared) is None

    _each_past_event(rt, session, rule, since, until, progress, count, "Nothing was counted.")
    return read, not_stored


def _each_past_event(
    rt: Runtime, session: Session, rule: Rule, since: datetime, until: datetime, progress, each, nothing: str
) -> None:
    """``each(inbound)`` for every event of the rule's trigger that the store's connections with App.past_events
    report in the range, in the session (committed after each page). A refusal or a plugin's bug fails the task,
    its message ending with ``nothing``."""
    for integration in store_api_connections(rt, session, rule.marketplace_id, rule.trigger):
        app = rt.registry.apps[integration.app]
        config, info, name = connections.full_config(rt, integration), dict(integration.info or {}), integration.name
        session.commit()

        def report(done, total=None, message=None, name=name):
            progress(0, None, f"“{name}”: {message or f'{done} read'}")

        try:
            for page in app.past_events.read(
                config, info, since, until, progress=report, triggers=frozenset({rule.trigger})
            ):
                for inbound in page or []:
                    if isinstance(inbound, InboundEvent) and inbound.trigger == rule.trigger:
                        each(inbound)
                session.commit()
        except Cancelled:
            raise
        except ConnectionFailed as exc:
            raise tasks.TaskFailed(f"“{name}”: {exc.message} {nothing}") from exc
        except Exception as exc:  # a plugin bug: the task says so, the worker's log has the traceback
            log.exception("app %s failed while listing past events", app.key)
            raise tasks.TaskFailed(
                f"The {app.name} plugin failed while listing past events ({exc.__class__.__name__}); the worker's "
                f"log has the details. {nothing}"
            ) from exc


def store_past_event(rt: Runtime, session: Session, marketplace_id: int, inbound: InboundEvent) -> bool | None:
    """The event, stored through emit's own steps (validated, deduplicated by its identity) but matched to no
    rule: True when stored, False when it was already received, None when its payload is not valid (an app's
    bug; logged). In the session's transaction; the caller commits.
    It is stored as read from the store's API (Event.source): should the store deliver it later (an order placed
    while the backfill read, a delivery SamCart retries), that delivery runs the other matching rules."""
    try:
        prepared = emit.prepare(rt, inbound.trigger, dict(inbound.payload), identity=inbound.identity)
    except (ValidationError, emit.UnknownTrigger) as exc:
        log.warning("a past %s event was not valid, left out: %s", inbound.trigger, exc)
        return None
    found = emit.look_up(session, marketplace_id, prepared)
    if found.earlier is not None:
        return False  # not counted as a duplicate delivery: nobody delivered it again
    stored = emit.write(
        rt, session, marketplace_id, prepared, replace(found, rules=[]), count=False, source=emit.STORE_API
    )
    return stored.created
