"""SamCart Notify URL bodies → events: one test per row of docs/samcart.md's mapping table, each with a fixture body
under tests/samcart/bodies/, then the rules around them (lines, cents, times, identities, type names) and bodies
that are wrong in every way we could think of, none of which may raise anything but Unmapped or Rejected."""

from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookyard import Rejected, Unmapped
from hookyard_samcart import notify
from hookyard_samcart.mapping import SAMCART_PROSPECT_DELAY, delivery_identity, map_delivery, subscription_ids
from hookyard_samcart.notify import parse_aliases
from tests.samcart.mapping_helpers import BODIES, RECEIVED, JSONState, body, check_event, map_, short

AT = RECEIVED.isoformat()

# fixture -> [(trigger short key, product id)], and what the first event's payload must hold (a subset).
ROWS = {
    "order": (
        [("product_purchased", "444")],
        {
            "customer": {
                "email": "ada@example.com",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "phone": "+15550100",
                "id": "111",
            },
            "order": {"id": "222", "total_cents": 4900},
            "product": {"id": "444", "name": "Community Membership", "price_cents": 4900},
            "occurred_at": AT,
        },
    ),
    "order_subscription": (
        [("product_purchased", "444"), ("subscription_started", "444")],
        {"subscription": {"id": "333"}},
    ),
    "order_two_products": (
        [("product_purchased", "444"), ("product_purchased", "555")],
        {"order": {"total_cents": 106800}, "product": {"price_cents": 104900}},
    ),
    "product_purchased_in_event": ([("product_purchased", "444")], {}),
    "order_completed": ([("product_purchased", "444")], {}),
    "upsell_purchased": (
        [("product_purchased", "555")],
        {"order": {"purchase_source": "upsell"}, "product": {"price_cents": 1900}},
    ),
    "product_added_to_order": ([("product_added_to_order", "556")], {"product": {"price_cents": 999}}),
    "refund": ([("product_refunded", "444")], {}),
    "partial_refund": ([("product_partially_refunded", "444")], {}),
    "product_partially_refunded": ([("product_partially_refunded", "444")], {}),
    "prospect_created": ([("prospect_created", "444")], {"occurred_at": (RECEIVED - timedelta(hours=2)).isoformat()}),
    "prospect_created_with_time": ([("prospect_created", "444")], {"occurred_at": "2026-03-01T09:30:00+00:00"}),
    "subscription_started": ([("subscription_started", "444")], {"subscription": {"id": "333"}}),
    "recurring_payment_succeeded": (
        [("subscription_charged", "444")],
        {"charge": {"id": "ch_201"}, "occurred_at": "2026-02-01T10:00:00+00:00"},
    ),
    "subscription_charged": ([("subscription_charged", "444")], {}),
    "recurring_payment_failed": ([("subscription_charge_failed", "444")], {}),
    "subscription_charge_failed": ([("subscription_charge_failed", "444")], {}),
    "recurring_payment_recovered": ([("subscription_recovered", "444")], {}),
    "subscription_recovered": ([("subscription_recovered", "444")], {}),
    "cancel": ([("subscription_canceled", "444")], {"subscription": {"id": "333"}}),
    "subscription_restarted": ([("subscription_restarted", "444")], {}),
    "subscription_delinquent": ([("subscription_delinquent", "444"), ("subscription_canceled", "444")], {}),
    "subscription_completed": ([("subscription_completed", "444")], {}),
    "event_type_data": (
        [("product_purchased", "444")],
        {"order": {"id": "223"}, "occurred_at": "2026-03-02T08:00:00+00:00"},
    ),
    "form_encoded": (
        [("product_purchased", "444"), ("product_purchased", "555"), ("subscription_started", "444")],
        {
            "order": {"id": "224", "total_cents": 6800},
            "product": {"price_cents": 4900},
            "customer": {"id": "111"},
            "subscription": {"id": "334"},
        },
    ),
    "student_added_to_course": ([("course_enrolled", None)], {"course": {"id": "77", "name": "Onboarding"}}),
    "student_removed_from_course": ([("course_removed", None)], {"course": {"id": "77"}}),
    "student_started_course": ([("course_started", None)], {"course": {"id": "77"}}),
    "student_finished_course": ([("course_completed", None)], {"course": {"id": "77"}}),
    "product_list": ([("product_purchased", "444"), ("product_purchased", "555")], {"product": {"price_cents": 4900}}),
}


def contains(actual, expected) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and contains(actual[k], v) for k, v in expected.items())
    return actual == expected


@pytest.mark.parametrize("fixture", sorted(ROWS))
def test_each_mapping_row(fixture):
    expected, first = ROWS[fixture]
    events = map_(body(fixture))
    assert [(short([e])[0], (e.payload.get("product") or {}).get("id")) for e in events] == expected
    assert contains(events[0].payload, first), events[0].payload
    assert len({(e.trigger, e.identity) for e in events}) == len(events)


def test_every_fixture_body_is_a_row_or_a_named_failure():
    named = set(ROWS) | {
        "unknown_type",
        "no_type",
        "no_email",
        "bad_email",
        "no_product",
        "customer_not_an_object",
        "garbage_amounts",
        "mismatched_prices",
        "aliased_student_enrolled",
    }
    assert {p.stem for p in BODIES.glob("*.json")} == named


def test_the_doc_table_lists_every_row():
    doc = (BODIES.parents[2] / "docs" / "samcart.md").read_text()
    for fixture in sorted(ROWS) + ["unknown_type", "no_type", "aliased_student_enrolled"]:
        assert f"`{fixture}`" in doc, fixture


# --------------------------------------------------------------------------------------- type names and aliases


@pytest.mark.parametrize(
    "sent",
    [
        "Order",
        "order",
        "ORDER",
        "Product Purchased",
        "product_purchased",
        "product-purchased",
        "product.purchased",
        "samcart.product_purchased",
        " Product  Purchased ",
        "Order Completed",
        "order.completed",
    ],
)
def test_type_is_matched_ignoring_case_spaces_underscores_hyphens_and_dots(sent):
    events = map_({**body("order"), "type": sent})
    assert short(events) == ["product_purchased"]


def test_type_may_come_as_event_or_event_type_and_the_first_known_one_wins():
    b = body("order")
    del b["type"]
    assert short(map_({**b, "event": "Refund"})) == ["product_refunded"]
    assert short(map_({**b, "event_type": "Refund"})) == ["product_refunded"]
    assert short(map_({**b, "type": "SomethingNew", "event": "Refund"})) == ["product_refunded"]


def test_an_unknown_type_is_unmapped_with_how_to_map_it():
    with pytest.raises(Unmapped) as caught:
        map_(body("unknown_type"))
    assert "'SubscriptionCancelScheduled'" in caught.value.reason
    assert "type names" in caught.value.reason and "process this delivery again" in caught.value.reason
    assert "`SubscriptionCancelScheduled = <trigger>`" in caught.value.reason


def test_a_body_without_a_type_is_unmapped():
    with pytest.raises(Unmapped) as caught:
        map_(body("no_type"))
    assert "no type" in caught.value.reason


def test_a_merchants_type_name_maps_a_new_type():
    b = body("aliased_student_enrolled")
    with pytest.raises(Unmapped):
        map_(b)
    events = map_(b, aliases=parse_aliases("# ours\n\nStudent Enrolled = course_enrolled\n"))
    assert short(events) == ["course_enrolled"]
    assert events[0].payload["course"] == {"id": "78", "name": "Advanced"}


def test_a_merchants_type_name_wins_over_the_built_in_one():
    events = map_(body("order"), aliases={"Order": "product_added_to_order"})
    assert short(events) == ["product_added_to_order"]


def test_parse_aliases_reads_lines_and_ignores_blanks_and_comments():
    text = "\n# comment\nStudent Enrolled = course_enrolled\n  Left Course=samcart.course_removed  \n\n"
    assert parse_aliases(text) == {"Student Enrolled": "course_enrolled", "Left Course": "course_removed"}
    assert parse_aliases(None) == {} and parse_aliases("") == {}


@pytest.mark.parametrize(
    "text, words",
    [
        ("Student Enrolled", ["Line 1", "Received name = trigger"]),
        ("ok = course_enrolled\n = course_enrolled", ["Line 2"]),
        ("Student Enrolled = course_joined", ["Line 1", "'course_joined'", "course_enrolled"]),
        ("Student Enrolled = course_enrolled\nstudent-enrolled = course_removed", ["Line 2", "line 1"]),
        ("... = course_enrolled", ["Line 1", "letters or digits"]),
    ],
)
def test_parse_aliases_names_the_bad_line(text, words):
    with pytest.raises(ValueError) as caught:
        parse_aliases(text)
    for word in words:
        assert word in str(caught.value)


# ------------------------------------------------------------------------------------- product lines and money


def test_a_two_product_order_is_two_purchases_with_cents():
    events = map_(body("order_two_products"))
    assert [
        (e.payload["product"]["id"], e.payload["product"]["name"], e.payload["product"]["price_cents"]) for e in events
    ] == [("444", "Community Membership", 104900), ("555", "Workbook", 1900)]
    assert all(e.payload["order"]["total_cents"] == 106800 for e in events)
    assert [e.identity for e in events] == ["order=222|product=444", "order=222|product=555"]


def test_mismatched_counts_keep_the_products_and_drop_the_prices_with_a_note():
    events = map_(body("mismatched_prices"))
    assert [e.payload["product"] for e in events] == [{"id": "444"}, {"id": "555"}, {"id": "556"}]
    assert all("3 product ids but price '49.00,19.00'" in e.note for e in events)


def test_names_that_do_not_split_like_the_ids_are_left_out():
    b = {**body("order"), "product": {"id": "444,555", "name": "Course, Level 1, Bonus", "price": "1,2"}}
    events = map_(b)
    assert [e.payload["product"] for e in events] == [
        {"id": "444", "price_cents": 100},
        {"id": "555", "price_cents": 200},
    ]
    assert "names were left out" in events[0].note


def test_a_single_product_keeps_commas_in_its_name_and_price():
    b = {**body("order"), "product": {"id": 444, "name": "Course, Level 1", "price": "$1,049.00"}}
    assert map_(b)[0].payload["product"] == {"id": "444", "name": "Course, Level 1", "price_cents": 104900}


@pytest.mark.parametrize(
    "price, expected",
    [
        ("49.00", 4900),
        ("$1,049.00", 104900),
        ("1049", 104900),
        (49, 4900),
        (49.99, 4999),
        ("0.1", 10),
        (" 19.5 ", 1950),
        ("$ 7", 700),
        ("USD 12.34", 1234),
        (".5", 50),
        ("0.005", 1),
        (0, 0),
        ("forty-nine", None),
        ("NaN", None),
        ("Infinity", None),
        ("1e3", None),
        ("-5.00", None),
        (-5, None),
        ("", None),
        ("49,00", None),
        (True, None),
        (None, None),
        ([], None),
        ({"amount": 1}, None),
        (float("nan"), None),
        (1e300, None),
        ("9" * 40, None),
    ],
)
def test_dollars_to_cents(price, expected):
    assert notify.cents(price) == expected


def test_two_prices_that_each_group_thousands_split_pairwise():
    b = {**body("order"), "product": {"id": "1,2", "price": "$1,049.00,$2,000.50"}}
    assert [e.payload["product"]["price_cents"] for e in map_(b)] == [104900, 200050]


def test_one_thousands_price_for_two_products_is_not_read_as_two():
    b = {**body("order"), "product": {"id": "1,2", "price": "1,049.00"}}
    assert [e.payload["product"] for e in map_(b)] == [{"id": "1"}, {"id": "2"}]


def test_garbage_amounts_never_lose_the_purchase():
    events = map_(body("garbage_amounts"))
    assert short(events) == ["product_purchased"]
    assert "total_cents" not in events[0].payload["order"] and "price_cents" not in events[0].payload["product"]
    assert "order total 'forty-nine' is not an amount" in events[0].note
    assert "price 'NaN' is not an amount" in events[0].note


def test_one_bad_price_among_several_drops_only_that_one():
    b = {**body("order"), "product": {"id": "1,2", "price": "abc,19.00"}}
    assert [e.payload["product"] for e in map_(b)] == [{"id": "1"}, {"id": "2", "price_cents": 1900}]


def test_a_product_list_makes_one_line_per_object_and_notes_the_rest():
    events = map_(body("product_list"))
    assert [e.payload["product"] for e in events] == [
        {"id": "444", "price_cents": 4900},
        {"id": "555", "price_cents": 1900},
    ]
    assert "'junk' is not an object" in events[0].note


def test_purchase_source_when_a_field_says_it():
    b = {**body("order"), "product": {**body("order")["product"], "source": "bump"}}
    assert map_(b)[0].payload["order"]["purchase_source"] == "order_bump"
    b = {**body("order"), "order": {**body("order")["order"], "purchase_source": "gift"}}
    event = map_(b)[0]
    assert "purchase_source" not in event.payload["order"] and "'gift'" in event.note


def test_currency_is_kept_when_sent():
    b = {**body("order"), "order": {**body("order")["order"], "currency": "usd"}}
    assert map_(b)[0].payload["order"]["currency"] == "USD"


# ------------------------------------------------------------------------------------------------------ times


@pytest.mark.parametrize(
    "sent, expected",
    [
        ("2026-02-01 10:00:00", "2026-02-01T10:00:00+00:00"),  # SamCart's API form: UTC without a zone
        ("2026-02-01T10:00:00Z", "2026-02-01T10:00:00+00:00"),
        ("2026-02-01T12:00:00+02:00", "2026-02-01T10:00:00+00:00"),
        ("yesterday", AT),
        ("1969-12-31 23:59:59", AT),
        ("2030-01-01 00:00:00", AT),
        (1760000000, AT),
        ("9999-12-31T23:59:59-14:00", AT),
    ],
)
def test_occurred_at_is_the_bodys_time_else_when_it_arrived(sent, expected):
    event = map_({**body("order"), "occurred_at": sent})[0]
    assert event.payload["occurred_at"] == expected
    if expected == AT and isinstance(sent, str):
        assert "not a plausible time" in event.note


def test_a_rebills_time_is_never_its_original_orders():
    b = {
        **body("subscription_charged"),
        "order": {**body("subscription_charged")["order"], "created_at": "2025-01-01 10:00:00"},
    }
    assert map_(b)[0].payload["occurred_at"] == AT
    b = {**body("order"), "order": {**body("order")["order"], "created_at": "2026-03-01 10:00:00"}}
    assert map_(b)[0].payload["occurred_at"] == "2026-03-01T10:00:00+00:00"


def test_prospect_created_is_dated_so_its_rules_run_when_samcarts_do():
    from hookyard_samcart import PROSPECT_DELAY

    assert SAMCART_PROSPECT_DELAY == PROSPECT_DELAY
    event = map_(body("prospect_created"))[0]
    assert datetime.fromisoformat(event.payload["occurred_at"]) + PROSPECT_DELAY == RECEIVED
    assert "2 hours" in event.note
    assert "2 hours" in map_(body("prospect_created_with_time"))[0].note


# ------------------------------------------------------------------------------------------------ identities


def test_identities_name_the_order_line():
    assert [e.identity for e in map_(body("order_subscription"))] == [
        "order=222|product=444",
        "subscription=333|product=444",
    ]


def test_the_same_purchase_sent_as_order_and_as_product_purchased_is_one_event():
    legacy, human = map_(body("order")), map_({**body("order"), "type": "Product Purchased"}, delivery_id=2)
    assert [(e.trigger, e.identity) for e in legacy] == [(e.trigger, e.identity) for e in human]


def test_a_partial_refund_is_an_occurrence():
    first = map_(body("partial_refund"))[0].identity
    assert "refund_transaction_id=re_2" in first
    second = map_(body("product_partially_refunded"), delivery_id=7)[0].identity
    assert second.endswith("delivery=7")


def test_course_events_without_ids_are_told_apart_by_delivery():
    one = map_(body("student_added_to_course"), delivery_id=1)[0].identity
    again = map_(body("student_added_to_course"), delivery_id=1)[0].identity
    other = map_(body("student_added_to_course"), delivery_id=2)[0].identity
    assert one == again != other
    assert "customer=ada@example.com" in one and "course=77" in one


def test_delivery_identity_is_none_without_any_charge_id_or_time():
    assert delivery_identity(body("order")) is None
    assert delivery_identity(body("subscription_charged")) is None
    assert delivery_identity("not a body") is None


def test_delivery_identity_carries_the_type_ids_and_every_charge_id_or_time():
    identity = delivery_identity(body("recurring_payment_succeeded"))
    assert identity == (
        "type=recurringpaymentsucceeded|order=222|products=444|subscriptions=333|"
        "charge_id=ch_201|created_at=2026-02-01 10:00:00"
    )
    next_month = {**body("recurring_payment_succeeded"), "charge_id": "ch_202", "created_at": "2026-03-01 10:00:00"}
    assert delivery_identity(next_month) != identity
    assert delivery_identity(body("event_type_data")).endswith("created_at=2026-03-02T08:00:00Z")


@pytest.mark.parametrize(
    "where",
    [
        {"subscription_rebill_id": 9},
        {"occurred_at": "2026-01-01 00:00:00"},
        {"charge": {"id": "ch_1"}},
        {"order": {"id": 222, "charge_id": "ch_1"}},
        {"data": {"created_at": "2026-01-01"}},
    ],
)
def test_delivery_identity_finds_charge_ids_and_times_where_they_are_sent(where):
    b = {"type": "Order", "customer": {"email": "a@b.co"}, "product": {"id": 1}, **where}
    assert delivery_identity(b) is not None


def test_delivery_identity_ignores_the_original_orders_time_on_a_rebill():
    b = body("subscription_charged")
    b["order"]["created_at"] = "2025-01-01 10:00:00"
    assert delivery_identity(b) is None
    purchase = body("order")
    purchase["order"]["created_at"] = "2025-01-01 10:00:00"
    assert delivery_identity(purchase).endswith("order.created_at=2025-01-01 10:00:00")


def test_subscription_ids():
    assert subscription_ids(body("order_subscription")) == ["333"]
    assert subscription_ids({"order": {"subscription_id": "1, 2"}, "subscription": {"id": 2}}) == ["1", "2"]
    assert subscription_ids(body("order")) == [] and subscription_ids(["x"]) == []


# --------------------------------------------------------------------------------- bodies that cannot be used


@pytest.mark.parametrize(
    "fixture, words",
    [
        ("no_email", "No customer email"),
        ("bad_email", "customer.email"),
        ("no_product", "No product id"),
        ("customer_not_an_object", "No customer email"),
    ],
)
def test_bodies_that_can_never_be_used_are_rejected_with_why(fixture, words):
    state = JSONState()
    with pytest.raises(Rejected) as caught:
        map_(body(fixture), state=state)
    assert words in caught.value.reason
    assert state.writes == 0


def test_a_subscription_event_without_any_product_is_rejected_before_the_history_changes():
    state = JSONState()
    b = {"type": "Cancel", "customer": {"email": "a@b.co"}, "order": {"id": 1, "subscription_id": 9}}
    with pytest.raises(Rejected) as caught:
        map_(b, state=state)
    assert "earlier deliveries" in caught.value.reason and state.writes == 0


def test_a_body_that_is_not_an_object_is_rejected():
    for b in (["Order"], "Order", None, 5):
        with pytest.raises(Rejected):
            map_delivery(b, delivery_id=1, received_at=RECEIVED, state=JSONState())


ODD_SHAPES = [
    {},
    {"type": None},
    {"type": 5},
    {"type": ["Order"]},
    {"type": {"name": "Order"}},
    {"type": ""},
    {"type": "Order", "customer": None},
    {"type": "Order", "customer": []},
    {"type": "Order", "customer": {"email": 5}},
    {"type": "Order", "customer": {"email": ["a@b.co"]}, "product": {"id": 1}},
    {"type": "Order", "customer": {"email": "a@b.co"}, "product": "444"},
    {"type": "Order", "customer": {"email": "a@b.co"}, "product": {"id": None}},
    {"type": "Order", "customer": {"email": "a@b.co"}, "product": {"id": {"x": 1}}},
    {"type": "Order", "customer": {"email": "a@b.co"}, "product": {"id": ",,,"}},
    {"type": "Order", "customer": {"email": "a@b.co"}, "product": {"id": "x" * 500}},
    {"type": "Order", "customer": {"email": "a@b.co"}, "product": {"id": "1\x00"}},
    {"type": "Order", "customer": {"email": "a@b.co"}, "product": {"id": 1, "name": "\ud800"}},
    {"type": "Order", "customer": {"email": "a@b.co"}, "product": {"id": 1, "price": {"amount": "1"}}},
    {"type": "Order", "customer": {"email": "a@b.co"}, "product": {"id": [1, 2], "price": ["1", "x"]}},
    {"type": "Order", "customer": {"email": "a@b.co"}, "product": {"id": 1}, "order": "222"},
    {"type": "Order", "customer": {"email": "a@b.co"}, "product": {"id": 1}, "order": {"id": [1], "total": []}},
    {"type": "Order", "customer": {"email": "a@b.co"}, "product": {"id": 1}, "order": {"subscription_id": {"a": 1}}},
    {"type": "Order", "customer": {"email": "a@b.co"}, "product": {"id": 1.0}, "order": {"id": 1e300}},
    {"type": "Order", "customer": {"email": "a@b.co"}, "product": {"id": 1}, "occurred_at": ["2026-01-01"]},
    {"type": "Order", "customer": {"email": "a@b.co"}, "product": {"id": 1}, "created_at": "0001-01-01T00:00:00+01:00"},
    {"type": "Cancel", "customer": {"email": "a@b.co"}, "product": {"id": 1}, "subscription": "333"},
    {
        "type": "RecurringPaymentFailed",
        "customer": {"email": "a@b.co"},
        "product": {"id": 1},
        "order": {"subscription_id": "x" * 101},
    },
    {"event_type": "Order", "data": "nope"},
    {"event_type": "Order", "data": []},
    {"event_type": "Order", "data": {"customer": {"email": "a@b.co"}, "product": [{"id": 1}, None, []]}},
    {"type": "Student Added to Course", "customer": {"email": "a@b.co"}, "course": "x"},
    {"type": "Order", "customer": {"email": "a@b.co"}, "product": {"id": 1}, "order": {"currency": "dollars"}},
]


def _never_raises_otherwise(b, **kwargs):
    state = JSONState()
    try:
        events = map_delivery(b, delivery_id=3, received_at=RECEIVED, state=state, **kwargs)
    except (Unmapped, Rejected) as refused:
        assert refused.reason
        return None
    for event in events:
        check_event(event)
    delivery_identity(b)
    subscription_ids(b)
    return events


@pytest.mark.parametrize("b", ODD_SHAPES, ids=range(len(ODD_SHAPES)))
def test_odd_shapes_are_unmapped_rejected_or_valid_events(b):
    _never_raises_otherwise(b)


def test_an_overlong_subscription_id_is_no_subscription_id():
    events = _never_raises_otherwise(
        {
            "type": "RecurringPaymentFailed",
            "customer": {"email": "a@b.co"},
            "product": {"id": 1},
            "order": {"subscription_id": "x" * 101},
        }
    )
    assert short(events) == ["subscription_charge_failed"] and "subscription" not in events[0].payload


_keys = st.sampled_from(
    [
        "type",
        "event",
        "event_type",
        "data",
        "customer",
        "order",
        "product",
        "products",
        "subscription",
        "charge",
        "course",
        "email",
        "id",
        "name",
        "price",
        "total",
        "phone_number",
        "subscription_id",
        "charge_id",
        "created_at",
        "occurred_at",
        "source",
        "currency",
        "prospect",
        "subscription_rebill_id",
    ]
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(list(notify.NAMES) + ["a@b.co", "49.00", "1,2", "$1,049.00,19.00", "2026-01-01 10:00:00", "333"]),
)
_json = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=5), max_leaves=25
)


# Reproducible, like tests/faults/test_api_fuzz.py: the same examples every run, nothing written to disk.
FUZZ = settings(derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(FUZZ, max_examples=300)
@given(st.dictionaries(_keys, _json, max_size=8))
def test_any_body_is_unmapped_rejected_or_valid_events(b):
    _never_raises_otherwise(b)


@settings(FUZZ, max_examples=150)
@given(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(list(notify.NAMES)),
            "customer": st.fixed_dictionaries({"email": st.just("a@b.co")}),
            "product": st.dictionaries(_keys, _json, max_size=4),
            "order": st.dictionaries(_keys, _json, max_size=4),
        }
    )
)
def test_any_known_type_with_odd_parts_is_rejected_or_valid_events(b):
    _never_raises_otherwise(b)


def test_more_subscription_ids_than_products_still_makes_the_purchase():
    b = {**body("order"), "order": {**body("order")["order"], "subscription_id": "1,2"}}
    events = map_(b)
    assert short(events) == ["product_purchased", "subscription_started"]
    assert "2 subscription ids for 1 products" in events[0].note
