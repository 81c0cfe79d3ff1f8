"""Integration → Check access: start an access check (hookyard.reconcile) of a connection whose app can list who
holds what (Circle), follow it, and read its report: counts per kind and target, each person's reason, and fixing
all or the chosen differences, which queues ordinary runs (linked from the report once made).

The report page reloads itself (a ``Refresh`` header, no script: the CSP allows none) while the check runs."""

from __future__ import annotations

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from marshmallow import ValidationError
from sqlalchemy import select

from hookyard import reconcile, tasks
from hookyard.models import Integration, ReconcileReport, Task
from hookyard.requestctx import db_session as db
from hookyard.requestctx import owned
from hookyard.requestctx import runtime as rt
from hookyard.requestctx import store_id as marketplace_id

from .blueprint import bp, owner_only
from .forms import flat_errors

PAGE_RELOAD = 2  # seconds between reloads of a running report's page
SHOWN = 500  # differences listed at once; the rest are counted (the API pages through all of them)
KIND_LABELS = {"missing": "Missing", "should_be_gone": "Should be gone", "untouched": "Untouched"}


@bp.app_template_global()
def access_check_of(integration: Integration) -> dict | None:
    """For the integration page's Access card: whether it can be checked at all, and its latest report."""
    if reconcile.members_of(rt(), integration) is None:
        return None
    last = db().scalar(
        select(ReconcileReport)
        .where(ReconcileReport.marketplace_id == marketplace_id(), ReconcileReport.integration_id == integration.id)
        .order_by(ReconcileReport.id.desc())
        .limit(1)
    )
    return {"last": reconcile.settle(db(), last) if last is not None else None}


@bp.route("/integrations/<int:integration_id>/reconcile", methods=["POST"])
@owner_only
def reconcile_integration(integration_id):
    """Starts a check (or finds the one under way) and shows its report."""
    integration = owned(Integration, integration_id)
    try:
        report = reconcile.start(rt(), db(), integration)
    except reconcile.NotReconcilable as exc:
        db().rollback()
        flash(" ".join(flat_errors(exc.messages).values()), "error")
        return redirect(url_for("web.integration", integration_id=integration.id))
    except tasks.TaskNotQueued as exc:
        flash(f"The check could not start: {exc.task.message} Try again in a moment.", "error")
        return redirect(url_for("web.integration", integration_id=integration.id))
    return redirect(url_for("web.reconcile_report", report_id=report.id))


@bp.route("/reconcile-reports/<int:report_id>")
def reconcile_report(report_id):
    report = reconcile.settle(db(), owned(ReconcileReport, report_id))
    integration = db().get(Integration, report.integration_id)
    if integration is None or integration.marketplace_id != marketplace_id():
        integration = None  # deleted since: the report outlives it
    kind = request.args.get("kind")
    if kind is not None and kind not in reconcile.KINDS:
        abort(404, description=f"No kind of difference is called {kind!r}.")
    differences = [d for d in report.differences or () if kind in (None, d["kind"])]
    task = db().get(Task, report.task_id) if report.task_id else None
    running = report.status == "running"
    fixed_runs = sorted({d["fixed"] for d in report.differences or () if d.get("fixed")})
    response = make_response(
        render_template(
            "reconcile_report.html",
            report=report,
            summary=report.summary or {},
            integration=integration,
            task=task,
            running=running,
            kind=kind,
            kinds=KIND_LABELS,
            differences=differences[:SHOWN],
            hidden=max(0, len(differences) - SHOWN),
            fixable=[d for d in report.differences or () if d["kind"] in reconcile.FIXABLE and not d.get("fixed")],
            fixed_runs=fixed_runs,
            reload_every=PAGE_RELOAD,
        )
    )
    if running:
        response.headers["Refresh"] = str(PAGE_RELOAD)
    return response


@bp.route("/reconcile-reports/<int:report_id>/fix", methods=["POST"])
@owner_only
def fix_reconcile_report(report_id):
    """Fix all (the "Fix all" button) or the checked differences, as runs; back to the report with links to them."""
    report = owned(ReconcileReport, report_id)
    if request.form.get("all") == "1":
        chosen = None
    else:
        try:
            chosen = [int(value) for value in request.form.getlist("difference")]
        except ValueError:
            abort(400, description="A difference is named by its number.")
        if not chosen:
            flash("Choose the differences to fix first, or fix all.", "error")
            return redirect(url_for("web.reconcile_report", report_id=report.id))
    try:
        fixed = reconcile.fix(rt(), db(), report, chosen)
    except ValidationError as exc:
        db().rollback()
        flash(" ".join(flat_errors(exc.messages).values()), "error")
        return redirect(url_for("web.reconcile_report", report_id=report.id))
    runs = len(fixed.runs)
    message = f"{runs} fix{'es' if runs != 1 else ''} queued as runs: they run like any other, and the log shows them."
    if fixed.skipped:
        message += (
            f" {len(fixed.skipped)} skipped ({fixed.skipped[0]['reason']}{'…' if len(fixed.skipped) > 1 else ''})."
        )
    flash(message, "success")
    return redirect(url_for("web.reconcile_report", report_id=report.id))
