"""Each of the ten actions end to end: REST API → real worker → the fake Circle, exact requests."""

import pytest

from ..tasking import refresh
from ..waiting import wait_for
from .fixtures import API_KEY

pytestmark = pytest.mark.e2e


def finished_runs(api, event_id):
    runs = runs_of(api, event_id)
    return runs if runs and all(r["status"] not in ("queued", "running") for r in runs) else None


def wait_runs(api, event_id, timeout=30):
    return wait_for(
        lambda: finished_runs(api, event_id),
        timeout=timeout,
        message=lambda: (
            f"event {event_id} did not finish (its runs: "
            f"{[(r['id'], r['status'], r['attempts'], r['reason']) for r in runs_of(api, event_id)]})"
        ),
    )


def runs_of(api, event_id):
    return api.get(f"/api/v1/events/{event_id}").json["runs"]


def expected_calls(c):
    """(trigger, action, params, email, [(method, path, query, json)]) — what Circle must receive."""
    m, new, leaver = c.member, "new@example.com", "leaver@example.com"
    return [
        (
            "samcart.product_purchased",
            "invite_member",
            {"space_ids": [c.space2], "space_group_ids": [c.group2], "member_tag_ids": [c.tag2]},
            new,
            [
                (
                    "POST",
                    "/community_members",
                    {},
                    {
                        "email": new,
                        "name": "Ada Lovelace",
                        "skip_invitation": False,
                        "space_ids": [c.space2],
                        "space_group_ids": [c.group2],
                        "member_tag_ids": [c.tag2],
                    },
                )
            ],
        ),
        (
            "samcart.product_refunded",
            "remove_member",
            {},
            leaver,
            [
                ("GET", "/community_members/search", {"email": leaver}, None),
                ("DELETE", "/community_members/{leaver_id}", {}, None),
            ],
        ),
        (
            "samcart.subscription_started",
            "add_member_to_space",
            {"space_id": c.space2},
            m,
            [("POST", "/space_members", {}, {"email": m, "space_id": c.space2})],
        ),
        (
            "samcart.subscription_canceled",
            "remove_member_from_space",
            {"space_id": c.space1},
            m,
            [("DELETE", "/space_members", {"email": m, "space_id": str(c.space1)}, None)],
        ),
        (
            "samcart.subscription_recovered",
            "add_member_to_space_group",
            {"space_group_id": c.group2},
            m,
            [("POST", "/space_group_members", {}, {"email": m, "space_group_id": c.group2})],
        ),
        (
            "samcart.subscription_delinquent",
            "remove_member_from_space_group",
            {"space_group_id": c.group1},
            m,
            [("DELETE", "/space_group_members", {"email": m, "space_group_id": str(c.group1)}, None)],
        ),
        (
            "samcart.course_enrolled",
            "rsvp_member_to_event",
            {"event_id": c.event2},
            m,
            [("POST", "/event_attendees", {}, {"event_id": str(c.event2), "member_email": m})],
        ),
        (
            "samcart.course_removed",
            "unrsvp_member_from_event",
            {"event_id": c.event1},
            m,
            [("DELETE", "/event_attendees", {}, {"event_id": str(c.event1), "member_email": m})],
        ),
        (
            "samcart.course_completed",
            "add_member_tag",
            {"member_tag_id": c.tag2},
            m,
            [("POST", "/tagged_members", {}, {"member_tag_id": c.tag2, "user_email": m})],
        ),
        (
            "samcart.product_partially_refunded",
            "remove_member_tag",
            {"member_tag_id": c.tag1},
            m,
            [("DELETE", "/tagged_members", {"user_email": m, "member_tag_id": str(c.tag1)}, None)],
        ),
    ]


def test_each_action_sends_exactly_the_expected_requests_and_logs_success(
    circle, fake_circle, community, api, circle_worker, runtime
):
    iid = circle.connect()
    refresh(api, runtime, iid)  # rule parameters are checked against the lists
    leaver_id = fake_circle.member("leaver@example.com")["id"]
    cases = expected_calls(community)
    for trigger, action, params, *_ in cases:
        circle.rule(iid, action, params, trigger=trigger)
    circle_worker()
    for trigger, action, _params, email, calls in cases:
        fake_circle.reset_requests()
        event_id = circle.emit(email, trigger=trigger, first_name="Ada", last_name="Lovelace")
        [run] = wait_runs(api, event_id)
        assert (run["action"], run["status"]) == (action, "succeeded"), run
        sent = [(r.method, r.path, r.query, r.json) for r in fake_circle.requests]
        want = [(mth, path.format(leaver_id=leaver_id), q, j) for mth, path, q, j in calls]
        assert sent == want, action
        assert all(r.headers["Authorization"] == f"Bearer {API_KEY}" for r in fake_circle.requests)
        detail = api.get(f"/api/v1/logs/{run['id']}").json
        assert detail["history"][-1]["details"]["circle_calls"] == len(calls)

    member = fake_circle.member(community.member)
    assert member["spaces"] == {community.space2}  # added to 2; removed from 1 (and group 1 took its space)
    assert member["space_groups"] == {community.group2}
    assert member["events"] == {community.event2}
    assert member["member_tags"] == {community.tag2}
    assert fake_circle.member("leaver@example.com") is None
    assert fake_circle.invitations_sent == ["new@example.com"]
    # remove_member used the plain delete, never the delete-with-posts or ban endpoints
    assert not [r for r in fake_circle.requests if r.path.endswith(("/delete_member", "/ban_member"))]
