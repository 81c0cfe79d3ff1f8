"""The SSRF guard: loopback, private, link-local and reserved addresses are refused, whether typed, behind a DNS
name or behind a redirect, unless the operator allows the host (WEBHOOK_ALLOWED_HOSTS).

No packet leaves the machine: names resolve through the stub in conftest.py, and its connect guard fails any
test that tries to connect outside 127.0.0.0/8. Each refusal below also checks that guard saw no attempt (the
refusal came before any connection, not from the test guard)."""

import pytest

from hookyard_webhook.actions import send_post

from .conftest import run_context

REFUSED_URLS = [
    "http://127.0.0.1:9/in",
    "http://10.0.0.1/in",
    "http://169.254.169.254/latest/meta-data/",
    "https://internal.example.test/in",
    "http://192.168.1.20/in",
    "http://0.0.0.0:9/in",
    "http://100.64.0.1/in",
]


@pytest.fixture(autouse=True)
def names(dns):
    dns["internal.example.test"] = "10.1.2.3"  # a public-looking name that resolves into a private range
    dns["metadata.example.test"] = "169.254.169.254"
    return dns


def create(api, url, name="Hook"):
    return api.post("/api/v1/integrations", json={"app": "webhook", "name": name, "config": {"url": url}})


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_a_connection_to_a_refused_address_is_not_saved(api, url, no_traffic_off_the_machine):
    r = create(api, url)
    assert r.status_code == 422, r.json
    [message] = r.json["errors"]["json"]["config"]["url"]
    assert message.startswith("Refused: ") and "WEBHOOK_ALLOWED_HOSTS" in message
    assert api.get("/api/v1/integrations").json == []
    assert no_traffic_off_the_machine == []


def test_a_name_that_does_not_resolve_is_refused_under_the_url(api):
    r = create(api, "https://nowhere.example.test/in")
    assert r.status_code == 422
    assert "nowhere.example.test could not be resolved" in r.json["errors"]["json"]["config"]["url"][0]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_the_action_refuses_them_too_without_connecting(url, no_traffic_off_the_machine):
    """The URL is checked at every send, not only when it was entered: DNS may answer otherwise by then."""
    outcome = send_post(run_context(url))
    assert (outcome.status, outcome.retryable, outcome.needs_attention) == ("failed", False, True), outcome
    assert outcome.reason.startswith("not sent: ") and "WEBHOOK_ALLOWED_HOSTS" in outcome.reason
    assert no_traffic_off_the_machine == []


def test_a_name_that_turns_private_after_the_connection_was_saved_is_refused(api, dns, monkeypatch):
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "")
    dns["hooks.example.test"] = "93.184.215.14"  # public when the merchant connects (nothing is sent then)
    assert create(api, "https://hooks.example.test/in").status_code == 201
    dns["hooks.example.test"] = "10.9.9.9"  # rebound to a private address before the run
    outcome = send_post(run_context("https://hooks.example.test/in"))
    assert outcome.reason.startswith("not sent: hooks.example.test (10.9.9.9) is a loopback, private")


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/admin",
        "http://169.254.169.254/latest/meta-data/",
        "http://internal.example.test/in",
        "http://127.0.0.2:9/in",
    ],
)
def test_a_redirect_from_an_allowed_host_to_a_refused_address_is_refused(
    receiver, allow_loopback, target, no_traffic_off_the_machine
):
    receiver.answer("/in", (307, "", {"Location": target}))
    outcome = send_post(run_context(f"{receiver.url}/in"))
    assert len(receiver.at("/in")) == 1  # the allowed host got the POST; the hop it pointed to did not
    assert (outcome.status, outcome.needs_attention) == ("failed", True)
    assert outcome.reason.startswith("not sent: ") and outcome.details["redirects"] == 1
    assert no_traffic_off_the_machine == []


def test_loopback_is_posted_to_once_the_operator_allows_it(api, receiver, monkeypatch):
    assert create(api, f"{receiver.url}/in").status_code == 422
    assert send_post(run_context(f"{receiver.url}/in")).reason.startswith("not sent: 127.0.0.1 is a loopback")
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "billing.internal, 127.0.0.1")
    r = create(api, f"{receiver.url}/in")
    assert r.status_code == 201, r.json
    assert r.json["info"] == {"host": "127.0.0.1", "operator_allowed": True}
    assert [w["code"] for w in r.json["warnings"]] == ["plain_http"]
    assert r.json["config"] == {"url": f"{receiver.url}/in", "secret": "********"}
    assert send_post(run_context(f"{receiver.url}/in")).status == "succeeded"
    assert len(receiver.at("/in")) == 1


def test_an_allowed_name_is_allowed_whatever_it_resolves_to(receiver, dns, monkeypatch):
    dns["hooks.internal.test"] = "127.0.0.1"
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "Hooks.Internal.Test")
    assert send_post(run_context(f"http://hooks.internal.test:{receiver.port}/in")).status == "succeeded"
    [got] = receiver.at("/in")
    assert got.headers["Host"] == f"hooks.internal.test:{receiver.port}"
    # The allow-list names hosts, not addresses: the same receiver by its address is still refused.
    assert send_post(run_context(f"{receiver.url}/in")).reason.startswith("not sent: 127.0.0.1")


def test_a_public_address_passes_the_guard_and_only_the_test_guard_stops_it(no_traffic_off_the_machine):
    """The other side of the refusals: a public address is not refused by the SSRF guard (so the refusals above
    are the guard's doing); the test's own connect guard is what keeps it from leaving, and is reset after."""
    outcome = send_post(run_context("http://93.184.215.14:9/in"))
    assert (outcome.status, outcome.retryable) == ("failed", True)
    assert outcome.reason == "could not reach 93.184.215.14 (ConnectionError)"
    assert no_traffic_off_the_machine == [("93.184.215.14", 9)]
    no_traffic_off_the_machine.clear()  # expected here, and refused by the test guard: not a failure
