"""Circle's monthly request quota (circle-api.md §6.3): every answer Circle counts (not 5xx, not timeouts) is counted
per community and UTC calendar month, in the database, shared by every connection to the community; the connection
shows it with warnings near and over its plan's quota; a refresh makes only the calls it needs."""

import json
from contextlib import contextmanager
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from hookyard import usage
from hookyard.models import AppUsage, Integration

from ..tasking import refresh
from ..waiting import wait_for
from .fixtures import API_KEY
from .test_circle_actions import wait_runs

COMMUNITY = "4242"  # FakeCircle's community id
URL = "https://test-community.circle.so"


def shown(api, iid):
    return api.get(f"/api/v1/integrations/{iid}").json


def codes(integration):
    return [w["code"] for w in integration["warnings"]]


def stored_calls(runtime, period=None):
    with runtime.db.session() as s:
        return {
            (u.app, u.scope, u.period): u.calls
            for u in s.scalars(select(AppUsage))
            if period is None or u.period == period
        }


def test_two_connections_to_one_community_in_two_stores_share_one_count(circle, fake_circle, make_client, runtime):
    store_a, store_b = make_client("store-a"), make_client("store-b")
    before = fake_circle.quota_used
    a = circle.connect()  # store-a (the circle fixture's client)
    r = store_b.post(
        "/api/v1/integrations",
        json={
            "app": "circle",
            "name": "Same community",
            "config": {"api_key": API_KEY, "community_url": URL, "plan": "business"},
        },
    )
    assert r.status_code == 201, r.json
    b = r.json["id"]
    refresh(store_b, runtime, b)
    answered = fake_circle.quota_used - before
    assert answered == 1 + 1 + 5  # two verifies, then a refresh: its verify and the four lists' first pages
    month = datetime.now(timezone.utc).strftime("%Y-%m")
    for client, iid in ((store_a, a), (store_b, b)):
        assert shown(client, iid)["usage"] == {
            "label": "Circle API requests",
            "period": month,
            "calls": answered,
            "quota": 5000,
            "plan": "Business",
            "scope": COMMUNITY,
        }
    assert stored_calls(runtime) == {("circle", COMMUNITY, month): answered}  # one row for the community


def test_a_refresh_makes_exactly_the_calls_it_needs_and_each_is_counted(circle, fake_circle, api, runtime):
    for i in range(150):  # two pages of spaces
        fake_circle.add_space(f"Space {i}")
    iid = circle.connect()
    fake_circle.reset_requests()
    before, counted = fake_circle.quota_used, shown(api, iid)["usage"]["calls"]
    refresh(api, runtime, iid)
    calls = [(r.method, r.path, r.query.get("page")) for r in fake_circle.requests]
    # One verify, then each list once: the first pages (for the total), then only the pages still missing.
    assert calls == [
        ("GET", "/community", None),
        ("GET", "/spaces", "1"),
        ("GET", "/space_groups", "1"),
        ("GET", "/events", "1"),
        ("GET", "/member_tags", "1"),
        ("GET", "/spaces", "2"),
    ]
    assert shown(api, iid)["usage"]["calls"] - counted == fake_circle.quota_used - before == 6


def test_a_community_on_the_token_scheme_pays_no_refused_call_per_refresh(circle, fake_circle, api, runtime):
    fake_circle.accepted_schemes = ("Token",)
    before = fake_circle.quota_used  # the community fixture's own seeding call
    iid = circle.connect()
    assert shown(api, iid)["usage"]["calls"] == 2 == fake_circle.quota_used - before  # Bearer's 401 counts too
    fake_circle.reset_requests()
    refresh(api, runtime, iid)
    assert len(fake_circle.requests) == 5
    assert shown(api, iid)["usage"]["calls"] == 7 == fake_circle.quota_used - before


@pytest.mark.parametrize("kind, counted", [("500", 0), ("502", 0), ("429", 1)])
def test_5xx_answers_are_not_counted_429s_are(circle, fake_circle, api, runtime, kind, counted):
    iid = circle.connect()
    fake_circle.reset_requests()
    before = fake_circle.quota_used
    fake_circle.fail_next(1, kind, path="/spaces")
    refresh(api, runtime, iid, expect="failed")
    assert [r.path for r in fake_circle.requests] == ["/community", "/spaces"]
    assert fake_circle.quota_used - before == 1 + counted
    assert shown(api, iid)["usage"]["calls"] == 1 + 1 + counted  # the connect, the refresh's verify, the 429


def test_a_timeout_is_not_counted(circle, fake_circle, api, runtime, monkeypatch):
    monkeypatch.setenv("CIRCLE_TIMEOUT", "0.5")
    fake_circle.hold_seconds = 2
    before = fake_circle.quota_used
    iid = circle.connect()
    fake_circle.fail_next(1, "timeout", path="/spaces")
    refresh(api, runtime, iid, expect="failed")
    assert len(fake_circle.requests_for("GET", "/spaces")) == 1  # it was asked, and did not answer in time
    assert shown(api, iid)["usage"]["calls"] == 2 == fake_circle.quota_used - before


def test_the_count_starts_again_each_utc_month(circle, fake_circle, api, runtime):
    clock = [datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc)]
    runtime.clock = lambda: clock[0]
    iid = circle.connect()
    refresh(api, runtime, iid)
    assert shown(api, iid)["usage"]["period"] == "2026-12" and shown(api, iid)["usage"]["calls"] == 6
    clock[0] = datetime(2027, 1, 1, 0, 0, tzinfo=timezone.utc)
    assert (shown(api, iid)["usage"]["period"], shown(api, iid)["usage"]["calls"]) == ("2027-01", 0)
    refresh(api, runtime, iid)
    assert shown(api, iid)["usage"]["calls"] == 5
    assert stored_calls(runtime) == {("circle", COMMUNITY, "2026-12"): 6, ("circle", COMMUNITY, "2027-01"): 5}


@pytest.mark.parametrize(
    "plan, calls, expected",
    [
        ("business", 3999, []),
        ("business", 4000, ["quota_near"]),
        ("business", 4999, ["quota_near"]),
        ("business", 5000, ["quota_exceeded"]),
        ("business", 7000, ["quota_exceeded"]),
        ("enterprise", 7000, []),
        ("enterprise", 24000, ["quota_near"]),
        ("enterprise", 30000, ["quota_exceeded"]),
    ],
)
def test_warnings_near_and_over_the_plans_quota(circle, fake_circle, api, runtime, plan, calls, expected):
    iid = circle.connect()
    assert api.patch(f"/api/v1/integrations/{iid}", json={"config": {"plan": plan}}).status_code == 200
    used = shown(api, iid)["usage"]["calls"]  # the connect and the edit's verify
    usage.record(runtime, "circle", COMMUNITY, calls - used)
    integration = shown(api, iid)
    assert integration["usage"]["calls"] == calls
    assert codes(integration) == expected
    if expected:
        assert (
            f"{calls:,} of {integration['usage']['quota']:,} Circle API requests"
            in integration["warnings"][0]["message"]
        )


def test_an_unknown_plan_is_a_field_level_422(circle, api, runtime):
    r = api.post(
        "/api/v1/integrations",
        json={"app": "circle", "name": "C", "config": {"api_key": API_KEY, "community_url": URL, "plan": "platinum"}},
    )
    assert r.status_code == 422
    assert r.json["errors"]["json"]["config"]["plan"] == ["Choose one of basic, professional, business, enterprise."]
    iid = circle.connect()
    r = api.patch(f"/api/v1/integrations/{iid}", json={"config": {"plan": 5}})
    assert r.status_code == 422 and "plan" in r.json["errors"]["json"]["config"]


@pytest.mark.parametrize("plan", ["basic", "professional"])
def test_a_plan_without_the_admin_api_says_so_and_watches_no_quota(circle, fake_circle, api, plan):
    r = api.post(
        "/api/v1/integrations",
        json={"app": "circle", "name": "C", "config": {"api_key": API_KEY, "community_url": URL, "plan": plan}},
    )
    assert r.status_code == 201, r.json
    assert codes(r.json) == ["plan_without_admin_api"]
    assert "Business plan or above" in r.json["warnings"][0]["message"]
    assert (r.json["usage"]["quota"], r.json["usage"]["calls"]) == (None, 1)


def test_a_connection_saved_before_plans_is_business(circle, fake_circle, api, runtime):
    iid = circle.connect()
    with runtime.db.session() as s:  # as 0007 left it: no plan in the stored config
        row = s.get(Integration, iid)
        row.config = {k: v for k, v in row.config.items() if k != "plan"}
        s.commit()
    integration = shown(api, iid)
    assert "plan" not in integration["config"]
    assert (integration["usage"]["quota"], integration["usage"]["plan"]) == (5000, "Business")
    usage.record(runtime, "circle", COMMUNITY, 4500)
    assert codes(shown(api, iid)) == ["quota_near"]


def test_a_failure_to_count_fails_nothing(circle, fake_circle, api, runtime, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("the database is gone")

    monkeypatch.setattr(usage, "_upsert", broken)
    iid = circle.connect()
    refresh(api, runtime, iid)
    assert shown(api, iid)["usage"]["calls"] == 0
    assert "could not record" in caplog.text


@contextmanager
def counting_broken(runtime):
    """The database refuses every write to the usage table (a trigger), as a full disk or a lost grant would."""
    postgres = runtime.db.engine.dialect.name == "postgresql"
    with runtime.db.engine.begin() as conn:
        if postgres:
            conn.exec_driver_sql(
                "CREATE FUNCTION no_counts() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'counting is broken'; END $$ "
                "LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER no_counts BEFORE INSERT OR UPDATE ON app_usage FOR EACH ROW EXECUTE FUNCTION no_counts()"
            )
        else:
            for verb in ("INSERT", "UPDATE"):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER no_counts_{verb} BEFORE {verb} ON app_usage "
                    "BEGIN SELECT RAISE(ABORT, 'counting is broken'); END"
                )
    try:
        yield
    finally:
        with runtime.db.engine.begin() as conn:
            if postgres:
                conn.exec_driver_sql("DROP TRIGGER no_counts ON app_usage")
                conn.exec_driver_sql("DROP FUNCTION no_counts()")
            else:
                for verb in ("INSERT", "UPDATE"):
                    conn.exec_driver_sql(f"DROP TRIGGER no_counts_{verb}")


def test_a_run_whose_calls_cannot_be_counted_still_succeeds(
    circle, fake_circle, community, api, circle_worker, runtime, start_worker
):
    """A run's count is written with its outcome, in a savepoint: the count is lost, the outcome is not."""
    iid = circle.connect()
    circle.rule(iid, "add_member_to_space", {"space_id": community.space2})
    counted = shown(api, iid)["usage"]["calls"]
    with counting_broken(runtime):
        circle_worker()
        runs = wait_runs(api, circle.emit(community.member))
        assert [r["status"] for r in runs] == ["succeeded"], runs
        assert len(fake_circle.requests_for("POST", "/space_members")) == 1
    assert shown(api, iid)["usage"]["calls"] == counted
    assert "could not record 1 call(s) for 4242" in start_worker.procs[-1][2].read_text()


def test_the_usage_is_documented_in_the_api_schema():
    from hookyard.cli import openapi_document

    spec = json.loads(openapi_document())["components"]["schemas"]
    assert set(spec["IntegrationUsage"]["properties"]) == {"label", "period", "calls", "quota", "plan", "scope"}
    assert all(p.get("description") for p in spec["IntegrationUsage"]["properties"].values())
    assert "quota_near" in spec["Integration"]["properties"]["usage"]["description"]


def test_actions_in_a_worker_are_counted_once_each_answer_without_5xx(
    circle, fake_circle, community, api, circle_worker, runtime
):
    iid = circle.connect()
    refresh(api, runtime, iid)
    circle.rule(iid, "add_member_to_space", {"space_id": community.space2})
    circle.rule(iid, "add_member_tag", {"member_tag_id": community.tag2}, trigger="samcart.product_purchased")
    # One 500 on the first add: the run is retried (a second, counted call), the 500 is not counted.
    fake_circle.fail_next(1, "500", path="/space_members")
    before, counted = fake_circle.quota_used, shown(api, iid)["usage"]["calls"]
    circle_worker()
    events = [circle.emit(community.member), circle.emit("leaver@example.com")]
    for event in events:
        runs = wait_runs(api, event)
        assert {r["status"] for r in runs} == {"succeeded"}, runs
    answered = fake_circle.quota_used - before
    assert answered == 4  # two members × (space, tag); the 500 is not among them
    assert len(fake_circle.requests_for("POST", "/space_members")) == 3
    wait_for(
        lambda: shown(api, iid)["usage"]["calls"] - counted == answered,
        timeout=10,
        message=lambda: f"usage {shown(api, iid)['usage']} after {answered} counted answers",
    )
