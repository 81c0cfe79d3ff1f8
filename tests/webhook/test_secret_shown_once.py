"""A secret Hookyard generates (``Secret(generate=...)``, the Webhook app's signing secret) is shown once: in the
answer to the create that generated it, never in a later read, never in the log or the session cookie. The value
shown is the one the action signs with: a run's POST verifies with it."""

import logging

import pytest
from marshmallow import Schema, ValidationError, fields
from sqlalchemy import select
from standardwebhooks import Webhook

from hookyard import connections
from hookyard.fields import Secret, generated_secrets
from hookyard.jobs import run_rule
from hookyard.models import Integration, Run
from hookyard_webhook.signing import new_secret

from ..conftest import purchase
from ..web.session import WebClient, add_user

MASK = "********"
pytestmark = pytest.mark.usefixtures("allow_loopback")


def create(api, url, **config):
    return api.post(
        "/api/v1/integrations", json={"app": "webhook", "name": "Receiver", "config": {"url": url, **config}}
    )


def stored_secret(runtime, integration_id) -> str:
    with runtime.db.session() as session:
        return connections.full_config(runtime, session.get(Integration, integration_id))["secret"]


def test_the_create_reveals_the_generated_secret_once_and_a_run_signs_with_it(
    api, receiver, runtime, in_process, caplog
):
    caplog.set_level(logging.DEBUG)
    r = create(api, f"{receiver.url}/in")
    assert r.status_code == 201, r.json
    secret = r.json["revealed_secrets"]["secret"]
    assert secret.startswith("whsec_") and r.json["config"]["secret"] == MASK
    assert r.headers["Cache-Control"] == "no-store"
    iid = r.json["id"]
    assert stored_secret(runtime, iid) == secret

    # No later read shows it.
    for path in (f"/api/v1/integrations/{iid}", "/api/v1/integrations"):
        read = api.get(path)
        assert read.status_code == 200 and secret not in read.text, path
        assert "revealed_secrets" not in read.text, path
    renamed = api.patch(f"/api/v1/integrations/{iid}", json={"name": "CRM", "config": {"url": f"{receiver.url}/in"}})
    assert renamed.status_code == 200 and "revealed_secrets" not in renamed.json and secret not in renamed.text

    # The action signs with the very value revealed.
    rule = api.post(
        "/api/v1/rules",
        json={
            "product_id": None,
            "trigger": "samcart.product_purchased",
            "integration_id": iid,
            "action": "send_post",
            "params": {},
        },
    )
    assert rule.status_code == 201, rule.json
    event = api.post("/api/v1/events", json={"trigger": "samcart.product_purchased", "payload": purchase()})
    assert event.status_code == 202, event.json
    with runtime.db.session() as session:
        [run_id] = session.scalars(select(Run.id))
    assert run_rule(run_id) == "succeeded"
    [got] = receiver.at("/in")
    assert Webhook(secret).verify(got.body, got.headers)["data"]["customer"]["email"] == "ada@example.com"
    assert secret not in caplog.text


def test_a_secret_supplied_is_kept_and_nothing_is_revealed(api, receiver, runtime):
    mine = new_secret()
    r = create(api, f"{receiver.url}/in", secret=mine)
    assert r.status_code == 201, r.json
    assert "revealed_secrets" not in r.json and mine not in r.text and "Cache-Control" not in r.headers
    assert stored_secret(runtime, r.json["id"]) == mine


@pytest.mark.parametrize("empty", ["", None])
def test_a_secret_sent_empty_on_create_is_generated_too(api, receiver, runtime, empty):
    r = create(api, f"{receiver.url}/in", secret=empty)
    assert r.status_code == 201, r.json
    assert stored_secret(runtime, r.json["id"]) == r.json["revealed_secrets"]["secret"]


def test_a_refused_create_saves_and_reveals_nothing(api, runtime):
    r = create(api, "http://10.0.0.1/in")  # the SSRF guard refuses it: nothing is saved, so nothing is shown
    assert r.status_code == 422, r.json
    assert "revealed_secrets" not in r.json and "whsec_" not in r.text
    with runtime.db.session() as session:
        assert session.scalars(select(Integration)).all() == []


def test_an_edit_keeps_the_secret_unless_it_is_sent_empty_which_generates_a_new_one(api, receiver, runtime):
    first = create(api, f"{receiver.url}/in").json
    iid, secret = first["id"], first["revealed_secrets"]["secret"]
    kept = api.patch(f"/api/v1/integrations/{iid}", json={"config": {"secret": MASK, "url": f"{receiver.url}/b"}})
    assert kept.status_code == 200 and "revealed_secrets" not in kept.json
    assert stored_secret(runtime, iid) == secret
    rotated = api.patch(f"/api/v1/integrations/{iid}", json={"config": {"secret": None}})
    assert rotated.status_code == 200, rotated.json
    new = rotated.json["revealed_secrets"]["secret"]
    assert new.startswith("whsec_") and new != secret and stored_secret(runtime, iid) == new
    assert rotated.headers["Cache-Control"] == "no-store"
    assert "revealed_secrets" not in api.get(f"/api/v1/integrations/{iid}").json


def test_the_ui_shows_it_in_the_answer_to_the_create_only_and_never_in_the_session_cookie(app, runtime, receiver):
    add_user(runtime, "owner@example.com", "owner")
    owner = WebClient(app).sign_in("owner@example.com")
    owner.get("/integrations/new/webhook")
    r = owner.post("/integrations/new/webhook", {"name": "Receiver", "config.url": f"{receiver.url}/in"})
    assert r.status_code == 201, r.text
    with runtime.db.session() as session:
        [integration] = session.scalars(select(Integration)).all()
    secret = stored_secret(runtime, integration.id)
    assert r.text.count(secret) == 1 and "Copy this signing secret now; it will not be shown again." in r.text
    cookie = owner.client.get_cookie("hookyard_session")
    session_data = app.session_interface.get_signing_serializer(app).loads(cookie.value)
    assert secret not in str(session_data) and secret not in cookie.value
    page = owner.get(f"/integrations/{integration.id}")
    assert page.status_code == 200 and secret not in page.text and "will not be shown again" not in page.text


# --- Secret(generate=...) itself ----------------------------------------------------------------------------------


def test_generate_fills_only_what_is_left_empty_under_the_key_a_client_sends():
    class Config(Schema):
        signing = Secret(generate=lambda: "made", data_key="signingSecret")
        api_key = Secret()
        other = fields.String()

    assert generated_secrets(Config, {}) == {"signingSecret": "made"}
    assert generated_secrets(Config, {"signingSecret": ""}) == {"signingSecret": "made"}
    assert generated_secrets(Config(), {"signingSecret": "mine"}) == {}


def test_generate_refuses_what_would_defeat_it():
    with pytest.raises(TypeError, match="required"):
        Secret(generate=new_secret, required=True)
    with pytest.raises(TypeError, match="load_default"):
        Secret(generate=new_secret, load_default=new_secret)
    with pytest.raises(TypeError, match="function"):
        Secret(generate="whsec_fixed")

    class Broken(Schema):
        secret = Secret(generate=lambda: None)

    with pytest.raises(TypeError, match="returned no string"):
        generated_secrets(Broken, {})


def test_load_default_still_works_and_reveals_nothing():
    class Config(Schema):
        secret = Secret(load_default=lambda: "quiet")

    assert Config().load({}) == {"secret": "quiet"} and generated_secrets(Config, {}) == {}
    with pytest.raises(ValidationError):
        Config().load({"secret": 3})
