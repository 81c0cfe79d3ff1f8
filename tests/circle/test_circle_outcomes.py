"""Every outcome of the Circle plugin, each driven by putting the fake Circle into that state."""

from datetime import datetime, timedelta, timezone

import pytest

from hookyard import RunContext
from hookyard_circle.actions import add_member_to_space_group

from ..tasking import refresh
from .fixtures import API_KEY
from .test_circle_actions import wait_runs

pytestmark = pytest.mark.e2e


def only_run(api, event_id, timeout=30):
    [run] = wait_runs(api, event_id, timeout)
    return run, api.get(f"/api/v1/logs/{run['id']}").json


@pytest.fixture
def connected(circle, api, circle_worker, runtime):
    iid = circle.connect()
    refresh(api, runtime, iid)
    circle_worker()
    return iid


def test_already_done_is_success_with_a_note(circle, connected, community, api):
    circle.rule(connected, "add_member_to_space_group", {"space_group_id": community.group1})
    circle.rule(
        connected, "remove_member_from_space", {"space_id": community.space2}, trigger="samcart.product_refunded"
    )
    circle.rule(connected, "remove_member", {}, trigger="samcart.subscription_canceled")
    added, _ = only_run(api, circle.emit(community.member))
    assert (added["status"], added["reason"]) == ("succeeded", "already in the space group")
    removed, _ = only_run(api, circle.emit(community.member, trigger="samcart.product_refunded"))
    assert (removed["status"], removed["reason"]) == ("succeeded", f"{community.member} was not in the space")
    gone, _ = only_run(api, circle.emit("stranger@example.com", trigger="samcart.subscription_canceled"))
    assert (gone["status"], gone["reason"]) == ("succeeded", "stranger@example.com was not a member: nothing to remove")


@pytest.mark.parametrize(
    "action, params",
    [
        ("add_member_to_space", {"space_id": "space2"}),
        ("add_member_to_space_group", {"space_group_id": "group2"}),
        ("rsvp_member_to_event", {"event_id": "event2"}),
        ("add_member_tag", {"member_tag_id": "tag2"}),
    ],
)
def test_adding_someone_who_is_not_in_the_community_is_skipped(circle, connected, community, api, action, params):
    circle.rule(connected, action, {k: getattr(community, v) for k, v in params.items()})
    run, _ = only_run(api, circle.emit("outsider@example.com"))
    assert run["status"] == "skipped"
    assert run["reason"] == "outsider@example.com is not a member of the Circle community (invite them first)"


@pytest.mark.parametrize(
    "action, param, kind",
    [
        ("add_member_to_space", "space_id", "space"),
        ("remove_member_from_space", "space_id", "space"),
        ("add_member_to_space_group", "space_group_id", "space group"),
        ("remove_member_from_space_group", "space_group_id", "space group"),
        ("rsvp_member_to_event", "event_id", "event"),
        ("unrsvp_member_from_event", "event_id", "event"),
        ("add_member_tag", "member_tag_id", "member tag"),
        ("remove_member_tag", "member_tag_id", "member tag"),
    ],
)
def test_a_stale_option_id_fails_permanently_naming_it(circle, community, api, circle_worker, action, param, kind):
    iid = circle.connect()  # options never loaded: the rule keeps an id Circle no longer has
    circle.rule(iid, action, {param: 424242})
    circle_worker()
    run, detail = only_run(api, circle.emit(community.member))
    assert run["status"] == "failed" and run["attempts"] == 1
    assert run["reason"].startswith(f"Circle has no {kind} 424242 any more: refresh the integration")


@pytest.mark.parametrize(
    "arrange, reason",
    [
        (lambda f: setattr(f, "accepted_schemes", ()), "Circle rejected the API key"),
        (lambda f: setattr(f, "plan_eligible", False), "The Admin API needs the Business plan"),
    ],
)
def test_auth_and_plan_errors_fail_permanently_and_flag_the_connection(
    circle, connected, community, api, fake_circle, arrange, reason
):
    circle.rule(connected, "add_member_tag", {"member_tag_id": community.tag2})
    arrange(fake_circle)
    run, _ = only_run(api, circle.emit(community.member))
    assert run["status"] == "failed" and run["attempts"] == 1 and reason in run["reason"]
    integration = api.get(f"/api/v1/integrations/{connected}").json
    assert integration["status"] == "needs_attention" and reason in integration["status_reason"]


@pytest.mark.parametrize("kind", ["429", "500", "502", "503", "drop", "timeout"])
def test_transient_failures_are_retried_until_they_succeed(circle, connected, community, api, fake_circle, kind):
    fake_circle.hold_seconds = 2  # longer than the worker's CIRCLE_TIMEOUT of 1 s
    circle.rule(connected, "add_member_tag", {"member_tag_id": community.tag2})
    fake_circle.fail_next(2, kind, retry_after=0.5 if kind == "429" else None, path="/tagged_members")
    run, detail = only_run(api, circle.emit(community.member), timeout=60)
    assert (run["status"], run["attempts"]) == ("succeeded", 3), detail["history"]
    assert [h["retryable"] for h in detail["history"][:2]] == [True, True]
    if kind == "429":
        assert all(h["retry_in"] >= 0.5 for h in detail["history"][:2])  # Retry-After honoured
    assert community.tag2 in fake_circle.member(community.member)["member_tags"]


def test_a_429_without_retry_after_waits_about_a_minute(fake_circle, community):
    fake_circle.fail_next(1, "429")
    ctx = RunContext(
        run_id=1,
        attempt=1,
        trigger="t",
        email=community.member,
        payload={},
        params={"space_group_id": community.group2},
        config={"api_key": API_KEY},
        info={},
        options={},
    )
    outcome = add_member_to_space_group(ctx)
    assert outcome.status == "failed" and outcome.retryable and outcome.retry_after == 60


@pytest.mark.parametrize("fault", ["timeout_after_apply", "drop_after_apply"])
def test_an_invite_whose_answer_was_lost_is_never_sent_twice(circle, connected, api, fake_circle, fault):
    fake_circle.hold_seconds = 2
    circle.rule(connected, "invite_member", {})
    fake_circle.fail_next(1, fault, path="/community_members", method="POST")
    run, detail = only_run(api, circle.emit("fresh@example.com", first_name="Fresh"), timeout=60)
    assert run["status"] == "succeeded" and run["attempts"] == 2
    assert "already a member" in run["reason"]
    assert fake_circle.invitations_sent == ["fresh@example.com"]
    assert len(fake_circle.requests_for("POST", "/community_members")) == 1


@pytest.mark.parametrize("variant", ["already", "422"])
def test_inviting_an_existing_member_succeeds_and_still_applies_the_rule(
    circle, connected, community, api, fake_circle, variant
):
    fake_circle.existing_member_invite = variant
    circle.rule(connected, "invite_member", {"space_ids": [community.space2], "member_tag_ids": [community.tag2]})
    run, _ = only_run(api, circle.emit(community.member))
    assert run["status"] == "succeeded" and "already a member" in run["reason"]
    member = fake_circle.member(community.member)
    assert community.space2 in member["spaces"] and community.tag2 in member["member_tags"]
    assert fake_circle.invitations_sent == []


def test_the_daily_member_limit_is_retried_tomorrow(fake_circle, community):
    from hookyard_circle.actions import invite_member

    fake_circle.daily_member_limit = 0
    ctx = RunContext(
        run_id=1,
        attempt=1,
        trigger="t",
        email="late@example.com",
        payload={},
        params={"space_ids": [], "space_group_ids": [], "member_tag_ids": [], "skip_invitation": False},
        config={"api_key": API_KEY},
        info={},
        options={},
    )
    outcome = invite_member(ctx)
    assert outcome.status == "failed" and outcome.retryable
    tomorrow = datetime.now(timezone.utc) + timedelta(seconds=outcome.retry_after)
    assert tomorrow.date() == (datetime.now(timezone.utc) + timedelta(days=1)).date()


def test_the_api_key_never_reaches_the_log_entries_or_the_worker_log(circle, connected, community, api, tmp_path):
    circle.rule(connected, "add_member_tag", {"member_tag_id": community.tag2})
    run, detail = only_run(api, circle.emit(community.member))
    assert API_KEY not in str(detail) and API_KEY not in str(api.get("/api/v1/logs").json)
    worker_logs = "".join(p.read_text() for p in tmp_path.glob("worker-*.log"))
    assert "run" in worker_logs and API_KEY not in worker_logs
