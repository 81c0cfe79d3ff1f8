"""The dashboard: the last 14 days of events and runs, the failure rate per action, and what needs attention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from flask import render_template
from sqlalchemy import Integer, func, select

from hookyard import connections, usage
from hookyard.models import Event, Integration, Rule, Run, utcnow
from hookyard.requestctx import db_session as db
from hookyard.requestctx import runtime as rt
from hookyard.requestctx import store_id as marketplace_id

from .blueprint import bp
from .labels import action_label, marketplace_integrations

DAYS = 14
OUTCOMES = ("succeeded", "failed", "skipped")


@dataclass
class Day:
    day: date
    events: int
    runs: dict


@bp.route("/")
def dashboard():
    today = utcnow().date()
    first = today - timedelta(days=DAYS - 1)
    since = utcnow().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=DAYS - 1)
    mp = marketplace_id()
    events = {
        _as_date(d): n
        for d, n in db().execute(
            select(func.date(Event.received_at), func.count())
            .where(Event.marketplace_id == mp, Event.received_at >= since)
            .group_by(func.date(Event.received_at))
        )
    }
    runs: dict = {}
    for d, status, n in db().execute(
        select(func.date(Run.finished_at), Run.status, func.count())
        .where(Run.marketplace_id == mp, Run.finished_at >= since, Run.status.in_(OUTCOMES))
        .group_by(func.date(Run.finished_at), Run.status)
    ):
        runs.setdefault(_as_date(d), {})[status] = n
    days = [
        Day(
            first + timedelta(days=i), events.get(first + timedelta(days=i), 0), runs.get(first + timedelta(days=i), {})
        )
        for i in range(DAYS)
    ]
    per_action = []
    for app, action, total, failed in db().execute(
        select(Run.app, Run.action, func.count(), func.sum((Run.status == "failed").cast(Integer)))
        .where(Run.marketplace_id == mp, Run.finished_at >= since, Run.status.in_(OUTCOMES))
        .group_by(Run.app, Run.action)
    ):
        per_action.append(
            {
                "label": action_label(app, action),
                "total": total,
                "failed": failed or 0,
                "rate": (failed or 0) / total if total else 0.0,
                "action": action,
            }
        )
    per_action.sort(key=lambda a: (-a["rate"], a["label"]))
    attention = list(
        db().scalars(
            select(Integration).where(Integration.marketplace_id == mp, Integration.status == "needs_attention")
        )
    )
    failed_recent = db().scalar(
        select(func.count())
        .select_from(Run)
        .where(Run.marketplace_id == mp, Run.status == "failed", Run.finished_at >= since)
    )
    totals = {s: sum(d.runs.get(s, 0) for d in days) for s in OUTCOMES}
    quiet = not any(d.events for d in days) and not any(totals.values())
    return render_template(
        "dashboard.html",
        days=days,
        chart=_chart(days),
        per_action=per_action,
        metered=_metered(),
        first_steps=_first_steps() if quiet else None,
        attention=attention,
        failed_recent=failed_recent,
        totals=totals,
        events_total=sum(d.events for d in days),
        since=first,
    )


@dataclass
class Metered:
    integration: Integration
    usage: dict
    warning: dict | None  # quota_near or quota_exceeded


def _metered() -> list[Metered]:
    """Each connection whose remote meters calls (Circle's monthly quota), with this month's count."""
    found = []
    for integration in marketplace_integrations():
        used = connections.usage_of(rt(), db(), integration)
        if used is not None:
            found.append(Metered(integration, used, next(iter(usage.warnings(used)), None)))
    return found


@dataclass
class Step:
    text: str
    endpoint: str  # where an owner does it
    values: dict
    done: bool


def _first_steps() -> list[Step]:
    """What a store with nothing in its last 14 days does first, in order: connect the store, connect an app with
    actions, add a rule. Shown instead of an empty chart; a step already done says so."""
    apps, connected = rt().registry.apps, {i.app for i in marketplace_integrations()}
    steps = []
    for key, text in (
        ("samcart", "Connect SamCart, so its sales arrive as events"),
        ("circle", "Connect Circle, the community the rules act on"),
    ):
        if key in apps:
            steps.append(Step(text, "web.configure_integration", {"app_key": key}, key in connected))
    has_rule = db().scalar(select(func.count()).select_from(Rule).where(Rule.marketplace_id == marketplace_id())) > 0
    steps.append(Step("Add a rule: when a product is purchased, what happens in Circle", "web.new_rule", {}, has_rule))
    return steps


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


CHART_W, CHART_H, PAD_LEFT, PAD_BOTTOM = 700, 220, 36, 28


def _chart(days: list[Day]) -> dict:
    """Bar geometry for the SVG: one stacked bar of outcomes per day, and a dot for the day's events."""
    ticks = _ticks(max([sum(d.runs.values()) for d in days] + [d.events for d in days] + [1]))
    scale = (CHART_H - PAD_BOTTOM - 10) / ticks[-1]
    slot = (CHART_W - PAD_LEFT) / len(days)
    bars = []
    for i, d in enumerate(days):
        x = PAD_LEFT + i * slot + slot * 0.2
        y = CHART_H - PAD_BOTTOM
        segments = []
        for status in OUTCOMES:
            h = d.runs.get(status, 0) * scale
            if h:
                y -= h
                segments.append({"status": status, "y": round(y, 1), "h": round(h, 1), "n": d.runs[status]})
        bars.append(
            {
                "x": round(x, 1),
                "w": round(slot * 0.6, 1),
                "segments": segments,
                "day": d,
                "label_x": round(x + slot * 0.3, 1),
                "event_y": round(CHART_H - PAD_BOTTOM - d.events * scale, 1),
            }
        )
    ticks = [{"value": v, "y": round(CHART_H - PAD_BOTTOM - v * scale, 1)} for v in ticks]
    return {"w": CHART_W, "h": CHART_H, "bars": bars, "ticks": ticks, "base": CHART_H - PAD_BOTTOM, "left": PAD_LEFT}


def _ticks(peak: int) -> list[int]:
    """At most six round gridlines, the top one at or above the peak."""
    step = next(s * 10**e for e in range(12) for s in (1, 2, 5) if peak / (s * 10**e) <= 5)
    return list(range(0, peak + step, step)) if peak % step else list(range(0, peak + 1, step))
