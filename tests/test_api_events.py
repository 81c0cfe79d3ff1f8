"""Emitting events: validation, matching rules through the index, idempotency, nothing half-written."""

import pytest
from sqlalchemy import func, select

from hookyard.models import Event, Product, Run

from .conftest import purchase


def counts(runtime):
    with runtime.db.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in (Event, Run, Product))


def test_product_rule_fires_only_for_its_product(setup, api):
    integration = setup.integration()
    product = setup.product("1001")
    rule = setup.rule(integration, product_id=product)
    assert setup.emit(purchase(product_id="1001"))["matched_rules"] == 1
    assert setup.emit(purchase(product_id="2002"))["matched_rules"] == 0
    runs = api.get("/api/v1/logs").json
    assert [(r["rule_id"], r["product_id"]) for r in runs] == [(rule, product)]


def test_global_rule_fires_for_every_product(setup):
    integration = setup.integration()
    setup.rule(integration, product_id=None)
    assert setup.emit(purchase(product_id="1001"))["matched_rules"] == 1
    assert setup.emit(purchase(product_id="2002"))["matched_rules"] == 1


def test_product_and_global_rules_both_fire_and_other_triggers_do_not(setup):
    integration = setup.integration()
    product = setup.product("1001")
    setup.rule(integration, product_id=product)
    setup.rule(integration, product_id=None)
    setup.rule(integration, product_id=None, trigger="samcart.product_refunded")
    assert setup.emit(purchase(product_id="1001"))["matched_rules"] == 2


def test_disabled_rule_never_fires(setup):
    integration = setup.integration()
    setup.rule(integration, enabled=False)
    assert setup.emit(purchase())["matched_rules"] == 0


def test_unknown_product_is_created_on_first_sight(setup, api):
    setup.emit(purchase(product_id="777"))
    products = api.get("/api/v1/products").json
    assert [(p["external_id"], p["name"], p["auto_created"]) for p in products] == [("777", "Community", True)]
    setup.emit(purchase(product_id="777"))
    assert len(api.get("/api/v1/products").json) == 1


def test_same_idempotency_key_twice_gives_one_event_and_one_run(setup, api, runtime):
    setup.rule(setup.integration())
    first = setup.emit(purchase(), key="order-222-product-1001")
    again = setup.emit(purchase(), key="order-222-product-1001", expect=200)
    assert again == {**first, "status": "duplicate"}
    assert counts(runtime)[:2] == (1, 1)
    from hookyard.jobqueue import queued_count

    assert queued_count(runtime) == 1


def test_event_detail_shows_its_runs(setup, api):
    setup.rule(setup.integration())
    event = setup.emit(purchase())
    r = api.get(f"/api/v1/events/{event['id']}")
    assert r.status_code == 200
    assert r.json["email"] == "ada@example.com"
    assert [run["status"] for run in r.json["runs"]] == ["queued"]
    assert set(r.json["runs"][0]) >= {
        "id",
        "event_id",
        "rule_id",
        "trigger",
        "action",
        "integration_id",
        "product_id",
        "email",
        "status",
        "reason",
        "attempts",
        "created_at",
        "finished_at",
    }


@pytest.mark.parametrize(
    "body, where",
    [
        ({}, ["trigger"]),
        ({"trigger": "samcart.product_purchased"}, ["payload"]),
        ({"trigger": 5, "payload": {}}, ["trigger"]),
        ({"trigger": "samcart.product_purchased", "payload": "text"}, ["payload"]),
        ({"trigger": "samcart.nope", "payload": purchase()}, ["trigger"]),
        ({"trigger": "samcart.product_purchased", "payload": {"product": {"id": "1"}}}, ["payload", "customer"]),
        (
            {"trigger": "samcart.product_purchased", "payload": {"customer": {"email": 42}, "product": {"id": "1"}}},
            ["payload", "customer", "email"],
        ),
        ({"trigger": "samcart.product_purchased", "payload": purchase(), "extra": True}, ["extra"]),
    ],
)
def test_bad_bodies_get_422_with_field_errors_and_write_nothing(api, runtime, body, where):
    r = api.post("/api/v1/events", json=body)
    assert r.status_code == 422, r.json
    assert r.json["message"]
    errors = r.json["errors"]["json"]
    for key in where:
        errors = errors[key]
    assert errors
    assert counts(runtime) == (0, 0, 0)


def test_malformed_json_is_a_400_not_a_500(api, runtime):
    r = api.post("/api/v1/events", data="{not json", content_type="application/json")
    assert r.status_code == 400
    assert r.json["code"] == 400
    assert counts(runtime) == (0, 0, 0)


def test_oversized_idempotency_key_is_refused(api, runtime):
    r = api.post(
        "/api/v1/events",
        json={"trigger": "samcart.product_purchased", "payload": purchase()},
        headers={"Idempotency-Key": "k" * 256},
    )
    assert r.status_code == 422
    assert counts(runtime) == (0, 0, 0)


def test_rule_matching_is_one_query_on_the_rules_index(setup, runtime):
    """The matching query must be answered from ix_rules_match, never by scanning the rules table."""
    from hookyard.emit import matching_rules

    setup.rule(setup.integration())
    with runtime.db.session() as s:
        stmt_text = []
        from sqlalchemy import event as sa_event

        def capture(conn, cursor, statement, parameters, context, executemany):
            if statement.lstrip().upper().startswith("SELECT"):
                stmt_text.append((statement, parameters))

        sa_event.listen(runtime.db.engine, "before_cursor_execute", capture)
        try:
            matching_rules(s, 1, "samcart.product_purchased", 5)
        finally:
            sa_event.remove(runtime.db.engine, "before_cursor_execute", capture)
        assert len(stmt_text) == 1
        statement, params = stmt_text[0]
        if runtime.db.engine.dialect.name == "sqlite":
            plan = " ".join(
                str(row[-1]) for row in s.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
            )
            assert "ix_rules_match" in plan and "SCAN rules" not in plan, plan
            # The product's rules and the global ones, each an index lookup down to product_id: a search on
            # (marketplace_id, trigger) alone would walk every rule of the trigger.
            assert plan.count("ix_rules_match (marketplace_id=? AND trigger=? AND product_id=?") == 2, plan


def test_concurrent_first_sales_of_a_new_product_create_it_once(setup, api):
    from concurrent.futures import ThreadPoolExecutor

    setup.rule(setup.integration())
    emails = [f"rush{i}@example.com" for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(
            pool.map(
                lambda e: (
                    api.post(
                        "/api/v1/events",
                        json={"trigger": "samcart.product_purchased", "payload": purchase(email=e, product_id="new-9")},
                    ).status_code
                ),
                emails,
            )
        )
    assert codes == [202] * 8
    products = [p for p in api.get("/api/v1/products").json if p["external_id"] == "new-9"]
    assert len(products) == 1
    assert len(api.get(f"/api/v1/logs?product_id={products[0]['id']}").json) == 8
