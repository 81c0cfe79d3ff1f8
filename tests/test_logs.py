"""The log: capped per marketplace, newest first, searchable and filterable."""

from sqlalchemy import func, select

from hookyard.emit import emit
from hookyard.jobs import run_rule
from hookyard.models import Marketplace, Run

from .conftest import purchase


def run_all_queued(runtime):
    with runtime.db.session() as s:
        ids = list(s.scalars(select(Run.id).where(Run.status == "queued").order_by(Run.id)))
    return [run_rule(i) for i in ids]


def test_after_1500_runs_the_log_holds_the_newest_1000_and_none_of_another_stores(
    setup, make_client, runtime, in_process
):
    setup.rule(setup.integration())
    other = make_client("store-b")
    from .conftest import Setup

    other_setup = Setup(other, setup.recorder)
    other_setup.rule(other_setup.integration())
    other_setup.emit(purchase(email="other@example.com"))

    with runtime.db.session() as s:
        store = s.scalar(select(Marketplace).where(Marketplace.name == "store-a"))
        for i in range(1500):
            emit(runtime, s, store, "samcart.product_purchased", purchase(email=f"buyer{i}@example.com"))
    statuses = run_all_queued(runtime)
    assert statuses.count("succeeded") >= 1000

    with runtime.db.session() as s:
        mine = list(s.scalars(select(Run.email).where(Run.marketplace_id == store.id).order_by(Run.log_seq)))
        assert mine == [f"buyer{i}@example.com" for i in range(500, 1500)]
        assert s.scalar(select(func.count()).select_from(Run).where(Run.marketplace_id != store.id)) == 1
    r = setup.api.get("/api/v1/logs?page_size=5")
    assert [e["email"] for e in r.json] == [f"buyer{i}@example.com" for i in range(1499, 1494, -1)]
    assert '"total": 1000' in r.headers["X-Pagination"]


def test_unfinished_entries_survive_trimming_until_they_finish(setup, runtime, in_process):
    from dataclasses import replace

    runtime.settings = replace(runtime.settings, log_cap=3)
    setup.rule(setup.integration())
    first = setup.emit(purchase(email="first@example.com"))
    for i in range(5):
        setup.emit(purchase(email=f"later{i}@example.com"))
    with runtime.db.session() as s:  # nothing has run: every entry is still queued, none trimmed
        assert s.scalar(select(func.count()).select_from(Run)) == 6
    run_all_queued(runtime)
    with runtime.db.session() as s:
        assert sorted(s.scalars(select(Run.email))) == [
            "later2@example.com",
            "later3@example.com",
            "later4@example.com",
        ]
    assert setup.api.get(f"/api/v1/events/{first['id']}").json["runs"] == []


def test_search_filters_and_detail(setup, api, runtime, in_process):
    iid = setup.integration()
    pid = setup.product("1001", "Gold Community")
    setup.rule(iid, product_id=pid)
    setup.rule(iid, trigger="samcart.product_refunded")
    setup.recorder.answer("bob@example.com", (400, "Bob is banned"))
    setup.emit(purchase(email="ada@example.com", product_id="1001"))
    setup.emit(purchase(email="bob@example.com", product_id="1001"))
    setup.emit(purchase(email="cy@example.com", product_id="2002"), trigger="samcart.product_refunded")
    run_all_queued(runtime)

    def emails(query):
        r = api.get("/api/v1/logs" + query)
        assert r.status_code == 200, r.json
        return [e["email"] for e in r.json]

    assert emails("") == ["cy@example.com", "bob@example.com", "ada@example.com"]
    assert emails("?q=ADA@") == ["ada@example.com"]
    assert emails("?q=gold") == ["bob@example.com", "ada@example.com"]  # product name
    assert emails("?q=banned") == ["bob@example.com"]  # error text
    assert emails("?q=refunded") == ["cy@example.com"]  # trigger
    assert emails("?status=failed") == ["bob@example.com"]
    assert emails("?trigger=samcart.product_refunded") == ["cy@example.com"]
    assert emails(f"?product_id={pid}") == ["bob@example.com", "ada@example.com"]
    assert emails(f"?integration_id={iid}&action=record&page_size=1&page=2") == ["bob@example.com"]
    assert emails("?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00") == []
    assert api.get("/api/v1/logs?status=exploded").status_code == 422
    assert api.get("/api/v1/logs?since=yesterday").status_code == 422

    entry = api.get("/api/v1/logs?status=failed").json[0]
    detail = api.get(f"/api/v1/logs/{entry['id']}").json
    assert detail["reason"] == "Bob is banned" and detail["attempts"] == 1
    assert detail["payload"]["customer"]["email"] == "bob@example.com"
    assert detail["params"] == {"channel": "general", "note": ""}
    assert [(h["attempt"], h["status"], h["reason"]) for h in detail["history"]] == [(1, "failed", "Bob is banned")]


def test_the_cap_counts_entries_even_when_runs_finish_out_of_order(setup, runtime, in_process):
    """Finishing renumbers an entry; the cap still keeps exactly N entries, not N numbers."""
    from dataclasses import replace

    runtime.settings = replace(runtime.settings, log_cap=4)
    setup.rule(setup.integration())
    for i in range(8):
        setup.emit(purchase(email=f"b{i}@example.com"))
    with runtime.db.session() as s:
        ids = list(s.scalars(select(Run.id).order_by(Run.id)))
    for run_id in reversed(ids):  # the newest first: creation order and finishing order disagree
        run_rule(run_id)
    with runtime.db.session() as s:
        kept = list(s.scalars(select(Run.email).order_by(Run.log_seq)))
    assert kept == ["b3@example.com", "b2@example.com", "b1@example.com", "b0@example.com"]


def test_a_failed_entry_is_retried_with_the_rules_current_parameters_and_a_fresh_budget(
    setup, api, runtime, in_process
):
    from dataclasses import replace

    runtime.settings = replace(runtime.settings, retry_max_attempts=2, retry_base_delay=0.01, retry_max_delay=0.01)
    rule = setup.rule(setup.integration(), channel="general")
    setup.recorder.answer("ada@example.com", (503, "down"), (503, "down"), (503, "still down"))
    setup.emit(purchase())
    run_all_queued(runtime), run_all_queued(runtime)
    entry = api.get("/api/v1/logs").json[0]
    assert entry["status"] == "failed" and entry["reason"].startswith("gave up after 2 attempts")

    assert api.patch(f"/api/v1/rules/{rule}", json={"params": {"channel": "vip"}}).status_code == 200
    retried = api.post(f"/api/v1/logs/{entry['id']}/retry")
    assert retried.status_code == 202 and retried.json["status"] == "queued"
    assert api.post(f"/api/v1/logs/{entry['id']}/retry").status_code == 409  # queued once, however often asked
    run_all_queued(runtime), run_all_queued(runtime)

    detail = api.get(f"/api/v1/logs/{entry['id']}").json
    assert (detail["status"], detail["attempts"]) == ("succeeded", 4)  # two more attempts: a fresh budget
    assert [h.get("status", "replay") for h in detail["history"]] == [
        "failed",
        "failed",
        "replay",
        "failed",
        "succeeded",
    ]
    assert (detail["history"][2]["replayed_by"], detail["history"][2]["after_attempt"]) == ("the API", 2)
    calls = setup.recorder.calls_for("ada@example.com")
    assert [c["params"]["channel"] for c in calls] == ["general", "general", "vip", "vip"]  # the rule as it is now
    assert {c["payload"]["customer"]["email"] for c in calls} == {"ada@example.com"}  # the stored payload
    refused = api.post(f"/api/v1/logs/{entry['id']}/retry")
    assert refused.status_code == 409 and "only failed entries" in refused.json["message"].lower()


def test_every_failed_entry_matching_a_filter_is_retried_and_nothing_else(setup, api, make_client, runtime, in_process):
    setup.rule(setup.integration())
    other = make_client("store-b")
    from .conftest import Setup

    other_setup = Setup(other, setup.recorder)
    other_setup.rule(other_setup.integration())
    for email in ("bob@example.com", "cy@example.com", "other@example.com"):
        setup.recorder.answer(email, (400, "banned"))
    setup.emit(purchase(email="ada@example.com"))
    setup.emit(purchase(email="bob@example.com"))
    setup.emit(purchase(email="cy@example.com"))
    other_setup.emit(purchase(email="other@example.com"))
    run_all_queued(runtime)
    ids = {e["email"]: e["id"] for e in api.get("/api/v1/logs").json}

    assert api.post("/api/v1/logs/retry", json={"q": "bob@"}).json == {"retried": [ids["bob@example.com"]]}
    assert api.post("/api/v1/logs/retry", json={}).json == {"retried": [ids["cy@example.com"]]}  # bob is queued
    assert api.post("/api/v1/logs/retry", json={"status": "exploded"}).status_code == 422
    statuses = {e["email"]: e["status"] for e in api.get("/api/v1/logs").json}
    assert statuses == {"ada@example.com": "succeeded", "bob@example.com": "queued", "cy@example.com": "queued"}
    assert other.get("/api/v1/logs").json[0]["status"] == "failed"  # another store's entries are untouched
    assert other.post(f"/api/v1/logs/{ids['bob@example.com']}/retry").status_code == 404


def test_entries_say_why_they_exist_and_the_log_filters_on_it(setup, api, runtime, in_process):
    """origin: event for what an event made run; a backfill's and a test's entries are told apart, and a test of
    the trigger's example (no stored event) shows the payload it ran with."""
    from sqlalchemy import update

    setup.rule(setup.integration())
    setup.emit(purchase(email="ada@example.com"))
    setup.emit(purchase(email="bob@example.com"))
    run_all_queued(runtime)
    with runtime.db.session() as s:
        bob = s.scalar(select(Run).where(Run.email == "bob@example.com"))
        s.execute(update(Run).where(Run.id == bob.id).values(origin="backfill", task_id=7))
        example = Run(**{c: getattr(bob, c) for c in ("marketplace_id", "rule_id", "trigger", "app", "action")})
        example.origin, example.event_id, example.email, example.log_seq = "test", None, "cy@example.com", 10**6
        example.status, example.job_id = "succeeded", "run-test-x-1"
        example.ran = {"action_label": "Record", "payload": {"customer": {"email": "cy@example.com"}}}
        s.add(example)
        s.commit()
        example_id = example.id

    def entries(query):
        r = api.get("/api/v1/logs" + query)
        assert r.status_code == 200, r.json
        return [(e["email"], e["origin"], e["task_id"]) for e in r.json]

    assert entries("?origin=event") == [("ada@example.com", "event", None)]
    assert entries("?origin=backfill") == [("bob@example.com", "backfill", 7)]
    assert entries("?origin=test") == [("cy@example.com", "test", None)]
    refused = api.get("/api/v1/logs?origin=replay")
    assert refused.status_code == 422 and "origin" in str(refused.json)
    detail = api.get(f"/api/v1/logs/{example_id}").json
    assert detail["event_id"] is None and detail["payload"] == {"customer": {"email": "cy@example.com"}}
