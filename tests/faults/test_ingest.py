"""Accepting events: a repeated delivery makes one run, a full queue answers 429, a database outage 503.
Either way nothing is half-written."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import func, select

from hookyard.app import create_app
from hookyard.db import Database
from hookyard.models import Event, Run
from hookyard.runtime import Runtime

from ..conftest import purchase

PURCHASE = "samcart.product_purchased"


def order(email="ada@example.com", order_id=222, **extra):
    return purchase(email=email, product_id="444", order={"id": order_id}, **extra)


def count(runtime, model):
    with runtime.db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_the_same_event_delivered_five_times_makes_one_run(setup, api, runtime, figures):
    setup.rule(setup.integration())
    deliveries = [
        {},
        {"Idempotency-Key": "samcart-222-444"},
        {},
        {"Idempotency-Key": "samcart-222-444"},
        {"Idempotency-Key": "another-key-same-order"},
    ]
    answers = [
        api.post("/api/v1/events", json={"trigger": PURCHASE, "payload": order()}, headers=h) for h in deliveries
    ]
    assert [(a.status_code, a.json["status"]) for a in answers] == [(202, "accepted")] + [(200, "duplicate")] * 4
    assert len({a.json["id"] for a in answers}) == 1
    event = api.get(f"/api/v1/events/{answers[0].json['id']}").json
    assert event["duplicates"] == 4 and event["last_duplicate_at"] is not None
    assert len(event["runs"]) == 1 and count(runtime, Run) == 1 and count(runtime, Event) == 1
    figures.update(deliveries=5, events=count(runtime, Event), runs=count(runtime, Run), suppressed=4)


def test_only_the_same_real_world_event_is_suppressed(setup, api, runtime):
    setup.rule(setup.integration())
    emit = lambda payload, trigger=PURCHASE: api.post("/api/v1/events", json={"trigger": trigger, "payload": payload})  # noqa: E731
    assert emit(order(order_id=1)).status_code == 202
    assert emit(order(order_id=2)).status_code == 202  # another order
    assert emit(order(order_id=1), "samcart.product_refunded").status_code == 202  # another trigger
    assert emit(purchase()).status_code == 202 and emit(purchase()).status_code == 202  # no identity: no dedupe
    canceled = {"subscription": {"id": 9}}
    assert (
        emit(purchase(**canceled, occurred_at="2026-11-01T10:00:00Z"), "samcart.subscription_canceled").status_code
        == 202
    )
    assert (
        emit(purchase(**canceled, occurred_at="2026-11-20T10:00:00Z"), "samcart.subscription_canceled").status_code
        == 202
    )
    assert (
        emit(purchase(**canceled, occurred_at="2026-11-20T10:00:00Z"), "samcart.subscription_canceled").status_code
        == 200
    )
    assert count(runtime, Event) == 7


def test_a_queue_that_is_too_deep_or_too_old_answers_429_and_stores_nothing(setup, api, runtime, figures):
    setup.rule(setup.integration())
    runtime.settings = replace(runtime.settings, backpressure_max_depth=3)
    for i in range(4):  # no worker runs: the jobs stay queued
        assert (
            api.post("/api/v1/events", json={"trigger": PURCHASE, "payload": purchase(f"b{i}@example.com")}).status_code
            == 202
        )
    refused = api.post("/api/v1/events", json={"trigger": PURCHASE, "payload": purchase("late@example.com")})
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "30"
    assert "The queue holds 4 jobs (limit 3)" in refused.json["message"] and refused.json["code"] == 429
    assert count(runtime, Event) == 4

    runtime.settings = replace(runtime.settings, backpressure_max_depth=1000, backpressure_max_age=0.0)
    aged = api.post("/api/v1/events", json={"trigger": PURCHASE, "payload": purchase("late@example.com")})
    assert aged.status_code == 429 and "the workers are behind or stopped" in aged.json["message"]
    assert count(runtime, Event) == 4
    figures.update(accepted=4, refused_deep=1, refused_old=1)


def test_without_redis_events_are_still_accepted(setup, api, runtime):
    """Backpressure cannot measure the queue, so it refuses nothing: the sweeper enqueues later."""
    setup.rule(setup.integration())
    runtime.settings = replace(runtime.settings, redis_url="redis://127.0.0.1:9/0", backpressure_max_depth=0)
    runtime.__dict__.pop("redis", None)
    answer = api.post("/api/v1/events", json={"trigger": PURCHASE, "payload": purchase()})
    assert answer.status_code == 202
    assert [r["status"] for r in api.get(f"/api/v1/events/{answer.json['id']}").json["runs"]] == ["queued"]


def test_with_the_database_down_the_api_answers_503_with_retry_after(runtime, api, caplog, figures):
    down = Runtime(
        settings=replace(runtime.settings, database_url="postgresql+psycopg://hookyard@127.0.0.1:9/none"),
        db=Database("postgresql+psycopg://hookyard@127.0.0.1:9/none"),
        registry=runtime.registry,
    )
    client = create_app(runtime=down).test_client()
    answer = client.post(
        "/api/v1/events",
        json={"trigger": PURCHASE, "payload": purchase()},
        headers={"Authorization": f"Bearer {api.token}"},
    )
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert answer.json["code"] == 503 and "nothing was stored" in answer.json["message"]
    assert "database unavailable while serving POST /api/v1/events" in caplog.text
    assert api.token not in caplog.text
    figures.update(answered_503=1, answered_202=0)


def test_old_events_without_log_entries_are_pruned_and_their_keys_with_them(setup, api, runtime):
    from datetime import timedelta

    from hookyard import runtime as runtime_module
    from hookyard.models import utcnow
    from hookyard.sweeper import sweep

    setup.rule(setup.integration(), trigger="samcart.product_refunded")  # purchases match no rule
    old = api.post("/api/v1/events", json={"trigger": PURCHASE, "payload": order(order_id=1)}).json["id"]
    logged = api.post(
        "/api/v1/events", json={"trigger": "samcart.product_refunded", "payload": order(order_id=2)}
    ).json["id"]
    recent = api.post("/api/v1/events", json={"trigger": PURCHASE, "payload": order(order_id=3)}).json["id"]
    with runtime.db.session() as s:
        for event_id in (old, logged):
            s.get(Event, event_id).received_at = utcnow() - timedelta(days=31)
        s.commit()
    runtime_module.install(runtime)
    try:
        assert sweep()["pruned"] == 1
    finally:
        runtime_module.install(None)
    with runtime.db.session() as s:
        assert sorted(s.scalars(select(Event.id))) == [logged, recent]  # its log entry keeps the refund
    again = api.post("/api/v1/events", json={"trigger": PURCHASE, "payload": order(order_id=1)})
    assert again.status_code == 202 and again.json["id"] not in (old, logged, recent)  # outside the window
