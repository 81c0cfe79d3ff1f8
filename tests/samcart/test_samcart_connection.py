"""The SamCart API side of the SamCart app: the optional key's verify, the product pages an import reads, the
subscription status the dunning logic asks for, and the client's bounded 429 handling. Real HTTP against the fake
SamCart API; no database needed."""

from __future__ import annotations

import importlib.util
import logging
import time

import pytest
from marshmallow import ValidationError

from hookyard import Cancelled, ConnectionFailed
from hookyard.localredis import free_port
from hookyard_samcart import client as samcart_client
from hookyard_samcart.client import SamCart, wait_hint
from hookyard_samcart.connection import SamCartConfig, products, subscription_status, verify

from .fixtures import SAMCART_API_KEY

KEYED = {"api_key": SAMCART_API_KEY, "type_names": None}
NO_KEY = {"api_key": None, "type_names": None}


def failure(call) -> ConnectionFailed:
    with pytest.raises(ConnectionFailed) as caught:
        call()
    return caught.value


# ---------------------------------------------------------------------------------------------- config


def test_the_key_is_optional_and_secret():
    assert SamCartConfig().load({}) == NO_KEY
    assert SamCartConfig().load({"api_key": None}) == NO_KEY
    assert SamCartConfig().fields["api_key"].metadata["secret"] is True
    assert "support@samcart.com" in SamCartConfig().fields["api_key"].metadata["description"]


def test_type_names_are_limited_in_length():
    with pytest.raises(ValidationError) as caught:
        SamCartConfig().load({"type_names": "A = course_enrolled\n" * 300})
    assert "type_names" in caught.value.messages


@pytest.mark.skipif(
    importlib.util.find_spec("hookyard_samcart.notify") is None,
    reason="hookyard_samcart.notify (parse_aliases, helper B's) is not written yet",
)
def test_type_names_are_checked_by_the_mapping_parser():
    from hookyard_samcart.notify import parse_aliases

    good = "Student Enrolled = course_enrolled"
    assert SamCartConfig().load({"type_names": good})["type_names"] == good
    bad = "this line has no equals sign"
    with pytest.raises(ValueError) as expected:
        parse_aliases(bad)
    with pytest.raises(ValidationError) as caught:
        SamCartConfig().load({"type_names": bad})
    assert caught.value.messages == {"type_names": [str(expected.value)]}


# ---------------------------------------------------------------------------------------------- verify


@pytest.mark.parametrize("key", [None, "", "   "])
def test_verify_without_a_key_makes_no_call(fake_samcart, key):
    assert verify({"api_key": key}) == {"api_connected": False}
    assert fake_samcart.requests == []


def test_verify_with_a_key_is_one_cheap_read(fake_samcart):
    assert verify(KEYED) == {"api_connected": True}
    [call] = fake_samcart.requests
    assert (call.path, call.query, call.headers["sc-api"]) == ("/products", {"limit": "1"}, SAMCART_API_KEY)
    assert call.headers["Accept"] == "application/json"


@pytest.mark.parametrize("arrange", [lambda f: None, lambda f: f.add_api_key("wrong-but-known", allowed=False)])
def test_a_refused_key_has_its_own_message(fake_samcart, arrange):
    arrange(fake_samcart)
    exc = failure(lambda: verify({"api_key": "wrong-but-known"}))
    assert exc.message.startswith("SamCart refused the API key")
    assert (exc.field, exc.transient) == ("api_key", False)
    assert "wrong-but-known" not in exc.message


def test_an_unreachable_api_has_its_own_message(monkeypatch):
    base = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there: the connection is refused
    monkeypatch.setenv("SAMCART_API_BASE_URL", base)
    exc = failure(lambda: verify(KEYED))
    assert exc.message.startswith(f"SamCart's API could not be reached at {base} (ConnectionError)")
    assert (exc.field, exc.transient, exc.timed_out) == (None, True, False)


def test_a_slow_api_times_out_with_the_unreachable_message(fake_samcart, monkeypatch):
    monkeypatch.setenv("SAMCART_TIMEOUT", "0.2")
    fake_samcart.latency = 2
    started = time.monotonic()
    exc = failure(lambda: verify(KEYED))
    assert time.monotonic() - started < 1.5
    assert exc.message.startswith(
        f"SamCart's API could not be reached at {fake_samcart.base_url}: no answer within 0.2 seconds"
    )
    assert exc.timed_out and exc.transient


def test_verify_is_bounded_in_all_by_its_budget(fake_samcart, monkeypatch):
    monkeypatch.setenv("SAMCART_VERIFY_TIMEOUT", "0.5")
    fake_samcart.fail_next(10, retry_after=0.2)
    started = time.monotonic()
    exc = failure(lambda: verify(KEYED))
    assert time.monotonic() - started < 1.5
    assert "rate limiting" in exc.message and exc.transient and exc.retry_after >= 1
    assert 2 <= len(fake_samcart.requests) <= 3  # waited within the half second, then gave up


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_failing_api_is_transient(fake_samcart, status):
    fake_samcart.fail_next(1, status=status)
    exc = failure(lambda: verify(KEYED))
    assert exc.message.startswith(f"SamCart answered HTTP {status}") and exc.transient and not exc.field


def test_the_three_failures_read_differently(fake_samcart, monkeypatch):
    refused = failure(lambda: verify({"api_key": "nope"})).message
    fake_samcart.fail_next(1, status=503)
    down = failure(lambda: verify(KEYED)).message
    monkeypatch.setenv("SAMCART_API_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    unreachable = failure(lambda: verify(KEYED)).message
    assert refused.startswith("SamCart refused the API key (HTTP 401")
    assert down.startswith("SamCart answered HTTP 503")
    assert unreachable.startswith("SamCart's API could not be reached at http://127.0.0.1:")


def test_the_base_url_is_read_at_call_time(fake_samcart, monkeypatch):
    monkeypatch.setenv("SAMCART_API_BASE_URL", fake_samcart.base_url + "/")
    assert verify(KEYED) == {"api_connected": True}
    assert fake_samcart.requests[0].path == "/products"


# ---------------------------------------------------------------------------------------------- 429 handling


@pytest.mark.parametrize("header", ["Retry-After", "RateLimit-Reset", "X-RateLimit-Reset"])
def test_a_429_is_waited_out_then_retried(fake_samcart, header):
    fake_samcart.fail_next(2, retry_after=0.1, header=header)
    with SamCart(SAMCART_API_KEY) as client:
        assert client.get("/products")["data"] == []
    assert client.waits == [0.1, 0.1]
    assert [r.status for r in fake_samcart.requests] == [429, 429, 200]


def test_each_answer_is_counted_for_the_metrics_429s_apart(fake_samcart, hookyard_counted_calls):
    fake_samcart.fail_next(2, retry_after=0.1)
    with SamCart(SAMCART_API_KEY) as client:
        client.get("/products")
    assert (hookyard_counted_calls.calls, hookyard_counted_calls.rate_limited) == (3, 2)


def test_a_429_without_a_header_backs_off(fake_samcart):
    fake_samcart.fail_next(1, header=None)
    with SamCart(SAMCART_API_KEY) as client:
        client.get("/products")
    assert client.waits == [1.0]


def test_a_wait_longer_than_the_budget_gives_up_at_once(fake_samcart, monkeypatch):
    monkeypatch.setenv("SAMCART_RATE_LIMIT_WAIT", "5")
    fake_samcart.fail_next(1, retry_after=60)
    started = time.monotonic()
    exc = failure(lambda: SamCart(SAMCART_API_KEY).get("/products"))
    assert time.monotonic() - started < 1
    assert (exc.transient, exc.retry_after) == (True, 60)
    assert "try again in 60 seconds" in exc.message
    assert len(fake_samcart.requests) == 1


def test_retries_are_few(fake_samcart):
    fake_samcart.fail_next(10, retry_after=0.05)
    exc = failure(lambda: SamCart(SAMCART_API_KEY).get("/products"))
    assert exc.transient and exc.status == 429
    assert len(fake_samcart.requests) == samcart_client.RETRIES + 1


def test_wait_hints():
    assert wait_hint({"Retry-After": "3"}) == 3
    assert wait_hint({"RateLimit-Reset": "bogus", "X-RateLimit-Reset": "2.5"}) == 2.5
    assert 9 <= wait_hint({"X-RateLimit-Reset": str(int(time.time()) + 10)}) <= 10  # a Unix time
    assert (
        0 < wait_hint({"Retry-After": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))}) <= 30
    )
    assert wait_hint({"Retry-After": "-5"}) == 0
    assert wait_hint({}) is None


# ---------------------------------------------------------------------------------------------- products


def test_products_come_in_pages_of_100_to_the_end(fake_samcart):
    created = fake_samcart.add_products(250)
    fake_samcart.add_product("", internal_product_name="Internal only")
    seen = []
    pages = list(products(KEYED, {}, progress=lambda done, total=None, message=None: seen.append(done)))
    assert [len(page) for page in pages] == [100, 100, 51]
    rows = [row for page in pages for row in page]
    assert rows[:2] == [{"id": str(created[0]), "name": "Product 1"}, {"id": str(created[1]), "name": "Product 2"}]
    assert rows[-1]["name"] == "Internal only"  # no product_name: the internal name
    assert len({row["id"] for row in rows}) == 251
    assert seen == [100, 200, 251]
    assert [(r.query.get("limit"), r.query.get("dir")) for r in fake_samcart.requests] == [
        ("100", None),
        ("100", "next"),
        ("100", "next"),
    ]


def test_products_are_a_lazy_generator(fake_samcart):
    fake_samcart.add_products(150)
    pages = products(KEYED, {})
    assert fake_samcart.requests == []  # nothing is asked before the first page is wanted
    next(pages)
    assert len(fake_samcart.requests) == 1


@pytest.mark.parametrize("style", ["path", "cursor"])
def test_products_follow_every_shape_of_next(fake_samcart, style):
    fake_samcart.next_style = style
    fake_samcart.add_products(201)
    assert [len(page) for page in products(KEYED, {})] == [100, 100, 1]


def test_an_empty_store_yields_nothing(fake_samcart):
    assert list(products(KEYED, {})) == []
    assert len(fake_samcart.requests) == 1


def test_a_next_that_repeats_stops_with_an_error(fake_samcart):
    fake_samcart.stuck_pagination = True
    fake_samcart.add_products(150)
    pages = products(KEYED, {})
    assert len(next(pages)) == 100
    exc = failure(lambda: next(pages))
    assert "came back to a page already read" in exc.message and not exc.transient
    assert len(fake_samcart.requests) == 1


def test_a_next_on_another_host_is_not_followed(fake_samcart):
    fake_samcart.add_products(150)
    fake_samcart.url = "http://evil.example"  # the fake now writes next links for another server
    pages = products(KEYED, {})
    next(pages)
    exc = failure(lambda: next(pages))
    assert "points at another server (evil.example)" in exc.message
    assert len(fake_samcart.requests) == 1


def test_importing_needs_a_key(fake_samcart):
    exc = failure(lambda: list(products(NO_KEY, {})))
    assert exc.message.startswith("Importing products needs a SamCart API key") and exc.field == "api_key"
    assert fake_samcart.requests == []


def test_a_refused_key_stops_the_import(fake_samcart):
    exc = failure(lambda: list(products({"api_key": "revoked"}, {})))
    assert exc.message.startswith("SamCart refused the API key") and exc.field == "api_key"


def test_a_429_mid_import_is_waited_out(fake_samcart):
    fake_samcart.add_products(150)
    pages = products(KEYED, {})
    next(pages)
    fake_samcart.fail_next(1, retry_after=0.1)
    assert len(next(pages)) == 50


def test_progress_can_cancel_between_pages(fake_samcart):
    fake_samcart.add_products(250)

    def progress(done, total=None, message=None):
        if done >= 100:
            raise Cancelled()

    with pytest.raises(Cancelled):
        list(products(KEYED, {}, progress=progress))
    assert len(fake_samcart.requests) == 1


# ---------------------------------------------------------------------------------------------- subscription status


@pytest.mark.parametrize("status", ["active", "completed", "delinquent"])
def test_subscription_status_reads_the_api(fake_samcart, status):
    sid = fake_samcart.add_subscription(status)
    assert subscription_status(KEYED, sid) == status
    assert subscription_status(KEYED, str(sid)) == status
    assert fake_samcart.requests[0].path == f"/subscriptions/{sid}"


def test_subscription_status_is_none_without_a_key_or_for_a_bad_id(fake_samcart):
    sid = fake_samcart.add_subscription("completed")
    assert subscription_status(NO_KEY, sid) is None
    for bad in (None, True, "", "../products", "1/2", "x" * 100, {"id": sid}):
        assert subscription_status(KEYED, bad) is None
    assert fake_samcart.requests == []


def test_subscription_status_never_raises_and_logs_without_the_key(fake_samcart, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    sid = fake_samcart.add_subscription("completed")
    assert subscription_status(KEYED, 999) is None  # 404
    assert subscription_status({"api_key": "revoked"}, sid) is None  # 401
    fake_samcart.fail_next(1, status=500)
    assert subscription_status(KEYED, sid) is None
    fake_samcart.fail_next(1, retry_after=30)  # longer than its budget: gives up at once
    started = time.monotonic()
    assert subscription_status(KEYED, sid) is None
    assert time.monotonic() - started < 1
    monkeypatch.setenv("SAMCART_API_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    assert subscription_status(KEYED, sid) is None
    assert "HTTP 404" in caplog.text and "refused the API key" in caplog.text
    assert SAMCART_API_KEY not in caplog.text and "revoked" not in caplog.text


def test_subscription_status_is_bounded(fake_samcart, monkeypatch):
    monkeypatch.setattr("hookyard_samcart.connection.SUBSCRIPTION_STATUS_BUDGET", 0.3)
    sid = fake_samcart.add_subscription("completed")
    fake_samcart.latency = 3
    started = time.monotonic()
    assert subscription_status(KEYED, sid) is None
    assert time.monotonic() - started < 1.5
