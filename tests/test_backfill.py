"""Backfill (POST /api/v1/rules/{id}/backfill): a rule applied to stored past events, as runs of that rule only,
each (event, rule) once however the log was trimmed, paced under Circle's budget through real workers at the real
fake Circle, with progress and cancel through the task resource; every refusal a field-level 422, another store's
rule a 404, another store's events never counted."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import func, select

from hookyard import emit, logcap
from hookyard.jobqueue import queued_count, shard_queues
from hookyard.models import Rule, RuleLedger, Run

from .conftest import purchase
from .tasking import run_task_here
from .waiting import wait_for

NOW = datetime.now(timezone.utc)
SINCE, UNTIL = NOW - timedelta(days=20), NOW - timedelta(minutes=1)
TRIGGER = "samcart.product_purchased"


def store_events(runtime, marketplace_id, count, start=0, days_ago=10, product_id="1001"):
    """Past purchases, stored through emit's own path (validation, dedupe keys, rule matching) in one transaction:
    what the Notify URL stored over the weeks before the rule existed."""
    with runtime.db.session() as session:
        for i in range(start, start + count):
            occurred = NOW - timedelta(days=days_ago, seconds=i)
            payload = {**purchase(email=f"buyer{i}@example.com", product_id=product_id), "order": {"id": 9000 + i}}
            payload["occurred_at"] = occurred.isoformat()
            emit.record(runtime, session, marketplace_id, TRIGGER, payload)
        session.commit()


def run_backfill_here(runtime, task_id: int) -> str:
    """The task's job in this process, as the worker runs it."""
    from hookyard import backfill_jobs

    return run_task_here(runtime, task_id, backfill_jobs.backfill_rule)


def body(since=SINCE, until=UNTIL, **extra):
    return {"since": since.isoformat(), "until": until.isoformat(), **extra}


def backfill(api, rule_id, expect=202, **extra):
    r = api.post(f"/api/v1/rules/{rule_id}/backfill", json=body(**extra))
    assert r.status_code == expect, r.json
    if expect == 202:
        assert r.headers["Location"] == f"/api/v1/tasks/{r.json['id']}"
    return r.json


def task_of(api, task_id):
    r = api.get(f"/api/v1/tasks/{task_id}")
    assert r.status_code == 200, r.json
    return r.json


# --- preview, refusals, tenancy (no worker) ---------------------------------------------------------


def test_preview_counts_what_would_run_and_how_far_back_events_reach(setup, api, make_client, runtime):
    other = make_client("store-b")
    store_events(runtime, api.marketplace_id, 12)
    store_events(runtime, api.marketplace_id, 3, start=100, days_ago=40)  # before the range
    store_events(runtime, other.marketplace_id, 30)  # another store's: never counted
    iid = setup.integration()
    rule_id = setup.rule(iid)
    counts = backfill(api, rule_id, expect=200, preview=True)
    assert counts["candidates"] == 12 and counts["would_run"] == 12 and counts["already_run"] == 0
    assert counts["retention_days"] == runtime.settings.event_retention_days
    oldest = datetime.fromisoformat(counts["oldest_event_at"])
    assert abs(oldest - (NOW - timedelta(days=40, seconds=102))) < timedelta(seconds=2)
    # A product rule counts that product's events only.
    product_rule = setup.rule(iid, product_id=setup.product("2002", "Other"))
    store_events(runtime, api.marketplace_id, 4, start=200, product_id="2002")  # both rules ran for these
    counts = backfill(api, product_rule, expect=200, preview=True)
    assert (counts["candidates"], counts["would_run"], counts["already_run"]) == (4, 0, 4)
    assert backfill(api, rule_id, expect=200, preview=True)["candidates"] == 16
    with runtime.db.session() as session:  # a preview starts nothing
        assert session.scalar(select(func.count()).where(Run.origin == "backfill")) == 0


def test_every_refusal_is_a_field_level_422_and_another_stores_rule_a_404(setup, api, make_client, runtime):
    iid = setup.integration()
    rule_id = setup.rule(iid)
    future = NOW + timedelta(days=1)

    def refused(field, json):
        r = api.post(f"/api/v1/rules/{rule_id}/backfill", json=json)
        assert r.status_code == 422, r.json
        assert field in r.json["errors"]["json"], r.json
        return r.json

    refused("until", body(since=UNTIL, until=SINCE))
    refused("until", body(since=SINCE, until=SINCE))
    refused("until", body(until=future))
    refused("since", body(since=future, until=future + timedelta(days=1)))
    refused("since", {"since": "2026-01-01T00:00:00", "until": UNTIL.isoformat()})  # no time zone
    refused("since", {"until": UNTIL.isoformat()})
    refused("since", {"since": "yesterday", "until": UNTIL.isoformat()})
    refused("since", {"since": "0001-01-01T00:00:00+01:00", "until": UNTIL.isoformat()})  # before year 1 in UTC
    r = api.patch(f"/api/v1/rules/{rule_id}", json={"enabled": False})
    assert r.status_code == 200, r.json
    refused("rule", body())
    api.patch(f"/api/v1/rules/{rule_id}", json={"enabled": True})
    assert api.delete(f"/api/v1/integrations/{iid}").status_code == 200
    with runtime.db.session() as session:  # deleting the connection disabled it; enabled again, it has none
        session.get(Rule, rule_id).enabled = True
        session.commit()
    refused("rule", body())
    other = make_client("store-b")
    r = other.post(f"/api/v1/rules/{rule_id}/backfill", json=body(preview=True))
    assert r.status_code == 404, r.json
    r = other.post("/api/v1/rules/999999999999/backfill", json=body(preview=True))
    assert r.status_code == 404, r.json
    with runtime.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 0


def test_a_backfill_task_creates_runs_for_its_rule_only_once_and_a_second_start_dedupes(
    setup, api, make_client, runtime
):
    store_events(runtime, api.marketplace_id, 450)
    other = make_client("store-b")
    store_events(runtime, other.marketplace_id, 5)
    iid = setup.integration()
    rule_id = setup.rule(iid)
    setup.rule(iid, channel="another")  # a second matching rule: a backfill of the first never runs it
    task = backfill(api, rule_id)
    assert task["kind"] == "rule.backfill" and task["status"] == "queued"
    assert backfill(api, rule_id, since=SINCE - timedelta(days=1))["id"] == task["id"]  # one at a time per rule
    assert run_backfill_here(runtime, task["id"]) == "succeeded"
    task = task_of(api, task["id"])
    assert task["done"] == task["total"] == 450, task
    assert task["runs"] == {"queued": 450, "running": 0, "succeeded": 0, "skipped": 0, "failed": 0}
    with runtime.db.session() as session:
        runs = session.execute(select(Run.rule_id, Run.origin, Run.task_id, Run.event_id)).all()
    assert {(r.rule_id, r.origin, r.task_id) for r in runs} == {(rule_id, "backfill", task["id"])}
    assert len({r.event_id for r in runs}) == 450
    # Again: all already run.
    again = backfill(api, rule_id)
    assert again["id"] != task["id"]
    assert run_backfill_here(runtime, again["id"]) == "succeeded"
    assert task_of(api, again["id"])["runs"]["queued"] == 0
    assert backfill(api, rule_id, expect=200, preview=True)["already_run"] == 450


def test_the_ledger_remembers_trimmed_runs_and_cancelled_runs_are_taken_up_again(setup, api, runtime):
    store_events(runtime, api.marketplace_id, 30)
    rule_id = setup.rule(setup.integration())
    task = backfill(api, rule_id)
    run_backfill_here(runtime, task["id"])
    # Cancelled after creating its runs: the queued ones end skipped, "cancelled"; the task ends cancelled.
    r = api.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert r.status_code == 200, r.json
    assert r.json["status"] == "cancelled" and r.json["runs"]["skipped"] == 30, r.json
    with runtime.db.session() as session:
        assert {r.reason for r in session.scalars(select(Run))} == {"cancelled"}
    # Cancelled runs never ran the rule: a new backfill takes them up.
    assert backfill(api, rule_id, expect=200, preview=True)["would_run"] == 30
    task = backfill(api, rule_id)
    run_backfill_here(runtime, task["id"])
    assert task_of(api, task["id"])["runs"]["queued"] == 30
    with runtime.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 30  # the same runs, queued again
        # Ten of them finish and are trimmed by the log cap: the ledger keeps them.
        runs = list(session.scalars(select(Run).order_by(Run.id)))
        for run in runs[:10]:
            run.status, run.finished_at = "succeeded", NOW
        for run in runs[10:]:  # the newest entries, so the cap keeps them
            run.log_seq = logcap.reserve_log_seqs(session, api.marketplace_id, 1)
        session.commit()
        logcap.trim(session, api.marketplace_id, 20)
        session.commit()
        assert session.scalar(select(func.count()).select_from(Run)) == 20
        assert session.scalar(select(func.count()).select_from(RuleLedger)) == 10
    counts = backfill(api, rule_id, expect=200, preview=True)
    assert counts["already_run"] == 30 and counts["would_run"] == 0


def test_cancelled_while_creating_its_runs_it_stops_at_the_next_page_and_skips_what_it_made(setup, api, runtime):
    from hookyard import backfill as backfill_core
    from hookyard import tasks

    store_events(runtime, api.marketplace_id, 450)
    rule_id = setup.rule(setup.integration())
    task = backfill(api, rule_id)

    def work(session, task_row, progress):
        def cancelling(done, total=None, message=None):
            progress(done, total, message)
            if done:  # after the first page: the merchant clicks Cancel while the task runs
                r = api.post(f"/api/v1/tasks/{task_row.id}/cancel")
                assert r.status_code == 200 and r.json["status"] == "running", r.json

        return backfill_core.work(runtime, session, task_row, cancelling)

    assert tasks.run(runtime, task["id"], work) == "cancelled"
    task = task_of(api, task["id"])
    assert task["status"] == "cancelled"
    assert task["runs"] == {"queued": 0, "running": 0, "succeeded": 0, "skipped": 200, "failed": 0}, task


# --- real workers at the fake Circle --------------------------------------------------------------


def post_invites(fake_circle) -> list:
    return [r for r in fake_circle.requests if r.method == "POST" and r.path == "/community_members"]


def most_in_any_window(times: list[float], window: float) -> int:
    times, most, first = sorted(times), 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= window:
            first += 1
        most = max(most, last - first + 1)
    return most


def runs_final(api, task_id):
    task = task_of(api, task_id)
    runs = task["runs"]
    return task if task["status"] not in ("queued", "running") and runs["queued"] + runs["running"] == 0 else None


def nothing_left_in_redis(runtime) -> bool:
    """No job of any run waits, is scheduled (a paced run's deferral) or is being worked on."""
    for queue in shard_queues(runtime):
        if ScheduledJobRegistry(queue=queue).count or StartedJobRegistry(queue=queue).count:
            return False
    return queued_count(runtime) == 0


@pytest.mark.e2e
def test_a_backfill_over_500_purchases_invites_each_buyer_once_within_the_pacing_budget(
    circle, fake_circle, api, runtime, circle_worker
):
    fake_circle.rate_limit(60, 1.0)  # Circle's own limit, scaled down; the budget below leaves it spare
    circle_worker(CIRCLE_RATE_LIMIT="50/1", HOOKYARD_WORKER_THREADS="4")
    iid = circle.connect()
    store_events(runtime, api.marketplace_id, 460)  # received before the rule existed: no runs
    rule_id = circle.rule(iid, "invite_member", {"skip_invitation": True})
    for i in range(460, 500):  # received after: invited by their own event runs
        payload = {**purchase(email=f"buyer{i}@example.com"), "order": {"id": 9000 + i}}
        payload["occurred_at"] = (NOW - timedelta(days=10, seconds=i)).isoformat()
        r = api.post("/api/v1/events", json={"trigger": TRIGGER, "payload": payload})
        assert r.status_code == 202, r.json

    def event_runs_done():
        with runtime.db.session() as session:
            return session.scalar(select(func.count()).where(Run.status == "succeeded")) == 40

    wait_for(event_runs_done, timeout=30, message="the 40 event runs did not succeed")
    with runtime.db.session() as session:  # the log cap trims half of them: only the ledger remembers those
        logcap.trim(session, api.marketplace_id, 20)
        session.commit()
        assert session.scalar(select(func.count()).select_from(RuleLedger)) == 20
        assert session.scalar(select(func.count()).select_from(Run)) == 20
    counts = backfill(api, rule_id, expect=200, preview=True)
    assert (counts["candidates"], counts["would_run"], counts["already_run"]) == (500, 460, 40)

    task = backfill(api, rule_id)
    task = wait_for(lambda: runs_final(api, task["id"]), timeout=60, message="the backfill did not finish")
    assert task["status"] == "succeeded" and task["done"] == task["total"] == 460, task
    assert task["runs"] == {"queued": 0, "running": 0, "succeeded": 460, "skipped": 0, "failed": 0}, task

    invites = post_invites(fake_circle)
    per_email = Counter(r.json["email"] for r in invites)
    assert set(per_email) == {f"buyer{i}@example.com" for i in range(500)}
    assert set(per_email.values()) == {1}, [e for e, n in per_email.items() if n > 1]
    assert fake_circle.rate_limited_count == 0 and all(r.status != 429 for r in fake_circle.requests)
    times = [r.at for r in fake_circle.requests]
    assert most_in_any_window(times, 1.0) <= 60
    backfilled = sorted(r.at for r in invites)[40:]
    assert backfilled[-1] - backfilled[0] >= 460 / 50 - 1.5  # the budget was binding: it paced the backlog
    with runtime.db.session() as session:
        origins = Counter(session.scalars(select(Run.origin)))
    assert origins == {"backfill": 460, "event": 20}


@pytest.mark.e2e
def test_a_backfill_cancelled_halfway_skips_its_queued_runs_and_nothing_more_reaches_circle(
    circle, fake_circle, api, runtime, circle_worker
):
    circle_worker(CIRCLE_RATE_LIMIT="6/1", HOOKYARD_WORKER_THREADS="2")
    iid = circle.connect()
    store_events(runtime, api.marketplace_id, 60)
    rule_id = circle.rule(iid, "invite_member", {"skip_invitation": True})
    task = backfill(api, rule_id)
    wait_for(lambda: len(post_invites(fake_circle)) >= 10, timeout=30, message="the backfill did not start inviting")
    r = api.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert r.status_code == 200, r.json
    assert r.json["status"] == "cancelled", r.json
    task = wait_for(lambda: runs_final(api, task["id"]), timeout=30, message="runs were left running")
    runs = task["runs"]
    assert runs["succeeded"] + runs["skipped"] == 60 and runs["failed"] == 0, runs
    assert 10 <= runs["succeeded"] < 40 and runs["skipped"] > 20, runs
    # Every job of the skipped runs is gone (picked and not claimed, or its deferral's time came): still no call.
    wait_for(lambda: nothing_left_in_redis(runtime), timeout=30, message="jobs were left in Redis")
    assert len(post_invites(fake_circle)) == runs["succeeded"]
    with runtime.db.session() as session:
        skipped = session.scalars(select(Run.reason).where(Run.status == "skipped")).all()
    assert set(skipped) == {"cancelled"}


def cli(settings, plugin_site, *args):
    import subprocess
    import sys
    from pathlib import Path

    from .conftest import worker_env

    return subprocess.run(
        [str(Path(sys.executable).parent / "hookyard"), "rules", "backfill", *args],
        capture_output=True,
        text=True,
        env=worker_env(settings, plugin_site),
        timeout=60,
        check=False,
    )


@pytest.mark.e2e
def test_the_cli_previews_then_follows_the_backfill_until_its_runs_are_final(
    setup, api, runtime, settings, plugin_site, start_worker, recorder
):
    store_events(runtime, api.marketplace_id, 20)
    rule_id = setup.rule(setup.integration())
    since = SINCE.isoformat()
    shown = cli(settings, plugin_site, str(rule_id), "--since", since, "--preview")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"rule {rule_id}: 20 past events in range, 20 would run, 0 already run;")
    refused = cli(settings, plugin_site, str(rule_id), "--since", "2999-01-01T00:00:00Z", "--yes")
    assert refused.returncode != 0 and "since: Must not be in the future" in refused.stderr, refused.stderr
    start_worker()
    done = cli(settings, plugin_site, str(rule_id), "--since", since, "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("task succeeded:"), done.stdout
    assert done.stdout.rstrip().endswith("runs: 20 succeeded, 0 skipped, 0 failed"), done.stdout
    assert sorted(c["email"] for c in recorder.calls) == sorted(f"buyer{i}@example.com" for i in range(20))


# --- past orders from SamCart's API ----------------------------------------------------------------


def deliver_to_the_notify_url(api, runtime, samcart: dict, body: dict) -> None:
    """``body`` posted to the SamCart connection's inbound URL and processed as the worker would: mapped."""
    from hookyard import deliveries
    from hookyard.models import Delivery

    posted = api._client.post("/" + samcart["inbound_url"].split("/", 3)[3], json=body)
    assert posted.status_code in (200, 202), posted.text
    with runtime.db.session() as session:
        waiting = list(session.scalars(select(Delivery.id).where(Delivery.status == "received")))
    assert [deliveries.process(d) for d in waiting] == ["mapped"]


def backfill_from_the_store_api(api, runtime, rule_id) -> dict:
    """A backfill up to now that reads the store's API first, run here; its task once done."""
    task = backfill(api, rule_id, include_store_api=True, until=datetime.now(timezone.utc))
    assert run_backfill_here(runtime, task["id"]) == "succeeded"
    return task_of(api, task["id"])


def test_past_orders_from_samcarts_api_are_stored_once_then_backfilled(
    setup, api, make_client, runtime, fake_samcart, in_process
):
    from hookyard.models import Event

    from .samcart.fixtures import SAMCART_API_KEY

    rule_id = setup.rule(setup.integration())
    r = api.post("/api/v1/rules/%d/backfill" % rule_id, json=body(include_store_api=True, preview=True))
    assert r.status_code == 422 and "include_store_api" in r.json["errors"]["json"], r.json  # no SamCart yet
    r = api.post(
        "/api/v1/integrations",
        json={"app": "samcart", "name": "Store", "config": {"api_key": SAMCART_API_KEY}},
    )
    assert r.status_code == 201, r.json
    samcart = r.json
    product = fake_samcart.add_product("Community", price=4900)

    def stamp(moment):
        return moment.strftime("%Y-%m-%d %H:%M:%S")

    orders = []
    for i in range(6):
        customer = fake_samcart.add_customer(f"past{i}@example.com", first_name=f"P{i}")
        placed = stamp(NOW - timedelta(days=5, minutes=i))
        orders.append(fake_samcart.add_order(customer, [product], order_date=placed, created_at=placed))
    old = fake_samcart.add_customer("old@example.com")
    placed = stamp(NOW - timedelta(days=40))
    fake_samcart.add_order(old, [product], order_date=placed, created_at=placed)  # before the range
    tester = fake_samcart.add_customer("test@example.com")
    fake_samcart.add_order(tester, [product], test_mode=True, order_date=stamp(NOW - timedelta(days=5)))
    # The first order also reached the Notify URL (so its rule already ran for it): read again, it is that event.
    notify = {
        "type": "Order",
        "customer": {"email": "past0@example.com", "first_name": "P0"},
        "order": {"id": orders[0], "total": "49.00"},
        "product": {"id": str(product), "name": "Community", "price": "49.00"},
    }
    deliver_to_the_notify_url(api, runtime, samcart, notify)
    task = backfill_from_the_store_api(api, runtime, rule_id)
    assert task["message"].startswith("5 past events read from the store's API (1 already received). 5 runs"), task
    with runtime.db.session() as session:
        stored = session.scalars(select(Event.email).where(Event.trigger == TRIGGER)).all()
        backfilled = session.scalars(select(Run.email).where(Run.origin == "backfill")).all()
        origins = Counter(session.scalars(select(Run.origin)))
    assert sorted(stored) == [f"past{i}@example.com" for i in range(6)]  # once each; the test order left out
    assert sorted(backfilled) == [f"past{i}@example.com" for i in range(1, 6)]
    assert origins == {"backfill": 5, "event": 1}
    # Subscriptions bring in no Product Purchased: a purchase rule's backfill does not list them.
    assert fake_samcart.requests_for("/orders") and not fake_samcart.requests_for("/subscriptions")
    # Read again: nothing new is stored or run.
    assert backfill_from_the_store_api(api, runtime, rule_id)["message"].startswith(
        "0 past events read from the store's API (6 already"
    )
    # Another store's rule never reads this store's SamCart.
    other = make_client("store-b")
    from .conftest import Setup

    theirs = Setup(other, setup.recorder).rule(Setup(other, setup.recorder).integration())
    r = other.post(f"/api/v1/rules/{theirs}/backfill", json=body(include_store_api=True, preview=True))
    assert r.status_code == 422 and "include_store_api" in r.json["errors"]["json"], r.json


def test_past_subscriptions_from_samcarts_api_bring_in_the_live_ones_once(
    setup, api, runtime, fake_samcart, in_process
):
    """A subscription_started rule backfilled from SamCart's API: each subscription started in the range and still
    live now is stored once as its Subscription Started (the one the Notify URL already delivered is found), and
    the ones that ended, are paused, or have a status Hookyard does not know are left out: no access for them."""
    from hookyard.models import Event

    from .samcart.fixtures import SAMCART_API_KEY

    started_trigger = "samcart.subscription_started"
    rule_id = setup.rule(setup.integration(), trigger=started_trigger)
    r = api.post(
        "/api/v1/integrations", json={"app": "samcart", "name": "Store", "config": {"api_key": SAMCART_API_KEY}}
    )
    assert r.status_code == 201, r.json
    samcart = r.json
    product = fake_samcart.add_product("Membership", price=4900)

    def stamp(moment):
        return moment.strftime("%Y-%m-%d %H:%M:%S")

    sids = {}
    statuses = ["active", "completed", "past_due", "canceled", "delinquent", "deleted", "paused", "frozen"]
    for i, status in enumerate(statuses):
        customer = fake_samcart.add_customer(f"{status}@example.com")
        began = stamp(NOW - timedelta(days=5, minutes=i))
        sids[status] = fake_samcart.add_subscription(
            status, customer_id=customer, product_id=product, start_date=began, created_at=began
        )
    early = fake_samcart.add_customer("early@example.com")
    began = stamp(NOW - timedelta(days=40))
    fake_samcart.add_subscription("active", customer_id=early, product_id=product, start_date=began, created_at=began)
    # The active one's purchase reached the Notify URL with its subscription id: its Subscription Started is stored.
    notify = {
        "type": "Order",
        "customer": {"email": "active@example.com"},
        "order": {"id": 7001, "subscription_id": sids["active"], "total": "49.00"},
        "product": {"id": str(product), "name": "Membership", "price": "49.00"},
    }
    deliver_to_the_notify_url(api, runtime, samcart, notify)
    task = backfill_from_the_store_api(api, runtime, rule_id)
    assert task["message"].startswith("2 past events read from the store's API (1 already received). 2 runs"), task
    with runtime.db.session() as session:
        stored = session.scalars(select(Event.email).where(Event.trigger == started_trigger)).all()
        payloads = session.scalars(select(Event.payload).where(Event.trigger == started_trigger)).all()
        backfilled = session.scalars(select(Run.email).where(Run.origin == "backfill")).all()
    assert sorted(stored) == ["active@example.com", "completed@example.com", "past_due@example.com"]
    assert sorted(backfilled) == ["completed@example.com", "past_due@example.com"]
    assert not fake_samcart.requests_for("/orders")  # orders bring in no Subscription Started: not listed
    by_id = {p["subscription"]["id"]: p for p in payloads}
    assert by_id[str(sids["past_due"])]["subscription"]["status"] == "past_due"
    assert by_id[str(sids["completed"])]["product"]["id"] == str(product)
    # Read again: nothing new is stored or run.
    assert backfill_from_the_store_api(api, runtime, rule_id)["message"].startswith(
        "0 past events read from the store's API (3 already"
    )


def test_the_stores_own_delivery_of_an_event_read_from_its_api_runs_the_other_rules_once(
    setup, api, runtime, fake_samcart, in_process
):
    """An order a backfill read from SamCart's API ran the backfilled rule only. When SamCart's Notify URL delivers
    it after all (an order placed while the backfill read, a delivery SamCart retried), that delivery is the
    event's first: every other matching rule runs for it, the backfilled rule does not run twice, and a rule
    whose backfill run was cancelled before it ran runs now. A second delivery is then an ordinary duplicate."""
    from rq.job import Job

    from hookyard import deliveries
    from hookyard.models import Delivery, Event

    from .samcart.fixtures import SAMCART_API_KEY

    recorder = setup.integration()
    backfilled, other = setup.rule(recorder, channel="backfilled"), setup.rule(recorder, channel="other")
    r = api.post(
        "/api/v1/integrations", json={"app": "samcart", "name": "Store", "config": {"api_key": SAMCART_API_KEY}}
    )
    assert r.status_code == 201, r.json
    samcart = r.json
    product = fake_samcart.add_product("Community", price=4900)
    placed = (NOW - timedelta(days=5)).strftime("%Y-%m-%d %H:%M:%S")

    def order(email):
        customer = fake_samcart.add_customer(email)
        return fake_samcart.add_order(customer, [product], order_date=placed, created_at=placed)

    def notify(email, order_id, total="49.00"):
        # What the Notify URL posts for the order (samcart.md §9); its status once processed.
        posted = api._client.post(
            "/" + samcart["inbound_url"].split("/", 3)[3],
            json={
                "type": "Order",
                "customer": {"email": email},
                "order": {"id": order_id, "total": total},
                "product": {"id": str(product), "name": "Community", "price": "49.00"},
            },
        )
        assert posted.status_code in (200, 202), posted.text
        with runtime.db.session() as session:
            waiting = list(session.scalars(select(Delivery.id).where(Delivery.status == "received")))
        return [deliveries.process(d) for d in waiting]

    def runs():
        with runtime.db.session() as session:
            return {
                (row.email, row.rule_id): (row.origin, row.status, row.dispatches)
                for row in session.scalars(select(Run).order_by(Run.id))
            }

    kept = order("kept@example.com")
    assert backfill_from_the_store_api(api, runtime, backfilled)["message"].startswith("1 past event read")
    late = order("late@example.com")  # placed after the first read; the second backfill is cancelled
    second = backfill_from_the_store_api(api, runtime, backfilled)
    assert api.post(f"/api/v1/tasks/{second['id']}/cancel").json["runs"]["skipped"] == 1
    with runtime.db.session() as session:
        assert set(session.scalars(select(Event.source))) == {"store_api"}
        kept_event = session.scalar(select(Event.id).where(Event.email == "kept@example.com"))
    assert api.get(f"/api/v1/events/{kept_event}").json["source"] == "store_api"
    assert runs() == {
        ("kept@example.com", backfilled): ("backfill", "queued", 1),
        ("late@example.com", backfilled): ("backfill", "skipped", 1),
    }

    assert notify("kept@example.com", kept) == ["mapped"]
    assert notify("late@example.com", late) == ["mapped"]
    made = runs()
    assert made == {
        ("kept@example.com", backfilled): ("backfill", "queued", 1),  # not run twice
        ("kept@example.com", other): ("event", "queued", 1),
        ("late@example.com", backfilled): ("event", "queued", 2),  # its cancelled backfill run, taken up
        ("late@example.com", other): ("event", "queued", 1),
    }
    with runtime.db.session() as session:
        events = {e.email: e for e in session.scalars(select(Event))}
        event_runs = list(session.scalars(select(Run).where(Run.origin == "event")))
        assert {e.source for e in events.values()} == {"delivery"}
        assert (events["kept@example.com"].matched_rules, events["late@example.com"].matched_rules) == (1, 2)
        assert all(Job.exists(run.job_id, connection=runtime.redis) for run in event_runs)  # queued for a worker
    assert api.get(f"/api/v1/events/{kept_event}").json["source"] == "delivery"
    # The same order delivered again (a changed body, so not the same delivery): a duplicate, nothing more runs.
    assert notify("kept@example.com", kept, total="49.0") == ["duplicate"]
    assert runs() == made


def test_a_preview_with_the_store_api_is_a_task_that_counts_what_it_would_add_and_stores_nothing(
    setup, api, make_client, runtime, fake_samcart, in_process
):
    """The preview of a backfill that reads SamCart's API needs that read: a task (202) whose result is the counts,
    the events the API reports for the rule (its product's, for a product rule) and how many were never received;
    it stores no event and makes no run, and SamCart's refusal fails it with the reason."""
    from hookyard import backfill_jobs
    from hookyard.models import Event

    from .samcart.fixtures import SAMCART_API_KEY

    r = api.post(
        "/api/v1/integrations", json={"app": "samcart", "name": "Store", "config": {"api_key": SAMCART_API_KEY}}
    )
    assert r.status_code == 201, r.json
    samcart = r.json
    community, course = fake_samcart.add_product("Community", price=4900), fake_samcart.add_product("Course")
    placed = (NOW - timedelta(days=5)).strftime("%Y-%m-%d %H:%M:%S")
    orders = {}
    for i, product in enumerate([community, community, community, course]):
        customer = fake_samcart.add_customer(f"past{i}@example.com")
        orders[i] = fake_samcart.add_order(customer, [product], order_date=placed, created_at=placed)
    deliver_to_the_notify_url(  # the first order reached the Notify URL: stored, and the rule ran for it
        api,
        runtime,
        samcart,
        {
            "type": "Order",
            "customer": {"email": "past0@example.com"},
            "order": {"id": orders[0], "total": "49.00"},
            "product": {"id": str(community), "name": "Community", "price": "49.00"},
        },
    )
    recorder = setup.integration()
    everything = setup.rule(recorder)
    with runtime.db.session() as session:
        product_id = session.scalar(select(Event.product_id).where(Event.email == "past0@example.com"))
    community_only = setup.rule(recorder, product_id=product_id)

    def preview_of(rule_id):
        r = api.post(
            f"/api/v1/rules/{rule_id}/backfill",
            json=body(include_store_api=True, preview=True, until=datetime.now(timezone.utc)),
        )
        assert r.status_code == 202 and r.json["kind"] == "rule.backfill_preview", r.json
        assert r.headers["Location"] == f"/api/v1/tasks/{r.json['id']}"
        assert r.json["params"]["since"] == SINCE.isoformat() and r.json["result"] is None
        run_task_here(runtime, r.json["id"], backfill_jobs.preview_backfill)
        return task_of(api, r.json["id"])

    def stored():
        with runtime.db.session() as session:
            return session.scalar(select(func.count()).select_from(Event)), session.scalar(
                select(func.count()).select_from(Run)
            )

    before = stored()
    task = preview_of(everything)
    assert task["status"] == "succeeded", task
    assert task["result"] == {
        "candidates": 4,  # the delivered one (stored) + 3 never received
        "would_run": 4,  # this rule never ran for any of them (the delivery ran before it existed)
        "already_run": 0,
        "oldest_event_at": task["result"]["oldest_event_at"],
        "retention_days": runtime.settings.event_retention_days,
        "store_api": {"read": 4, "not_stored": 3},
    }, task
    assert "never received; a start would make 4 runs" in task["message"], task
    task = preview_of(community_only)
    assert task["result"]["store_api"] == {"read": 3, "not_stored": 2}, task  # the course order is not its
    assert (task["result"]["candidates"], task["result"]["would_run"]) == (3, 3), task
    assert stored() == before  # nothing stored, nothing run

    # A start then does what the preview said.
    started = backfill_from_the_store_api(api, runtime, everything)
    assert started["runs"]["queued"] == 4, started

    # SamCart refuses the key now: the preview fails, saying why.
    fake_samcart.add_api_key(SAMCART_API_KEY, allowed=False)
    task = preview_of(community_only)
    assert task["status"] == "failed" and "“Store”:" in task["message"], task
    assert task["message"].endswith("Nothing was counted."), task
    # Another store's token cannot read this store's preview task.
    other = make_client("store-b")
    assert other.get(f"/api/v1/tasks/{task['id']}").status_code == 404


def test_a_rule_whose_trigger_the_stores_api_cannot_bring_in_is_not_offered_the_read(setup, api, runtime, fake_samcart):
    """SamCart's API brings in Product Purchased (orders) and Subscription Started (subscriptions) only: a refund
    rule's backfill refuses include_store_api with a field error saying so, instead of reading for nothing."""
    from .samcart.fixtures import SAMCART_API_KEY

    r = api.post(
        "/api/v1/integrations", json={"app": "samcart", "name": "Store", "config": {"api_key": SAMCART_API_KEY}}
    )
    assert r.status_code == 201, r.json
    refunds = setup.rule(setup.integration(), trigger="samcart.product_refunded")
    for extra in ({"preview": True}, {}):
        r = api.post(f"/api/v1/rules/{refunds}/backfill", json=body(include_store_api=True, **extra))
        assert r.status_code == 422, r.json
        assert r.json["errors"]["json"]["include_store_api"] == [
            "The store's API brings in Product Purchased and Subscription Started events only: this rule's trigger "
            "(Product Refunded) comes from the store's notifications alone."
        ], r.json
    assert not fake_samcart.requests_for("/orders")
    assert api.post(f"/api/v1/rules/{refunds}/backfill", json=body(preview=True)).status_code == 200


def test_a_preview_whose_rule_was_deleted_fails_saying_so_and_a_new_rule_never_takes_its_id(
    setup, api, runtime, fake_samcart, in_process
):
    """The rule deleted while its preview waits for a worker: the task fails with the reason instead of counting for
    a rule that is gone, and the rule created next has another id (ids are never reused), so the old task's counts
    could never be read as the new rule's."""
    from hookyard import backfill_jobs

    from .samcart.fixtures import SAMCART_API_KEY

    r = api.post(
        "/api/v1/integrations", json={"app": "samcart", "name": "Store", "config": {"api_key": SAMCART_API_KEY}}
    )
    assert r.status_code == 201, r.json
    recorder = setup.integration()
    gone = setup.rule(recorder)
    r = api.post(f"/api/v1/rules/{gone}/backfill", json=body(include_store_api=True, preview=True))
    assert r.status_code == 202, r.json
    task_id = r.json["id"]
    assert api.delete(f"/api/v1/rules/{gone}").status_code == 204
    run_task_here(runtime, task_id, backfill_jobs.preview_backfill)
    task = task_of(api, task_id)
    assert (task["status"], task["message"], task["result"]) == (
        "failed",
        "The rule was deleted before its preview started.",
        None,
    ), task
    again = setup.rule(recorder)
    assert again != gone
    r = api.post(f"/api/v1/rules/{gone}/backfill", json=body(include_store_api=True, preview=True))
    assert r.status_code == 404, r.json
