"""Rules and products: validated references, filters, edits."""

import pytest

from .tasking import refresh


def test_rule_create_show_filter_edit_delete(setup, api):
    iid = setup.integration()
    pid = setup.product()
    product_rule = setup.rule(iid, product_id=pid)
    global_rule = setup.rule(iid, product_id=None, trigger="samcart.subscription_canceled", channel="vip")
    ids = lambda r: [x["id"] for x in r.json]
    assert ids(api.get("/api/v1/rules")) == [product_rule, global_rule]
    assert ids(api.get(f"/api/v1/rules?product_id={pid}")) == [product_rule]
    assert ids(api.get("/api/v1/rules?scope=global")) == [global_rule]
    assert ids(api.get("/api/v1/rules?scope=product")) == [product_rule]
    assert ids(api.get("/api/v1/rules?trigger=samcart.subscription_canceled")) == [global_rule]
    assert api.get("/api/v1/rules?scope=everything").status_code == 422

    r = api.patch(f"/api/v1/rules/{global_rule}", json={"enabled": False, "params": {"channel": "general"}})
    assert (
        r.status_code == 200 and r.json["enabled"] is False and r.json["params"] == {"channel": "general", "note": ""}
    )
    assert api.delete(f"/api/v1/rules/{global_rule}").status_code == 204
    assert api.get(f"/api/v1/rules/{global_rule}").status_code == 404


@pytest.mark.parametrize(
    "change, field",
    [
        ({"trigger": "samcart.nope"}, "trigger"),
        ({"product_id": 99999}, "product_id"),
        ({"integration_id": 99999}, "integration_id"),
        ({"action": "explode"}, "action"),
        ({"params": {}}, "params"),
        ({"params": {"channel": "does-not-exist"}}, "params"),
        ({"params": {"channel": "general", "colour": "red"}}, "params"),
    ],
)
def test_invalid_rules_are_422_naming_the_field(setup, api, runtime, change, field):
    iid = setup.integration()
    refresh(api, runtime, iid)  # the channel list is known
    rule = {
        "product_id": None,
        "trigger": "samcart.product_purchased",
        "integration_id": iid,
        "action": "record",
        "params": {"channel": "general"},
        "enabled": True,
        **change,
    }
    r = api.post("/api/v1/rules", json=rule)
    assert r.status_code == 422, r.json
    assert field in r.json["errors"]["json"]
    assert api.get("/api/v1/rules").json == []


def test_a_stale_option_id_names_the_parameter(setup, api, runtime):
    iid = setup.integration()
    refresh(api, runtime, iid)
    r = api.post(
        "/api/v1/rules",
        json={
            "product_id": None,
            "trigger": "samcart.product_purchased",
            "integration_id": iid,
            "action": "record",
            "params": {"channel": "gone"},
        },
    )
    assert "gone not found in the integration's channels" in r.json["errors"]["json"]["params"]["channel"][0]


def test_products_crud_and_search(api):
    r = api.post("/api/v1/products", json={"external_id": "444", "name": "Community Membership"})
    assert r.status_code == 201 and r.json["auto_created"] is False
    pid = r.json["id"]
    assert api.post("/api/v1/products", json={"external_id": "444", "name": "again"}).status_code == 409
    assert api.post("/api/v1/products", json={"name": "no id"}).status_code == 422
    assert api.patch(f"/api/v1/products/{pid}", json={"name": "Renamed"}).json["name"] == "Renamed"
    assert [p["id"] for p in api.get("/api/v1/products?q=renam").json] == [pid]
    assert api.get("/api/v1/products?q=zzz").json == []
    assert api.delete(f"/api/v1/products/{pid}").status_code == 204
    assert api.get(f"/api/v1/products/{pid}").status_code == 404


def test_deleting_a_product_deletes_its_rules_only(setup, api):
    iid = setup.integration()
    pid = setup.product()
    setup.rule(iid, product_id=pid)
    global_rule = setup.rule(iid)
    api.delete(f"/api/v1/products/{pid}")
    assert [r["id"] for r in api.get("/api/v1/rules").json] == [global_rule]
