"""hookyard.testing, the pytest plugin for plugin authors: its fixtures work on the real core, next to this project's
own fixtures of the same purpose (app, api, runtime, recorder) without colliding with them."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
from sqlalchemy import inspect

from hookyard.migrate import current_heads

from .conftest import purchase


@pytest.fixture(scope="session")
def hookyard_registry(plugin_site):
    """Overridden as the docs say an author may: with the example plugin (app "hello") installed as well."""
    from hookyard.plugins import load_registry

    return load_registry(disabled=set())


def hello_rule(client, url: str) -> int:
    integration = client.post("/api/v1/integrations", json={"app": "hello", "name": "Greeter", "config": {"url": url}})
    assert integration.status_code == 201, integration.json
    rule = client.post(
        "/api/v1/rules",
        json={
            "product_id": None,
            "trigger": "samcart.product_purchased",
            "integration_id": integration.json["id"],
            "action": "greet",
            "params": {"greeting": "Welcome"},
        },
    )
    assert rule.status_code == 201, rule.json
    return rule.json["id"]


def test_the_runtime_has_a_migrated_database_of_its_own_and_an_empty_redis(hookyard_runtime, tmp_path):
    url = hookyard_runtime.settings.database_url
    assert url == f"sqlite:///{tmp_path / 'hookyard.db'}"  # this test's copy, not the session's template
    assert current_heads(url)  # at the migrations' head
    assert {"events", "runs", "rules"} <= set(inspect(hookyard_runtime.db.engine).get_table_names())
    assert hookyard_runtime.redis.ping() and hookyard_runtime.redis.dbsize() == 0
    assert hookyard_runtime.registry.owner("app", "hello") == "hello"


def test_the_client_acts_for_its_store_with_a_token(hookyard_client, hookyard_app):
    assert hookyard_client.get("/api/v1/plugins").status_code == 200
    assert hookyard_app.test_client().get("/api/v1/rules").status_code == 401  # the token is what lets it in
    assert hookyard_client.get("/api/v1/rules").json == []


def test_run_events_runs_an_emitted_events_rule_in_this_process(
    hookyard_client, hookyard_recorder, hookyard_run_events
):
    rule_id = hello_rule(hookyard_client, hookyard_recorder.url + "/hook")
    emitted = hookyard_client.post(
        "/api/v1/events", json={"trigger": "samcart.product_purchased", "payload": purchase()}
    )
    assert emitted.status_code == 202 and emitted.json["matched_rules"] == 1

    (run,) = hookyard_run_events()

    assert (run.app, run.action, run.status, run.attempts) == ("hello", "greet", "succeeded", 1)
    assert [(r.method, r.path) for r in hookyard_recorder.requests] == [("HEAD", "/hook"), ("POST", "/hook")]
    assert hookyard_recorder.requests[1].json == {"text": "Welcome, Ada!", "email": "ada@example.com"}
    log = hookyard_client.get("/api/v1/logs").json
    assert [(e["rule_id"], e["status"]) for e in log] == [(rule_id, "succeeded")]
    assert hookyard_run_events() == []  # nothing left to run


def test_a_retried_run_stays_queued_until_its_time(hookyard_client, hookyard_recorder, hookyard_run_events):
    hello_rule(hookyard_client, hookyard_recorder.url + "/hook")
    hookyard_recorder.answer(503)  # the action's POST (verify's HEAD was answered when the rule's connection was made)
    hookyard_client.post("/api/v1/events", json={"trigger": "samcart.product_purchased", "payload": purchase()})

    (run,) = hookyard_run_events()

    assert run.status == "queued" and "webhook answered 503" in run.reason
    assert hookyard_run_events() == []  # its retry is not due yet: a pass never sleeps


def test_the_recorder_answers_as_scripted(hookyard_recorder):
    hookyard_recorder.answer((201, "made", {"X-Answer": "1"}), 429)

    first = requests.put(hookyard_recorder.url + "/a?b=1", json={"k": "v"}, timeout=5)
    second = requests.get(hookyard_recorder.url + "/c", timeout=5)
    third = requests.delete(hookyard_recorder.url + "/d", timeout=5)

    assert (first.status_code, first.text, first.headers["X-Answer"]) == (201, "made", "1")
    assert (second.status_code, third.status_code, third.text) == (429, 200, "ok")
    assert [(r.method, r.path) for r in hookyard_recorder.requests] == [
        ("PUT", "/a?b=1"),
        ("GET", "/c"),
        ("DELETE", "/d"),
    ]
    assert hookyard_recorder.requests[0].json == {"k": "v"} and hookyard_recorder.requests[1].json is None


def test_the_projects_own_fixtures_of_the_same_purpose_still_work_beside_them(
    app, api, runtime, recorder, hookyard_app, hookyard_client, hookyard_runtime, hookyard_recorder
):
    assert app is not hookyard_app and runtime is not hookyard_runtime and recorder is not hookyard_recorder
    assert runtime.settings.database_url != hookyard_runtime.settings.database_url
    assert api.get("/api/v1/rules").status_code == 200 and hookyard_client.get("/api/v1/rules").status_code == 200
    assert api.token != hookyard_client.token


def test_import_hookyard_imports_neither_pytest_nor_the_plugin():
    code = "import sys, hookyard, hookyard.app; print('pytest' in sys.modules, 'hookyard.testing' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_pytest_loads_the_plugin_through_its_entry_point():
    from importlib.metadata import entry_points

    assert [ep.value for ep in entry_points(group="pytest11") if ep.name == "hookyard"] == ["hookyard.testing"]
