"""The SamCart app end to end: a Notify URL body posted to a connection's inbound URL, processed by a real worker or
here, into events, rules and Circle; redeliveries, derived subscription triggers, product import."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hookyard import deliveries
from hookyard.models import Delivery, Event, Product

from ..waiting import wait_for
from .fixtures import SAMCART_API_KEY
from .test_notify_mapping import ROWS  # the mapping table's rows: fixture → the events it makes

BODIES = Path(__file__).parent / "bodies"


def order(**changes) -> dict:
    body = {
        "type": "Order",
        "api_key": "merchant-secret",
        "customer": {
            "id": 111,
            "first_name": "Ada",
            "last_name": "L",
            "email": "Ada@Example.com",
            "phone_number": "+15550100",
        },
        "order": {"id": 222, "total": "68.00", "ip_address": "203.0.113.5"},
        "product": {"id": "444,445", "name": "Community Membership,Workbook", "price": "49.00,19.00"},
        "affiliate": {"id": None, "token": None},
    }
    body.update(changes)
    return body


def rebill(kind: str, subscription=333, **changes) -> dict:
    body = {
        "type": kind,
        "customer": {"email": "sub@example.com", "first_name": "Sub"},
        "order": {"id": 900, "total": "29.00", "subscription_id": subscription},
        "product": {"id": 555, "name": "Monthly club", "price": "29.00"},
    }
    body.update(changes)
    return body


@pytest.fixture
def samcart(api):
    r = api.post("/api/v1/integrations", json={"app": "samcart", "name": "My SamCart store", "config": {}})
    assert r.status_code == 201, r.json
    assert r.json["info"] == {"api_connected": False}
    return r.json


def post(app, integration, body):
    path = "/" + integration["inbound_url"].split("/", 3)[3]
    return app.test_client().post(path, json=body)


def process_all(runtime) -> list[str]:
    with runtime.db.session() as session:
        waiting = list(session.scalars(select(Delivery.id).where(Delivery.status == "received").order_by(Delivery.id)))
    return [deliveries.process(delivery_id) for delivery_id in waiting]


def events(runtime, trigger=None) -> list[Event]:
    with runtime.db.session() as session:
        query = select(Event).order_by(Event.id)
        if trigger:
            query = query.where(Event.trigger == f"samcart.{trigger}")
        return list(session.scalars(query))


def triggers(runtime) -> list[str]:
    return [e.trigger.removeprefix("samcart.") for e in events(runtime)]


def test_a_two_product_order_invites_the_buyer_at_circle_end_to_end(
    api, app, samcart, circle, circle_worker, fake_circle, runtime
):
    community = circle.connect()
    circle.rule(community, "invite_member", {})
    circle_worker()
    r = post(app, samcart, order())
    assert r.status_code == 200, r.json  # no Authorization header: the URL is the credential
    listed = lambda: api.get(f"/api/v1/integrations/{samcart['id']}/deliveries").json  # noqa: E731
    wait_for(lambda: listed()[0]["status"] == "mapped", message="the worker did not map the delivery")
    [delivery] = listed()
    assert [e["trigger"] for e in delivery["events"]] == ["samcart.product_purchased"] * 2
    assert delivery["body"]["api_key"] == "********"  # a secret in the body is never stored
    made = [api.get(e["url"]).json for e in delivery["events"]]
    assert [(e["payload"]["product"]["id"], e["payload"]["product"]["price_cents"]) for e in made] == [
        ("444", 4900),
        ("445", 1900),
    ]
    assert all(
        e["payload"]["order"]["total_cents"] == 6800 and e["payload"]["customer"]["phone"] == "+15550100" for e in made
    )
    wait_for(lambda: fake_circle.member("ada@example.com") is not None, message="Circle never got the invitation")
    # Both product lines matched the global rule: one invitation each, the second finds the member already there.
    wait_for(
        lambda: all(run["status"] == "succeeded" for e in delivery["events"] for run in api.get(e["url"]).json["runs"]),
        message="the runs did not succeed",
    )


def test_the_same_body_three_times_is_one_mapped_delivery_and_two_duplicates(api, app, samcart, runtime, in_process):
    for _ in range(3):
        assert post(app, samcart, order()).status_code == 200
    assert process_all(runtime) == ["mapped", "duplicate", "duplicate"]
    assert triggers(runtime) == ["product_purchased", "product_purchased"]


def test_an_unknown_type_is_kept_as_unmapped_and_mapped_after_the_merchant_names_it(
    api, app, samcart, runtime, in_process
):
    body = {
        "type": "Student Enrolled Into Bootcamp",
        "customer": {"email": "stu@example.com"},
        "course": {"id": 7, "name": "Bootcamp"},
    }
    assert post(app, samcart, body).status_code == 200
    assert process_all(runtime) == ["unmapped"]
    [delivery] = api.get(f"/api/v1/integrations/{samcart['id']}/deliveries").json
    assert "Student Enrolled Into Bootcamp" in delivery["reason"] and delivery["events"] == []
    r = api.patch(
        f"/api/v1/integrations/{samcart['id']}",
        json={"config": {"type_names": "Student Enrolled Into Bootcamp = course_enrolled"}},
    )
    assert r.status_code == 200, r.json
    r = api.post(f"/api/v1/integrations/{samcart['id']}/deliveries/{delivery['id']}/reprocess")
    assert r.status_code == 202
    assert process_all(runtime) == ["mapped"]
    assert triggers(runtime) == ["course_enrolled"]


def test_a_bad_type_name_line_is_a_field_error(api, samcart):
    r = api.patch(f"/api/v1/integrations/{samcart['id']}", json={"config": {"type_names": "Foo = not_a_trigger"}})
    assert r.status_code == 422 and "type_names" in json.dumps(r.json["errors"])


@pytest.mark.parametrize("with_ids", [True, False], ids=["charge-ids", "no-ids-a-day-apart"])
def test_three_failures_then_a_success_is_one_charge_failed_and_one_recovered(
    api, app, samcart, runtime, in_process, with_ids
):
    clock = [datetime(2026, 10, 1, 9, 0, tzinfo=timezone.utc)]
    runtime.clock = lambda: clock[0]

    def send(kind, n, subscription):
        extra = {"charge_id": f"ch_{subscription}_{n}"} if with_ids else {}
        assert post(app, samcart, rebill(kind, subscription, **extra)).status_code == 200
        clock[0] += timedelta(days=1)

    for n in range(3):
        send("RecurringPaymentFailed", n, 333)
    send("RecurringPaymentSucceeded", 3, 333)
    for n in range(4):
        send("RecurringPaymentFailed", n, 334)
    assert set(process_all(runtime)) == {"mapped"}
    recovered = [
        e.trigger.removeprefix("samcart.")
        for e in events(runtime)
        if e.payload.get("subscription", {}).get("id") in ("333", 333)
    ]
    assert sorted(recovered) == sorted(["subscription_charge_failed", "subscription_recovered", "subscription_charged"])
    delinquent = [
        e.trigger.removeprefix("samcart.")
        for e in events(runtime)
        if e.payload.get("subscription", {}).get("id") in ("334", 334)
    ]
    assert sorted(delinquent) == sorted(
        ["subscription_charge_failed", "subscription_delinquent", "subscription_canceled"]
    )
    # SamCart's own Cancel for the subscription already derived as canceled is the same event, not a second.
    assert (
        post(app, samcart, rebill("Cancel", 334, **({"charge_id": "cancel-334"} if with_ids else {}))).status_code
        == 200
    )
    assert process_all(runtime) == ["duplicate"]
    assert len(events(runtime, "subscription_canceled")) == 1


def test_two_rebills_a_month_apart_are_two_charges(api, app, samcart, runtime, in_process):
    clock = [datetime(2026, 10, 1, 9, 0, tzinfo=timezone.utc)]
    runtime.clock = lambda: clock[0]
    post(app, samcart, rebill("RecurringPaymentSucceeded"))
    post(app, samcart, rebill("RecurringPaymentSucceeded"))  # SamCart retrying the same POST: a redelivery
    clock[0] += timedelta(days=30)
    post(app, samcart, rebill("RecurringPaymentSucceeded"))
    assert process_all(runtime) == ["mapped", "duplicate", "mapped"]
    assert len(events(runtime, "subscription_charged")) == 2


def test_a_completed_subscription_is_told_by_samcarts_api_when_a_key_is_set(
    api, app, runtime, in_process, fake_samcart
):
    subscription = fake_samcart.add_subscription(status="completed")
    r = api.post(
        "/api/v1/integrations", json={"app": "samcart", "name": "With key", "config": {"api_key": SAMCART_API_KEY}}
    )
    assert r.status_code == 201 and r.json["info"] == {"api_connected": True}, r.json
    post(app, r.json, rebill("RecurringPaymentSucceeded", subscription))
    assert process_all(runtime) == ["mapped"]
    assert "subscription_completed" in triggers(runtime)
    assert fake_samcart.requests_for(f"/subscriptions/{subscription}")


def test_a_rejected_key_and_an_unreachable_api_have_distinct_messages(api, fake_samcart, monkeypatch):
    r = api.post("/api/v1/integrations", json={"app": "samcart", "name": "Bad key", "config": {"api_key": "wrong"}})
    assert r.status_code == 422 and "refused the API key" in r.json["message"]
    assert "api_key" in r.json["errors"]["json"]["config"]
    monkeypatch.setenv("SAMCART_API_BASE_URL", "http://127.0.0.1:9/v1")
    r = api.post(
        "/api/v1/integrations", json={"app": "samcart", "name": "Unreachable", "config": {"api_key": SAMCART_API_KEY}}
    )
    assert r.status_code in (422, 504) and "could not be reached" in r.json["message"]


def test_250_products_over_3_pages_are_imported_with_progress_then_again_without_duplicates(
    api, start_worker, fake_samcart, runtime
):
    fake_samcart.add_products(250)
    r = api.post(
        "/api/v1/integrations", json={"app": "samcart", "name": "Store", "config": {"api_key": SAMCART_API_KEY}}
    )
    integration = r.json["id"]
    start_worker(SAMCART_API_BASE_URL=fake_samcart.base_url)
    seen = []

    def finished(task_id):
        task = api.get(f"/api/v1/tasks/{task_id}").json
        seen.append(task["done"])
        return task if task["status"] not in ("queued", "running") else None

    for _ in range(2):
        r = api.post(f"/api/v1/integrations/{integration}/products/import")
        assert r.status_code == 202 and r.headers["Location"] == f"/api/v1/tasks/{r.json['id']}"
        task = wait_for(lambda: finished(r.json["id"]), timeout=60, message="the import did not finish")
        assert task["status"] == "succeeded" and task["done"] == 250, task
    assert "250 new" in api.get(f"/api/v1/tasks/{r.json['id'] - 1}").json["message"]
    assert "0 new" in task["message"]
    with runtime.db.session() as session:
        assert session.scalar(select(func.count(Product.id))) == 250
    pages = fake_samcart.requests_for("/products")
    assert len(pages) == 1 + 2 * 3  # verify's one read when connecting, then 3 pages per import


def test_the_cli_imports_products_with_a_progress_bar(api, start_worker, fake_samcart, settings, plugin_site):
    import subprocess
    import sys

    from ..conftest import worker_env

    fake_samcart.add_products(120)
    env = worker_env(settings, plugin_site, SAMCART_API_BASE_URL=fake_samcart.base_url)
    hookyard = str(Path(sys.executable).parent / "hookyard")
    missing = subprocess.run(
        [hookyard, "samcart", "import-products", "--marketplace", "store-a"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode != 0 and "has no SamCart connection" in missing.stderr, missing
    r = api.post(
        "/api/v1/integrations", json={"app": "samcart", "name": "Store", "config": {"api_key": SAMCART_API_KEY}}
    )
    assert r.status_code == 201, r.json
    start_worker(SAMCART_API_BASE_URL=fake_samcart.base_url)
    done = subprocess.run(
        [hookyard, "samcart", "import-products", "--marketplace", "store-a"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done
    assert "products" in done.stdout and "120 products imported" in done.stdout and "120 new" in done.stdout


@pytest.mark.parametrize("fixture", sorted(ROWS))
def test_each_fixture_body_posted_to_the_notify_url_yields_its_documented_events(
    api, app, samcart, runtime, in_process, fixture
):
    """The mapping table of docs/samcart.md, row by row, through the inbound URL, the worker's processing and the
    emit path (tests/samcart/test_notify_mapping.py checks the same rows against the mapping alone)."""
    expected, _ = ROWS[fixture]
    body = json.loads((BODIES / f"{fixture}.json").read_text())
    assert post(app, samcart, body).status_code == 200
    assert process_all(runtime) == ["mapped"]
    made = [(e.trigger.removeprefix("samcart."), (e.payload.get("product") or {}).get("id")) for e in events(runtime)]
    assert sorted(made, key=str) == sorted(expected, key=str)
