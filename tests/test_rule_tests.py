"""Testing a rule (POST /api/v1/rules/{id}/test, hookyard.ruletest): dry-run of every Circle action against the fake
Circle sends no write and answers the calls it would make; a live test makes them for one email and is logged with
origin test; the Webhook app's dry-run shows its POST unsigned; every refusal is a field-level 422 (or a 404 for a
rule of another store), never a 500; secrets never appear; a trigger whose example its schema refuses stops the load."""

import json
from types import ModuleType
from urllib.parse import urlsplit

import pytest
from marshmallow import Schema, fields

from hookyard import TriggerType, hookimpl
from hookyard.models import Run
from hookyard.plugins import PluginError, load_registry
from hookyard.tokens import create_token, get_or_create_marketplace

from .circle.fixtures import API_KEY
from .circle.test_circle_actions import expected_calls
from .conftest import purchase
from .tasking import refresh
from .webhook.receiver import Receiver


def try_rule(api, rule_id, expect=200, **body):
    r = api.post(f"/api/v1/rules/{rule_id}/test", json=body)
    assert r.status_code == expect, r.json
    return r.json


def path_of(call, base: str) -> str:
    """The call's path under Circle's base URL (the fake's /api/admin/v2)."""
    return urlsplit(call["url"]).path.removeprefix(urlsplit(base).path)


@pytest.fixture
def connected(circle, api, runtime):
    iid = circle.connect()
    refresh(api, runtime, iid)  # rule parameters are checked against the lists
    return iid


def test_a_dry_run_of_each_circle_action_sends_no_write_and_answers_the_calls_it_would_make(
    circle, connected, fake_circle, community, api
):
    leaver_id = fake_circle.member("leaver@example.com")["id"]
    for trigger, action, params, email, calls in expected_calls(community):
        rule_id = circle.rule(connected, action, params, trigger=trigger)
        fake_circle.reset_requests()
        answer = try_rule(api, rule_id, mode="dry-run", email=email)
        assert fake_circle.requests_for() == fake_circle.requests_for("GET"), action  # look-ups only
        # Queries as text, as the fake records what the URL carried.
        shown = [
            (
                c["method"],
                path_of(c, fake_circle.base_url),
                {k: str(v) for k, v in (c["query"] or {}).items()},
                c["body"],
                c["sent"],
            )
            for c in answer["calls"]
        ]
        # The example's customer is Jane Doe: the invite carries her name, with the email asked for.
        named = {"name": "Jane Doe"}
        want = [
            (m, path.format(leaver_id=leaver_id), q, {**j, **named} if j and "name" in j else j, m == "GET")
            for m, path, q, j in calls
        ]
        assert shown == want, action
        assert [c["status"] for c in answer["calls"] if not c["sent"]] == [None] * sum(m != "GET" for m, *_ in calls)
        assert answer["outcome"]["status"] == "succeeded", (action, answer["outcome"])
        assert answer["mode"] == "dry-run" and answer["run"] is None
        assert answer["event"] == {"id": None, "example": True}
        assert answer["payload"]["customer"]["email"] == email
        assert API_KEY not in json.dumps(answer)
    # Nothing changed at Circle, and a dry-run wrote no log entry.
    assert fake_circle.invitations_sent == []
    assert fake_circle.member(community.member)["spaces"] == {community.space1}
    assert api.get("/api/v1/logs").json == []


def test_a_live_test_makes_the_calls_for_one_email_and_is_logged_as_a_test(
    circle, connected, fake_circle, community, api
):
    rule_id = circle.rule(connected, "add_member_tag", {"member_tag_id": community.tag2})
    fake_circle.reset_requests()
    answer = try_rule(api, rule_id, mode="live", email=community.member)
    [call] = answer["calls"]
    assert (call["method"], path_of(call, fake_circle.base_url), call["sent"], call["status"]) == (
        "POST",
        "/tagged_members",
        True,
        201,
    )
    assert call["body"] == {"member_tag_id": community.tag2, "user_email": community.member}
    assert community.tag2 in fake_circle.member(community.member)["member_tags"]
    assert answer["outcome"] == {"status": "succeeded", "reason": "tagged"}
    assert API_KEY not in json.dumps(answer)
    run = answer["run"]
    assert run["url"] == f"/api/v1/logs/{run['id']}"
    entry = api.get(run["url"]).json
    assert (entry["status"], entry["email"], entry["event_id"]) == ("succeeded", community.member, None)
    assert [e["id"] for e in api.get("/api/v1/logs").json] == [run["id"]]
    assert API_KEY not in json.dumps(entry)


def test_the_live_entry_holds_origin_mode_calls_and_a_job_id_of_its_own(circle, connected, community, api, runtime):
    rule_id = circle.rule(connected, "add_member_tag", {"member_tag_id": community.tag2})
    event_id = circle.emit(community.member)
    answer = try_rule(api, rule_id, mode="live", email=community.member, event_id=event_id)
    assert answer["event"] == {"id": event_id, "example": False}
    with runtime.db.session() as session:
        run = session.get(Run, answer["run"]["id"])
        assert (run.origin, run.event_id, run.status, run.attempts) == ("test", event_id, "succeeded", 1)
        assert run.job_id == f"run-test-{run.id}-1"
        assert run.ran["test"]["mode"] == "live" and run.ran["test"]["example"] is False
        assert [c["method"] for c in run.ran["test"]["calls"]] == ["POST"]
        assert run.ran["action_label"] == "Add member tag"
        assert run.history[-1]["status"] == "succeeded"


def test_a_chosen_event_is_used_and_its_email_kept_unless_one_is_given(circle, connected, community, api):
    rule_id = circle.rule(connected, "add_member_to_space", {"space_id": community.space2})
    event_id = circle.emit("bea@example.com", first_name="Bea")
    answer = try_rule(api, rule_id, mode="dry-run", event_id=event_id)
    assert answer["event"] == {"id": event_id, "example": False}
    assert answer["payload"]["customer"] == {"email": "bea@example.com", "first_name": "Bea"}
    assert answer["calls"][0]["body"]["email"] == "bea@example.com"
    other = try_rule(api, rule_id, mode="dry-run", event_id=event_id, email="  Cy@Example.com ")
    assert other["calls"][0]["body"]["email"] == "cy@example.com"
    example = try_rule(api, rule_id, mode="dry-run")
    assert example["event"] == {"id": None, "example": True}
    assert example["payload"]["customer"]["email"] == "jane@example.com"  # SamCart's example buyer


def test_a_remove_member_dry_run_looks_the_member_up_for_real(circle, connected, fake_circle, community, api):
    rule_id = circle.rule(connected, "remove_member", {}, trigger="samcart.product_refunded")
    answer = try_rule(api, rule_id, mode="dry-run", email="nobody@example.com")
    assert [(c["method"], c["sent"], c["status"]) for c in answer["calls"]] == [("GET", True, 404)]
    assert answer["outcome"]["reason"] == "nobody@example.com was not a member: nothing to remove"
    assert len(fake_circle.requests_for("GET", "/community_members/search")) == 1


def test_refusals_are_field_level_422s(circle, connected, community, api, make_client, setup):
    rule_id = circle.rule(connected, "add_member_tag", {"member_tag_id": community.tag2})
    refunded = circle.emit(community.member, trigger="samcart.product_refunded")

    def refused(field, **body):
        answer = try_rule(api, rule_id, expect=422, **body)
        assert list(answer["errors"]["json"]) == [field], answer
        return answer["errors"]["json"][field][0]

    assert "dry-run, live" in refused("mode", mode="wet")
    assert refused("mode", mode=None)
    assert "Required for a live test" in refused("email", mode="live")
    assert refused("email", mode="live", email="not-an-email") == "Not a valid email address."
    assert refused("email", mode="dry-run", email="x@")
    assert refused("event_id", mode="dry-run", event_id=999_999) == "No event 999999 in this store."
    assert refused("event_id", mode="dry-run", event_id=0)
    assert "is a samcart.product_refunded event" in refused("event_id", mode="dry-run", event_id=refunded)
    # Another store's event is answered as a missing one.
    other = make_client("store-b")
    theirs = other.post("/api/v1/events", json={"trigger": "samcart.product_purchased", "payload": purchase()}).json
    assert refused("event_id", mode="dry-run", event_id=theirs["id"]) == f"No event {theirs['id']} in this store."
    # An action that does not declare dry-run (the test recorder's) can be tested live only.
    recorder_rule = setup.rule(setup.integration())
    answer = try_rule(api, recorder_rule, expect=422, mode="dry-run")
    assert "does not support dry-run" in answer["errors"]["json"]["mode"][0]
    assert try_rule(api, recorder_rule, mode="live", email="ada@example.com")["outcome"]["status"] == "succeeded"
    # A rule whose connection was deleted.
    assert api.delete(f"/api/v1/integrations/{connected}").status_code == 200
    assert "has no connection" in refused("rule", mode="dry-run")


def test_unknown_fields_are_refused_too(circle, connected, community, api):
    rule_id = circle.rule(connected, "add_member_tag", {"member_tag_id": community.tag2})
    answer = try_rule(api, rule_id, expect=422, mode="dry-run", surprise=1)
    assert "surprise" in answer["errors"]["json"]


def test_another_stores_rule_is_a_404_and_a_viewer_cannot_test(circle, connected, community, api, make_client, runtime):
    rule_id = circle.rule(connected, "add_member_tag", {"member_tag_id": community.tag2})
    other = make_client("store-b")
    assert other.post(f"/api/v1/rules/{rule_id}/test", json={"mode": "dry-run"}).status_code == 404
    missing = api.post("/api/v1/rules/999999/test", json={"mode": "dry-run"})
    assert missing.status_code == 404 and missing.json["message"] == "rule 999999 not found"
    with runtime.db.session() as session:
        token = create_token(session, get_or_create_marketplace(session, "store-a"), "viewer", role="viewer")
        session.commit()
    viewer = api.__class__(api._client.application, token, api.marketplace_id)
    assert viewer.post(f"/api/v1/rules/{rule_id}/test", json={"mode": "dry-run"}).status_code == 403


def test_a_busy_budget_answers_429_with_retry_after_and_calls_nothing(
    circle, connected, fake_circle, community, api, monkeypatch
):
    rule_id = circle.rule(connected, "remove_member", {}, trigger="samcart.product_refunded")
    monkeypatch.setenv("CIRCLE_RATE_LIMIT", "1/300")  # one request per 5 minutes: the first look-up uses it
    assert try_rule(api, rule_id, mode="dry-run", email=community.member)["calls"][0]["sent"]
    fake_circle.reset_requests()
    r = api.post(f"/api/v1/rules/{rule_id}/test", json={"mode": "live", "email": community.member})
    assert r.status_code == 429, r.json
    assert int(r.headers["Retry-After"]) >= 1 and "Nothing was called" in r.json["message"]
    assert fake_circle.requests == [] and api.get("/api/v1/logs").json == []


# -- the Webhook app ------------------------------------------------------------------------------------------------


@pytest.fixture
def receiver(monkeypatch):
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")  # the receiver is on loopback, which the guard refuses
    rec = Receiver().start()
    yield rec
    rec.stop()


def test_a_webhook_dry_run_shows_the_post_unsigned_and_sends_nothing(api, receiver):
    r = api.post(
        "/api/v1/integrations", json={"app": "webhook", "name": "Receiver", "config": {"url": f"{receiver.url}/in"}}
    )
    assert r.status_code == 201, r.json
    secret = r.json["revealed_secrets"]["secret"]
    rule = api.post(
        "/api/v1/rules",
        json={
            "product_id": None,
            "trigger": "samcart.product_purchased",
            "integration_id": r.json["id"],
            "action": "send_post",
            "params": {"fields": ["customer.email", "product.id"]},
        },
    )
    assert rule.status_code == 201, rule.json
    answer = try_rule(api, rule.json["id"], mode="dry-run", email="ada@example.com")
    [call] = answer["calls"]
    assert (call["method"], call["url"], call["sent"], call["status"]) == ("POST", f"{receiver.url}/in", False, None)
    assert call["body"]["data"] == {"customer": {"email": "ada@example.com"}, "product": {"id": "31337"}}
    assert call["headers"]["webhook-signature"] == "********"
    assert call["headers"]["webhook-id"] == "run_0"
    assert receiver.at("/in") == []
    assert secret not in json.dumps(answer)
    live = try_rule(api, rule.json["id"], mode="live", email="ada@example.com")
    [sent] = live["calls"]
    assert (sent["sent"], sent["status"]) == (True, 200)
    assert sent["headers"]["webhook-id"] == f"run_{live['run']['id']}"  # the log entry's id, as a run's
    assert len(receiver.at("/in")) == 1 and secret not in json.dumps(live)


# -- the contract: examples ------------------------------------------------------------------------------------------


class Payload(Schema):
    customer = fields.Dict(required=True)
    product = fields.Dict(required=True)


def plugin_with_example(example) -> ModuleType:
    module = ModuleType("exampled")

    @hookimpl
    def register_trigger_types(register):
        register(TriggerType("exampled.sold", "Sold", "Shop", "Sold.", Payload, example=example))

    module.register_trigger_types = register_trigger_types
    return module


def test_a_trigger_whose_example_its_schema_refuses_stops_the_load_naming_it(plugin_site):
    with pytest.raises(PluginError) as refused:
        load_registry(disabled=set(), extra=[plugin_with_example({"customer": {"email": "a@example.com"}})])
    message = str(refused.value)
    assert message.startswith("plugin 'exampled': trigger 'exampled.sold' has an example that its payload schema ")
    assert "product" in message
    with pytest.raises(PluginError, match="has no product.id"):
        load_registry(disabled=set(), extra=[plugin_with_example({"customer": {}, "product": {"name": "x"}})])
    with pytest.raises(PluginError, match="not a payload"):
        load_registry(disabled=set(), extra=[plugin_with_example(["not", "a", "dict"])])
    registry = load_registry(disabled=set(), extra=[plugin_with_example({"customer": {}, "product": {"id": "1"}})])
    assert registry.trigger_types["exampled.sold"].example == {"customer": {}, "product": {"id": "1"}}


def test_every_samcart_trigger_has_an_example(plugin_site):
    triggers = {k: t for k, t in load_registry(disabled=set()).trigger_types.items() if k.startswith("samcart.")}
    assert len(triggers) == 17 and all(t.example for t in triggers.values())
    assert all(t.example["customer"]["email"].endswith("@example.com") for t in triggers.values())


# -- the CLI ---------------------------------------------------------------------------------------------------------


def cli(settings, plugin_site, *args):
    import subprocess
    import sys
    from pathlib import Path

    from .conftest import worker_env

    return subprocess.run(
        [str(Path(sys.executable).parent / "hookyard"), "rules", "test", *args],
        capture_output=True,
        text=True,
        env=worker_env(settings, plugin_site),
        timeout=60,
        check=False,
    )


def test_the_cli_prints_the_calls_as_a_table_or_json(
    circle, connected, fake_circle, community, api, settings, plugin_site
):
    rule_id = circle.rule(connected, "add_member_to_space", {"space_id": community.space2})
    fake_circle.reset_requests()
    done = cli(settings, plugin_site, str(rule_id), "--email", community.member)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"rule {rule_id}, dry-run, on the trigger's example, for {community.member}:"
    assert lines[1].split() == ["METHOD", "URL", "SENT", "STATUS", "BODY"]
    assert lines[2].startswith(f"POST    {fake_circle.base_url}/space_members  would be sent  -")
    assert lines[-1] == "outcome: succeeded: added to the space"
    assert fake_circle.requests == [] and API_KEY not in done.stdout
    live = cli(settings, plugin_site, str(rule_id), "--live", "--email", community.member, "--json")
    assert live.returncode == 0, live.stderr
    answer = json.loads(live.stdout)
    assert answer["calls"][0]["sent"] is True and answer["run"]["url"] == f"/api/v1/logs/{answer['run']['id']}"
    assert community.space2 in fake_circle.member(community.member)["spaces"]
    refused = cli(settings, plugin_site, str(rule_id), "--live")
    assert refused.returncode == 1
    assert refused.stderr == "Error: email: Required for a live test: the one customer it runs for.\n"
    assert cli(settings, plugin_site, "999999").stderr == "Error: no rule with id 999999\n"


def test_a_failed_live_test_is_not_retried_from_the_log_and_a_stray_job_calls_nothing(
    circle, connected, fake_circle, community, api, in_process
):
    """Its email was the tester's choice: Retry (one entry or every failed one) refuses it, and should a job for it
    run anyway, the worker calls nothing."""
    from hookyard import jobs

    fake_circle.delete_event(community.event2)
    rule_id = circle.rule(connected, "rsvp_member_to_event", {"event_id": community.event2})
    event_id = circle.emit("someone.else@example.com")
    answer = try_rule(api, rule_id, mode="live", event_id=event_id, email=community.member)
    assert answer["outcome"]["status"] == "failed"
    retried = api.post(f"/api/v1/logs/{answer['run']['id']}/retry")
    assert retried.status_code == 409 and "test the rule again" in retried.json["message"]
    bulk = api.post("/api/v1/logs/retry", json={"origin": "test"})
    assert bulk.status_code == 202 and bulk.json["retried"] == []
    fake_circle.reset_requests()
    assert jobs.run_rule(answer["run"]["id"]) == "not claimed"  # it is final: nothing claims it
    assert fake_circle.requests == []
