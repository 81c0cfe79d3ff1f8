"""Ids are never handed to another row, and a run acts only within its own store.

The attack this guards against: store A's rule ran and failed, A deleted the rule, store B created a rule; on
SQLite without AUTOINCREMENT, B's rule took the deleted id, so A's log entry showed B's parameters and A's
Retry ran B's rule with B's credentials. Each test here runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from hookyard.jobs import run_rule
from hookyard.models import Integration, Run

from ..conftest import Setup, purchase
from ..waiting import wait_for


def _entry(client, event_id):
    [run] = client.get(f"/api/v1/events/{event_id}").json["runs"]
    return run


def _finished(client, entry_id, statuses=("succeeded", "skipped", "failed")):
    def done():
        body = client.get(f"/api/v1/logs/{entry_id}").json
        return body if body["status"] in statuses else None

    return wait_for(done, timeout=30, message=f"log entry {entry_id} did not finish")


@pytest.mark.e2e
def test_the_reused_id_attack_reads_and_retries_nothing_of_the_other_store(
    api, make_client, recorder, start_worker, figures
):
    start_worker()
    a = Setup(api, recorder)
    store_b = make_client("store-b")
    b = Setup(store_b, recorder)

    # Store A: its rule runs once and fails for good.
    a_rule = a.rule(a.integration("Circle"), channel="general")
    recorder.answer("victim@example.com", (422, "no such space"))
    entry = _finished(api, _entry(api, a.emit(purchase(email="victim@example.com"))["id"])["id"])
    assert entry["status"] == "failed"
    assert api.delete(f"/api/v1/rules/{a_rule}").status_code == 204

    # Store B creates a rule (with its own connection): a new id, never the one A deleted.
    b_rule = b.rule(b.integration("Greeter"), channel="vip")
    assert b_rule > a_rule

    # A reads its entry: what it ran then, its rule marked deleted, nothing of B's.
    detail = api.get(f"/api/v1/logs/{entry['id']}").json
    assert detail["params"] is None and "rule" in detail["deleted"]
    assert detail["ran"]["params"] == {"channel": "general", "note": ""}
    assert detail["ran"]["integration_name"] == "Circle" and detail["ran"]["action_label"] == "Record the call"
    assert detail["history"][0]["ran"]["integration_name"] == "Circle"

    # A retries it: the rule is gone, so the retry is skipped and nothing is called.
    calls_before = len(recorder.calls)
    assert api.post(f"/api/v1/logs/{entry['id']}/retry").status_code == 202
    retried = _finished(api, entry["id"], statuses=("skipped", "failed", "succeeded"))
    assert (retried["status"], retried["reason"]) == ("skipped", "the rule was deleted before it ran")
    assert len(recorder.calls) == calls_before
    assert store_b.get(f"/api/v1/rules/{b_rule}").json["params"] == {"channel": "vip", "note": ""}
    figures.update(deleted_rule_id=a_rule, next_rule_id=b_rule, calls_after_retry=len(recorder.calls) - calls_before)


def test_a_run_naming_another_stores_rule_is_refused_and_calls_nothing(api, make_client, recorder, runtime, in_process):
    """Defence in depth: whatever put another store's id into a run (PostgreSQL never reuses ids, so the
    reference is forced here by a direct update), the run, a retry and a log read refuse it."""
    a = Setup(api, recorder)
    store_b = make_client("store-b")
    b = Setup(store_b, recorder)
    a.rule(a.integration(), channel="general")
    recorder.answer("victim@example.com", (422, "no such space"))
    entry = _entry(api, a.emit(purchase(email="victim@example.com"))["id"])
    assert run_rule(entry["id"]) == "failed"

    b_rule = b.rule(b.integration("B's connection"), channel="vip")
    with runtime.db.session() as s:
        s.execute(update(Run).where(Run.id == entry["id"]).values(rule_id=b_rule))
        s.commit()

    detail = api.get(f"/api/v1/logs/{entry['id']}").json
    assert detail["params"] is None and "rule" in detail["deleted"]
    assert "vip" not in str(detail)

    calls_before = len(recorder.calls)
    assert api.post(f"/api/v1/logs/{entry['id']}/retry").status_code == 202
    assert run_rule(entry["id"]) == "failed"
    detail = api.get(f"/api/v1/logs/{entry['id']}").json
    assert detail["reason"] == "the rule this entry names belongs to another store; nothing was called"
    assert len(recorder.calls) == calls_before


def test_a_run_waiting_to_retry_never_runs_a_rule_created_after_its_own_was_deleted(
    api, make_client, recorder, runtime, in_process
):
    """The accidental form: A's run waits after a 429 while A deletes the rule and B creates one."""
    a = Setup(api, recorder)
    b = Setup(make_client("store-b"), recorder)
    a_rule = a.rule(a.integration(), channel="general")
    recorder.answer("waiting@example.com", (429, "slow down", {"Retry-After": "1"}))
    entry = _entry(api, a.emit(purchase(email="waiting@example.com"))["id"])
    assert run_rule(entry["id"]) == "queued"
    assert api.delete(f"/api/v1/rules/{a_rule}").status_code == 204
    b.rule(b.integration("B's connection"), channel="vip")

    calls_before = len(recorder.calls)
    assert run_rule(entry["id"]) == "skipped"
    assert len(recorder.calls) == calls_before
    assert api.get(f"/api/v1/logs/{entry['id']}").json["reason"] == "the rule was deleted before it ran"


def test_history_keeps_names_after_renames_and_deletions(api, recorder, runtime, in_process):
    """A deleted connection's entries still name it, and a connection created later takes none of them."""
    a = Setup(api, recorder)
    circle = a.integration("Circle")
    with runtime.db.session() as s:  # as a refresh would have loaded them
        s.execute(update(Integration).where(Integration.id == circle).values(options=recorder.options))
        s.commit()
    product = a.product("1001", "Founders' circle")
    a.rule(circle, product_id=product, channel="vip")
    entry = _entry(api, a.emit(purchase(product_id="1001"))["id"])
    assert run_rule(entry["id"]) == "succeeded"

    assert api.patch(f"/api/v1/products/{product}", json={"name": "Renamed"}).status_code == 200
    assert api.delete(f"/api/v1/integrations/{circle}").status_code == 200
    greeter = a.integration("Greeter")
    assert greeter > circle

    detail = api.get(f"/api/v1/logs/{entry['id']}").json
    assert detail["ran"]["integration_name"] == "Circle"
    assert detail["ran"]["product_name"] == "Founders' circle" == detail["product_name"]
    assert detail["history"][0]["ran"]["settings"] == [["Channel", "VIP"]]
    assert "integration" in detail["deleted"]
    assert [e["id"] for e in api.get(f"/api/v1/logs?integration_id={greeter}").json] == []
    assert [e["id"] for e in api.get("/api/v1/logs?q=founders").json] == [entry["id"]]


def test_log_search_never_matches_another_stores_products(api, make_client, recorder):
    a = Setup(api, recorder)
    store_b = make_client("store-b")
    b = Setup(store_b, recorder)
    a.rule(a.integration(), channel="general")
    a.emit(purchase(product_id="555"))  # A's product 555, created by its first sale
    [product] = api.get("/api/v1/products").json
    assert api.delete(f"/api/v1/products/{product['id']}").status_code == 204
    b.product("556", "Zebra course")  # B names a product of its own, created after A's was deleted
    assert api.get("/api/v1/logs?q=zebra").json == []
    assert len(api.get("/api/v1/logs?q=555").json) == 1  # the entry keeps the product it was for


def test_a_deleted_rows_id_is_not_handed_to_the_next_row(api):
    """The newest row deleted, then another created: SQLite would give it the same id without AUTOINCREMENT
    (tests/test_migrations.py checks every table is)."""
    a = Setup(api, None)
    first = a.product("p1", "One")
    assert api.delete(f"/api/v1/products/{first}").status_code == 204
    assert a.product("p2", "Two") > first
