"""Connecting Circle: verify with one cheap call, a distinct message for each way it fails, refresh."""

import logging

import pytest
from sqlalchemy import func, select

from hookyard.models import Integration

from ..tasking import refresh
from .fixtures import API_KEY


def integrations_saved(runtime):
    with runtime.db.session() as s:
        return s.scalar(select(func.count()).select_from(Integration))


def test_connecting_verifies_with_one_call_and_masks_the_key(circle, fake_circle, api):
    iid = circle.connect()
    [call] = fake_circle.requests
    assert (call.method, call.path, call.headers["Authorization"]) == ("GET", "/community", f"Bearer {API_KEY}")
    shown = api.get(f"/api/v1/integrations/{iid}").json
    # plan: the default (business) is stored, so the quota it implies is what the connection shows.
    assert shown["config"] == {
        "api_key": "********",
        "community_url": "https://test-community.circle.so",
        "plan": "business",
    }
    assert shown["status"] == "connected"


@pytest.mark.parametrize(
    "arrange, key, message, field",
    [
        (lambda f: None, "wrong-key-0000", "Circle rejected this API key", "api_key"),
        (lambda f: f.add_token("v1-token-123456", "admin_v1"), "v1-token-123456", "not an Admin V2 token", "api_key"),
        (lambda f: setattr(f, "plan_eligible", False), API_KEY, "Business plan or above", "_schema"),
    ],
)
def test_each_refusal_has_its_own_message_and_saves_nothing(
    circle, fake_circle, api, runtime, arrange, key, message, field
):
    arrange(fake_circle)
    r = api.post(
        "/api/v1/integrations",
        json={
            "app": "circle",
            "name": "C",
            "config": {"api_key": key, "community_url": "https://test-community.circle.so"},
        },
    )
    assert r.status_code == 422
    assert message in r.json["message"]
    assert r.json["errors"]["json"]["config"][field] == [r.json["message"]]
    assert integrations_saved(runtime) == 0


def test_an_unreachable_circle_is_a_clear_422(api, runtime, monkeypatch):
    from hookyard.localredis import free_port

    monkeypatch.setenv("CIRCLE_API_BASE_URL", f"http://127.0.0.1:{free_port()}/api/admin/v2")
    r = api.post(
        "/api/v1/integrations",
        json={
            "app": "circle",
            "name": "C",
            "config": {"api_key": API_KEY, "community_url": "https://test-community.circle.so"},
        },
    )
    assert r.status_code == 422 and r.json["message"].startswith("Could not reach Circle at 127.0.0.1")
    assert integrations_saved(runtime) == 0


def test_a_community_that_wants_the_token_scheme_is_remembered(circle, fake_circle, api, runtime):
    fake_circle.accepted_schemes = ("Token",)
    iid = circle.connect()
    assert [r.headers["Authorization"].split()[0] for r in fake_circle.requests] == ["Bearer", "Token"]
    fake_circle.reset_requests()
    refresh(api, runtime, iid)
    # Re-verifying tries the scheme that worked first: one call, no refused (and quota-counted) Bearer attempt.
    assert [r.headers["Authorization"].split()[0] for r in fake_circle.requests_for("GET", "/community")] == ["Token"]
    lists = [r for r in fake_circle.requests if r.path != "/community"]
    assert lists and {r.headers["Authorization"].split()[0] for r in lists} == {"Token"}


def test_refresh_loads_every_page_of_every_list(circle, fake_circle, community, api, runtime):
    for i in range(250):
        fake_circle.add_space(f"Space {i}")
    iid = circle.connect()
    fake_circle.reset_requests()
    task = refresh(api, runtime, iid)
    assert api.get(f"/api/v1/integrations/{iid}").json["refreshed_at"]
    # 252 spaces, 2 groups, 2 events and 2 tags, out of the total the first pages' counts announced.
    assert (task["done"], task["total"]) == (258, 258)
    options = api.get(f"/api/v1/integrations/{iid}/options").json
    assert len(options["spaces"]) == 252
    assert {g["name"] for g in options["space_groups"]} == {"Members", "VIP"}
    assert [e["name"] for e in options["events"]] == ["Kick-off call", "Q&A"]
    assert {t["name"] for t in options["member_tags"]} == {"Customer", "Refunded"}
    paths = [(r.path, r.query.get("page"), r.query.get("per_page")) for r in fake_circle.requests]
    assert paths[0] == ("/community", None, None)
    assert [p for p in paths if p[0] == "/spaces"] == [
        ("/spaces", "1", "100"),
        ("/spaces", "2", "100"),
        ("/spaces", "3", "100"),
    ]
    events = fake_circle.requests_for("GET", "/events")[0].query
    assert events["sort"] == "start_date" and "filter_date[start_date]" in events
    # Rule building reads the cache: no more calls to Circle.
    calls = len(fake_circle.requests)
    api.get(f"/api/v1/integrations/{iid}/options")
    assert len(fake_circle.requests) == calls


def test_past_events_are_not_offered(circle, fake_circle, api, runtime):
    from datetime import datetime, timedelta, timezone

    fake_circle.add_event("Last year's launch", datetime.now(timezone.utc) - timedelta(days=365))
    iid = circle.connect()
    refresh(api, runtime, iid)
    names = [e["name"] for e in api.get(f"/api/v1/integrations/{iid}/options").json["events"]]
    assert "Last year's launch" not in names


def test_rules_must_use_ids_from_the_refreshed_lists(circle, community, api, runtime):
    iid = circle.connect()
    refresh(api, runtime, iid)
    r = api.post(
        "/api/v1/rules",
        json={
            "product_id": None,
            "trigger": "samcart.product_purchased",
            "integration_id": iid,
            "action": "add_member_to_space_group",
            "params": {"space_group_id": 987654},
        },
    )
    assert r.status_code == 422
    assert (
        "987654 not found in the integration's space_groups" in r.json["errors"]["json"]["params"]["space_group_id"][0]
    )
    r = api.post(
        "/api/v1/rules",
        json={
            "product_id": None,
            "trigger": "samcart.product_purchased",
            "integration_id": iid,
            "action": "invite_member",
            "params": {"space_ids": [community.space2, 555]},
        },
    )
    assert r.status_code == 422 and "555 not found" in r.json["errors"]["json"]["params"]["space_ids"][0]


def test_the_key_never_appears_in_responses_or_logs(circle, fake_circle, api, runtime, caplog):
    caplog.set_level(logging.DEBUG)
    iid = circle.connect()
    task = refresh(api, runtime, iid)
    bodies = [
        api.get(p).get_data(as_text=True)
        for p in (
            "/api/v1/integrations",
            f"/api/v1/integrations/{iid}",
            f"/api/v1/integrations/{iid}/options",
            "/api/v1/apps/circle",
            f"/api/v1/tasks/{task['id']}",
        )
    ]
    bodies.append(api.post(f"/api/v1/integrations/{iid}/refresh").get_data(as_text=True))
    bodies.append(
        api.post(
            "/api/v1/integrations",
            json={
                "app": "circle",
                "name": "Bad",
                "config": {"api_key": API_KEY + "x", "community_url": "https://x.circle.so"},
            },
        ).get_data(as_text=True)
    )
    for body in bodies:
        assert API_KEY not in body
    assert API_KEY not in caplog.text


def test_a_busy_circle_during_refresh_does_not_flag_the_connection(circle, fake_circle, api, runtime):
    iid = circle.connect()
    fake_circle.fail_next(1, "503", path="/spaces")
    task = refresh(api, runtime, iid, expect="failed")
    assert "try again" in task["message"]
    assert api.get(f"/api/v1/integrations/{iid}").json["status"] == "connected"


def test_what_verify_learned_is_shown(circle, api):
    info = api.get(f"/api/v1/integrations/{circle.connect()}").json["info"]
    assert info["community_name"] == "Test Community" and info["auth_scheme"] == "Bearer"
    assert info["community_url_matches"] is True
