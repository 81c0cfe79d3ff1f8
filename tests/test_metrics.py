"""GET /metrics (hookyard.metrics): the Prometheus text format behind HOOKYARD_METRICS_TOKEN, with what the workers
did (counted in Redis), what this host's web processes received (multiprocess mode under gunicorn), and what is read
when scraped (queues, runs by status, quotas); a source that is down is reported, never a 500."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import select

from hookyard import Deferred, count_calls, deliveries, emit, jobs, usage
from hookyard.jobs import run_rule
from hookyard.localredis import free_port
from hookyard.models import Delivery, Marketplace, Run

from .conftest import purchase
from .processes import alive
from .tasking import refresh
from .waiting import wait_for

TOKEN = "metrics-token-for-tests-0123456789"
BUY = "samcart.product_purchased"


def parse(text: str) -> dict:
    """{(sample name, frozenset of label pairs): value}, read by Prometheus's own client parser."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def series(samples: dict, name: str) -> dict:
    """{label values (a sorted tuple of pairs): value} of one metric's samples."""
    return {tuple(sorted(labels)): v for (n, labels), v in samples.items() if n == name}


@pytest.fixture
def scrape(app, runtime):
    runtime.settings = replace(runtime.settings, metrics_token=TOKEN)
    client = app.test_client()

    def get() -> dict:
        r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200, r.get_data(as_text=True)
        assert r.headers["Content-Type"].startswith("text/plain; version=")
        return parse(r.get_data(as_text=True))

    return get


def run_all_queued(runtime):
    with runtime.db.session() as s:
        ids = list(s.scalars(select(Run.id).where(Run.status == "queued").order_by(Run.id)))
    return [run_rule(i) for i in ids]


# --- the token ------------------------------------------------------------------------------------------------------


def test_without_a_token_set_metrics_does_not_exist(app, runtime):
    assert runtime.settings.metrics_token is None
    client = app.test_client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer anything"}).status_code == 404


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"],
)
def test_a_missing_or_wrong_token_is_401(app, runtime, header):
    runtime.settings = replace(runtime.settings, metrics_token=TOKEN)
    headers = {"Authorization": header} if header is not None else {}
    r = app.test_client().get("/metrics", headers=headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "hookyard_" not in r.get_data(as_text=True)


def test_a_non_ascii_token_is_refused_not_a_500(app, runtime):
    runtime.settings = replace(runtime.settings, metrics_token=TOKEN)
    r = app.test_client().get("/metrics", headers={"Authorization": "Bearer tökén".encode().decode("latin-1")})
    assert r.status_code == 401


def test_metrics_is_not_part_of_the_rest_api_document(app):
    paths = app.test_client().get("/api/openapi.json").json["paths"]
    assert "/metrics" not in paths


# --- what the workers did ---------------------------------------------------------------------------------------------


def test_events_runs_retries_and_queues_after_emitting_through_the_api(setup, runtime, in_process, scrape):
    integration_id = setup.integration()
    setup.rule(integration_id)
    n = 6
    setup.recorder.answer("busy@example.com", (503, "busy"))
    setup.recorder.answer("buyer1@example.com", (400, "banned"))
    began = time.monotonic()
    for i in range(n - 1):
        setup.emit(purchase(email=f"buyer{i}@example.com"), key=f"order-{i}")
    setup.emit(purchase(email="busy@example.com"))
    setup.emit(purchase(email="buyer0@example.com"), key="order-0", expect=200)  # a duplicate: not a new event
    before = scrape()
    waited = time.monotonic() - began
    assert value(before, "hookyard_events_accepted_total", trigger=BUY) == n
    assert value(before, "hookyard_runs_current", status="queued") == n
    # Every run was queued in its integration's shard, and nothing took them off it yet.
    depth = series(before, "hookyard_queue_depth")
    shard = f"{runtime.settings.queue_name}-{integration_id % runtime.settings.queue_shards}"
    assert len(depth) == runtime.settings.queue_shards
    assert depth == {(("queue", q),): (n if q == shard else 0) for ((_, q),) in depth}
    ages = series(before, "hookyard_queue_oldest_job_age_seconds")
    assert ages.keys() == depth.keys() and 0 < ages[(("queue", shard),)] <= waited
    assert all(v == 0 for k, v in ages.items() if k != (("queue", shard),))

    statuses = run_all_queued(runtime)
    assert sorted(statuses) == ["failed", "queued"] + ["succeeded"] * (n - 2)  # the 503 scheduled a retry
    after = scrape()
    assert value(after, "hookyard_runs_total", outcome="succeeded") == n - 2
    assert value(after, "hookyard_runs_total", outcome="failed") == 1
    assert value(after, "hookyard_runs_total", outcome="skipped") == 0
    assert value(after, "hookyard_run_retries_total") == 1
    assert value(after, "hookyard_run_deferrals_total") == 0
    assert value(after, "hookyard_runs_current", status="succeeded") == n - 2
    assert value(after, "hookyard_runs_current", status="failed") == 1
    assert value(after, "hookyard_runs_current", status="queued") == 1
    assert value(after, "hookyard_scrape_error", source="redis") == 0
    assert value(after, "hookyard_scrape_error", source="database") == 0


def test_a_deferral_is_counted_apart_from_attempts(setup, runtime, in_process, scrape, monkeypatch):
    setup.rule(setup.integration())
    setup.emit(purchase())

    def budget_in_use(*args):
        raise Deferred(30, "the shared budget is in use")

    monkeypatch.setattr(jobs, "_execute", budget_in_use)
    assert run_all_queued(runtime) == ["deferred"]
    samples = scrape()
    assert value(samples, "hookyard_run_deferrals_total") == 1
    assert value(samples, "hookyard_run_retries_total") == 0
    assert sum(series(samples, "hookyard_runs_total").values()) == 0
    assert value(samples, "hookyard_runs_current", status="queued") == 1


def test_an_event_counts_only_once_its_transaction_commits(runtime, api, scrape):
    with runtime.db.session() as s:
        store = s.scalar(select(Marketplace).where(Marketplace.name == "store-a"))
        emit.record(runtime, s, store.id, BUY, purchase(email="kept@example.com"))
        try:
            with s.begin_nested():  # e.g. a delivery whose second event is refused: the first goes too
                emit.record(runtime, s, store.id, BUY, purchase(email="undone@example.com"))
                raise LookupError
        except LookupError:
            pass
        s.commit()
    with runtime.db.session() as s:  # closed without a commit
        emit.record(runtime, s, store.id, BUY, purchase(email="never@example.com"))
    with runtime.db.session() as s:
        emit.record(runtime, s, store.id, BUY, purchase(email="rolled-back@example.com"))
        s.rollback()
        s.commit()
    assert value(scrape(), "hookyard_events_accepted_total", trigger=BUY) == 1


def test_deliveries_received_here_and_the_events_workers_made_of_them(api, app, runtime, in_process, scrape):
    r = api.post("/api/v1/integrations", json={"app": "inbox", "name": "Inbox", "config": {}})
    assert r.status_code == 201, r.json
    path = "/" + r.json["inbound_url"].split("/", 3)[3]
    counted = value(scrape(), "hookyard_deliveries_received_total", app="inbox") or 0  # this process's, so far
    client = app.test_client()
    refused = {"events": [{"trigger": BUY, "payload": purchase()}, {"trigger": BUY, "payload": {"customer": 1}}]}
    made = {"events": [{"trigger": BUY, "payload": purchase(email=f"in{i}@example.com")} for i in range(2)]}
    for body in (refused, made):
        assert client.post(path, json=body).status_code == 200
    assert client.post(path, data=b"\xff not json", content_type="application/json").status_code == 400
    with runtime.db.session() as s:
        waiting = list(s.scalars(select(Delivery.id).where(Delivery.status == "received").order_by(Delivery.id)))
    assert [deliveries.process(i) for i in waiting] == ["rejected", "mapped"]
    samples = scrape()
    assert value(samples, "hookyard_deliveries_received_total", app="inbox") == counted + 3
    # The refused delivery's first event was rolled back with it: only the other delivery's two count.
    assert value(samples, "hookyard_events_accepted_total", trigger=BUY) == 2


def test_outbound_calls_and_429s_per_app_and_the_quota_used(circle, fake_circle, api, runtime, scrape):
    before = fake_circle.quota_used  # the fixture's own seeding calls
    iid = circle.connect()  # a verify: one call
    fake_circle.fail_next(1, "429", path="/spaces")
    refresh(api, runtime, iid, expect="failed")  # its verify, then the 429
    samples = scrape()
    assert value(samples, "hookyard_outbound_calls_total", app="circle") == 3 == fake_circle.quota_used - before
    assert value(samples, "hookyard_outbound_rate_limited_total", app="circle") == 1
    assert value(samples, "hookyard_app_quota_used", app="circle", scope="4242") == 3
    assert value(samples, "hookyard_app_quota_limit", app="circle", scope="4242") == 5000


def test_calls_of_an_app_without_a_quota_count_too(runtime, scrape):
    app = runtime.registry.apps["recorder"]
    assert app.usage is None
    with usage.metered(runtime, app):
        count_calls(status=200)
        count_calls(2, status=429)
    count_calls(status=429)  # outside a call into the plugin: nothing to count it for
    samples = scrape()
    assert value(samples, "hookyard_outbound_calls_total", app="recorder") == 3
    assert value(samples, "hookyard_outbound_rate_limited_total", app="recorder") == 2


# --- a source down ----------------------------------------------------------------------------------------------------


def test_with_redis_down_metrics_still_answers_with_the_database_and_says_so(setup, runtime, scrape):
    setup.rule(setup.integration())
    setup.emit(purchase())
    down = redis.Redis(port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    runtime.__dict__["redis"] = down  # Runtime.redis is a cached_property
    samples = scrape()
    assert value(samples, "hookyard_scrape_error", source="redis") == 1
    assert value(samples, "hookyard_scrape_error", source="database") == 0
    assert value(samples, "hookyard_runs_current", status="queued") == 1
    assert not series(samples, "hookyard_queue_depth") and not series(samples, "hookyard_runs_total")


def test_with_the_database_down_metrics_still_answers_with_redis_and_says_so(setup, runtime, scrape, monkeypatch):
    setup.emit(purchase())

    def unreachable():
        raise ConnectionRefusedError("the database is down")

    monkeypatch.setattr(runtime.db, "session", unreachable)
    samples = scrape()
    assert value(samples, "hookyard_scrape_error", source="database") == 1
    assert value(samples, "hookyard_scrape_error", source="redis") == 0
    assert value(samples, "hookyard_events_accepted_total", trigger=BUY) == 1
    assert not series(samples, "hookyard_runs_current")


def test_counting_with_redis_down_never_fails_a_run(setup, runtime, in_process):
    setup.rule(setup.integration())
    setup.emit(purchase())
    runtime.__dict__["redis"] = redis.Redis(port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    assert run_all_queued(runtime) == ["succeeded"]


# --- under gunicorn, as deployed --------------------------------------------------------------------------------------


def scrape_url(url: str) -> dict:
    r = requests.get(url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert r.status_code == 200, r.text
    return parse(r.text)


def mapped(pid: int) -> set[Path]:
    """The files a process has mapped into memory (prometheus_client's multiprocess values are mmapped files)."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {Path(line.split(None, 5)[5]) for line in lines if len(line.split(None, 5)) == 6 and "/" in line}


def worker_pids(master: int) -> set[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def test_under_gunicorn_every_web_process_counts_into_one_answer_and_workers_into_redis(
    start_web, start_worker, api, setup, tmp_path
):
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ  # so gunicorn_conf makes a folder of its own
    url = start_web(WEB_CONCURRENCY="2", HOOKYARD_METRICS_TOKEN=TOKEN)
    [(master, _)] = start_web.procs
    wait_for(lambda: len(worker_pids(master.pid)) == 2, timeout=30, message="gunicorn did not start 2 workers")
    start_worker()
    start_worker()
    headers = {"Authorization": f"Bearer {api.token}"}
    setup.rule(setup.integration())
    inbox = requests.post(
        url + "/api/v1/integrations", headers=headers, json={"app": "inbox", "name": "Inbox", "config": {}}, timeout=30
    ).json()
    hook = url + "/" + inbox["inbound_url"].split("/", 3)[3]

    def deliver(count: int):
        for _ in range(count):  # a connection each, so that either web process may take it
            r = requests.post(hook, json={"events": []}, headers={"Connection": "close"}, timeout=30)
            assert r.status_code == 200, r.text

    n = 20
    for i in range(n):
        r = requests.post(
            url + "/api/v1/events",
            headers=headers,
            timeout=30,
            json={"trigger": BUY, "payload": purchase(f"b{i}@x.io")},
        )
        assert r.status_code == 202, r.text
    deliver(10)
    # The folder gunicorn_conf made: where the web processes map their counters' files.
    [folder] = {path.parent for pid in worker_pids(master.pid) for path in mapped(pid) if path.suffix == ".db"}
    assert folder.name.startswith("hookyard-metrics-") and folder.stat().st_mode & 0o077 == 0  # private
    # A web process that counted deliveries dies; gunicorn replaces it (child_exit marks it dead): its counts stay.
    counted_by = {int(p.stem.rsplit("_", 1)[1]) for p in folder.glob("counter_*.db")}
    victim = sorted(counted_by & worker_pids(master.pid))[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: victim not in worker_pids(master.pid) and len(worker_pids(master.pid)) == 2 and not alive(victim),
        timeout=30,
        message="gunicorn did not replace its killed worker",
    )
    deliver(5)

    def finished():
        samples = scrape_url(url)
        done = value(samples, "hookyard_runs_total", outcome="succeeded") == n
        return samples if done and sum(series(samples, "hookyard_queue_depth").values()) == 0 else None

    # The runs, and the deliveries' own jobs (in the same queues).
    samples = wait_for(finished, timeout=60, message="the workers did not finish the runs and the deliveries")
    assert value(samples, "hookyard_events_accepted_total", trigger=BUY) == n
    assert value(samples, "hookyard_deliveries_received_total", app="inbox") == 15
    assert value(samples, "hookyard_runs_current", status="succeeded") == n
    # Asked again (either web process may answer): the same.
    assert value(scrape_url(url), "hookyard_deliveries_received_total", app="inbox") == 15
    master.terminate()
    master.wait(timeout=30)
    assert not folder.exists()  # removed on exit: the next start counts from zero
