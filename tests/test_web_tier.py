"""The web tier as deployed: a real gunicorn started from the Procfile's `web` line (gunicorn's config module,
gthread workers), against the fake Circle answering slowly. One store's slow remote holds one thread for a bounded
time: the health check and another store's requests answer meanwhile, and a verify that runs out of time is a 504
with Retry-After in the API's error shape. A long URL reaches Flask and gets JSON, not gunicorn's text/html 414."""

from __future__ import annotations

import importlib
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from hookyard import connections, gunicorn_conf
from hookyard.models import Integration

from .circle.fixtures import API_KEY
from .recorder import TOKEN
from .waiting import wait_for

CIRCLE = {"api_key": API_KEY, "community_url": "https://test-community.circle.so"}


def bearer(client) -> dict:
    return {"Authorization": f"Bearer {client.token}"}


def timed(fn):
    began = time.monotonic()
    result = fn()
    return result, time.monotonic() - began


def test_a_slow_remote_holds_one_thread_while_health_and_other_stores_answer(
    start_web, make_client, fake_circle, recorder
):
    # One process, few threads: the concurrency comes from threads (HOOKYARD_WEB_THREADS), not from processes.
    url = start_web(WEB_CONCURRENCY="1", HOOKYARD_WEB_THREADS="4")
    store_a, store_b = make_client("store-a"), make_client("store-b")
    existing = requests.post(
        url + "/api/v1/integrations",
        headers=bearer(store_a),
        timeout=30,
        json={"app": "circle", "name": "Community", "config": CIRCLE},
    ).json()["id"]
    fake_circle.reset_requests()
    delay = 3.0
    fake_circle.set_latency(delay)  # Circle answers, but slowly (within CIRCLE_VERIFY_TIMEOUT's 10 s)

    def connect(name):
        return requests.post(
            url + "/api/v1/integrations",
            headers=bearer(store_a),
            timeout=60,
            json={"app": "circle", "name": name, "config": CIRCLE},
        )

    with ThreadPoolExecutor(2) as pool:
        slow = [pool.submit(connect, f"Community {i}") for i in range(2)]  # two clicks at once in store A
        wait_for(
            lambda: len(fake_circle.requests_for("GET", "/community")) == 2,
            timeout=delay,
            message="both requests should be waiting on Circle",
        )
        health, health_took = timed(lambda: requests.get(url + "/healthz", timeout=60))
        listed, list_took = timed(
            lambda: requests.get(url + "/api/v1/integrations", headers=bearer(store_b), timeout=60)
        )
        # Store B connects an app whose remote is fast: its own outbound call is not stuck behind store A's.
        created, create_took = timed(
            lambda: requests.post(
                url + "/api/v1/integrations",
                headers=bearer(store_b),
                timeout=60,
                json={"app": "recorder", "name": "B", "config": {"endpoint": recorder.url, "token": TOKEN}},
            )
        )
        # Store A's own Refresh clicks (the reproduction): a task at once, the same one twice, no waiting.
        clicks = [
            timed(
                lambda: requests.post(
                    url + f"/api/v1/integrations/{existing}/refresh", headers=bearer(store_a), timeout=60
                )
            )
            for _ in range(2)
        ]
        still_waiting = not any(f.done() for f in slow)
        answers = [f.result() for f in slow]
    assert health.status_code == 200 and listed.status_code == 200 and created.status_code == 201, created.text
    assert still_waiting, "the fast requests should have been answered while store A's still waited on Circle"
    assert [r.status_code for r, _ in clicks] == [202, 202] and clicks[0][0].json()["id"] == clicks[1][0].json()["id"]
    took = [health_took, list_took, create_took, *(t for _, t in clicks)]
    # Each answered before the slow remote could have answered anything: none waited behind store A's calls
    # (a third of the delay flaked once on a loaded CI machine, a refresh click taking 1.04 s).
    assert max(took) < delay, took
    assert [r.status_code for r in answers] == [201, 201], [r.text for r in answers]


def test_a_verify_that_runs_out_of_time_is_a_504_with_retry_after(start_web, make_client, fake_circle, runtime):
    budget = 1.0
    url = start_web(CIRCLE_VERIFY_TIMEOUT=str(budget))
    store = make_client("store-a")
    existing = requests.post(
        url + "/api/v1/integrations",
        headers=bearer(store),
        timeout=30,
        json={"app": "circle", "name": "Existing", "config": CIRCLE},
    ).json()
    delay = 8.0
    fake_circle.set_latency(delay)  # far past the verify's budget

    (created, create_took), (edited, edit_took) = (
        timed(
            lambda: requests.post(
                url + "/api/v1/integrations",
                headers=bearer(store),
                timeout=60,
                json={"app": "circle", "name": "Slow", "config": CIRCLE},
            )
        ),
        timed(
            lambda: requests.patch(
                url + f"/api/v1/integrations/{existing['id']}",
                headers=bearer(store),
                timeout=60,
                json={"config": {"api_key": API_KEY + "-rotated"}},
            )
        ),
    )
    for r, took in ((created, create_took), (edited, edit_took)):
        assert r.status_code == 504 and r.headers["Content-Type"] == "application/json", r.text
        assert int(r.headers["Retry-After"]) > 0
        body = r.json()
        assert (body["code"], body["status"]) == (504, "Gateway Timeout")
        assert "did not answer within 1 seconds" in body["message"]
        assert body["errors"]["json"]["config"]["_schema"] == [body["message"]]
        assert took < delay / 2, took  # answered when the budget ran out, not when Circle did
    fake_circle.set_latency(0)
    listed = requests.get(url + "/api/v1/integrations", headers=bearer(store), timeout=30).json()
    assert [i["name"] for i in listed] == ["Existing"]  # nothing saved, nothing changed
    assert listed[0]["verified_at"] == existing["verified_at"]
    with runtime.db.session() as s:
        assert connections.full_config(runtime, s.get(Integration, existing["id"]))["api_key"] == API_KEY


def test_a_long_url_reaches_flask_and_gets_json(start_web, make_client):
    url = start_web()
    store = make_client("store-a")
    q = "a" * 20_000  # five times gunicorn's default request line limit (4094 bytes)
    for r in (
        requests.get(url + "/api/v1/logs", params={"q": q}, headers=bearer(store), timeout=30),
        requests.get(url + "/api/v1/" + "x" * 20_000, headers=bearer(store), timeout=30),
    ):
        assert r.status_code != 414 and r.headers["Content-Type"] == "application/json", (r.status_code, r.text[:200])
    assert r.status_code == 404 and r.json()["code"] == 404 and r.json()["message"]


def test_an_inbound_url_is_a_credential_masked_in_the_access_log(start_web, make_client, tmp_path):
    """gunicorn's access log (the Procfile's web process) never holds an inbound URL's id whole."""
    url = start_web()
    store = make_client("store-a")
    created = requests.post(
        url + "/api/v1/integrations",
        json={"app": "inbox", "name": "Inbox", "config": {}},
        headers=bearer(store),
        timeout=30,
    ).json()
    inbound_url = created["inbound_url"]
    assert inbound_url.startswith(url + "/hooks/inbox/"), inbound_url  # built from the request's own host
    key = inbound_url.rsplit("/", 1)[1]
    assert requests.post(inbound_url, json={"events": []}, timeout=30).status_code == 200
    assert requests.post(url + "/hooks/inbox/" + "A" * 43, json={}, timeout=30).status_code == 404
    log = tmp_path / "web-0.log"
    wait_for(
        lambda: f"/hooks/inbox/{key[:4]}…" in log.read_text(errors="replace"),
        message="the access log has no masked line for the delivery",
    )
    text = log.read_text(errors="replace")
    assert key not in text and "A" * 43 not in text


def test_the_config_module_reads_threads_workers_and_timeout_from_the_environment(monkeypatch):
    names = ("WEB_CONCURRENCY", "HOOKYARD_WEB_THREADS", "HOOKYARD_WEB_TIMEOUT", "HOOKYARD_WEB_GRACEFUL_TIMEOUT")
    for name in (*names, "PORT", "HOOKYARD_BIND"):
        monkeypatch.delenv(name, raising=False)
    config = importlib.reload(gunicorn_conf)
    assert (config.worker_class, config.workers, config.threads, config.timeout) == ("gthread", 2, 8, 30)
    # Done before a platform's SIGKILL, 30 s after its SIGTERM (Heroku's grace period).
    assert config.graceful_timeout == 25
    assert config.bind == ["0.0.0.0:5000"] and config.limit_request_line == 0
    assert config.wsgi_app == "hookyard.app:create_app()"
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("HOOKYARD_WEB_THREADS", "16")
    monkeypatch.setenv("HOOKYARD_WEB_TIMEOUT", "60")
    monkeypatch.setenv("HOOKYARD_BIND", "127.0.0.1")
    monkeypatch.setenv("PORT", "8000")
    config = importlib.reload(gunicorn_conf)
    assert (config.workers, config.threads, config.timeout, config.bind) == (3, 16, 60, ["127.0.0.1:8000"])
    monkeypatch.setenv("HOOKYARD_WEB_THREADS", "many")
    with pytest.raises(SystemExit, match="HOOKYARD_WEB_THREADS must be a whole number, got 'many'"):
        importlib.reload(gunicorn_conf)
    monkeypatch.setenv("HOOKYARD_WEB_THREADS", "0")
    with pytest.raises(SystemExit, match="HOOKYARD_WEB_THREADS must be at least 1"):
        importlib.reload(gunicorn_conf)
    monkeypatch.delenv("HOOKYARD_WEB_THREADS")
    importlib.reload(gunicorn_conf)
