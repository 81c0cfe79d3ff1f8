"""The action against a real receiver on 127.0.0.1: the signed body verifies with the standardwebhooks package
(the recipe docs/webhook.md gives), a tampered body or an old timestamp does not, and every answer's outcome."""

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from hookyard_webhook import signing
from hookyard_webhook.actions import MAX_RETRY_AFTER, pick, retry_after, send_post

from .conftest import run_context

pytestmark = pytest.mark.usefixtures("allow_loopback")


def test_the_post_verifies_with_standardwebhooks_and_carries_the_whole_payload(receiver):
    secret = signing.new_secret()
    ctx = run_context(f"{receiver.url}/in", secret)
    outcome = send_post(ctx)
    assert (outcome.status, outcome.reason) == ("succeeded", "the receiver answered HTTP 200")
    assert outcome.details == {"webhook_id": "run_41", "status": 200}
    [got] = receiver.at("/in")
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["webhook-id"] == "run_41"
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
    # The documented recipe, with the receiver's own library: it returns the parsed body once the signature holds.
    document = Webhook(secret).verify(got.body, got.headers)
    assert document == {
        "type": "samcart.product_purchased",
        "timestamp": "2026-12-01T10:00:00+00:00",
        "data": dict(ctx.payload),
    }


def test_the_signature_by_hand_with_hmac(receiver):
    """docs/webhook.md's by-hand recipe, step by step."""
    secret = signing.new_secret()
    send_post(run_context(f"{receiver.url}/in", secret))
    [got] = receiver.at("/in")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{got.headers['webhook-id']}.{got.headers['webhook-timestamp']}.".encode() + got.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert [s.split(",", 1)[1] for s in got.headers["webhook-signature"].split()] == [expected]


def test_a_tampered_body_another_secret_or_an_old_timestamp_fails_verification(receiver):
    secret = signing.new_secret()
    send_post(run_context(f"{receiver.url}/in", secret))
    [got] = receiver.at("/in")
    tampered = got.body.replace(b"ada@example.com", b"eve@example.com")
    assert tampered != got.body
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(got.body, got.headers)
    # Correctly signed, but ten minutes old (a captured request replayed): refused by the 5-minute tolerance.
    old = int(time.time()) - 600
    replayed = {**got.headers, **signing.headers(secret, got.headers["webhook-id"], old, got.body)}
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(got.body, replayed)


def test_chosen_fields_are_sent_nested_as_in_the_payload_and_missing_ones_are_reported(receiver):
    secret = signing.new_secret()
    outcome = send_post(
        run_context(f"{receiver.url}/in", secret, fields=["customer.email", "product", "order.id", "customer.phone"])
    )
    assert outcome.status == "succeeded"
    assert outcome.details["missing_fields"] == ["order.id", "customer.phone"]
    [got] = receiver.at("/in")
    assert Webhook(secret).verify(got.body, got.headers)["data"] == {
        "customer": {"email": "ada@example.com"},
        "product": {"id": "1001", "name": "Community"},
    }


def test_pick_keeps_paths_nested_and_a_parent_after_a_child_wins():
    payload = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    assert pick(payload, ["a.c", "d"]) == ({"a": {"c": [1, 2]}, "d": "x"}, [])
    assert pick(payload, ["a.b", "a"]) == ({"a": {"b": 1, "c": [1, 2]}}, [])
    assert pick(payload, ["d.e", "z"]) == ({}, ["d.e", "z"])


def test_without_occurred_at_the_body_timestamp_is_the_send_time(receiver):
    secret = signing.new_secret()
    send_post(run_context(f"{receiver.url}/in", secret, payload={"customer": {"email": "a@example.com"}}))
    [got] = receiver.at("/in")
    stamp = Webhook(secret).verify(got.body, got.headers)["timestamp"]
    assert abs(datetime.fromisoformat(stamp) - datetime.now(UTC)) < timedelta(minutes=1)


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
def test_other_4xx_fail_for_good_with_the_status_and_an_excerpt(receiver, status):
    receiver.answer("/in", (status, "  unknown\n  event type " + "x" * 500))
    outcome = send_post(run_context(f"{receiver.url}/in"))
    assert (outcome.status, outcome.retryable, outcome.needs_attention) == ("failed", False, False)
    assert outcome.reason.startswith(f"the receiver refused the POST with HTTP {status}: unknown event type xxx")
    assert len(outcome.reason) < 300 and outcome.reason.endswith("…")
    assert outcome.details["status"] == status


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_busy_or_down_answers_are_retried_with_the_retry_after_hint(receiver, status):
    receiver.answer("/in", (status, "busy", {"Retry-After": "7"}))
    outcome = send_post(run_context(f"{receiver.url}/in"))
    assert (outcome.status, outcome.retryable, outcome.retry_after) == ("failed", True, 7.0)
    assert outcome.reason == f"the receiver answered HTTP {status}: busy"


def test_retry_after_as_seconds_or_an_http_date():
    now = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)
    assert retry_after("120", now) == 120.0
    assert retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert retry_after("Wed, 02 Dec 2026 03:00:00 GMT", now) == 0.0  # already past: no extra wait
    assert retry_after("soon", now) is None and retry_after(None, now) is None and retry_after(" ", now) is None
    assert retry_after("99999999", now) == MAX_RETRY_AFTER


def test_a_receiver_too_slow_is_retried(receiver, monkeypatch):
    monkeypatch.setenv("WEBHOOK_TIMEOUT", "0.3")
    receiver.hold_paths.add("/slow")
    outcome = send_post(run_context(f"{receiver.url}/slow"))
    assert (outcome.status, outcome.retryable) == ("failed", True)
    assert outcome.reason == "127.0.0.1 did not answer within 0.3 seconds (ReadTimeout)"


def test_nothing_listening_is_retried(receiver):
    url = f"{receiver.url}/in"
    receiver.stop()  # the port is closed now
    outcome = send_post(run_context(url))
    assert (outcome.status, outcome.retryable) == ("failed", True)
    assert outcome.reason == "could not reach 127.0.0.1 (ConnectionError)"


def test_a_307_or_308_is_followed_with_the_same_signed_post(receiver):
    secret = signing.new_secret()
    receiver.answer("/old", (307, "", {"Location": "/middle"}))
    receiver.answer("/middle", (308, "", {"Location": f"{receiver.url}/new"}))
    outcome = send_post(run_context(f"{receiver.url}/old", secret))
    assert outcome.status == "succeeded" and outcome.details["redirects"] == 2
    first, last = receiver.at("/old")[0], receiver.at("/new")[0]
    assert last.method == "POST" and last.body == first.body
    assert last.headers["webhook-signature"] == first.headers["webhook-signature"]
    assert Webhook(secret).verify(last.body, last.headers)["type"] == "samcart.product_purchased"


@pytest.mark.parametrize("status", [301, 302, 303])
def test_a_redirect_that_would_turn_the_post_into_a_get_is_not_followed(receiver, status):
    receiver.answer("/old", (status, "", {"Location": "/new"}))
    outcome = send_post(run_context(f"{receiver.url}/old"))
    assert (outcome.status, outcome.retryable, outcome.needs_attention) == ("failed", False, True)
    assert outcome.reason.startswith(f"the receiver redirected to /new with HTTP {status}; only 307 and 308")
    assert receiver.at("/new") == []


def test_a_redirect_loop_stops(receiver):
    receiver.answer("/loop", *[(307, "", {"Location": "/loop"})] * 10)
    outcome = send_post(run_context(f"{receiver.url}/loop"))
    assert outcome.reason == "the receiver redirected more than 3 times" and outcome.needs_attention
    assert len(receiver.at("/loop")) == 4


def test_a_pasted_secret_must_be_a_standard_webhooks_secret():
    from marshmallow import ValidationError

    from hookyard.fields import generated_secrets
    from hookyard_webhook.connection import WebhookConfig

    # The core generates it (to show it once, tests/webhook/test_secret_shown_once.py), not the schema's load.
    assert "secret" not in WebhookConfig().load({"url": "https://example.com/in"})
    generated = generated_secrets(WebhookConfig, {"url": "https://example.com/in"})["secret"]
    assert generated.startswith("whsec_") and len(base64.b64decode(generated[6:])) == 32
    assert generated != generated_secrets(WebhookConfig, {})["secret"]
    assert WebhookConfig().load({"url": "https://example.com/in", "secret": generated})["secret"] == generated
    kept = "whsec_" + base64.b64encode(b"k" * 24).decode()
    assert WebhookConfig().load({"url": "https://example.com/in", "secret": kept})["secret"] == kept
    for bad in ("hunter2", "whsec_not base64!", "whsec_" + base64.b64encode(b"short").decode()):
        with pytest.raises(ValidationError) as exc:
            WebhookConfig().load({"url": "https://example.com/in", "secret": bad})
        assert list(exc.value.messages) == ["secret"]


def test_the_body_is_compact_json():
    from hookyard_webhook.actions import body

    raw, missing = body(run_context("http://127.0.0.1:9/in", payload={"customer": {"email": "é@example.com"}}))
    assert json.loads(raw)["data"] == {"customer": {"email": "é@example.com"}} and missing == []
    assert b", " not in raw and b": " not in raw


def test_fields_may_come_as_one_comma_separated_string_and_a_bad_path_is_a_field_error():
    from marshmallow import ValidationError

    from hookyard_webhook.actions import SendPostParams

    assert SendPostParams().load({"fields": ["customer.email, product.id", " order"]})["fields"] == [
        "customer.email",
        "product.id",
        "order",
    ]
    assert SendPostParams().load({"fields": "customer.email product.id"})["fields"] == ["customer.email", "product.id"]
    assert SendPostParams().load({})["fields"] == []
    with pytest.raises(ValidationError) as exc:
        SendPostParams().load({"fields": ["customer..email"]})
    assert exc.value.messages == {"fields": {0: ["A payload key or dotted path, e.g. customer.email."]}}


def test_each_answered_post_is_counted_for_the_metrics_redirects_and_429s_too(receiver, hookyard_counted_calls):
    receiver.answer("/old", (307, "", {"Location": "/in"}))
    receiver.answer("/in", (429, "busy", {"Retry-After": "7"}))
    send_post(run_context(f"{receiver.url}/old"))
    assert (hookyard_counted_calls.calls, hookyard_counted_calls.rate_limited) == (2, 1)
    receiver.stop()
    send_post(run_context(f"{receiver.url}/in"))  # no answer: nothing the remote answered to count
    assert hookyard_counted_calls.calls == 2
