"""The SamCart plugin's 17 triggers and its canonical payload."""

from datetime import timedelta

import pytest
from marshmallow import ValidationError

from hookyard_samcart import trigger_types
from hookyard_samcart.payload import SamCartPayload

ECOMMERCE = [
    "product_purchased",
    "product_refunded",
    "product_partially_refunded",
    "product_added_to_order",
    "prospect_created",
    "subscription_started",
    "subscription_charged",
    "subscription_charge_failed",
    "subscription_delinquent",
    "subscription_canceled",
    "subscription_recovered",
    "subscription_restarted",
    "subscription_completed",
]
COURSES = ["course_enrolled", "course_removed", "course_started", "course_completed"]


def test_api_lists_exactly_the_17_triggers_in_two_categories(api):
    r = api.get("/api/v1/triggers")
    assert r.status_code == 200
    by_category = {}
    for t in r.json:
        by_category.setdefault(t["category"], set()).add(t["key"])
    assert by_category == {
        "eCommerce": {f"samcart.{k}" for k in ECOMMERCE},
        "Courses": {f"samcart.{k}" for k in COURSES},
    }
    assert all(t["description"] and t["label"] and t["plugin"] == "samcart" for t in r.json)


def test_trigger_detail_describes_the_payload(api):
    r = api.get("/api/v1/triggers/samcart.product_purchased")
    assert r.status_code == 200
    fields = {f["name"]: f for f in r.json["payload_fields"]}
    assert fields["customer"]["required"] is True
    assert {f["name"] for f in fields["customer"]["fields"]} >= {"email", "first_name", "last_name", "phone"}
    assert "purchase_source" in {f["name"] for f in fields["order"]["fields"]}
    assert api.get("/api/v1/triggers/samcart.nope").status_code == 404


def test_prospect_created_waits_two_hours_and_is_cancelled_by_a_purchase():
    prospect = {t.key: t for t in trigger_types()}["samcart.prospect_created"]
    assert prospect.delay == timedelta(hours=2)
    assert prospect.cancelled_by == ("samcart.product_purchased",)
    assert "2 hours" in prospect.description


def test_subscription_canceled_says_it_also_fires_on_delinquency():
    canceled = {t.key: t for t in trigger_types()}["samcart.subscription_canceled"]
    assert "Delinquent" in canceled.description


def test_payload_normalises_email_and_ids():
    data = SamCartPayload().load(
        {
            "customer": {"email": "  Ada@Example.COM "},
            "product": {"id": 444},
            "order": {"id": 222, "total_cents": 4900, "currency": "USD", "purchase_source": "order_bump"},
        }
    )
    assert data["customer"]["email"] == "ada@example.com"
    assert data["product"]["id"] == "444"
    assert data["order"]["purchase_source"] == "order_bump"


@pytest.mark.parametrize(
    "payload, path",
    [
        ({}, ["customer"]),
        ({"customer": {"email": "not-an-email"}}, ["customer", "email"]),
        ({"customer": {"email": "a@b.co"}, "order": {"total_cents": "49.00"}}, ["order", "total_cents"]),
        ({"customer": {"email": "a@b.co"}, "order": {"purchase_source": "gift"}}, ["order", "purchase_source"]),
        ({"customer": {"email": "a@b.co"}, "occurred_at": "yesterday"}, ["occurred_at"]),
    ],
)
def test_payload_errors_name_the_field(payload, path):
    with pytest.raises(ValidationError) as exc:
        SamCartPayload().load(payload)
    messages = exc.value.messages
    for key in path:
        messages = messages[key]
    assert messages


def test_unknown_fields_are_kept_in_the_raw_payload_not_rejected(api, runtime):
    payload = {
        "customer": {"email": "ada@example.com", "billing_city": "X"},
        "product": {"id": "1", "price": "49.00"},
        "affiliate": {"id": None},
        "type": "Order",
    }
    r = api.post("/api/v1/events", json={"trigger": "samcart.product_purchased", "payload": payload})
    assert r.status_code == 202, r.json
    from hookyard.models import Event

    with runtime.db.session() as s:
        event = s.get(Event, r.json["id"])
        assert event.raw_payload == payload
        assert "affiliate" not in event.payload and "billing_city" not in event.payload["customer"]
        assert event.occurred_at is not None  # defaulted to now


def test_course_triggers_need_no_product(api):
    r = api.post(
        "/api/v1/events",
        json={"trigger": "samcart.course_enrolled", "payload": {"customer": {"email": "a@b.co"}, "course": {"id": 7}}},
    )
    assert r.status_code == 202, r.json


def test_product_scoped_triggers_need_a_product_id(api):
    r = api.post(
        "/api/v1/events", json={"trigger": "samcart.product_refunded", "payload": {"customer": {"email": "a@b.co"}}}
    )
    assert r.status_code == 422
    assert r.json["errors"]["json"]["payload"]["product"]["id"]


def test_the_notify_mapping_knows_exactly_the_registered_triggers():
    from hookyard_samcart.notify import TRIGGER_KEYS

    assert {f"samcart.{key}" for key in TRIGGER_KEYS} == {t.key for t in trigger_types()}


def test_payload_keeps_the_customer_id_and_the_lines_price_in_cents():
    data = SamCartPayload().load(
        {
            "customer": {"email": "a@b.co", "id": 111, "phone": "+15550100"},
            "product": {"id": 444, "price_cents": 4900},
            "charge": {"id": "ch_1", "rebill_id": 7},
        }
    )
    assert data["customer"] == {"email": "a@b.co", "id": "111", "phone": "+15550100"}
    assert data["product"] == {"id": "444", "price_cents": 4900}
    assert data["charge"] == {"id": "ch_1", "rebill_id": 7}


@pytest.mark.parametrize(
    "product, path",
    [
        ({"id": "1", "price_cents": "49.00"}, "price_cents"),
        ({"id": "1", "price_cents": -1}, "price_cents"),
        ({"id": "x" * 201}, "id"),
        ({"id": "1", "name": "n" * 501}, "name"),
    ],
)
def test_product_fields_the_tables_cannot_hold_are_field_errors(product, path):
    with pytest.raises(ValidationError) as exc:
        SamCartPayload().load({"customer": {"email": "a@b.co"}, "product": product})
    assert exc.value.messages["product"][path]


def _key(payload):
    from hookyard_samcart.payload import dedupe_key

    return dedupe_key(SamCartPayload().load({"customer": {"email": "a@b.co"}, "product": {"id": "444"}, **payload}))


def test_dedupe_key_never_merges_a_subscriptions_billing_periods_without_an_id():
    # SamCart reuses the original order id on every rebill: order + product + subscription is every month's.
    assert _key({"order": {"id": 222}, "subscription": {"id": 333}}) is None
    assert _key({"order": {"id": 222}, "subscription": {"id": 333}, "charge": {"id": "ch_1"}}) is not None
    assert _key({"subscription": {"id": 333}, "charge": {"rebill_id": 9}}) != _key(
        {"subscription": {"id": 333}, "charge": {"rebill_id": 10}}
    )
    month = {"order": {"id": 222}, "subscription": {"id": 333}}
    assert _key({**month, "occurred_at": "2026-01-01T00:00:00Z"}) != _key(
        {**month, "occurred_at": "2026-02-01T00:00:00Z"}
    )


def test_dedupe_key_still_merges_one_order_line_delivered_twice():
    assert _key({"order": {"id": 222}}) == _key({"order": {"id": 222}}) == "order=222|product=444"
    assert _key({}) is None
