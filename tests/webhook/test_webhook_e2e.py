"""End to end: a Webhook connection made through the API, its secret read with `hookyard webhook secret`, a rule
run by a real worker process against the receiver on 127.0.0.1, a 503 retried no sooner than its Retry-After."""

import subprocess
import sys
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from ..conftest import purchase, worker_env
from ..waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("allow_loopback")]
HOOKYARD = str(Path(sys.executable).parent / "hookyard")


def connect(api, url):
    r = api.post("/api/v1/integrations", json={"app": "webhook", "name": "Receiver", "config": {"url": url}})
    assert r.status_code == 201, r.json
    assert r.json["config"]["secret"] == "********"  # generated, and masked like every secret on read
    return r.json["id"]


def cli_secret(settings, plugin_site, integration_id, *extra):
    done = subprocess.run(
        [HOOKYARD, "webhook", "secret", str(integration_id), *extra],
        capture_output=True,
        text=True,
        env=worker_env(settings, plugin_site),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_secret_is_read_or_replaced_on_the_server(api, receiver, settings, plugin_site):
    iid = connect(api, f"{receiver.url}/in")
    secret = cli_secret(settings, plugin_site, iid)
    assert secret.startswith("whsec_") and cli_secret(settings, plugin_site, iid) == secret
    replaced = cli_secret(settings, plugin_site, iid, "--new")
    assert replaced.startswith("whsec_") and replaced != secret
    assert cli_secret(settings, plugin_site, iid) == replaced
    missing = subprocess.run(
        [HOOKYARD, "webhook", "secret", "999999"],
        capture_output=True,
        text=True,
        env=worker_env(settings, plugin_site),
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1 and "no Webhook connection with id 999999" in missing.stderr


def test_a_rule_posts_a_verifiable_event_and_a_503_is_retried_after_its_retry_after(
    api, receiver, settings, plugin_site, start_worker
):
    receiver.answer("/in", (503, "down for maintenance", {"Retry-After": "2"}))
    iid = connect(api, f"{receiver.url}/in")
    secret = cli_secret(settings, plugin_site, iid)
    r = api.post(
        "/api/v1/rules",
        json={
            "product_id": None,
            "trigger": "samcart.product_purchased",
            "integration_id": iid,
            "action": "send_post",
            "params": {},
        },
    )
    assert r.status_code == 201, r.json
    # Backoff alone would retry within 0.1 s: a gap of 2 s is the Retry-After's doing.
    start_worker(WEBHOOK_ALLOWED_HOSTS="127.0.0.1", HOOKYARD_RETRY_BASE_DELAY="0.05", HOOKYARD_RETRY_MAX_DELAY="0.1")
    r = api.post(
        "/api/v1/events",
        json={"trigger": "samcart.product_purchased", "payload": purchase(occurred_at="2026-12-01T10:00:00+00:00")},
    )
    assert r.status_code == 202, r.json

    def finished():
        runs = api.get(f"/api/v1/events/{r.json['id']}").json["runs"]
        return runs if runs and all(run["status"] not in ("queued", "running") for run in runs) else None

    [run] = wait_for(finished, timeout=60, message="the webhook run did not finish")
    assert (run["status"], run["attempts"]) == ("succeeded", 2), run
    first, second = receiver.at("/in")
    assert second.at - first.at >= 1.9
    history = api.get(f"/api/v1/logs/{run['id']}").json["history"]
    assert history[0]["status"] == "failed" and history[0]["retry_in"] >= 2.0
    assert history[0]["reason"] == "the receiver answered HTTP 503: down for maintenance"
    assert history[1]["details"] == {"webhook_id": f"run_{run['id']}", "status": 200}
    # One message, sent twice: the same id and body, so the receiver can drop the repeat; each attempt signed
    # with its own timestamp.
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == f"run_{run['id']}"
    assert first.body == second.body
    for got in (first, second):
        document = Webhook(secret).verify(got.body, got.headers)
        assert document["type"] == "samcart.product_purchased"
        assert document["timestamp"] == "2026-12-01T10:00:00+00:00"  # the event's occurred_at: the same each time
        assert document["data"]["customer"]["email"] == "ada@example.com"
        assert document["data"]["product"] == {"id": "1001", "name": "Community"}
