"""Access reconciliation (hookyard.reconcile): start a check of an integration (202, then a report to poll), read
its differences, and fix all or some of them as ordinary logged runs."""

from __future__ import annotations

from flask import url_for
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import ValidationError, fields, pre_load, validate
from sqlalchemy import select

from .. import reconcile, tasks
from ..models import RECONCILE_STATES, Integration, ReconcileReport, Task
from .auth import api_blueprint
from .base import BaseSchema, abort_invalid, id_field, marketplace_id, owned, page_of, rt, session
from .tasks import POLL_AFTER, TaskSchema, abort_not_queued
from .tasks import out as task_out

# Two blueprints: the check starts from its integration, the report is a resource of its own.
start_blp = api_blueprint(
    "reconciliations", "Access reconciliation: compare who should have access with who has it", path="integrations"
)
blp = api_blueprint("reconcile-reports", "Access reconciliation reports: their differences, and fixing them")


BLUEPRINTS = (start_blp, blp)


class TargetSchema(BaseSchema):
    type = fields.String(metadata={"description": "community | space | space_group | member_tag (Circle)"})
    id = fields.Raw(allow_none=True, metadata={"description": "The target's id in the app; null for the community."})
    name = fields.String(allow_none=True, metadata={"description": "From the integration's last refresh."})


class DifferenceSchema(BaseSchema):
    id = fields.Integer(metadata={"description": "The difference's number in its report."})
    kind = fields.String(metadata={"description": " | ".join(reconcile.KINDS)})
    target = fields.Nested(TargetSchema)
    email = fields.String()
    reason = fields.String(metadata={"description": "Why, for people: the event and what Circle says."})
    rule_id = fields.Integer(
        allow_none=True, metadata={"description": "The rule whose run fixes it (null: untouched)."}
    )
    event_id = fields.Integer(allow_none=True, metadata={"description": "The event that decides it."})
    occurred_at = fields.String(allow_none=True)
    trigger = fields.String(allow_none=True)
    fixed = fields.Integer(allow_none=True, metadata={"description": "The run that fixed it, or null."})


class ReportSchema(BaseSchema):
    id = fields.Integer()
    integration_id = fields.Integer()
    task_id = fields.Integer(allow_none=True)
    status = fields.String(metadata={"description": " | ".join(RECONCILE_STATES)})
    scheduled = fields.Boolean(metadata={"description": "Started by the schedule, not by someone."})
    calls = fields.Integer(metadata={"description": "Calls made to the app's remote (they count against its quota)."})
    message = fields.String(metadata={"description": "What it found, or why it failed."})
    summary = fields.Dict(
        metadata={
            "description": "counts per kind, targets (counts per target), rules, events_read, oldest_event_at, "
            "event_retention_days, checked_at."
        }
    )
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)


class ReportPageSchema(ReportSchema):
    differences = fields.List(fields.Nested(DifferenceSchema))
    differences_total = fields.Integer(metadata={"description": "Differences of the kind asked for, in all."})
    page = fields.Integer()
    per_page = fields.Integer()


class StartedSchema(ReportSchema):
    task = fields.Nested(TaskSchema, allow_none=True)


class ReportQuerySchema(BaseSchema):
    kind = fields.String(validate=validate.OneOf(reconcile.KINDS))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class FixSchema(BaseSchema):
    all = fields.Boolean(
        load_default=False, metadata={"description": "true: fix every missing and should_be_gone difference."}
    )
    differences = fields.List(
        id_field(),
        load_default=list,
        validate=validate.Length(max=10_000),
        metadata={"description": "The ids of differences to fix (besides all of them, with all: true)."},
    )

    @pre_load
    def _json_boolean(self, data, **kwargs):
        # JSON's true and false only: 1, 0 or "yes" would fix all (or nothing) by accident.
        if isinstance(data, dict) and "all" in data and not isinstance(data["all"], bool):
            raise ValidationError({"all": ["Not a valid boolean: use true or false."]})
        return data


class FixedRunSchema(BaseSchema):
    run_id = fields.Integer()
    rule_id = fields.Integer()
    event_id = fields.Integer()
    differences = fields.List(fields.Integer())


class SkippedSchema(BaseSchema):
    id = fields.Integer()
    reason = fields.String()


class FixedSchema(BaseSchema):
    runs = fields.List(fields.Nested(FixedRunSchema), metadata={"description": "One run per (rule, event) fixed."})
    skipped = fields.List(fields.Nested(SkippedSchema), metadata={"description": "Chosen, not fixed, and why."})
    report = fields.Nested(ReportSchema)


REPORT_HEADERS = {
    "Location": {"description": "The report: /api/v1/reconcile-reports/{id}", "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds before polling the report.", "schema": {"type": "integer"}},
}


def _owned_report(report_id: int) -> ReconcileReport:
    return reconcile.settle(session(), owned(ReconcileReport, report_id))


@start_blp.route("/<int:integration_id>/reconcile")
class IntegrationReconcile(MethodView):
    @start_blp.response(202, StartedSchema, headers=REPORT_HEADERS)
    @start_blp.alt_response(503, response="SERVICE_UNAVAILABLE", description="The job queue (Redis) is unreachable.")
    @start_blp.alt_response(
        409,
        response="CONFLICT",
        description="It cannot be checked as it is: its app reads no members, or no rule governs it.",
    )
    def post(self, integration_id):
        """Start checking who has access in the app against what the rules and the store's events say.

        Answers the report at once (the one already running while a check of this integration runs) with its
        task; GET its Location until its status is ready. A check started here always runs, whatever the quota.
        """
        integration = owned(Integration, integration_id)
        try:
            report = reconcile.start(rt(), session(), integration)
        except reconcile.NotReconcilable as exc:
            # The integration exists but cannot be checked as it is (its app reads no members, or no rule governs it).
            abort(409, message=exc.messages["integration_id"][0])
        except tasks.TaskNotQueued as exc:
            abort_not_queued(exc)
        task = session().get(Task, report.task_id) if report.task_id else None
        headers = {
            "Location": url_for("reconcile-reports.ReportById", report_id=report.id),
            "Retry-After": str(POLL_AFTER),
        }
        return {**reconcile.report_out(report), "task": task_out(task) if task else None}, headers


@start_blp.route("/<int:integration_id>/reconcile-reports")
class IntegrationReports(MethodView):
    @start_blp.response(200, ReportSchema(many=True))
    @start_blp.paginate()
    def get(self, integration_id, pagination_parameters):
        """List an integration's access reports, newest first (without their differences)"""
        owned(Integration, integration_id)
        query = select(ReconcileReport).where(
            ReconcileReport.marketplace_id == marketplace_id(), ReconcileReport.integration_id == integration_id
        )
        reports = page_of(query, pagination_parameters, ReconcileReport.id.desc())
        return [reconcile.report_out(reconcile.settle(session(), r)) for r in reports]


@blp.route("/<int:report_id>")
class ReportById(MethodView):
    @blp.arguments(ReportQuerySchema, location="query")
    @blp.response(200, ReportPageSchema)
    def get(self, args, report_id):
        """Show a report with one page of its differences (filter them with kind)"""
        report = _owned_report(report_id)
        differences = [d for d in report.differences or () if args.get("kind") in (None, d["kind"])]
        start = (args["page"] - 1) * args["per_page"]
        return {
            **reconcile.report_out(report),
            "differences": differences[start : start + args["per_page"]],
            "differences_total": len(differences),
            "page": args["page"],
            "per_page": args["per_page"],
        }


@blp.route("/<int:report_id>/fix")
class ReportFix(MethodView):
    @blp.arguments(FixSchema)
    @blp.response(202, FixedSchema)
    def post(self, body, report_id):
        """Fix all (`{"all": true}`) or some (`{"differences": [ids]}`) of a report's differences.

        Each fix is an ordinary run of the rule for the event that decided it (origin reconcile), queued, paced,
        retried and logged as usual; one run fixes every difference of its rule and event. A difference already
        fixed is not fixed again (it is listed in skipped); an untouched one is refused: no rule put that person there.
        """
        report = _owned_report(report_id)
        try:
            # Nothing chosen fixes nothing (202, no run); with all: true a list adds nothing (all never fixes untouched).
            fixed = reconcile.fix(rt(), session(), report, None if body["all"] else body["differences"])
        except ValidationError as exc:
            if "report" in exc.messages:
                session().rollback()
                abort(409, message=exc.messages["report"][0])
            abort_invalid(exc, message="These differences cannot be fixed.")
        session().refresh(report)
        return {"runs": fixed.runs, "skipped": fixed.skipped, "report": reconcile.report_out(report)}
