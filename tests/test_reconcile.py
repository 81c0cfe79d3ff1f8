"""Access reconciliation against the real fake Circle: a store's stored events say who should be in the community,
a space and a tag; the fake says who is; the report lists exactly the differences, and "fix all" (ordinary runs, on
real worker processes) leaves Circle matching the rules with the people no rule governs left alone."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from hookyard import reconcile, reconcile_jobs
from hookyard.models import AppUsage, Integration, ReconcileReport, Run
from hookyard.usage import period

from .circle.fixtures import API_KEY
from .tasking import refresh, run_task_here
from .waiting import wait_for

T0 = datetime(2026, 10, 1, 12, 0, tzinfo=timezone.utc)
PRODUCT = {"id": "444", "name": "Membership"}
ORDERS = itertools.count(900_000)  # a new order for each event not given one


def email(n: int) -> str:
    return f"s{n:03d}@example.com"


class Store:
    """A Circle connection with its governing rules (disabled while events are seeded, so that no run executes)."""

    def __init__(self, api, runtime, fake):
        self.api, self.runtime, self.fake = api, runtime, fake
        self.group = fake.add_space_group("Courses")
        self.space = fake.add_space("Members")
        self.tag = fake.add_member_tag("Customer")
        self.iid = self.connect()
        refresh(api, runtime, self.iid)  # the option lists: rule parameters and the report's names
        self.rules = {
            "invite": self.rule(
                "samcart.subscription_started",
                "invite_member",
                {"space_ids": [self.space], "member_tag_ids": [self.tag], "skip_invitation": True},
            ),
            "refund": self.rule("samcart.product_refunded", "remove_member", {}),
            "cancel_space": self.rule(
                "samcart.subscription_canceled", "remove_member_from_space", {"space_id": self.space}
            ),
            "cancel_tag": self.rule("samcart.subscription_canceled", "remove_member_tag", {"member_tag_id": self.tag}),
            # Neither grants nor revokes: a purchase that removes, an event RSVP (not access).
            "odd": self.rule("samcart.product_purchased", "remove_member_from_space", {"space_id": self.space}),
        }

    def connect(self) -> int:
        r = self.api.post(
            "/api/v1/integrations",
            json={
                "app": "circle",
                "name": "Community",
                "config": {"api_key": API_KEY, "community_url": "https://test-community.circle.so"},
            },
        )
        assert r.status_code == 201, r.json
        return r.json["id"]

    def rule(self, trigger, action, params) -> int:
        body = {"product_id": None, "trigger": trigger, "integration_id": self.iid, "action": action}
        r = self.api.post("/api/v1/rules", json={**body, "params": params, "enabled": False})
        assert r.status_code == 201, r.json
        return r.json["id"]

    def enable(self, *names):
        for name in names or [n for n in self.rules if n != "odd"]:
            r = self.api.patch(f"/api/v1/rules/{self.rules[name]}", json={"enabled": True})
            assert r.status_code == 200, r.json

    def event(self, trigger, who, at, order=None) -> int:
        payload = {
            "customer": {"email": who},
            "product": PRODUCT,
            # The order names the event (SamCart's dedupe key): one per person unless given.
            "order": {"id": str(order or next(ORDERS))},
            "occurred_at": at.isoformat(),
        }
        r = self.api.post("/api/v1/events", json={"trigger": f"samcart.{trigger}", "payload": payload})
        assert r.status_code == 202, r.json
        return r.json["id"]

    @property
    def space_t(self):
        return ("space", self.space)

    @property
    def tag_t(self):
        return ("member_tag", self.tag)


COMMUNITY = ("community", None)


def check(store: Store) -> dict:
    """POST …/reconcile, its task's job run here as the worker would; the report as the API shows it, whole."""
    r = store.api.post(f"/api/v1/integrations/{store.iid}/reconcile")
    assert r.status_code == 202, r.json
    assert r.headers["Location"] == f"/api/v1/reconcile-reports/{r.json['id']}"
    assert r.json["status"] == "running" and r.json["task"]["kind"] == "integration.reconcile"
    run_job(store.runtime, r.json["task"]["id"])  # a running worker may have taken it first: then it is not claimed
    return wait_for(
        lambda: finished(store.api.get(r.headers["Location"] + "?per_page=1000").json),
        message="the check did not finish",
    )


def finished(report):
    return report if report["status"] != "running" else None


def run_job(runtime, task_id):
    return run_task_here(runtime, task_id, reconcile_jobs.reconcile_integration)


def found(report) -> set:
    return {(d["kind"], d["target"]["type"], d["target"]["id"], d["email"]) for d in report["differences"]}


def diffs(kind, targets, people) -> set:
    return {(kind, t[0], t[1], p) for t in targets for p in people}


@pytest.fixture
def store(api, runtime, fake_circle):
    return Store(api, runtime, fake_circle)


def seed_200(store: Store) -> dict:
    """200 subscribers, in groups whose expected differences are known; plus people no rule governs."""
    fake, space, tag = store.fake, store.space, store.tag
    everyone = [email(n) for n in range(200)]
    groups = {
        "fine": everyone[:140],
        "refunded_still_in": everyone[140:150],
        "refunded_gone": everyone[150:160],
        "cancelled_still_in": everyone[160:170],
        "cancelled_done": everyone[170:175],
        "removed_by_hand": everyone[175:185],
        "removed_from_space_by_hand": everyone[185:190],
        "never_invited": everyone[190:200],
    }
    for n, who in enumerate(everyone):
        store.event("subscription_started", who, T0 + timedelta(minutes=n), order=1000 + n)
    for who in groups["refunded_still_in"] + groups["refunded_gone"]:
        store.event("product_refunded", who, T0 + timedelta(days=20), order=1000 + everyone.index(who))
    for who in groups["cancelled_still_in"] + groups["cancelled_done"]:
        store.event("subscription_canceled", who, T0 + timedelta(days=25), order=1000 + everyone.index(who))
    # One refunded, then bought again: the later subscription decides (they should be in).
    store.event("product_refunded", groups["fine"][0], T0 - timedelta(days=5))
    in_full = groups["fine"] + groups["refunded_still_in"] + groups["cancelled_still_in"]
    for who in in_full:
        fake.add_member(who, active=(who != groups["fine"][1]), space_ids=[space], member_tag_ids=[tag])
    for who in groups["cancelled_done"]:
        fake.add_member(who)
    for who in groups["removed_from_space_by_hand"]:
        fake.add_member(who, member_tag_ids=[tag])
    # No governing event names these: staff, a buyer of something no rule governs, a tagged guest.
    untouched = ["staff1@example.com", "staff2@example.com", "buyer@example.com", "guest@example.com"]
    fake.add_member(untouched[0], space_ids=[space])
    fake.add_member(untouched[1], space_ids=[space], member_tag_ids=[tag])
    fake.add_member(untouched[2])
    fake.add_member(untouched[3], member_tag_ids=[tag])
    store.event("product_purchased", untouched[2], T0)  # the "odd" rule governs nothing (and stays disabled)
    fake.reset_requests()
    return {**groups, "untouched": untouched}


def expected_200(store: Store, g: dict) -> set:
    everything = (COMMUNITY, store.space_t, store.tag_t)
    staff1, staff2, buyer, guest = g["untouched"]
    return (
        diffs("should_be_gone", [COMMUNITY], g["refunded_still_in"])
        | diffs("should_be_gone", [store.space_t, store.tag_t], g["cancelled_still_in"])
        | diffs("missing", everything, g["removed_by_hand"] + g["never_invited"])
        | diffs("missing", [store.space_t], g["removed_from_space_by_hand"])
        | diffs("untouched", [COMMUNITY], g["untouched"])
        | diffs("untouched", [store.space_t], [staff1, staff2])
        | diffs("untouched", [store.tag_t], [staff2, guest])
    )


def test_a_store_of_200_subscribers_reports_exactly_the_differences_and_fix_all_makes_circle_match(
    store, circle_worker
):
    g = seed_200(store)
    store.enable()
    report = check(store)
    assert report["status"] == "ready", report
    assert found(report) == expected_200(store, g)
    summary = report["summary"]
    assert summary["counts"] == {"missing": 65, "should_be_gone": 30, "untouched": 8}
    assert summary["event_retention_days"] == 30 and summary["oldest_event_at"]
    assert sorted(summary["rules"]) == sorted(v for k, v in store.rules.items() if k != "odd")
    by_target = {(t["target"]["type"], t["target"]["id"]): t for t in summary["targets"]}
    assert by_target[store.space_t]["target"]["name"] == "Members"
    assert by_target[store.space_t]["missing"] == 25 and by_target[store.space_t]["should_be_gone"] == 10
    # The fewest calls: the community's pages (tags come with them) and the space's, 100 records a page.
    community = len(store.fake.requests_for("GET", "/community_members"))
    spaces = len(store.fake.requests_for("GET", "/space_members"))
    members, in_space = 169 + 4, 160 + 2  # everyone in the fake, and those in the space
    assert (community, spaces) == (math.ceil(members / 100), math.ceil(in_space / 100))
    assert report["calls"] == community + spaces == len(store.fake.requests_for())
    # Reasons a merchant can read.
    refunded = next(d for d in report["differences"] if d["email"] == g["refunded_still_in"][0])
    assert refunded["reason"] == ("Product Refunded on 2026-10-21 (Membership, order 1140) but still in the community")
    assert refunded["rule_id"] == store.rules["refund"] and refunded["fixed"] is None
    missing = next(
        d for d in report["differences"] if d["email"] == g["never_invited"][0] and d["target"]["type"] == "space"
    )
    assert missing["reason"] == "Subscription Started on 2026-10-01 (Membership, order 1190) but not in space Members"
    untouched = next(d for d in report["differences"] if d["kind"] == "untouched")
    assert untouched["rule_id"] is None and "left alone" in untouched["reason"]

    before = {who: store.fake.member(who) for who in g["untouched"]}
    circle_worker()
    fixed = store.api.post(f"/api/v1/reconcile-reports/{report['id']}/fix", json={"all": True})
    assert fixed.status_code == 202, fixed.json
    # One run per (rule, event): an invite fixes a person's community, space and tag at once.
    assert len(fixed.json["runs"]) == 10 + 2 * 10 + 20 + 5
    run_ids = [r["run_id"] for r in fixed.json["runs"]]
    wait_for(lambda: all_finished(store.runtime, run_ids), timeout=60, message="the fixes did not finish")
    with store.runtime.db.session() as session:
        runs = session.scalars(select(Run).where(Run.id.in_(run_ids))).all()
        assert {r.origin for r in runs} == {"reconcile"} and {r.status for r in runs} == {"succeeded"}
    # Circle now matches the rules; the untouched are as they were.
    for who in g["refunded_still_in"] + g["refunded_gone"]:
        assert store.fake.member(who) is None
    for who in g["cancelled_still_in"] + g["cancelled_done"]:
        assert store.fake.member(who)["spaces"] == set() and store.fake.member(who)["member_tags"] == set()
    for who in g["fine"] + g["removed_by_hand"] + g["never_invited"] + g["removed_from_space_by_hand"]:
        member = store.fake.member(who)
        assert member is not None and store.space in member["spaces"] and store.tag in member["member_tags"], who
    assert {who: store.fake.member(who) for who in g["untouched"]} == before
    # Each difference names its run, and none is fixed twice.
    after = store.api.get(f"/api/v1/reconcile-reports/{report['id']}?per_page=1000").json
    assert all(d["fixed"] in run_ids for d in after["differences"] if d["kind"] != "untouched")
    again = store.api.post(f"/api/v1/reconcile-reports/{report['id']}/fix", json={"all": True})
    assert again.status_code == 202 and again.json["runs"] == [] and len(again.json["skipped"]) == 95
    # A new check finds only the untouched.
    assert {d[0] for d in found(check(store))} == {"untouched"}


def all_finished(runtime, run_ids) -> bool:
    with runtime.db.session() as session:
        statuses = session.scalars(select(Run.status).where(Run.id.in_(run_ids))).all()
    return len(statuses) == len(run_ids) and all(s in ("succeeded", "skipped", "failed") for s in statuses)


@pytest.mark.parametrize("answer", ["404", "405"])
def test_without_the_member_list_endpoints_each_candidate_is_looked_up_and_the_space_is_partial(store, answer):
    people = [email(n) for n in range(5)]
    for n, who in enumerate(people):
        store.event("subscription_started", who, T0 + timedelta(minutes=n))
    store.event("subscription_canceled", people[4], T0 + timedelta(days=3))
    for who in people[:2] + people[4:]:
        store.fake.add_member(who, space_ids=[store.space], member_tag_ids=[store.tag])
    store.fake.add_member(people[2], member_tag_ids=[store.tag])  # removed from the space by hand
    store.fake.add_member("staff@example.com", space_ids=[store.space])  # untouched, but nobody can list the space
    store.fake.member_lists = answer
    store.fake.reset_requests()
    store.enable()
    report = check(store)
    assert report["status"] == "ready", report
    assert found(report) == (
        diffs("missing", [COMMUNITY, store.space_t, store.tag_t], [people[3]])
        | diffs("missing", [store.space_t], [people[2]])
        | diffs("should_be_gone", [store.space_t, store.tag_t], [people[4]])
        | diffs("untouched", [COMMUNITY], ["staff@example.com"])
    )
    space = next(t for t in report["summary"]["targets"] if t["target"]["type"] == "space")
    assert space["partial"] is True
    lookups = store.fake.requests_for("GET", "/space_member")
    assert sorted(r.query["email"] for r in lookups) == people  # the candidates only
    assert report["calls"] == 1 + 1 + len(people) == len(store.fake.requests_for())


def seed_small(store: Store) -> list[str]:
    """Five subscribers: three in Circle as the rules say, one never invited, one cancelled but still there."""
    people = [email(n) for n in range(5)]
    for n, who in enumerate(people):
        store.event("subscription_started", who, T0 + timedelta(minutes=n))
    store.event("subscription_canceled", people[4], T0 + timedelta(days=3))
    for who in people[:3] + people[4:]:
        store.fake.add_member(who, space_ids=[store.space], member_tag_ids=[store.tag])
    store.fake.reset_requests()
    store.enable()
    return people


def small_differences(store: Store, people) -> set:
    return diffs("missing", [COMMUNITY, store.space_t, store.tag_t], [people[3]]) | diffs(
        "should_be_gone", [store.space_t, store.tag_t], [people[4]]
    )


def test_every_read_of_a_check_goes_through_the_connections_pacing_budget(store):
    people = seed_small(store)
    report = check(store)
    assert report["status"] == "ready" and found(report) == small_differences(store, people)
    # The budget's log of this connection's requests (hookyard.pacing): one entry per call the check made.
    paced = store.runtime.redis.zcard(f"hookyard:pace:circle:log:integration-{store.iid}")
    assert paced == report["calls"] == len(store.fake.requests_for()) > 0


def test_a_429_while_listing_is_waited_out_and_the_check_still_reports_exactly(store):
    people = seed_small(store)
    store.fake.fail_next(2, "429", retry_after=0.2, path="/community_members")
    report = check(store)
    assert report["status"] == "ready", report
    assert found(report) == small_differences(store, people)
    assert len(store.fake.requests_for("GET", "/community_members")) == 3  # two 429s, then the page
    assert report["calls"] == len(store.fake.requests_for())  # Circle counts its 429s against the quota too


def test_a_check_that_circle_keeps_rate_limiting_fails_with_the_reason(store):
    seed_small(store)
    store.fake.fail_next(10, "429", retry_after=0.1, path="/community_members")
    report = check(store)
    assert report["status"] == "failed"
    assert "Circle answered 429 (rate limited) 4 times in a row while listing members" in report["summary"]["message"]
    assert len(store.fake.requests_for("GET", "/community_members")) == 4


def test_a_scheduled_check_over_the_quota_share_is_refused_and_one_on_demand_still_runs(store, caplog):
    store.event("subscription_started", email(1), T0)
    store.enable("invite")
    with store.runtime.db.session() as session:
        # Business: 5,000 a month; the default share is 10%, and 499 are used.
        month = period(datetime.now(timezone.utc))
        used = session.scalar(select(AppUsage).where(AppUsage.scope == "4242", AppUsage.period == month))
        used.calls = 499  # the connection's verify and refresh counted a few already
        session.commit()
        store.fake.reset_requests()
        integration = session.get(Integration, store.iid)
        report = reconcile.start(store.runtime, session, integration, scheduled=True)
        report_id, task_id = report.id, report.task_id
    run_job(store.runtime, task_id)
    refused = store.api.get(f"/api/v1/reconcile-reports/{report_id}").json
    assert refused["status"] == "failed" and refused["scheduled"] is True and refused["calls"] == 0
    assert "over 10% of the monthly quota of 5,000" in refused["message"]
    assert "HOOKYARD_RECONCILE_QUOTA_SHARE" in refused["message"]
    assert any("scheduled access check: Not run" in r.getMessage() for r in caplog.records)
    assert store.fake.requests_for() == []
    on_demand = check(store)
    assert on_demand["status"] == "ready" and on_demand["calls"] == 2  # the community's page, the space's
    assert found(on_demand) == diffs("missing", [COMMUNITY, store.space_t, store.tag_t], [email(1)])


def test_the_schedule_starts_one_check_per_interval_across_workers(store):
    from dataclasses import replace

    store.event("subscription_started", email(1), T0)
    store.enable("invite")
    rt = store.runtime
    rt.settings = replace(rt.settings, reconcile_every_hours=6.0)
    assert reconcile_jobs.schedule_due(rt) == 1
    assert reconcile_jobs.schedule_due(rt) == 0  # another worker's sweep in the same interval
    rt.redis.delete(reconcile_jobs.schedule_key(rt))
    assert reconcile_jobs.schedule_due(rt) == 0  # the last scheduled check is younger than 6 hours
    with rt.db.session() as session:
        reports = session.scalars(select(ReconcileReport)).all()
        assert [(r.scheduled, r.integration_id) for r in reports] == [(True, store.iid)]


def test_another_store_sees_and_fixes_nothing_of_a_report(store, make_client):
    store.event("subscription_started", email(1), T0)
    store.enable("invite")
    report = check(store)
    other = make_client("store-b")
    assert other.get(f"/api/v1/reconcile-reports/{report['id']}").status_code == 404
    assert other.post(f"/api/v1/reconcile-reports/{report['id']}/fix", json={"all": True}).status_code == 404
    assert other.post(f"/api/v1/integrations/{store.iid}/reconcile").status_code == 404
    assert other.get(f"/api/v1/integrations/{store.iid}/reconcile-reports").status_code == 404
    assert other.get("/api/v1/reconcile-reports/2147483648").status_code == 404
    listed = store.api.get(f"/api/v1/integrations/{store.iid}/reconcile-reports")
    assert [r["id"] for r in listed.json] == [report["id"]]


def test_bad_fix_requests_get_field_level_errors(store):
    store.event("subscription_started", email(1), T0)
    store.fake.add_member("staff@example.com")
    store.enable("invite")
    report = check(store)
    untouched = next(d["id"] for d in report["differences"] if d["kind"] == "untouched")
    url = f"/api/v1/reconcile-reports/{report['id']}/fix"
    for body in ({}, {"all": False}, {"differences": []}):  # nothing chosen: nothing fixed
        r = store.api.post(url, json=body)
        assert r.status_code == 202 and r.json["runs"] == [], (body, r.json)
    for body, where in (({"differences": ["x"]}, "differences"), ({"all": "maybe"}, "all")):
        r = store.api.post(url, json=body)
        assert r.status_code == 422 and where in r.json["errors"]["json"], (body, r.json)
    r = store.api.post(url, json={"differences": [untouched]})
    assert r.status_code == 422 and "untouched" in r.json["errors"]["json"]["differences"][0]
    r = store.api.post(url, json={"differences": [9999]})
    assert r.status_code == 422 and "no difference 9999" in r.json["errors"]["json"]["differences"][0]
    assert store.api.get(f"/api/v1/reconcile-reports/{report['id']}?kind=nope").status_code == 422
    missing = store.api.get(f"/api/v1/reconcile-reports/{report['id']}?kind=missing").json
    assert missing["differences_total"] == 3 and {d["kind"] for d in missing["differences"]} == {"missing"}


def test_an_integration_without_a_governing_rule_cannot_be_checked(store):
    r = store.api.post(f"/api/v1/integrations/{store.iid}/reconcile")
    assert r.status_code == 409 and "No enabled rule" in r.json["message"]


def test_the_cli_checks_with_a_progress_bar_and_fixes_all(store, circle_worker, settings, plugin_site, fake_circle):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from .conftest import worker_env

    for n in range(3):
        store.event("subscription_started", email(n), T0 + timedelta(minutes=n))
    store.fake.add_member(email(0), space_ids=[store.space], member_tag_ids=[store.tag])
    store.fake.add_member("staff@example.com")
    store.enable("invite")
    circle_worker()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "hookyard"), "reconcile", str(store.iid), "--fix", "all", "--json"],
        capture_output=True,
        text=True,
        env=worker_env(settings, plugin_site, CIRCLE_API_BASE_URL=fake_circle.base_url),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "reading the app" in done.stderr  # the progress bar, on stderr
    report = json.loads(done.stdout)
    assert report["status"] == "ready"
    assert found(report) == diffs("missing", [COMMUNITY, store.space_t, store.tag_t], [email(1), email(2)]) | diffs(
        "untouched", [COMMUNITY], ["staff@example.com"]
    )
    runs = [r["run_id"] for r in report["fixed"]["runs"]]
    assert len(runs) == 2
    wait_for(lambda: all_finished(store.runtime, runs), timeout=30, message="the fixes did not finish")
    assert store.fake.member(email(2))["spaces"] == {store.space}


def test_circle_declares_what_each_action_gives_and_an_rsvp_is_not_access(runtime):
    circle = runtime.registry.apps["circle"]
    params = {"space_ids": [1], "space_group_ids": [2], "member_tag_ids": [3], "skip_invitation": False}
    invite = circle.action("invite_member").access
    assert invite.kind == "grants"
    assert list(invite.targets(params)) == [COMMUNITY, ("space", 1), ("space_group", 2), ("member_tag", 3)]
    assert circle.action("remove_member").access.kind == "revokes"
    assert list(circle.action("remove_member_from_space_group").access.targets({"space_group_id": 2})) == [
        ("space_group", 2)
    ]
    assert circle.action("rsvp_member_to_event").access is None
    assert circle.action("unrsvp_member_from_event").access is None
    triggers = runtime.registry.trigger_types
    assert {k for k, t in triggers.items() if t.access == "grants"} == {
        "samcart.product_purchased",
        "samcart.subscription_started",
        "samcart.subscription_recovered",
        "samcart.subscription_restarted",
        "samcart.course_enrolled",
    }
    assert {k for k, t in triggers.items() if t.access == "revokes"} == {
        "samcart.product_refunded",
        "samcart.subscription_canceled",
        "samcart.subscription_delinquent",
        "samcart.course_removed",
    }


def test_a_cancelled_check_ends_its_report_cancelled(store):
    store.event("subscription_started", email(1), T0)
    store.enable("invite")
    r = store.api.post(f"/api/v1/integrations/{store.iid}/reconcile")
    again = store.api.post(f"/api/v1/integrations/{store.iid}/reconcile")
    assert again.json["id"] == r.json["id"]  # the check under way, not a second one
    assert store.api.post(f"/api/v1/tasks/{r.json['task']['id']}/cancel").json["status"] == "cancelled"
    assert run_job(store.runtime, r.json["task"]["id"]) == "not claimed"
    report = store.api.get(r.headers["Location"]).json
    assert report["status"] == "cancelled" and report["calls"] == 0
    assert store.fake.requests_for("GET", "/community_members") == []
