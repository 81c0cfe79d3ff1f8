"""End to end: the REST API, a real Redis, real `hookyard worker` processes and the recorder app."""

from datetime import datetime, timedelta, timezone

import pytest

from .conftest import purchase
from .waiting import wait_for

pytestmark = pytest.mark.e2e


def wait_status(api, event_id, statuses=("succeeded", "skipped", "failed"), timeout=30):
    def done():
        runs = api.get(f"/api/v1/events/{event_id}").json["runs"]
        return runs if runs and all(r["status"] in statuses for r in runs) else None

    return wait_for(done, timeout=timeout, message=f"event {event_id}'s runs did not finish")


@pytest.mark.parametrize("fork", ["1", "0"], ids=["forking", "non-forking"])
def test_a_purchase_runs_the_rule_in_a_worker_and_logs_success(setup, api, recorder, start_worker, fork):
    start_worker(HOOKYARD_WORKER_FORK=fork)
    iid = setup.integration()
    rid = setup.rule(iid, product_id=setup.product("1001"), channel="vip")
    event = setup.emit(purchase(email="Ada@Example.com", product_id="1001"))
    [run] = wait_status(api, event["id"])
    assert run["status"] == "succeeded" and run["attempts"] == 1 and run["finished_at"]
    assert (run["rule_id"], run["integration_id"], run["email"]) == (rid, iid, "ada@example.com")
    [call] = recorder.calls
    assert call["params"] == {"channel": "vip", "note": ""}
    assert call["trigger"] == "samcart.product_purchased"
    assert call["payload"]["customer"]["first_name"] == "Ada"


def test_retryable_failures_are_retried_with_backoff_until_they_succeed(setup, api, recorder, start_worker):
    start_worker(HOOKYARD_RETRY_BASE_DELAY="0.2", HOOKYARD_RETRY_MAX_DELAY="1")
    setup.rule(setup.integration())
    recorder.answer("ada@example.com", (503, "down for maintenance"), (429, "slow down", {"Retry-After": "1"}))
    event = setup.emit(purchase())
    [run] = wait_status(api, event["id"], timeout=60)
    assert run["status"] == "succeeded" and run["attempts"] == 3
    assert [c["attempt"] for c in recorder.calls_for("ada@example.com")] == [1, 2, 3]
    detail = api.get(f"/api/v1/logs/{run['id']}").json
    assert [h["status"] for h in detail["history"]] == ["failed", "failed", "succeeded"]
    assert detail["history"][1]["retry_in"] >= 1.0  # the Retry-After hint was honoured


def test_permanent_failures_and_skips_are_not_retried(setup, api, recorder, start_worker):
    start_worker(HOOKYARD_RETRY_BASE_DELAY="0.2")
    setup.rule(setup.integration())
    recorder.answer("bad@example.com", (422, "no such channel"))
    recorder.answer("skip@example.com", (409, "already a member"))
    bad = setup.emit(purchase(email="bad@example.com"))
    skip = setup.emit(purchase(email="skip@example.com"))
    assert [(r["status"], r["reason"], r["attempts"]) for r in wait_status(api, bad["id"])] == [
        ("failed", "no such channel", 1)
    ]
    assert [(r["status"], r["reason"]) for r in wait_status(api, skip["id"])] == [("skipped", "already a member")]
    assert len(recorder.calls) == 2


def test_an_auth_failure_marks_the_integration_as_needing_attention(setup, api, recorder, start_worker):
    start_worker()
    iid = setup.integration()
    setup.rule(iid)
    recorder.answer("ada@example.com", (401, "token revoked"))
    [run] = wait_status(api, setup.emit(purchase())["id"])
    assert run["status"] == "failed"
    integration = api.get(f"/api/v1/integrations/{iid}").json
    assert integration["status"] == "needs_attention" and integration["status_reason"] == "token revoked"


def test_redelivered_events_never_double_an_action(setup, api, recorder, start_worker):
    start_worker()
    setup.rule(setup.integration())
    first = setup.emit(purchase(), key="order-1")
    for _ in range(4):
        setup.emit(purchase(), key="order-1", expect=200)
    wait_status(api, first["id"])
    assert len(recorder.calls_for("ada@example.com")) == 1


def test_prospect_is_skipped_when_the_same_email_bought_the_same_product_meanwhile(setup, api, recorder, start_worker):
    start_worker()
    iid = setup.integration()
    setup.rule(iid, trigger="samcart.prospect_created")
    now = datetime.now(timezone.utc)
    # Created 2 h ago less 2 s: the run goes through the RQ scheduler, due 2 s from now.
    prospect = setup.emit(
        purchase(email="cart@example.com", occurred_at=(now - timedelta(hours=2) + timedelta(seconds=2)).isoformat()),
        trigger="samcart.prospect_created",
    )
    [queued] = api.get(f"/api/v1/events/{prospect['id']}").json["runs"]
    assert queued["status"] == "queued" and queued["not_before"]
    setup.emit(purchase(email="cart@example.com"))  # they bought after all
    abandoned = setup.emit(
        purchase(email="gone@example.com", occurred_at=(now - timedelta(hours=3)).isoformat()),
        trigger="samcart.prospect_created",
    )
    [skipped] = wait_status(api, prospect["id"])
    assert skipped["status"] == "skipped"
    assert "cart@example.com had a samcart.product_purchased for the same product" in skipped["reason"]
    [ran] = wait_status(api, abandoned["id"])
    assert ran["status"] == "succeeded"
    assert recorder.calls_for("cart@example.com") == []


def test_a_third_party_plugin_installed_with_pip_runs_from_a_rule(api, recorder, start_worker):
    plugins = {p["name"]: p for p in api.get("/api/v1/plugins").json}
    assert plugins["hello"]["version"] == "0.1.0" and plugins["hello"]["apps"] == ["hello"]
    start_worker()
    r = api.post(
        "/api/v1/integrations",
        json={"app": "hello", "name": "Greeter", "config": {"url": recorder.url + "/hook", "secret": "s3cret"}},
    )
    assert r.status_code == 201, r.json
    r = api.post(
        "/api/v1/rules",
        json={
            "product_id": None,
            "trigger": "samcart.product_purchased",
            "integration_id": r.json["id"],
            "action": "greet",
            "params": {"greeting": "Welcome"},
        },
    )
    assert r.status_code == 201, r.json
    event = api.post("/api/v1/events", json={"trigger": "samcart.product_purchased", "payload": purchase()}).json
    [run] = wait_status(api, event["id"])
    assert run["status"] == "succeeded"
    [(headers, body)] = recorder.hooks
    assert body == {"text": "Welcome, Ada!", "email": "ada@example.com"}
    assert headers["X-Hello-Secret"] == "s3cret"
