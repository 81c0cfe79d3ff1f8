"""A slow Circle: the connection check, made inside a request, is bounded as a whole (504 with Retry-After when
Circle does not answer in time, nothing saved); a refresh that times out in the worker fails its task without
flagging the connection."""

import time

from sqlalchemy import func, select

from hookyard.models import Integration

from ..tasking import refresh
from .fixtures import API_KEY

CONFIG = {"api_key": API_KEY, "community_url": "https://test-community.circle.so"}


def saved(runtime):
    with runtime.db.session() as s:
        return s.scalar(select(func.count()).select_from(Integration))


def test_a_check_circle_does_not_answer_in_time_is_a_504_and_saves_nothing(fake_circle, api, runtime, monkeypatch):
    monkeypatch.setenv("CIRCLE_VERIFY_TIMEOUT", "0.5")
    fake_circle.set_latency(5)
    began = time.monotonic()
    r = api.post("/api/v1/integrations", json={"app": "circle", "name": "C", "config": CONFIG})
    took = time.monotonic() - began
    assert r.status_code == 504, r.json
    assert r.headers["Retry-After"] == "30"  # Circle gave no hint: the API's default
    assert (r.json["code"], r.json["status"]) == (504, "Gateway Timeout")
    assert (
        r.json["message"].startswith("Circle at 127.0.0.1") and "did not answer within 0.5 seconds" in r.json["message"]
    )
    assert r.json["errors"]["json"]["config"]["_schema"] == [r.json["message"]]
    assert took < 5 / 2 and saved(runtime) == 0


def test_the_budget_covers_both_auth_schemes_together(fake_circle, api, runtime, monkeypatch):
    # Bearer is refused (401) only after most of the budget; the Token retry gets what is left, not a budget of its
    # own, so the whole check still ends within the budget.
    fake_circle.accepted_schemes = ("Token",)
    latency = 0.6
    fake_circle.set_latency(latency)
    monkeypatch.setenv("CIRCLE_VERIFY_TIMEOUT", str(latency * 1.5))
    r = api.post("/api/v1/integrations", json={"app": "circle", "name": "C", "config": CONFIG})
    assert r.status_code == 504, r.json
    assert [q.headers["Authorization"].split()[0] for q in fake_circle.requests] == ["Bearer", "Token"]
    monkeypatch.setenv("CIRCLE_VERIFY_TIMEOUT", str(latency * 4))  # room for both answers: connected
    assert api.post("/api/v1/integrations", json={"app": "circle", "name": "C", "config": CONFIG}).status_code == 201


def test_a_refresh_that_times_out_fails_its_task_and_leaves_the_connection_connected(
    circle, fake_circle, api, runtime, monkeypatch
):
    iid = circle.connect()
    monkeypatch.setenv("CIRCLE_TIMEOUT", "0.5")
    fake_circle.fail_next(1, "timeout", path="/spaces")  # the answer never comes
    task = refresh(api, runtime, iid, expect="failed")
    assert "Circle did not answer within 0.5 seconds (ReadTimeout)" in task["message"], task
    shown = api.get(f"/api/v1/integrations/{iid}").json
    assert shown["status"] == "connected" and shown["refreshed_at"] is None
