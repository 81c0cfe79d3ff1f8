"""Testing a rule before it goes live: run its action once, now, on a sample (the trigger's example or a stored event of
this store), and answer every remote call it made or would make.

- **dry-run**: the action's look-ups (reads) are made for real, its writes are reported and not sent (the action
  declares it honours ``RunContext.dry_run``: ``Action(dry_run=True)``). Nothing is written to the database.
- **live**: the action runs for real, for one chosen email (put in the sample's ``customer.email``), and leaves a
  log entry (a Run with ``origin="test"``) in the store's log, never queued: the test is its one attempt.

Both run in the caller's process (a web request, the CLI) through the same binding of action and connection as the
worker's runs (``jobs.bind_action``): the same parameters, decrypted config, pacing and usage metering. Whatever is
answered has the connection's secrets masked (``mask``)."""

from __future__ import annotations

import copy
import json
import logging
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from marshmallow import ValidationError, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import emit, inputs, jobqueue, jobs, logcap, snapshot, usage
from .contract import Deferred, Outcome
from .models import MAX_ID, Event, Integration, Product, Rule, Run, utcnow
from .runtime import Runtime

log = logging.getLogger(__name__)

DRY_RUN, LIVE = "dry-run", "live"
MODES = (DRY_RUN, LIVE)
MASK = "********"
# Keys whose values are credentials wherever they appear in a reported call (headers, query, body).
CREDENTIAL_KEY = re.compile(
    r"authori[sz]ation|api[-_]?key|secret|token|passw(or)?d|signature|credential|cookie|private[-_]?key", re.I
)
# A secret shorter than this is masked only where a value is exactly it: as a substring it would mangle everything.
MIN_SUBSTRING_SECRET = 6
RECENT_EVENTS = 20  # stored events the web form offers as samples
INTERRUPTED = "the test did not finish (its process stopped while the action ran)"

_EMAIL = fields.Email(validate=validate.Length(max=320))


@dataclass
class Result:
    """One test: what it ran on, what the action did or would do, and the log entry of a live test."""

    mode: str
    rule_id: int
    event_id: int | None  # the stored event used, None for the trigger's example
    example: bool
    payload: dict
    email: str | None
    outcome: Outcome
    calls: list[dict] = field(default_factory=list)  # {method, url, query, body, headers, status, sent}, masked
    run_id: int | None = None  # the live test's log entry


def answer(result: Result, run_url: Callable[[int], str] = lambda run_id: f"/api/v1/logs/{run_id}") -> dict:
    """The result as JSON, in the shape POST /api/v1/rules/{id}/test answers (and ``hookyard rules test --json``)."""
    return {
        "mode": result.mode,
        "rule_id": result.rule_id,
        "event": {"id": result.event_id, "example": result.example},
        "payload": result.payload,
        "outcome": {"status": result.outcome.status, "reason": result.outcome.reason},
        "calls": result.calls,
        "run": {"id": result.run_id, "url": run_url(result.run_id)} if result.run_id is not None else None,
    }


class Busy(Exception):
    """The connection's share of its remote's request budget is in use (pacing): nothing was called; try again in
    ``seconds``."""

    def __init__(self, seconds: float, reason: str):
        super().__init__(reason)
        self.seconds = seconds
        self.reason = reason


def recent_events(session: Session, rule: Rule, limit: int = RECENT_EVENTS) -> list[Event]:
    """The store's latest stored events of the rule's trigger, newest first: the samples a form offers."""
    return list(
        session.scalars(
            select(Event)
            .where(Event.marketplace_id == rule.marketplace_id, Event.trigger == rule.trigger)
            .order_by(Event.id.desc())
            .limit(limit)
        )
    )


def run(
    rt: Runtime, session: Session, rule: Rule, mode: str, *, event_id: int | None = None, email: str | None = None
) -> Result:
    """Tests ``rule`` (already known to be the caller's store's). Raises ValidationError with field-level messages
    (mode, email, event_id, rule) for a test that cannot run, Busy when pacing says wait. Commits the session (its
    read transaction ends before any remote call); a dry-run writes nothing."""
    if mode not in MODES:
        raise ValidationError({"mode": [f"Must be one of: {', '.join(MODES)}."]})
    email = _checked_email(email, mode)
    integration = session.get(Integration, rule.integration_id) if rule.integration_id else None
    if integration is None or integration.marketplace_id != rule.marketplace_id:
        raise ValidationError(
            {"rule": ["The rule has no connection (its integration was deleted): edit the rule to choose one."]}
        )
    event, payload = _sample(rt, session, rule, event_id)
    if email is not None:
        payload = _with_email(payload, email)
    run_email = email or _email_of(payload)
    calls: list[dict] = []
    bound = jobs.bind_action(
        rt,
        rule,
        integration,
        run_id=0,
        attempt=1,
        trigger=rule.trigger,
        email=run_email,
        payload=payload,
        dry_run=mode == DRY_RUN,
        report_call=_reporter(calls),
    )
    if isinstance(bound, Outcome):
        raise ValidationError({"rule": [f"The rule cannot run: {bound.reason}."]})
    if mode == DRY_RUN and not bound.action.dry_run:
        raise ValidationError(
            {
                "mode": [
                    f"{bound.app.name}'s action “{bound.action.label}” does not support dry-run: test it live, "
                    "for one email."
                ]
            }
        )
    secrets = _secret_values(bound.app, bound.context.config)
    ran = _snapshot(rt, session, rule, integration, event, payload)
    result = Result(
        mode=mode,
        rule_id=rule.id,
        event_id=event.id if event is not None else None,
        example=event is None,
        payload=payload,
        email=run_email,
        outcome=Outcome.failed(INTERRUPTED),
    )
    entry = _open_entry(session, rule, integration, event, payload, run_email, ran) if mode == LIVE else None
    context = replace(bound.context, run_id=entry.id) if entry is not None else bound.context
    # No transaction is held while the action waits on its remote (on SQLite it would hold the write lock).
    session.commit()
    started = utcnow()
    try:
        with usage.metered(rt, bound.app, context.info):
            outcome = bound.action.run(context)
    except Deferred as deferred:
        if not any(call["sent"] for call in calls):
            if entry is not None:  # nothing was called: the test did not happen, and the log does not show it
                session.delete(session.get(Run, entry.id))
                session.commit()
            raise Busy(deferred.seconds, deferred.reason) from None
        outcome = Outcome.failed(f"stopped after {len(calls)} call(s), pacing asked to wait: {deferred.reason}")
    except Exception as exc:  # a plugin bug: the test says so, as a run's log entry would
        log.exception("action %s.%s raised while testing rule %s", integration.app, rule.action, rule.id)
        outcome = Outcome.failed(f"the action raised {exc.__class__.__name__}: {exc}")
    if not isinstance(outcome, Outcome):
        outcome = Outcome.failed(f"the action returned {type(outcome).__name__}, not an Outcome")
    result.outcome = replace(outcome, reason=inputs.storable(mask(outcome.reason, secrets)))
    result.calls = mask(calls, secrets)
    if entry is not None:
        result.run_id = _close_entry(rt, session, entry.id, integration, result, ran, started)
    return result


def _checked_email(email: str | None, mode: str) -> str | None:
    if email is None or (isinstance(email, str) and not email.strip()):
        if mode == LIVE:
            raise ValidationError({"email": ["Required for a live test: the one customer it runs for."]})
        return None
    try:
        return _EMAIL.deserialize(email.strip()).lower()
    except ValidationError as exc:
        raise ValidationError({"email": exc.messages}) from None


def _sample(rt: Runtime, session: Session, rule: Rule, event_id: int | None) -> tuple[Event | None, dict]:
    """The stored event (of this store, of the rule's trigger) and its payload, or the trigger's example, loaded and
    dumped the way an event's payload is stored."""
    if event_id is not None:
        event = session.get(Event, event_id) if 0 < event_id <= MAX_ID else None
        if event is None or event.marketplace_id != rule.marketplace_id:
            # The same answer for another store's event and a deleted one's id: ids reveal nothing.
            raise ValidationError({"event_id": [f"No event {event_id} in this store."]})
        if event.trigger != rule.trigger:
            raise ValidationError(
                {"event_id": [f"Event {event_id} is a {event.trigger} event; this rule runs on {rule.trigger}."]}
            )
        return event, copy.deepcopy(dict(event.payload or {}))
    trigger = rt.registry.trigger_types.get(rule.trigger)
    if trigger is None:
        raise ValidationError({"rule": [f"The rule's trigger {rule.trigger} is not installed here."]})
    if trigger.example is None:
        raise ValidationError(
            {"event_id": [f"The trigger {trigger.label} has no example payload: choose a stored event to test with."]}
        )
    data = emit.validate_payload(trigger, copy.deepcopy(dict(trigger.example)))
    return None, emit.payload_schema(trigger).dump(data)


def _with_email(payload: dict, email: str) -> dict:
    customer = payload.get("customer")
    payload["customer"] = {**(customer if isinstance(customer, dict) else {}), "email": email}
    return payload


def _email_of(payload: Mapping[str, Any]) -> str | None:
    customer = payload.get("customer")
    found = customer.get("email") if isinstance(customer, dict) else None
    return (found.strip().lower() or None) if isinstance(found, str) else None


def _reporter(calls: list[dict]):
    """RunContext.report_call for one test: each call kept as JSON, as it was when reported."""

    def report_call(method, url, *, query=None, body=None, headers=None, status=None, sent=True, **_ignored):
        calls.append(
            {
                "method": str(method).upper(),
                "url": str(url),
                "query": _json(query) if query else None,
                "body": _json(body),
                "headers": _json(headers) if headers else None,
                "status": status if isinstance(status, int) and not isinstance(status, bool) else None,
                "sent": bool(sent),
            }
        )

    return report_call


def _json(value):
    # A copy in JSON types (a plugin may keep mutating what it reported; dates and ids of any type become text).
    return None if value is None else json.loads(json.dumps(value, default=str))


def _secret_values(app, config: Mapping[str, Any]) -> list[str]:
    values = [config.get(name) for name in app.secret_fields]
    return sorted({v for v in values if isinstance(v, str) and v}, key=len, reverse=True)


def mask(value, secrets: list[str]):
    """``value`` with the connection's secret values (in any text) and the values of credential-like keys replaced by
    MASK, at any depth."""
    if isinstance(value, dict):
        return {k: MASK if CREDENTIAL_KEY.search(str(k)) else mask(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask(v, secrets) for v in value]
    if isinstance(value, str):
        for secret in secrets:
            if value == secret:
                return MASK
            if len(secret) >= MIN_SUBSTRING_SECRET and secret in value:
                value = value.replace(secret, MASK)
        return value
    return value


def _product_of(session: Session, rule: Rule, event: Event | None) -> Product | None:
    product_id = event.product_id if event is not None else rule.product_id
    product = session.get(Product, product_id) if product_id else None
    return product if product is not None and product.marketplace_id == rule.marketplace_id else None


def _snapshot(rt, session, rule, integration, event, payload) -> dict:
    product = _product_of(session, rule, event)
    name = snapshot.product_name(product) or (payload.get("product") or {}).get("name")
    return snapshot.attempted(rt.registry, rule, integration, name)


def _open_entry(session, rule, integration, event, payload, email, ran) -> Run:
    """The live test's log entry, written before the action runs so the action sees its id (a webhook's id is the
    run's). Final from the start (failed, "did not finish"): a process that dies mid-test leaves an honest entry,
    and nothing ever queues or sweeps it."""
    product = _product_of(session, rule, event)
    listed = payload.get("product") or {}
    now = utcnow()
    entry = Run(
        marketplace_id=rule.marketplace_id,
        event_id=event.id if event is not None else None,
        rule_id=rule.id,
        origin="test",
        log_seq=logcap.reserve_log_seqs(session, rule.marketplace_id, 1),
        trigger=rule.trigger,
        app=integration.app,
        action=rule.action,
        integration_id=integration.id,
        product_id=product.id if product is not None else None,
        product_name=snapshot.product_name(product) or listed.get("name"),
        product_external_id=product.external_id if product is not None else listed.get("id"),
        ran={**ran, "test": {"mode": LIVE, "example": event is None, "calls": []}},
        email=email,
        status="failed",
        reason=INTERRUPTED,
        attempts=1,
        dispatches=1,
        history=[],
        job_id="",
        started_at=now,
        finished_at=now,
    )
    session.add(entry)
    session.flush()  # for its id, which names its job
    entry.job_id = jobqueue.job_id_of(entry)  # never enqueued: the id keeps the entry like every other
    return entry


def _close_entry(rt, session, run_id: int, integration: Integration, result: Result, ran: dict, started) -> int | None:
    entry = session.get(Run, run_id)
    if entry is None:  # trimmed by a log cap smaller than one entry: nothing to record it in
        return None
    outcome, finished = result.outcome, utcnow()
    tested = {**ran, "test": {"mode": result.mode, "example": result.example, "calls": result.calls}}
    attempt = {
        "attempt": 1,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "status": outcome.status,
        "reason": outcome.reason,
        "retryable": False,  # a test is not retried: run it again
        "ran": tested,
    }
    if outcome.details:
        attempt["details"] = _json(dict(outcome.details))
    entry.ran, entry.history = tested, [attempt]
    entry.status, entry.reason, entry.finished_at = outcome.status, outcome.reason, finished
    if outcome.needs_attention:  # a live call learned the connection is broken: as a run would say
        integration = session.get(Integration, integration.id)
        integration.status = "needs_attention"
        integration.status_reason = outcome.reason
    entry.log_seq = logcap.reserve_log_seqs(session, entry.marketplace_id, 1)
    logcap.trim(session, entry.marketplace_id, rt.settings.log_cap)
    session.commit()
    return run_id
