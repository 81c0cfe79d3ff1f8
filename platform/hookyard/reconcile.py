"""Access reconciliation: who should hold each target an integration's rules govern (a space, a tag, the
community), by the store's stored events, compared with who holds it in the app's remote (``App.members``).

A rule *governs* a target when its trigger grants access (``TriggerType.access == "grants"``: a purchase, a
subscription started) and its action grants that target (``Action.access``), or its trigger revokes (a refund, a
cancellation) and its action revokes it. Only governed targets are compared, and only people the store's events
name are ever proposed for a change: nobody that no rule governs is ever proposed for removal.

For each (person, target), the latest governing event decides (by ``occurred_at``, then id): a grant says they
should be in, a revoke (only ever from a rule that revokes that target) that they should be out. The differences:

- ``missing``: should be in, is not. The fix runs the granting rule for that event again.
- ``should_be_gone``: revoked, still there. The fix runs the revoking rule for that event again.
- ``untouched``: in a governed target, but no governing event of this store names them for it (they came some
  other way, or before the stored events reach back). Listed and left alone: this version cannot fix them.

A fix makes ordinary runs (origin ``reconcile``), queued, paced, retried and logged like any other; each
difference keeps the id of the run that fixed it, and is never fixed twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import jobqueue, logcap, snapshot, tasks
from .contract import App, Target
from .emit import enqueue_runs
from .models import Event, Integration, Product, ReconcileReport, Rule, Run, utcnow
from .runtime import Runtime

log = logging.getLogger(__name__)

RECONCILE = "integration.reconcile"  # the task kind (hookyard.tasks.JOBS)
KINDS = ("missing", "should_be_gone", "untouched")
FIXABLE = ("missing", "should_be_gone")


class NotReconcilable(ValidationError):
    """The integration cannot be reconciled (its app cannot list members, or no rule governs anything)."""


# --- what the rules govern ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Governing:
    rule: Rule
    kind: str  # "grants" | "revokes"
    targets: tuple[Target, ...]


def members_of(rt: Runtime, integration: Integration) -> App | None:
    """The integration's app when it can say who holds what (``App.members``), else None."""
    app = rt.registry.apps.get(integration.app)
    return app if app is not None and app.members is not None else None


def governing_rules(rt: Runtime, session: Session, integration: Integration) -> list[Governing]:
    """The enabled rules of this integration that grant or revoke access, with the targets each governs."""
    app = rt.registry.apps.get(integration.app)
    if app is None:
        return []
    rules = session.scalars(
        select(Rule)
        .where(
            Rule.marketplace_id == integration.marketplace_id,
            Rule.integration_id == integration.id,
            Rule.enabled.is_(True),
        )
        .order_by(Rule.id)
    )
    found = []
    for rule in rules:
        trigger = rt.registry.trigger_types.get(rule.trigger)
        action = app.action(rule.action)
        if trigger is None or action is None or action.access is None or trigger.access != action.access.kind:
            continue  # e.g. a purchase that removes, a charge that adds: neither grants nor revokes
        try:
            targets = tuple(_target(t) for t in action.access.targets(rule.params or {}))
        except Exception:  # a plugin bug: the rule is left out, the log says why
            log.exception("app %s: access targets of action %s raised for rule %s", app.key, action.key, rule.id)
            continue
        if targets:
            found.append(Governing(rule, trigger.access, targets))
    return found


def _target(target) -> Target:
    kind, target_id = target
    return (str(kind), target_id)


def target_key(target: Target) -> str:
    return f"{target[0]}:{'' if target[1] is None else target[1]}"


def target_out(app: App, integration: Integration, target: Target) -> dict:
    """{type, id, name}: the name from the integration's option lists (its last refresh), else None."""
    kind, target_id = target
    name = None
    listed = (app.members.option_lists or {}).get(kind)
    if listed:
        for option in (integration.options or {}).get(listed) or ():
            if isinstance(option, dict) and str(option.get("id")) == str(target_id):
                name = option.get("name")
                break
    return {"type": kind, "id": target_id, "name": name}


def target_text(app: App, target: dict) -> str:
    """For people: "space Members", "the community", "tag #7"."""
    label = (app.members.labels or {}).get(target["type"], target["type"].replace("_", " "))
    if target["id"] is None:
        return label
    return f"{label} {target['name'] or '#' + str(target['id'])}"


# --- who should be where ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """The latest governing event for one (person, target)."""

    kind: str  # "grants" | "revokes"
    rule_id: int
    event_id: int
    occurred_at: datetime
    trigger: str


@dataclass
class Plan:
    """What the store's events say, read before any call to the remote."""

    governing: list[Governing]
    targets: list[Target]
    decisions: dict[tuple[str, Target], Decision] = field(default_factory=dict)
    events_read: int = 0
    oldest_event_at: datetime | None = None

    def candidates(self) -> dict[Target, set[str]]:
        found: dict[Target, set[str]] = {target: set() for target in self.targets}
        for email, target in self.decisions:
            found[target].add(email)
        return found


EVENT_BATCH = 1000


def plan(rt: Runtime, session: Session, integration: Integration) -> Plan:
    """The governing rules, their targets, and the deciding event of every (person, target) the events name."""
    governing = governing_rules(rt, session, integration)
    targets = list(dict.fromkeys(t for g in governing for t in g.targets))
    result = Plan(governing, targets)
    result.oldest_event_at = session.scalar(
        select(func.min(Event.received_at)).where(Event.marketplace_id == integration.marketplace_id)
    )
    by_trigger: dict[str, list[Governing]] = defaultdict(list)
    for g in governing:
        by_trigger[g.rule.trigger].append(g)
    if not by_trigger:
        return result
    rows = session.execute(
        select(Event.id, Event.trigger, Event.product_id, Event.email, Event.occurred_at)
        .where(
            Event.marketplace_id == integration.marketplace_id,
            Event.trigger.in_(sorted(by_trigger)),
            Event.email.is_not(None),
        )
        .order_by(Event.occurred_at, Event.id)
        .execution_options(yield_per=EVENT_BATCH)
    )
    for event_id, trigger, product_id, email, occurred_at in rows:
        result.events_read += 1
        for g in by_trigger[trigger]:
            if g.rule.product_id is not None and g.rule.product_id != product_id:
                continue  # a product's rule governs its product's events; a global rule every event
            decision = Decision(g.kind, g.rule.id, event_id, occurred_at, trigger)
            for target in g.targets:
                # Ordered by time, then id: a later row always decides over an earlier one.
                result.decisions[(email, target)] = decision
    return result


# --- the comparison --------------------------------------------------------------------------------------------


def compare(
    rt: Runtime, session: Session, integration: Integration, app: App, the_plan: Plan, holders
) -> tuple[list[dict], dict]:
    """The differences (each with an id, a reason and the fix's rule and event) and the counts per kind and
    target. ``holders`` is the Holders the app's ``members.read`` returned."""
    targets = {t: target_out(app, integration, t) for t in the_plan.targets}
    members = {t: {e.strip().lower() for e in (holders.members.get(t) or ())} for t in the_plan.targets}
    partial = set(holders.partial or ())
    root = app.members.root
    found: list[dict] = []
    for (email, target), decision in sorted(
        the_plan.decisions.items(), key=lambda item: (target_key(item[0][1]), item[0][0])
    ):
        present = email in members[target]
        if decision.kind == "grants" and not present and _taken_out(the_plan, root, email, target, decision):
            continue  # out of the community since: in none of its spaces either, whatever granted them
        if decision.kind == "grants" and not present:
            found.append(_difference("missing", email, targets[target], decision))
        elif decision.kind == "revokes" and present:
            found.append(_difference("should_be_gone", email, targets[target], decision))
    for target in the_plan.targets:
        if target in partial:
            continue  # only the candidates were asked about: who else is there is not known
        for email in sorted(members[target]):
            if (email, target) not in the_plan.decisions:
                found.append(_difference("untouched", email, targets[target], None))
    _explain(rt, session, app, found)
    for number, difference in enumerate(found, start=1):
        difference["id"] = number
    return found, _counts(found, targets, members, partial)


def _taken_out(the_plan: Plan, root: Target | None, email: str, target: Target, decision: Decision) -> bool:
    if root is None or target == root:
        return False
    above = the_plan.decisions.get((email, root))
    return above is not None and above.kind == "revokes" and above.occurred_at >= decision.occurred_at


def _difference(kind: str, email: str, target: dict, decision: Decision | None) -> dict:
    return {
        "id": 0,
        "kind": kind,
        "target": target,
        "email": email,
        "reason": "",
        "rule_id": decision.rule_id if decision else None,
        "event_id": decision.event_id if decision else None,
        "occurred_at": decision.occurred_at.isoformat() if decision else None,
        "trigger": decision.trigger if decision else None,
        "fixed": None,
    }


def _explain(rt: Runtime, session: Session, app: App, found: list[dict]) -> None:
    """A reason a merchant can read: "Product Refunded on 2026-11-02 (Community, order 1234) but still in space
    Members". The payloads are read only for the events that decide a difference."""
    wanted = sorted({d["event_id"] for d in found if d["event_id"] is not None})
    payloads: dict[int, dict] = {}
    for start in range(0, len(wanted), EVENT_BATCH):
        ids = wanted[start : start + EVENT_BATCH]
        payloads.update(
            {
                event_id: payload
                for event_id, payload in session.execute(select(Event.id, Event.payload).where(Event.id.in_(ids)))
            }
        )
    for d in found:
        where = target_text(app, d["target"])
        if d["kind"] == "untouched":
            d["reason"] = f"in {where}, and no stored event of a rule that governs it names them: left alone"
            continue
        trigger = rt.registry.trigger_types.get(d["trigger"])
        label = trigger.label if trigger else d["trigger"]
        when = d["occurred_at"][:10]
        detail = _detail(payloads.get(d["event_id"]) or {})
        said = f"{label} on {when}{f' ({detail})' if detail else ''}"
        d["reason"] = f"{said} but not in {where}" if d["kind"] == "missing" else f"{said} but still in {where}"


def _detail(payload: dict) -> str:
    parts = []
    product = payload.get("product") if isinstance(payload.get("product"), dict) else {}
    if product.get("name"):
        parts.append(str(product["name"]))
    order = payload.get("order") if isinstance(payload.get("order"), dict) else {}
    if order.get("id") not in (None, ""):
        parts.append(f"order {order['id']}")
    return ", ".join(parts)


def _counts(found: list[dict], targets: dict, members: dict, partial: set) -> dict:
    counts = {kind: 0 for kind in KINDS}
    per_target = {target_key(t): {kind: 0 for kind in KINDS} for t in targets}
    for d in found:
        counts[d["kind"]] += 1
        per_target[target_key((d["target"]["type"], d["target"]["id"]))][d["kind"]] += 1
    return {
        "counts": counts,
        "targets": [
            {
                "target": targets[t],
                **per_target[target_key(t)],
                "holders": len(members[t]),
                "partial": t in partial,
            }
            for t in targets
        ],
    }


# --- starting one ----------------------------------------------------------------------------------------------


def check_reconcilable(rt: Runtime, session: Session, integration: Integration) -> App:
    app = members_of(rt, integration)
    if app is None:
        name = rt.registry.apps[integration.app].name if integration.app in rt.registry.apps else integration.app
        raise NotReconcilable({"integration_id": [f"The {name} app cannot list who holds access: nothing to check."]})
    if not governing_rules(rt, session, integration):
        raise NotReconcilable(
            {
                "integration_id": [
                    "No enabled rule of this integration grants or revokes access (a purchase that adds, a refund or "
                    "cancellation that removes): there is nothing to compare."
                ]
            }
        )
    return app


def start(rt: Runtime, session: Session, integration: Integration, scheduled: bool = False) -> ReconcileReport:
    """A new report and the task that fills it in, or the report of the check already queued or running for this
    integration. Commits. Raises NotReconcilable, or tasks.TaskNotQueued (the report is then failed)."""
    check_reconcilable(rt, session, integration)
    existing = tasks.active(session, integration.marketplace_id, RECONCILE, integration.id)
    if existing is not None and not tasks.give_up_if_dead(rt, session, existing):
        found = _report_of(session, existing)
        if found is not None:
            return found
    report = ReconcileReport(
        marketplace_id=integration.marketplace_id,
        integration_id=integration.id,
        status="running",
        scheduled=scheduled,
        summary={"message": "Waiting for a worker."},
        differences=[],
        calls=0,
    )
    session.add(report)
    session.flush()
    report_id = report.id
    try:
        task = tasks.start(rt, session, integration.marketplace_id, RECONCILE, integration.id, {"report_id": report_id})
    except tasks.TaskNotQueued as exc:
        end(rt, report_id, "failed", exc.task.message, task_id=exc.task.id)
        raise
    theirs = (task.params or {}).get("report_id")
    if theirs != report_id:
        # Another check of this integration started at the same moment: answer with its report, not this one.
        session.rollback()
        found = session.get(ReconcileReport, theirs) if theirs else None
        if found is None:
            raise NotReconcilable({"integration_id": ["A check of this integration is under way; try again soon."]})
        return found
    report.task_id = task.id
    session.commit()
    return report


def _report_of(session: Session, task) -> ReconcileReport | None:
    report_id = (task.params or {}).get("report_id")
    return session.get(ReconcileReport, report_id) if report_id else None


def end(
    rt: Runtime, report_id: int | None, status: str, message: str, task_id: int | None = None, calls: int = 0
) -> None:
    """Ends a report that could not be made (failed, cancelled), in a transaction of its own, with the calls it made
    before that (they count against the quota all the same)."""
    if report_id is None:
        return
    with rt.db.session() as session:
        report = session.get(ReconcileReport, report_id)
        if report is None or report.status != "running":
            return
        report.status = status
        report.calls = calls
        report.summary = {**(report.summary or {}), "message": message}
        report.finished_at = utcnow()
        if task_id is not None:
            report.task_id = task_id
        session.commit()


def settle(session: Session, report: ReconcileReport) -> ReconcileReport:
    """A report still ``running`` whose task ended without it (given up when its worker died) takes the task's end."""
    if report.status != "running" or report.task_id is None:
        return report
    from .models import Task

    task = session.get(Task, report.task_id)
    # Not "succeeded": a task that succeeded wrote its report ready before it ended (a stale copy may say running).
    if task is not None and task.status in ("failed", "cancelled"):
        report.status = "cancelled" if task.status == "cancelled" else "failed"
        report.summary = {**(report.summary or {}), "message": task.message}
        report.finished_at = task.finished_at or utcnow()
        session.commit()
    return report


def estimate(session: Session, integration: Integration, the_plan: Plan) -> int:
    """The calls a check will make: what the last finished check of this integration made, else one page for the
    community's list and one per space or group (the least any list costs)."""
    last = session.scalar(
        select(ReconcileReport.calls)
        .where(
            ReconcileReport.marketplace_id == integration.marketplace_id,
            ReconcileReport.integration_id == integration.id,
            ReconcileReport.status == "ready",
        )
        .order_by(ReconcileReport.id.desc())
        .limit(1)
    )
    if last:
        return int(last)
    lists = {t[0] for t in the_plan.targets} & {"community", "member_tag"}
    return (1 if lists else 0) + sum(1 for t in the_plan.targets if t[0] not in ("community", "member_tag"))


# --- fixing ----------------------------------------------------------------------------------------------------


@dataclass
class Fixed:
    runs: list[dict]  # {"run_id", "rule_id", "event_id", "differences": [ids]}
    skipped: list[dict]  # {"id", "reason"}: chosen but not fixed (already fixed, the rule or event is gone)


def fix(
    rt: Runtime,
    session: Session,
    report: ReconcileReport,
    chosen: list[int] | None,
    task_id: int | None = None,
) -> Fixed:
    """Runs the fix of every fixable difference (``chosen`` None) or of those chosen: one run per (rule, event),
    however many differences it fixes. Commits, then queues the runs. Raises ValidationError for an unknown
    difference, an untouched one, or a report that is not ready."""
    locked = session.scalar(select(ReconcileReport).where(ReconcileReport.id == report.id).with_for_update())
    if locked.status != "ready":
        raise ValidationError({"report": [f"The report is {locked.status}: only a ready report can be fixed."]})
    differences = [dict(d) for d in locked.differences or ()]
    by_id = {d["id"]: d for d in differences}
    if chosen is None:
        picked = [d for d in differences if d["kind"] in FIXABLE]
    else:
        unknown = [i for i in chosen if i not in by_id]
        if unknown:
            raise ValidationError(
                {"differences": [f"Report {locked.id} has no difference {', '.join(map(str, unknown))}."]}
            )
        untouched = [i for i in chosen if by_id[i]["kind"] == "untouched"]
        if untouched:
            raise ValidationError(
                {
                    "differences": [
                        f"Difference {', '.join(map(str, untouched))} is untouched: no rule of this store put that "
                        "person there, so Hookyard leaves them alone (this version cannot fix it)."
                    ]
                }
            )
        picked = [by_id[i] for i in dict.fromkeys(chosen)]
    skipped = []
    groups: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for d in picked:
        if d["fixed"] is not None:
            skipped.append({"id": d["id"], "reason": f"already fixed by run {d['fixed']}"})
        else:
            groups[(d["rule_id"], d["event_id"])].append(d)
    runs: list[Run] = []
    made: list[dict] = []
    pending = []
    for (rule_id, event_id), ds in groups.items():
        rule, event = session.get(Rule, rule_id), session.get(Event, event_id)
        if rule is None or rule.marketplace_id != locked.marketplace_id:
            skipped += [{"id": d["id"], "reason": f"rule {rule_id} was deleted"} for d in ds]
            continue
        if event is None or event.marketplace_id != locked.marketplace_id:
            skipped += [{"id": d["id"], "reason": f"event {event_id} is no longer stored"} for d in ds]
            continue
        pending.append((rule, event, ds))
    if pending:
        first = logcap.reserve_log_seqs(session, locked.marketplace_id, len(pending))
        for i, (rule, event, ds) in enumerate(pending):
            run = _run_for(rt, session, rule, event, first + i, task_id)
            runs.append(run)
            for d in ds:
                d["fixed"] = run.id
            made.append(
                {"run_id": run.id, "rule_id": rule.id, "event_id": event.id, "differences": [d["id"] for d in ds]}
            )
    locked.differences = differences  # a new list: the JSON column is written again
    session.commit()
    enqueue_runs(rt, runs)
    return Fixed(made, skipped)


def _run_for(rt: Runtime, session: Session, rule: Rule, event: Event, log_seq: int, task_id: int | None) -> Run:
    """A run of ``rule`` for ``event`` as emit would make it, marked as a reconciliation's fix."""
    integration = session.get(Integration, rule.integration_id) if rule.integration_id else None
    product = session.get(Product, event.product_id) if event.product_id else None
    app_key = integration.app if integration else None
    run = Run(
        marketplace_id=rule.marketplace_id,
        event_id=event.id,
        rule_id=rule.id,
        origin="reconcile",
        task_id=task_id,
        log_seq=log_seq,
        trigger=event.trigger,
        app=app_key,
        action=rule.action,
        integration_id=rule.integration_id,
        product_id=event.product_id,
        email=event.email,
        status="queued",
        product_name=product.name if product else None,
        product_external_id=product.external_id if product else None,
        ran=snapshot.planned(
            rt.registry, rule, app_key, integration.name if integration else None, snapshot.product_name(product)
        ),
        job_id="",
        dispatches=1,
        history=[],
    )
    session.add(run)
    session.flush()  # its id names its job
    run.job_id = jobqueue.job_id_of(run)
    return run


# --- what the API and the UI show ------------------------------------------------------------------------------


def report_out(report: ReconcileReport) -> dict[str, Any]:
    summary = dict(report.summary or {})
    return {
        "id": report.id,
        "integration_id": report.integration_id,
        "task_id": report.task_id,
        "status": report.status,
        "scheduled": report.scheduled,
        "calls": report.calls,
        "message": summary.get("message", ""),
        "summary": summary,
        "created_at": report.created_at,
        "finished_at": report.finished_at,
    }
