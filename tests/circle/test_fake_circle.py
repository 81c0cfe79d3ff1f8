"""The fake Circle Admin API v2 server: it must answer like circle-api.md says Circle does, because the
Circle plugin's tests trust it. Everything goes through real HTTP with `requests`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import requests

from hookyard_circle.fake import FakeCircle

from ..waiting import wait_for

MISSING = "Oops! Missing record. Please try again later."
NOW = datetime.now(timezone.utc)


@pytest.fixture
def fake():
    with FakeCircle() as server:
        yield server


@pytest.fixture
def session(fake):
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {fake.api_key}"
        yield s


@pytest.fixture
def api(fake, session):
    """call(method, path, **requests_kwargs) against the fake's base URL, authenticated."""

    def call(method, path, **kwargs):
        kwargs.setdefault("timeout", 5)
        return session.request(method, fake.base_url + path, **kwargs)

    return call


@pytest.fixture
def ada(fake):
    return fake.add_member("ada@example.com", name="Ada Lovelace")


def assert_missing(response, model):
    assert response.status_code == 404
    assert response.json() == {
        "success": False,
        "message": MISSING,
        "error_details": {"message": f"Missing record: {model}"},
    }


def assert_error(response, status, message):
    assert response.status_code == status
    assert response.json() == {"success": False, "message": message, "error_details": {}}


def get_as(fake, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    return requests.get(fake.base_url + "/community", headers=headers, timeout=5)


# ---------------------------------------------------------------------------------------------- auth


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key", "Basic test-admin-v2-key", "test-admin-v2-key"])
def test_a_missing_or_invalid_token_is_401(fake, authorization):
    assert_error(get_as(fake, authorization), 401, "The API token is invalid.")


@pytest.mark.parametrize("scheme", ["Bearer", "Token"])
def test_both_auth_schemes_work_by_default(fake, scheme):
    assert get_as(fake, f"{scheme} {fake.api_key}").status_code == 200


def test_accepted_schemes_can_be_narrowed(fake):
    fake.accepted_schemes = ("Token",)
    assert get_as(fake, f"Bearer {fake.api_key}").status_code == 401
    assert get_as(fake, f"Token {fake.api_key}").status_code == 200


@pytest.mark.parametrize("token_type", ["admin_v1", "headless"])
def test_a_token_of_another_type_is_403(fake, token_type):
    fake.add_token("other-token", token_type)
    assert_error(get_as(fake, "Bearer other-token"), 403, "Your API token type does not have access to this API.")


def test_a_token_of_another_type_can_be_a_plain_401_as_reported_for_v1_tokens(fake):
    fake.add_token("v1-token", "admin_v1")
    fake.wrong_token_status = 401
    assert_error(get_as(fake, "Bearer v1-token"), 401, "The API token is invalid.")


def test_extra_admin_v2_tokens_work(fake):
    fake.add_token("second-key")
    assert get_as(fake, "Bearer second-key").status_code == 200


def test_a_community_without_an_eligible_plan_is_403(fake):
    fake.plan_eligible = False
    assert_error(get_as(fake, f"Bearer {fake.api_key}"), 403, "The community is not eligible for admin API v2 access.")


# ---------------------------------------------------------------------------------------------- routing


def test_an_unknown_path_is_404_not_found(api):
    assert_error(api("GET", "/nope"), 404, "Not found")


def test_a_known_path_with_the_wrong_method_is_405(api):
    r = api("PATCH", "/space_members")
    assert r.status_code == 405
    assert "DELETE" in r.headers["Allow"]


def test_malformed_json_is_400(api):
    r = api("POST", "/space_members", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400


# ---------------------------------------------------------------------------------------------- community and members


def test_community_describes_the_tokens_community(api):
    assert api("GET", "/community").json() == {
        "id": 4242,
        "name": "Test Community",
        "slug": "test-community",
        "locale": "en",
        "is_private": False,
        "prefs": {},
        "community_setting": {},
    }


def test_search_finds_a_member_case_insensitively(fake, api, ada):
    tag = fake.add_member_tag("VIP")
    api("POST", "/tagged_members", json={"member_tag_id": tag, "user_email": "ada@example.com"})
    found = api("GET", "/community_members/search", params={"email": "ADA@Example.com"}).json()
    assert found["id"] == ada and found["email"] == "ada@example.com"
    assert (found["first_name"], found["last_name"], found["active"]) == ("Ada", "Lovelace", True)
    assert found["member_tags"] == [{"id": tag, "name": "VIP"}]
    assert {"accepted_invitation", "public_uid", "profile_url", "user_id"} <= found.keys()


def test_search_needs_a_plus_in_an_email_url_encoded(fake, api):
    fake.add_member("ada+circle@example.com")
    assert api("GET", "/community_members/search", params={"email": "ada+circle@example.com"}).status_code == 200
    raw = api("GET", "/community_members/search?email=ada+circle@example.com")  # `+` decodes to a space
    assert_missing(raw, "community member")


def test_search_for_a_non_member_is_404(api):
    assert_missing(api("GET", "/community_members/search", params={"email": "nobody@example.com"}), "community member")


def test_invite_creates_an_inactive_member_and_sends_an_invitation(fake, api):
    r = api("POST", "/community_members", json={"email": "Bob@Example.com", "name": "Bob"})
    assert r.status_code == 201
    assert r.json()["message"]
    assert r.json()["community_member"]["active"] is False
    assert fake.member("bob@example.com")["active"] is False
    assert fake.invitations_sent == ["bob@example.com"]


def test_invite_with_skip_invitation_sends_no_email(fake, api):
    r = api("POST", "/community_members", json={"email": "bob@example.com", "skip_invitation": True})
    assert r.status_code == 201
    assert fake.invitations_sent == []
    assert fake.member("bob@example.com")["active"] is False


def test_skip_invitation_can_create_an_active_member(fake, api):
    fake.skip_invitation_creates_active = True
    api("POST", "/community_members", json={"email": "bob@example.com", "skip_invitation": True})
    assert fake.member("bob@example.com")["active"] is True


def test_invite_applies_spaces_groups_and_tags(fake, api):
    space, group, tag = fake.add_space("Lobby"), fake.add_space_group("Paid"), fake.add_member_tag("VIP")
    in_group = fake.add_space("Paid Lounge", space_group_id=group)
    r = api(
        "POST",
        "/community_members",
        json={"email": "bob@example.com", "space_ids": [space], "space_group_ids": [group], "member_tag_ids": [tag]},
    )
    assert r.status_code == 201
    assert "Lobby" in r.json()["message"] and "Paid" in r.json()["message"]
    bob = fake.member("bob@example.com")
    assert (bob["spaces"], bob["space_groups"], bob["member_tags"]) == ({space, in_group}, {group}, {tag})


@pytest.mark.parametrize("email", ["", "not-an-email", "a@b", None])
def test_invite_with_an_invalid_email_is_422(fake, api, email):
    assert_error(api("POST", "/community_members", json={"email": email}), 422, "Invalid email address.")
    assert fake.invitations_sent == []


@pytest.mark.parametrize(
    "field, model", [("space_ids", "space"), ("space_group_ids", "space group"), ("member_tag_ids", "member tag")]
)
def test_invite_with_an_unknown_id_is_404_and_creates_nobody(fake, api, field, model):
    assert_missing(api("POST", "/community_members", json={"email": "bob@example.com", field: [999999]}), model)
    assert fake.member("bob@example.com") is None


@pytest.mark.parametrize("status", [200, 201])
def test_inviting_an_existing_member_says_already_and_applies_the_ids(fake, api, ada, status):
    fake.existing_member_status = status
    space = fake.add_space("Lobby")
    r = api("POST", "/community_members", json={"email": "ada@example.com", "space_ids": [space]})
    assert r.status_code == status
    assert "already a member" in r.json()["message"]
    assert fake.member("ada@example.com")["spaces"] == {space}
    assert fake.invitations_sent == []


def test_inviting_an_existing_member_can_be_422(fake, api, ada):
    fake.existing_member_invite = "422"
    space = fake.add_space("Lobby")
    r = api("POST", "/community_members", json={"email": "ada@example.com", "space_ids": [space]})
    assert_error(r, 422, "Email has already been taken")
    assert fake.member("ada@example.com")["spaces"] == set()


def test_concurrent_invites_are_all_applied(fake):
    emails = [f"member{i}@example.com" for i in range(40)]
    auth = {"Authorization": f"Bearer {fake.api_key}"}

    def invite(email):  # one connection per call: a requests.Session is not meant to be shared by threads
        return requests.post(
            fake.base_url + "/community_members", json={"email": email}, headers=auth, timeout=5
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(invite, emails))
    assert statuses == [201] * 40
    assert sorted(fake.invitations_sent) == sorted(emails)
    assert fake.quota_used == 40


def test_the_daily_member_limit_refuses_further_invites(fake, api):
    fake.daily_member_limit = 1
    assert api("POST", "/community_members", json={"email": "one@example.com"}).status_code == 201
    r = api("POST", "/community_members", json={"email": "two@example.com"})
    assert r.status_code == 403
    assert r.json() == {"success": False, "errors": "Daily member limit exceeded."}
    assert fake.member("two@example.com") is None


def test_the_plan_member_cap_refuses_invites(fake, api, ada):
    fake.plan_member_limit = 1
    r = api("POST", "/community_members", json={"email": "two@example.com"})
    assert r.status_code == 403
    assert "maximum limit of members" in r.json()["errors"]


def test_remove_member_by_id(fake, api, ada):
    r = api("DELETE", f"/community_members/{ada}")
    assert r.json() == {"message": "The community member has been removed from the community."}
    assert fake.member("ada@example.com") is None
    assert_missing(api("DELETE", f"/community_members/{ada}"), "community member")
    assert_missing(api("DELETE", "/community_members/not-a-number"), "community member")


@pytest.mark.parametrize("action", ["delete_member", "ban_member"])
def test_destructive_member_endpoints_exist_so_their_absence_can_be_asserted(fake, api, ada, action):
    assert api("PUT", f"/community_members/{ada}/{action}").status_code == 200
    assert len(fake.requests_for("PUT", f"/community_members/{ada}/{action}")) == 1


def test_list_members_filters_by_status(fake, api, ada):
    fake.add_member("bob@example.com", active=False)

    def emails(status):
        return [m["email"] for m in api("GET", "/community_members", params={"status": status}).json()["records"]]

    assert emails("active") == ["ada@example.com"]
    assert emails("inactive") == ["bob@example.com"]


# ---------------------------------------------------------------------------------------------- spaces


def test_add_show_and_remove_a_space_member(fake, api, ada):
    space = fake.add_space("Lobby")
    r = api("POST", "/space_members", json={"email": "ada@example.com", "space_id": space})
    assert (r.status_code, r.json()) == (200, {"message": "User added to space"})
    shown = api("GET", "/space_member", params={"email": "ada@example.com", "space_id": space}).json()
    assert (shown["space_id"], shown["community_member_id"], shown["status"]) == (space, ada, "active")
    assert shown["community_member"]["email"] == "ada@example.com"
    assert {"id", "access_type", "moderator"} <= shown.keys()
    r = api("DELETE", "/space_members", params={"email": "ada@example.com", "space_id": space})
    assert r.json() == {"message": "Member removed from space"}
    assert fake.member("ada@example.com")["spaces"] == set()


@pytest.mark.parametrize("method, path", [("DELETE", "/space_members"), ("GET", "/space_member")])
def test_space_membership_lookups_say_what_is_missing(fake, api, ada, method, path):
    space = fake.add_space("Lobby")
    assert_missing(api(method, path, params={"email": "ada@example.com", "space_id": 999999}), "space")
    assert_missing(api(method, path, params={"email": "nobody@example.com", "space_id": space}), "user")
    assert_missing(api(method, path, params={"email": "ada@example.com", "space_id": space}), "space member")


def test_adding_to_a_space_needs_the_space_and_the_member(fake, api, ada):
    space = fake.add_space("Lobby")
    assert_missing(api("POST", "/space_members", json={"email": "ada@example.com", "space_id": 999999}), "space")
    assert_missing(api("POST", "/space_members", json={"email": "nobody@example.com", "space_id": space}), "user")


def test_adding_to_a_space_twice_is_ok_by_default_or_422(fake, api, ada):
    space = fake.add_space("Lobby")
    body = {"email": "ada@example.com", "space_id": space}
    api("POST", "/space_members", json=body)
    assert api("POST", "/space_members", json=body).json() == {"message": "User added to space"}
    fake.already_in_space = "422"
    assert_error(api("POST", "/space_members", json=body), 422, "User not added to space.")


# ---------------------------------------------------------------------------------------------- space groups


def test_adding_to_a_space_group_grants_its_spaces_and_is_idempotent(fake, api, ada):
    group = fake.add_space_group("Paid")
    spaces = {fake.add_space("A", space_group_id=group), fake.add_space("B", space_group_id=group)}
    body = {"email": "ada@example.com", "space_group_id": group}
    assert api("POST", "/space_group_members", json=body).json() == {
        "success": True,
        "message": "User has been added to the space group.",
    }
    assert api("POST", "/space_group_members", json=body).json() == {
        "success": True,
        "message": "User is already added to the space group.",
    }
    assert fake.member("ada@example.com")["spaces"] == spaces


def test_adding_a_non_member_to_a_space_group_is_422(fake, api):
    group = fake.add_space_group("Paid")
    r = api("POST", "/space_group_members", json={"email": "nobody@example.com", "space_group_id": group})
    assert_error(r, 422, "User is not a member of community")
    assert_missing(
        api("POST", "/space_group_members", json={"email": "x@example.com", "space_group_id": 999999}), "space group"
    )


def test_show_and_remove_a_space_group_member(fake, api, ada):
    group = fake.add_space_group("Paid")
    fake.add_space("A", space_group_id=group)
    api("POST", "/space_group_members", json={"email": "ada@example.com", "space_group_id": group})
    shown = api("GET", "/space_group_member", params={"email": "ada@example.com", "space_group_id": group}).json()
    assert (shown["space_group_id"], shown["community_member_id"]) == (group, ada)
    r = api("DELETE", "/space_group_members", params={"email": "ada@example.com", "space_group_id": group})
    assert r.json() == {"success": True, "message": "User removed from the space group and its spaces"}
    ada_now = fake.member("ada@example.com")
    assert (ada_now["space_groups"], ada_now["spaces"]) == (set(), set())


def test_space_group_lookups_say_what_is_missing(fake, api, ada):
    group = fake.add_space_group("Paid")
    params = {"email": "ada@example.com", "space_group_id": group}
    assert_missing(api("GET", "/space_group_member", params={**params, "space_group_id": 999999}), "space group")
    assert_missing(api("GET", "/space_group_member", params={**params, "email": "no@example.com"}), "user")
    assert_missing(api("GET", "/space_group_member", params=params), "space group member")


def test_removing_from_a_space_group_is_ambiguous_about_the_user(fake, api, ada):
    group = fake.add_space_group("Paid")
    params = {"email": "ada@example.com", "space_group_id": group}
    assert_missing(api("DELETE", "/space_group_members", params=params), "user")  # not in the group
    assert_missing(api("DELETE", "/space_group_members", params={**params, "email": "no@example.com"}), "user")
    assert_missing(api("DELETE", "/space_group_members", params={**params, "space_group_id": 999999}), "space group")


# ---------------------------------------------------------------------------------------------- events


@pytest.mark.parametrize("as_string", [True, False])
def test_rsvp_and_unrsvp(fake, api, ada, as_string):
    event = fake.add_event("Q&A", NOW + timedelta(days=1))
    event_id = str(event) if as_string else event
    r = api("POST", "/event_attendees", json={"event_id": event_id, "member_email": "ada@example.com"})
    assert (r.status_code, r.json()) == (200, {"message": "RSVP'd to the event."})
    assert fake.member("ada@example.com")["events"] == {event}
    r = api("DELETE", "/event_attendees", json={"event_id": str(event), "member_email": "ada@example.com"})
    assert r.json() == {"message": "Un-RSVP successful from the event"}
    assert fake.member("ada@example.com")["events"] == set()


def test_rsvp_needs_the_event_and_the_member(fake, api, ada):
    event = fake.add_event("Q&A", NOW)
    # Circle calls a missing event a post (reference §9).
    assert_missing(
        api("POST", "/event_attendees", json={"event_id": "999999", "member_email": "ada@example.com"}), "post"
    )
    assert_missing(
        api("POST", "/event_attendees", json={"event_id": event, "member_email": "no@example.com"}), "community member"
    )


@pytest.mark.parametrize("model", ["posts/event", "event"])
def test_what_a_missing_event_is_called_is_switchable(fake, api, ada, model):
    fake.missing_event_record = model
    assert_missing(
        api("POST", "/event_attendees", json={"event_id": "999999", "member_email": "ada@example.com"}), model
    )


def test_a_deleted_event_is_missing_and_its_rsvps_are_gone(fake, api, ada):
    event = fake.add_event("Q&A", NOW)
    api("POST", "/event_attendees", json={"event_id": str(event), "member_email": "ada@example.com"})
    fake.delete_event(event)
    assert fake.member("ada@example.com")["events"] == set()
    assert_missing(
        api("DELETE", "/event_attendees", json={"event_id": str(event), "member_email": "ada@example.com"}), "post"
    )


@pytest.mark.parametrize("shape, details", [("string", "Missing record: space"), ("array", ["Missing record: space"])])
def test_error_details_can_be_a_string_or_an_array(fake, api, ada, shape, details):
    fake.error_details_shape = shape
    r = api("POST", "/space_members", json={"email": "ada@example.com", "space_id": 999999})
    assert (r.status_code, r.json()) == (404, {"success": False, "message": MISSING, "error_details": details})
    # Errors without a model keep their empty details.
    assert_error(get_as(fake, "Bearer wrong-key"), 401, "The API token is invalid.")


def test_rsvp_twice_is_ok_by_default_or_422(fake, api, ada):
    body = {"event_id": str(fake.add_event("Q&A", NOW)), "member_email": "ada@example.com"}
    api("POST", "/event_attendees", json=body)
    assert api("POST", "/event_attendees", json=body).status_code == 200
    fake.already_rsvped = "422"
    assert api("POST", "/event_attendees", json=body).status_code == 422


def test_rsvp_to_an_rsvp_disabled_event_is_switchable(fake, api, ada):
    body = {"event_id": str(fake.add_event("Q&A", NOW, rsvp_disabled=True)), "member_email": "ada@example.com"}
    fake.rsvp_disabled_event = "422"
    assert api("POST", "/event_attendees", json=body).status_code == 422
    fake.rsvp_disabled_event = "ok"
    assert api("POST", "/event_attendees", json=body).status_code == 200


def test_unrsvp_lookups_say_what_is_missing(fake, api, ada):
    event = str(fake.add_event("Q&A", NOW))
    assert_missing(
        api("DELETE", "/event_attendees", json={"event_id": "999999", "member_email": "ada@example.com"}), "post"
    )
    assert_missing(
        api("DELETE", "/event_attendees", json={"event_id": event, "member_email": "no@example.com"}),
        "community member",
    )
    assert_missing(
        api("DELETE", "/event_attendees", json={"event_id": event, "member_email": "ada@example.com"}), "event attendee"
    )


def test_unrsvp_with_query_parameters_is_422_unless_switched_on(fake, api, ada):
    event = fake.add_event("Q&A", NOW)
    params = {"event_id": str(event), "member_email": "ada@example.com"}
    api("POST", "/event_attendees", json=params)
    assert_error(api("DELETE", "/event_attendees", params=params), 422, "event_id and member_email are required")
    fake.unrsvp_accepts_query = True
    assert api("DELETE", "/event_attendees", params=params).status_code == 200


# ---------------------------------------------------------------------------------------------- tags


def test_tag_and_untag_a_member(fake, api, ada):
    tag = fake.add_member_tag("VIP")
    r = api("POST", "/tagged_members", json={"member_tag_id": tag, "user_email": "ada@example.com"})
    assert (r.status_code, r.json()) == (201, {"message": "Person tagged successfully!"})
    assert api("GET", f"/member_tags/{tag}").json()["tagged_members_count"] == 1
    r = api("DELETE", "/tagged_members", params={"member_tag_id": tag, "user_email": "ada@example.com"})
    assert r.json() == {"message": "Tag has been removed"}
    assert fake.member("ada@example.com")["member_tags"] == set()


def test_tagging_needs_the_tag_and_the_member(fake, api, ada):
    tag = fake.add_member_tag("VIP")
    assert_missing(
        api("POST", "/tagged_members", json={"member_tag_id": 999999, "user_email": "ada@example.com"}), "member tag"
    )
    assert_missing(api("POST", "/tagged_members", json={"member_tag_id": tag, "user_email": "no@example.com"}), "user")


def test_tagging_twice_is_ok_by_default_or_422(fake, api, ada):
    body = {"member_tag_id": fake.add_member_tag("VIP"), "user_email": "ada@example.com"}
    api("POST", "/tagged_members", json=body)
    assert api("POST", "/tagged_members", json=body).status_code == 201
    fake.already_tagged = "422"
    assert api("POST", "/tagged_members", json=body).status_code == 422


@pytest.mark.parametrize("case", ["unknown tag", "not tagged", "unknown user"])
def test_untag_failures_all_say_member_tag(fake, api, ada, case):
    tag = fake.add_member_tag("VIP")
    params = {
        "unknown tag": {"member_tag_id": 999999, "user_email": "ada@example.com"},
        "not tagged": {"member_tag_id": tag, "user_email": "ada@example.com"},
        "unknown user": {"member_tag_id": tag, "user_email": "no@example.com"},
    }[case]
    assert_missing(api("DELETE", "/tagged_members", params=params), "member tag")


def test_show_a_member_tag(fake, api):
    tag = fake.add_member_tag("VIP")
    shown = api("GET", f"/member_tags/{tag}").json()
    assert shown.keys() >= {"id", "name", "emoji", "color", "is_public", "tagged_members_count", "display_format"}
    assert (shown["id"], shown["name"]) == (tag, "VIP")
    assert_missing(api("GET", "/member_tags/999999"), "member tag")


def test_member_tags_filter_by_name(fake, api):
    fake.add_member_tag("VIP")
    vip_plus = fake.add_member_tag("VIP Plus")
    fake.add_member_tag("Beta")
    names = [t["name"] for t in api("GET", "/member_tags", params={"name": "vip"}).json()["records"]]
    assert names == ["VIP", "VIP Plus"]
    assert api("GET", "/member_tags", params={"name": "VIP Plus"}).json()["records"][0]["id"] == vip_plus


# ---------------------------------------------------------------------------------------------- lists


def test_pagination_over_250_spaces(fake, api):
    for i in range(250):
        fake.add_space(f"Space {i:03}")
    pages = [api("GET", "/spaces", params={"page": p, "per_page": 100}).json() for p in (1, 2, 3)]
    assert [len(p["records"]) for p in pages] == [100, 100, 50]
    assert [p["has_next_page"] for p in pages] == [True, True, False]
    assert {(p["count"], p["page_count"], p["per_page"]) for p in pages} == {(250, 3, 100)}
    assert len({s["id"] for p in pages for s in p["records"]}) == 250


def test_per_page_defaults_to_10_and_is_clamped_to_100(fake, api):
    for i in range(150):
        fake.add_space(f"Space {i}")
    default = api("GET", "/spaces").json()
    assert (default["page"], default["per_page"], len(default["records"]), default["page_count"]) == (1, 10, 10, 15)
    clamped = api("GET", "/spaces", params={"per_page": 500}).json()
    assert (clamped["per_page"], len(clamped["records"])) == (100, 100)


def test_spaces_carry_their_space_group(fake, api):
    group = fake.add_space_group("Paid")
    fake.add_space("Lobby")
    fake.add_space("Lounge", space_group_id=group, space_type="chat")
    lobby, lounge = api("GET", "/spaces").json()["records"]
    assert lobby["space_group"] is None
    assert lounge["space_group"] == {"id": group, "name": "Paid"}
    assert lounge.keys() >= {"id", "name", "slug", "space_type", "is_private", "url", "community_id"}
    assert lounge["space_type"] == "chat"


def test_space_groups_list(fake, api):
    group = fake.add_space_group("Paid")
    fake.add_space("Lounge", space_group_id=group)
    fake.add_space_group("Free")
    (paid,) = api("GET", "/space_groups", params={"name": "paid"}).json()["records"]
    assert (paid["id"], paid["spaces_count"]) == (group, 1)


def test_events_default_newest_first_sort_by_start_and_filter_by_date(fake, api):
    space = fake.add_space("Events", space_type="event")
    past = fake.add_event("Past", NOW - timedelta(days=3))
    later = fake.add_event("Later", NOW + timedelta(days=10), space_id=space)
    sooner = fake.add_event("Sooner", NOW + timedelta(days=2))

    def ids(**params):
        return [e["id"] for e in api("GET", "/events", params=params).json()["records"]]

    assert ids() == [sooner, later, past]
    assert ids(sort="start_date") == [past, sooner, later]
    assert ids(sort="start_date", **{"filter_date[start_date]": NOW.date().isoformat()}) == [sooner, later]
    (event,) = [e for e in api("GET", "/events").json()["records"] if e["id"] == later]
    assert event["space"] == {"id": space, "name": "Events", "slug": "events"}
    assert event["starts_at"].endswith("Z") and event["rsvp_disabled"] is False


# ---------------------------------------------------------------------------------------------- recording


def test_every_request_is_recorded_with_its_status(fake, api, ada):
    api("DELETE", "/space_members", params={"email": "ada@example.com", "space_id": "7"})
    api("POST", "/tagged_members", json={"member_tag_id": 1, "user_email": "ada@example.com"})
    delete, post = fake.requests
    assert (delete.method, delete.path, delete.query, delete.json, delete.status) == (
        "DELETE",
        "/space_members",
        {"email": "ada@example.com", "space_id": "7"},
        None,
        404,
    )
    assert (post.json, post.headers["authorization"]) == (
        {"member_tag_id": 1, "user_email": "ada@example.com"},
        f"Bearer {fake.api_key}",
    )
    assert fake.requests_for("post", "/tagged_members") == [post]
    fake.reset_requests()
    assert fake.requests == []


# ---------------------------------------------------------------------------------------------- faults


def add_ada_to(api, space, timeout=5):
    return api("POST", "/space_members", json={"email": "ada@example.com", "space_id": space}, timeout=timeout)


@pytest.mark.parametrize("kind", ["500", "502", "503"])
def test_server_errors_do_not_apply_and_do_not_count_against_the_quota(fake, api, ada, kind):
    space = fake.add_space("Lobby")
    fake.fail_next(1, kind)
    assert add_ada_to(api, space).status_code == int(kind)
    assert fake.member("ada@example.com")["spaces"] == set()
    assert fake.quota_used == 0
    assert add_ada_to(api, space).status_code == 200
    assert fake.quota_used == 1


@pytest.mark.parametrize("retry_after, header", [(None, None), (2, "2")])
def test_a_scripted_429_sends_retry_after_only_when_asked(fake, api, retry_after, header):
    fake.fail_next(1, "429", retry_after=retry_after)
    r = api("GET", "/community")
    assert (r.status_code, r.headers.get("Retry-After")) == (429, header)
    assert fake.rate_limited_count == 0  # only the rate limiter's own 429s count there


@pytest.mark.parametrize("kind, error", [("drop", requests.ConnectionError), ("timeout", requests.Timeout)])
def test_a_lost_request_is_not_applied(fake, api, ada, kind, error):
    space = fake.add_space("Lobby")
    fake.hold_seconds = 0.5
    fake.fail_next(1, kind)
    with pytest.raises(error):
        add_ada_to(api, space, timeout=0.2)
    assert fake.member("ada@example.com")["spaces"] == set()
    assert (fake.requests[-1].status, fake.quota_used) == (None, 0)


@pytest.mark.parametrize(
    "kind, error", [("drop_after_apply", requests.ConnectionError), ("timeout_after_apply", requests.Timeout)]
)
def test_a_lost_response_after_apply_still_changes_state(fake, api, ada, kind, error):
    space = fake.add_space("Lobby")
    fake.hold_seconds = 0.5
    fake.fail_next(1, kind)
    with pytest.raises(error):
        add_ada_to(api, space, timeout=0.2)
    wait_for(lambda: fake.member("ada@example.com")["spaces"] == {space}, timeout=5)
    assert fake.requests[-1].status is None


def test_fail_next_only_hits_matching_requests_and_counts_down(fake, api, ada):
    space = fake.add_space("Lobby")
    fake.fail_next(2, "503", path="/space_members", method="POST")
    assert api("GET", "/community").status_code == 200
    assert [add_ada_to(api, space).status_code for _ in range(3)] == [503, 503, 200]


def test_clear_faults_removes_pending_failures(fake, api):
    fake.fail_next(5, "500")
    fake.fail_randomly(1.0, ["503"])
    fake.rate_limit(1, 60)
    fake.clear_faults()
    assert [api("GET", "/community").status_code for _ in range(3)] == [200, 200, 200]


def test_unknown_fault_kinds_are_refused(fake):
    with pytest.raises(ValueError):
        fake.fail_next(1, "418")


def random_statuses(seed):
    with FakeCircle() as server, requests.Session() as s:
        server.fail_randomly(0.4, ["500", "503", "429"], seed=seed)
        auth = {"Authorization": f"Bearer {server.api_key}"}
        return [s.get(server.base_url + "/community", headers=auth, timeout=5).status_code for _ in range(40)]


def test_random_failures_are_reproducible_from_the_seed():
    first = random_statuses(seed=7)
    assert first == random_statuses(seed=7)
    assert first != random_statuses(seed=8)
    assert 200 in first and set(first) - {200}


def test_latency_delays_every_answer(fake, api):
    fake.set_latency(0.3)
    started = time.monotonic()
    api("GET", "/community")
    assert time.monotonic() - started >= 0.3


def test_rate_limit_uses_fixed_windows(fake, api):
    window = 0.5
    fake.rate_limit(5, window)

    def window_of(at):  # the fake's own alignment: fixed windows counted from its start
        return int((at - fake.started_at) // window)

    def burst_in_one_window():
        # Start right after a window boundary so six quick requests land in the same window.
        start = window_of(time.monotonic())
        wait_for(lambda: window_of(time.monotonic()) > start, timeout=5)
        fake.reset_requests()
        statuses = [api("GET", "/community").status_code for _ in range(6)]
        return statuses if len({window_of(r.at) for r in fake.requests}) == 1 else None

    statuses = wait_for(burst_in_one_window, timeout=20, message="six requests within one window")
    assert statuses == [200] * 5 + [429]
    last = api("GET", "/community")
    assert last.status_code == 429 and "Retry-After" not in last.headers
    assert last.json() == {"success": False, "message": "Too many requests"}
    burst_window = window_of(fake.requests[0].at)
    wait_for(lambda: window_of(time.monotonic()) > burst_window, timeout=5)
    assert api("GET", "/community").status_code == 200
    assert fake.rate_limited_count >= 2


def test_a_session_reuses_one_connection(fake, session):
    for _ in range(5):
        r = session.get(fake.base_url + "/community", timeout=5)
        assert r.status_code == 200 and r.headers["Content-Length"]
    assert fake.connections_opened == 1


def test_quota_counts_every_answer_except_5xx_and_lost_ones(fake, api):
    fake.fail_next(1, "500")
    fake.fail_next(1, "429")
    fake.fail_next(1, "drop")
    for path in ("/community", "/community", "/community", "/nope", "/community"):
        try:
            api("GET", path)
        except requests.ConnectionError:
            pass
    requests.get(fake.base_url + "/community", timeout=5)  # 401 counts too
    assert [r.status for r in fake.requests] == [500, 429, None, 404, 200, 401]
    assert fake.quota_used == 4


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_serves_a_demo_community_until_interrupted():
    proc = subprocess.Popen(
        [sys.executable, "-m", "hookyard_circle.fake", "--port", "0", "--demo", "--quiet"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = proc.stdout.readline().split(": ", 1)[1].strip()
        key = proc.stdout.readline().split(": ", 1)[1].strip()
        auth = {"Authorization": f"Bearer {key}"}
        assert requests.get(base_url + "/space_groups", headers=auth, timeout=5).json()["count"] == 1
        assert requests.get(base_url + "/events", headers=auth, timeout=5).json()["count"] == 2
        assert requests.get(base_url + "/member_tags", headers=auth, timeout=5).json()["count"] == 3
        assert requests.get(base_url + "/community_members", headers=auth, timeout=5).json()["count"] == 1
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()
