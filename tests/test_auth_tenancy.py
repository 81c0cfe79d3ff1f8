"""Every /api/v1 route needs a token of the marketplace that owns the object; others get 404."""

import pytest

from .conftest import purchase


def test_routes_without_a_valid_token_are_401(app):
    client = app.test_client()
    for path in ("/api/v1/plugins", "/api/v1/rules", "/api/v1/logs", "/api/v1/events/1"):
        r = client.get(path)
        assert r.status_code == 401 and "Bearer" in r.json["message"]
        assert client.get(path, headers={"Authorization": "Bearer hy_wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": "Basic abc"}).status_code == 401


def test_health_routes_need_no_token(app):
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_says_which_dependency_is_down(runtime, app):
    from hookyard.app import create_app
    from hookyard.runtime import Runtime

    down = Runtime(
        settings=runtime.settings.__class__(**{**vars(runtime.settings), "redis_url": "redis://127.0.0.1:9/0"}),
        db=runtime.db,
        registry=runtime.registry,
    )
    r = create_app(runtime=down).test_client().get("/readyz")
    assert r.status_code == 503 and r.json["checks"]["redis"].startswith("unreachable")


def test_revoked_tokens_stop_working(api, runtime):
    from datetime import datetime, timezone

    from hookyard.models import ApiToken

    assert api.get("/api/v1/rules").status_code == 200
    with runtime.db.session() as s:
        for t in s.query(ApiToken):
            t.revoked_at = datetime.now(timezone.utc)
        s.commit()
    assert api.get("/api/v1/rules").status_code == 401


@pytest.fixture
def two_stores(setup, make_client):
    iid = setup.integration()
    pid = setup.product()
    rid = setup.rule(iid, product_id=pid)
    event = setup.emit(purchase())
    other = make_client("store-b")
    return dict(integration=iid, product=pid, rule=rid, event=event["id"], other=other, owner=setup.api)


def test_another_marketplaces_objects_are_404_and_unchanged(two_stores, runtime):
    other, owner = two_stores["other"], two_stores["owner"]
    iid, pid, rid, eid = (two_stores[k] for k in ("integration", "product", "rule", "event"))
    log_id = owner.get("/api/v1/logs").json[0]["id"]
    attempts = [
        other.get(f"/api/v1/integrations/{iid}"),
        other.patch(f"/api/v1/integrations/{iid}", json={"name": "x"}),
        other.post(f"/api/v1/integrations/{iid}/refresh"),
        other.get(f"/api/v1/integrations/{iid}/options"),
        other.delete(f"/api/v1/integrations/{iid}"),
        other.get(f"/api/v1/products/{pid}"),
        other.patch(f"/api/v1/products/{pid}", json={"name": "x"}),
        other.delete(f"/api/v1/products/{pid}"),
        other.get(f"/api/v1/rules/{rid}"),
        other.patch(f"/api/v1/rules/{rid}", json={"enabled": False}),
        other.delete(f"/api/v1/rules/{rid}"),
        other.get(f"/api/v1/events/{eid}"),
        other.get(f"/api/v1/logs/{log_id}"),
    ]
    assert [r.status_code for r in attempts] == [404] * len(attempts)
    # and the lists show nothing of the first store
    for path in ("/api/v1/integrations", "/api/v1/products", "/api/v1/rules", "/api/v1/logs", "/api/v1/events"):
        assert other.get(path).json == []
    assert owner.get(f"/api/v1/rules/{rid}").json["enabled"] is True
    assert owner.get(f"/api/v1/integrations/{iid}").json["name"] == "Recorder"


def test_rules_cannot_reference_another_marketplaces_objects(two_stores):
    other = two_stores["other"]
    r = other.post(
        "/api/v1/rules",
        json={
            "product_id": two_stores["product"],
            "trigger": "samcart.product_purchased",
            "integration_id": two_stores["integration"],
            "action": "record",
            "params": {"channel": "general"},
        },
    )
    assert r.status_code == 422
    assert set(r.json["errors"]["json"]) == {"product_id", "integration_id"}


def test_an_event_of_another_store_does_not_match_this_stores_rules(two_stores):
    other = two_stores["other"]
    r = other.post("/api/v1/events", json={"trigger": "samcart.product_purchased", "payload": purchase()})
    assert r.status_code == 202 and r.json["matched_rules"] == 0
