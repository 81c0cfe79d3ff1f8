"""Inbound URLs and the delivery log (hookyard.inbound, hookyard.deliveries, hookyard.receiver), through the test
plugin's "inbox" app: its body says what to make of it, so every outcome of a delivery can be driven."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from hookyard import deliveries
from hookyard.models import Delivery, Event, PluginStateRecord, Run

BUY = "samcart.product_purchased"


def purchase(email="ada@example.com", product="1001"):
    return {"customer": {"email": email}, "product": {"id": product, "name": "Community"}}


@pytest.fixture
def inbox(api):
    r = api.post("/api/v1/integrations", json={"app": "inbox", "name": "Inbox", "config": {}})
    assert r.status_code == 201, r.json
    return r.json


def path_of(integration) -> str:
    return "/" + integration["inbound_url"].split("/", 3)[3]


def post(app, integration, body=None, **kwargs):
    if body is not None:
        kwargs["json"] = body
    return app.test_client().post(path_of(integration), **kwargs)


def process_all(runtime):
    """What the worker does with each queued delivery job (hookyard.deliveries.process), here in the test."""
    with runtime.db.session() as session:
        waiting = list(session.scalars(select(Delivery.id).where(Delivery.status == "received").order_by(Delivery.id)))
    return [deliveries.process(delivery_id) for delivery_id in waiting]


def listed(api, integration, **query):
    r = api.get(f"/api/v1/integrations/{integration['id']}/deliveries", query_string=query)
    assert r.status_code == 200, r.json
    return r.json


def test_a_connection_gets_an_unguessable_absolute_inbound_url(api, inbox, app, runtime):
    url = inbox["inbound_url"]
    assert url.startswith("http://localhost/hooks/inbox/")
    key = url.rsplit("/", 1)[1]
    assert len(key) == 43  # 256 bits, URL-safe base64
    with runtime.db.session() as session:
        from hookyard.models import Integration

        row = session.get(Integration, inbox["id"])
        assert key not in (row.inbound_key or "") and row.inbound_key_hash != key  # sealed, and looked up by hash
    # Built from HOOKYARD_PUBLIC_URL when it is set: the address the store can reach.
    from dataclasses import replace

    runtime.settings = replace(runtime.settings, public_url="https://hooks.example.com/base")
    assert (
        api.get(f"/api/v1/integrations/{inbox['id']}").json["inbound_url"]
        == f"https://hooks.example.com/base/hooks/inbox/{key}"
    )
    # Apps that receive nothing have none.
    from tests.recorder import TOKEN  # noqa: F401 (the recorder app needs a server; its absence is enough here)

    assert all(i["inbound_url"] is None for i in api.get("/api/v1/integrations").json if i["app"] != "inbox")


def test_viewers_see_the_url_masked(make_client, inbox, runtime, app):
    from hookyard.tokens import create_token, get_or_create_marketplace
    from tests.conftest import ApiClient

    with runtime.db.session() as session:
        token = create_token(session, get_or_create_marketplace(session, "store-a"), "viewer", role="viewer")
        session.commit()
    viewer = ApiClient(app, token, None)
    shown = viewer.get(f"/api/v1/integrations/{inbox['id']}").json["inbound_url"]
    key = inbox["inbound_url"].rsplit("/", 1)[1]
    assert key not in shown and shown.endswith(key[:4] + "…")


def test_a_delivery_is_stored_then_turned_into_events_through_the_emit_path(
    api, app, inbox, runtime, in_process, setup
):
    integration_id = setup.integration()
    setup.rule(integration_id)
    r = post(
        app,
        inbox,
        {
            "events": [{"trigger": BUY, "payload": purchase(), "note": "a purchase"}],
            "secret": "s3cret",
            "extra": {"kept": True},
        },
    )
    assert r.status_code == 200 and r.json["status"] == "received"
    [waiting] = listed(api, inbox)
    assert waiting["status"] == "received" and waiting["events"] == []
    assert waiting["body"]["secret"] == "********" and waiting["body"]["extra"] == {"kept": True}
    assert process_all(runtime) == ["mapped"]
    [done] = listed(api, inbox)
    assert done["status"] == "mapped" and done["attempts"] == 1
    [made] = done["events"]
    assert made["trigger"] == BUY and made["note"] == "a purchase" and made["duplicate"] is False
    event = api.get(made["url"]).json
    assert event["payload"]["customer"]["email"] == "ada@example.com" and len(event["runs"]) == 1
    with runtime.db.session() as session:  # the secret never reached the database
        assert "s3cret" not in json.dumps(session.get(Delivery, done["id"]).body)


def test_the_same_delivery_three_times_is_one_mapped_and_two_duplicates(api, app, inbox, runtime, in_process):
    body = {"events": [{"trigger": BUY, "payload": purchase()}]}
    for _ in range(3):
        assert post(app, inbox, body).status_code == 200
    assert process_all(runtime) == ["mapped", "duplicate", "duplicate"]
    statuses = [(d["status"], d["duplicate_of"]) for d in reversed(listed(api, inbox))]
    first = listed(api, inbox)[-1]["id"]
    assert statuses == [("mapped", None), ("duplicate", first), ("duplicate", first)]
    with runtime.db.session() as session:
        assert session.scalar(select(func.count(Event.id))) == 1


def test_an_identical_body_outside_the_redelivery_window_is_a_new_delivery(api, app, inbox, runtime, in_process):
    clock = [datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)]
    runtime.clock = lambda: clock[0]
    body = {"events": [{"trigger": BUY, "payload": purchase()}], "count": "n"}
    post(app, inbox, body)
    clock[0] += timedelta(minutes=59)
    post(app, inbox, body)  # within the default hour: a redelivery
    clock[0] += timedelta(days=1)
    post(app, inbox, body)  # a day later: a new one, and the state counts it
    assert process_all(runtime) == ["mapped", "duplicate", "mapped"]
    with runtime.db.session() as session:
        assert session.scalar(select(PluginStateRecord.value).where(PluginStateRecord.key == "n")) == {"n": 2}
        assert session.scalar(select(func.count(Event.id))) == 2


def test_the_same_identity_is_a_redelivery_at_any_time(api, app, inbox, runtime, in_process):
    clock = [datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)]
    runtime.clock = lambda: clock[0]
    post(app, inbox, {"delivery_id": "charge-1", "events": [{"trigger": BUY, "payload": purchase()}]})
    clock[0] += timedelta(days=30)
    post(app, inbox, {"delivery_id": "charge-1", "events": [{"trigger": BUY, "payload": purchase()}], "resent": True})
    post(app, inbox, {"delivery_id": "charge-2", "events": [{"trigger": BUY, "payload": purchase(product="2")}]})
    assert process_all(runtime) == ["mapped", "duplicate", "mapped"]


def test_events_that_existed_already_make_the_delivery_a_duplicate(api, app, inbox, runtime, in_process, setup):
    order = {**purchase(), "order": {"id": 222}}
    setup.emit(order)  # the same purchase (order 222), sent through the API first
    post(app, inbox, {"events": [{"trigger": BUY, "payload": order}]})
    assert process_all(runtime) == ["duplicate"]
    [delivery] = listed(api, inbox)
    assert delivery["events"][0]["duplicate"] is True and "received before" in delivery["reason"]


@pytest.mark.parametrize(
    "body, status, reason",
    [
        ({"kind": "unknown"}, "unmapped", "unknown kind 'unknown'"),
        ({"kind": "reject"}, "rejected", "asked to reject it"),
        ({"kind": "boom"}, "failed", "The Inbox plugin failed while handling it (RuntimeError)"),
        (
            {"events": [{"trigger": BUY, "payload": {"customer": {"email": "not an email"}, "product": {"id": "1"}}}]},
            "rejected",
            "Its samcart.product_purchased event is not valid",
        ),
        ({"events": [{"trigger": "nope.nothing", "payload": {}}]}, "rejected", "unknown trigger 'nope.nothing'"),
        ({"events": []}, "mapped", "It made no event. the body listed no events"),
    ],
)
def test_every_outcome_is_kept_with_a_readable_reason_and_nothing_half_written(
    api, app, inbox, runtime, in_process, body, status, reason
):
    # State written before the failure is undone with it.
    body = {**body, "count": "n"} if status != "mapped" else body
    assert post(app, inbox, body).status_code == 200
    process_all(runtime)
    [delivery] = listed(api, inbox)
    assert delivery["status"] == status and reason in delivery["reason"], delivery
    with runtime.db.session() as session:
        assert session.scalar(select(func.count(Event.id))) == 0
        assert session.scalar(select(func.count(PluginStateRecord.id))) == 0


def test_an_unmapped_delivery_can_be_processed_again(api, app, inbox, runtime, in_process):
    post(app, inbox, {"kind": "unknown", "events": [{"trigger": BUY, "payload": purchase()}]})
    process_all(runtime)
    [delivery] = listed(api, inbox)
    assert delivery["status"] == "unmapped"
    # "The mapping is fixed" (here: the stored body is corrected, as a plugin upgrade would read it differently).
    with runtime.db.session() as session:
        row = session.get(Delivery, delivery["id"])
        row.body = {"events": [{"trigger": BUY, "payload": purchase()}]}
        session.commit()
    r = api.post(f"/api/v1/integrations/{delivery['integration_id']}/deliveries/{delivery['id']}/reprocess")
    assert r.status_code == 202 and r.json["status"] == "received"
    assert process_all(runtime) == ["mapped"]
    # Again: the events it made the first time are found, not made twice, and it stays mapped.
    api.post(f"/api/v1/integrations/{delivery['integration_id']}/deliveries/{delivery['id']}/reprocess")
    assert process_all(runtime) == ["mapped"]
    [again] = listed(api, inbox)
    assert again["attempts"] == 3 and again["events"][0]["duplicate"] is False
    with runtime.db.session() as session:
        assert session.scalar(select(func.count(Event.id))) == 1


def test_a_wrong_or_rotated_url_answers_404_and_stores_nothing(api, app, inbox, runtime):
    client = app.test_client()
    key = inbox["inbound_url"].rsplit("/", 1)[1]
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    for path in (f"/hooks/inbox/{wrong}", "/hooks/inbox/short", f"/hooks/recorder/{key}", "/hooks/inbox/" + "x" * 43):
        r = client.post(path, json={"events": []})
        assert r.status_code == 404 and "inbound URL" in r.json["message"], path
    r = api.post(f"/api/v1/integrations/{inbox['id']}/inbound-url/rotate")
    assert r.status_code == 200 and r.json["inbound_url"] != inbox["inbound_url"]
    assert post(app, inbox, {"events": []}).status_code == 404  # the old URL, at once
    assert post(app, r.json, {"events": []}).status_code == 200
    with runtime.db.session() as session:
        assert session.scalar(select(func.count(Delivery.id))) == 1
    # Connections of apps that receive nothing have no URL to rotate.
    assert client.get(path_of(r.json)).status_code == 200  # a browser (or a tunnel's check) sees that it works


def test_form_bodies_are_read_and_unreadable_ones_are_kept_as_rejected(api, app, inbox, runtime, in_process):
    r = post(
        app,
        inbox,
        data="kind=unknown&customer%5Bemail%5D=ada%40example.com&secret=x",
        content_type="application/x-www-form-urlencoded",
    )
    assert r.status_code == 200
    r = post(app, inbox, data=b"<xml>not json</xml>", content_type="application/xml")
    assert r.status_code == 400 and "neither JSON nor a form" in r.json["message"]
    r = post(app, inbox, data=b"[1, 2]", content_type="application/json")
    assert r.status_code == 400 and "not an object" in r.json["message"]
    r = post(app, inbox, data=b'{"events": []}', content_type="text/plain")  # JSON sent as text is still JSON
    assert r.status_code == 200
    rows = listed(api, inbox)
    assert [d["status"] for d in rows] == ["received", "rejected", "rejected", "received"]
    assert rows[3]["body"] == {"kind": "unknown", "customer": {"email": "ada@example.com"}, "secret": "********"}
    assert rows[2]["body"] is None and rows[2]["text"] == "<xml>not json</xml>"
    r = api.post(f"/api/v1/integrations/{inbox['id']}/deliveries/{rows[2]['id']}/reprocess")
    assert r.status_code == 409 and "nothing to process" in r.json["message"]


def test_a_body_over_the_limit_gets_413_and_nothing_is_stored(app, inbox, runtime):
    limit = runtime.settings.inbound_max_bytes
    r = post(app, inbox, data=b"{" + b" " * limit + b"}", content_type="application/json")
    assert r.status_code == 413 and str(limit) in r.json["message"]
    with runtime.db.session() as session:
        assert session.scalar(select(func.count(Delivery.id))) == 0


def test_the_backpressure_429_never_applies_to_deliveries(api, app, inbox, runtime, monkeypatch):
    from hookyard import backpressure

    monkeypatch.setattr(backpressure, "refusal", lambda rt: "the workers are behind")
    assert api.post("/api/v1/events", json={"trigger": BUY, "payload": purchase()}).status_code == 429
    assert post(app, inbox, {"events": []}).status_code == 200


def test_the_delivery_log_is_capped_per_connection_and_filters_by_status(api, app, inbox, runtime, in_process):
    from dataclasses import replace

    runtime.settings = replace(runtime.settings, log_cap=3)
    for i in range(5):
        post(app, inbox, {"kind": "unknown" if i % 2 else None, "delivery_id": f"d{i}", "events": []})
    process_all(runtime)
    rows = listed(api, inbox)
    assert len(rows) == 3 and [d["body"]["delivery_id"] for d in rows] == ["d4", "d3", "d2"]
    assert [d["body"]["delivery_id"] for d in listed(api, inbox, status="unmapped")] == ["d3"]
    r = api.get(f"/api/v1/integrations/{inbox['id']}/deliveries", query_string={"status": "nope"})
    assert r.status_code == 422 and "status" in r.json["errors"]["query"]


def test_a_delivery_whose_job_was_lost_is_queued_again_by_the_sweep(api, app, inbox, runtime, in_process):
    post(app, inbox, {"events": [{"trigger": BUY, "payload": purchase()}]})
    runtime.redis.flushdb()  # Redis restarted empty: the job is gone, the delivery is in the database
    with runtime.db.session() as session:
        row = session.scalar(select(Delivery))
        row.received_at -= timedelta(seconds=runtime.settings.sweep_interval + 1)
        session.commit()
    assert deliveries.sweep(runtime) == 1
    assert deliveries.sweep(runtime) == 0  # queued now: not again
    from rq import Queue
    from rq.serializers import JSONSerializer

    shard = inbox["id"] % runtime.settings.queue_shards
    queue = Queue(f"{runtime.settings.queue_name}-{shard}", connection=runtime.redis, serializer=JSONSerializer)
    [job] = queue.get_jobs()
    assert job.func_name == "hookyard.deliveries.process" and list(job.args) == [row.id]


def test_another_stores_deliveries_are_never_seen(api, make_client, app, inbox, runtime, in_process):
    post(app, inbox, {"events": []})
    process_all(runtime)
    [delivery] = listed(api, inbox)
    other = make_client("store-b")
    base = f"/api/v1/integrations/{inbox['id']}/deliveries"
    assert other.get(base).status_code == 404
    assert other.get(f"{base}/{delivery['id']}").status_code == 404
    assert other.post(f"{base}/{delivery['id']}/reprocess").status_code == 404
    mine = other.post("/api/v1/integrations", json={"app": "inbox", "name": "Mine", "config": {}}).json
    assert other.get(f"/api/v1/integrations/{mine['id']}/deliveries/{delivery['id']}").status_code == 404


def test_deleting_the_connection_deletes_its_deliveries_and_its_url(api, app, inbox, runtime):
    post(app, inbox, {"events": []})
    assert api.delete(f"/api/v1/integrations/{inbox['id']}").status_code == 200
    assert post(app, inbox, {"events": []}).status_code == 404
    with runtime.db.session() as session:
        assert session.scalar(select(func.count(Delivery.id))) == 0
        assert session.scalar(select(func.count(Run.id))) == 0


@pytest.mark.parametrize(
    "raw, content_type",
    [
        (b"\xff\xfe\x00garbage", "application/json"),
        (b'{"a": "\\u0000"}', "application/json"),
        (b'{"a": "\\ud800"}', "application/json"),
        (b'{"n": 1' + b"0" * 5000 + b"}", "application/json"),
        (b"[" * 900 + b"]" * 900, "application/json"),
        (b'{"a": ' * 100 + b"1" + b"}" * 100, "application/json"),
        (b"a=%00&b=1", "application/x-www-form-urlencoded"),
        (b"a[b][c][d]=1&a[b]=2&a[]=3", "application/x-www-form-urlencoded"),
        (b"%ff%fe=1", "application/x-www-form-urlencoded"),
        (b"", "application/json"),
        (b"just text", ""),
    ],
)
def test_hostile_bodies_get_a_4xx_or_are_stored_never_a_500(app, inbox, runtime, in_process, raw, content_type):
    r = post(app, inbox, data=raw, content_type=content_type)
    assert r.status_code in (200, 400, 422), (r.status_code, r.data[:200])
    assert r.json["status" if r.status_code == 200 else "message"]
    process_all(runtime)  # whatever was stored is processed without raising
    with runtime.db.session() as session:
        statuses = set(session.scalars(select(Delivery.status)))
    assert statuses <= {"mapped", "unmapped", "rejected", "failed"}


def test_a_deleted_connections_delivery_ids_are_never_handed_out_again(api, app, inbox, runtime):
    """A connection deleted and one created after it: the old delivery id names nothing under the new connection,
    and the new connection's first delivery gets a new id (ids are never reused: models.Base)."""
    first = post(app, inbox, {"events": []}).json["delivery_id"]
    assert api.delete(f"/api/v1/integrations/{inbox['id']}").status_code == 200
    again = api.post("/api/v1/integrations", json={"app": "inbox", "name": "Inbox", "config": {}}).json
    assert again["id"] != inbox["id"]
    base = f"/api/v1/integrations/{again['id']}/deliveries"
    assert api.get(f"{base}/{first}").status_code == 404
    assert api.post(f"{base}/{first}/reprocess").status_code == 404
    second = post(app, again, {"events": []}).json["delivery_id"]
    assert second > first
    assert [d["id"] for d in api.get(base).json] == [second]
