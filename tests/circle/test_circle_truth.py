"""Connections that tell the truth (issue 11), against the fake Circle over real HTTP: a community URL that is not
the key's community is a warning on the connection (API and page), a refresh that fails for a passing reason is
a warning with when to try again (a refusal flags the connection), and Circle's answers as its own spec gives them
(circle-api.md §9): a missing event called "post" or "posts/event", error_details as a string or an array, a
plain 401 for a v1 token on verify."""

import pytest
from sqlalchemy import select

from hookyard import RunContext
from hookyard.models import Integration
from hookyard_circle import actions

from ..tasking import refresh
from ..web.session import WebClient, add_user
from .fixtures import API_KEY
from .test_circle_outcomes import only_run


def connect(api, url, name="Community", api_key=API_KEY):
    return api.post(
        "/api/v1/integrations",
        json={"app": "circle", "name": name, "config": {"api_key": api_key, "community_url": url}},
    )


# --- 1. the community URL --------------------------------------------------------------------------------------


def test_a_url_of_another_community_is_accepted_with_a_warning_naming_the_keys_community(circle, api, runtime, app):
    r = connect(api, "https://other-community.circle.so")
    assert r.status_code == 201, r.json
    [warning] = r.json["warnings"]
    assert warning["code"] == "community_url_mismatch"
    assert "“Test Community” (test-community.circle.so)" in warning["message"]
    assert "https://other-community.circle.so" in warning["message"]
    assert "warnings" not in r.json["info"] and r.json["info"]["community_url_matches"] is False
    iid = r.json["id"]
    # Re-verified by every refresh: the warning stays while the URL is wrong.
    refresh(api, runtime, iid)
    assert [w["code"] for w in api.get(f"/api/v1/integrations/{iid}").json["warnings"]] == ["community_url_mismatch"]
    # The connection page shows it as a banner.
    add_user(runtime, "owner@example.com", "owner")
    page = WebClient(app).sign_in("owner@example.com").get(f"/integrations/{iid}").text
    assert 'data-warning="community_url_mismatch"' in page and "test-community.circle.so" in page
    # Correcting the URL clears it.
    fixed = api.patch(
        f"/api/v1/integrations/{iid}", json={"config": {"community_url": "https://test-community.circle.so"}}
    )
    assert fixed.status_code == 200 and fixed.json["warnings"] == []
    assert "data-warning=" not in WebClient(app).sign_in("owner@example.com").get(f"/integrations/{iid}").text


def test_the_keys_own_address_has_no_warning(circle, api):
    r = connect(api, "https://test-community.circle.so")
    assert r.status_code == 201 and r.json["warnings"] == []
    assert api.get("/api/v1/integrations").json[0]["warnings"] == []


# --- 2. a failed refresh ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["503", "429"])
def test_a_passing_refresh_failure_keeps_the_connection_with_a_warning_until_a_refresh_succeeds(
    circle, fake_circle, api, runtime, kind
):
    iid = circle.connect()
    refresh(api, runtime, iid)
    fake_circle.fail_next(1, kind, path="/spaces")
    task = refresh(api, runtime, iid, expect="failed")
    shown = api.get(f"/api/v1/integrations/{iid}").json
    assert shown["status"] == "connected" and shown["status_reason"] is None
    [warning] = shown["warnings"]
    assert warning["code"] == "refresh_failed"
    assert task["message"] in warning["message"] and "refresh again after" in warning["message"]
    # A second failure replaces it rather than piling up; a refresh that succeeds clears it.
    fake_circle.fail_next(1, kind, path="/spaces")
    refresh(api, runtime, iid, expect="failed")
    assert len(api.get(f"/api/v1/integrations/{iid}").json["warnings"]) == 1
    refresh(api, runtime, iid)
    assert api.get(f"/api/v1/integrations/{iid}").json["warnings"] == []


def test_a_refused_refresh_marks_the_connection_needs_attention(circle, fake_circle, api, runtime):
    iid = circle.connect()
    fake_circle.fail_next(1, "503", path="/spaces")
    refresh(api, runtime, iid, expect="failed")  # a passing failure first: its warning is replaced by the status
    fake_circle.accepted_schemes = ()  # the key was revoked
    task = refresh(api, runtime, iid, expect="failed")
    shown = api.get(f"/api/v1/integrations/{iid}").json
    assert shown["status"] == "needs_attention" and shown["status_reason"] == task["message"]
    assert "Circle rejected this API key" in task["message"]
    assert shown["warnings"] == []  # the status says it; no second copy
    fake_circle.accepted_schemes = ("Bearer", "Token")
    refresh(api, runtime, iid)
    assert api.get(f"/api/v1/integrations/{iid}").json["status"] == "connected"


# --- 3. Circle's answers as its spec gives them (§9) -----------------------------------------------------------

V1_HINT = "If this looks like an Admin API v1 token: create an Admin V2 token under Settings → Developers."


@pytest.mark.parametrize(
    "token, arrange",
    [
        (
            "v1-token-123456",
            lambda f: (f.add_token("v1-token-123456", "admin_v1"), setattr(f, "wrong_token_status", 401)),
        ),
        ("mistyped-key-0000", lambda f: None),
    ],
)
def test_every_401_on_verify_suggests_a_v1_token(circle, fake_circle, api, runtime, token, arrange):
    arrange(fake_circle)
    r = connect(api, "https://test-community.circle.so", api_key=token)
    assert r.status_code == 422 and V1_HINT in r.json["message"]
    assert r.json["errors"]["json"]["config"]["api_key"] == [r.json["message"]]
    # Both schemes were tried; nothing was saved.
    assert [q.headers["Authorization"].split()[0] for q in fake_circle.requests] == ["Bearer", "Token"]
    with runtime.db.session() as s:
        assert s.scalars(select(Integration)).first() is None


def context(community, params, email=None):
    return RunContext(
        run_id=1,
        attempt=1,
        trigger="t",
        email=email or community.member,
        payload={},
        params=params,
        config={"api_key": API_KEY},
        info={},
        options={},
    )


@pytest.mark.parametrize("shape", ["object", "string", "array"])
@pytest.mark.parametrize("model", ["post", "posts/event", "event"])
def test_a_deleted_event_fails_both_rsvp_and_unrsvp_naming_it(fake_circle, community, model, shape):
    fake_circle.missing_event_record, fake_circle.error_details_shape = model, shape
    fake_circle.delete_event(community.event1)  # the member was RSVP'd to it
    for run in (actions.rsvp_member_to_event, actions.unrsvp_member_from_event):
        outcome = run(context(community, {"event_id": community.event1}))
        assert (outcome.status, outcome.retryable) == ("failed", False), outcome
        assert outcome.reason.startswith(f"Circle has no event {community.event1} any more: refresh the integration")


@pytest.mark.parametrize("shape", ["string", "array"])
def test_error_details_as_a_string_or_an_array_are_read(fake_circle, community, shape):
    fake_circle.error_details_shape = shape
    outsider = actions.add_member_tag(context(community, {"member_tag_id": community.tag2}, "outsider@example.com"))
    assert (outsider.status, outsider.reason) == (
        "skipped",
        "outsider@example.com is not a member of the Circle community (invite them first)",
    )
    absent = actions.remove_member_from_space(context(community, {"space_id": community.space2}))
    assert (absent.status, absent.reason) == ("succeeded", f"{community.member} was not in the space")
    stale = actions.add_member_to_space(context(community, {"space_id": 424242}))
    assert stale.status == "failed" and stale.reason.startswith("Circle has no space 424242 any more")


def test_unrsvp_from_an_event_deleted_in_circle_is_not_logged_as_success(
    circle, community, api, fake_circle, circle_worker, runtime
):
    iid = circle.connect()
    refresh(api, runtime, iid)
    circle.rule(iid, "unrsvp_member_from_event", {"event_id": community.event1})
    fake_circle.delete_event(community.event1)  # as Circle answers it: "Missing record: post"
    circle_worker()
    run, _ = only_run(api, circle.emit(community.member))
    assert run["status"] == "failed" and run["attempts"] == 1
    assert run["reason"].startswith(f"Circle has no event {community.event1} any more")
