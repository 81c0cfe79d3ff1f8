"""The fake SamCart Public API: it must answer like samcart.md §4 and §9 say SamCart does, because the SamCart
plugin's tests trust it. Everything goes through real HTTP with `requests`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import requests

from hookyard_samcart.fake import BAD_KEY, FakeSamCart


@pytest.fixture
def fake():
    with FakeSamCart() as server:
        yield server


@pytest.fixture
def get(fake):
    """get(path_or_url, **requests_kwargs) with the fake's key; a path is relative to its base URL."""
    session = requests.Session()
    session.headers["sc-api"] = fake.api_key

    def call(path, **kwargs):
        kwargs.setdefault("timeout", 5)
        return session.get(path if "://" in path else fake.base_url + path, **kwargs)

    yield call
    session.close()


def ids_of(response) -> list[int]:
    return [record["id"] for record in response.json()["data"]]


# ---------------------------------------------------------------------------------------------- auth


@pytest.mark.parametrize("headers", [{}, {"sc-api": "wrong-key"}, {"Authorization": "Bearer test-samcart-api-key"}])
def test_a_missing_or_wrong_key_is_401(fake, headers):
    r = requests.get(fake.base_url + "/products", headers=headers, timeout=5)
    assert (r.status_code, r.json()) == (401, {"message": BAD_KEY})


def test_the_key_header_name_is_case_insensitive(fake):
    r = requests.get(fake.base_url + "/products", headers={"SC-API": fake.api_key}, timeout=5)
    assert r.status_code == 200


def test_a_key_without_access_is_403(fake):
    fake.add_api_key("limited-key", allowed=False)
    r = requests.get(fake.base_url + "/products", headers={"sc-api": "limited-key"}, timeout=5)
    assert r.status_code == 403 and r.json()["message"]


def test_routing_404_and_405(fake, get):
    assert get("/nope").status_code == 404
    r = requests.post(fake.base_url + "/products", headers={"sc-api": fake.api_key}, json={}, timeout=5)
    assert (r.status_code, r.headers["Allow"]) == (405, "GET")


# ---------------------------------------------------------------------------------------------- pagination


def test_250_products_come_in_three_pages_following_next(fake, get):
    created = fake.add_products(250)
    first = get("/products")
    assert first.status_code == 200
    assert ids_of(first) == created[:100]  # limit defaults to 100
    assert first.json()["pagination"]["prev"] is None
    second = get(first.json()["pagination"]["next"])
    assert ids_of(second) == created[100:200]
    third = get(second.json()["pagination"]["next"])
    assert ids_of(third) == created[200:]
    assert third.json()["pagination"]["next"] is None
    # next is a full URL on the fake, carrying the id cursor (§9: offset + dir)
    assert first.json()["pagination"]["next"] == (f"{fake.base_url}/products?limit=100&offset={created[99]}&dir=next")


def test_prev_goes_back_a_page(fake, get):
    created = fake.add_products(250)
    second = get("/products", params={"offset": created[99], "dir": "next"})
    assert ids_of(second) == created[100:200]
    back = get(second.json()["pagination"]["prev"])
    assert ids_of(back) == created[:100]
    assert back.json()["pagination"]["prev"] is None


def test_a_small_limit_and_the_cursor(fake, get):
    created = fake.add_products(5)
    page = get("/products", params={"limit": 2, "offset": created[1]})
    assert ids_of(page) == created[2:4]
    assert "limit=2" in page.json()["pagination"]["next"]
    prev = get("/products", params={"limit": 2, "offset": created[4], "dir": "prev"})
    assert ids_of(prev) == created[2:4]


@pytest.mark.parametrize(
    "params", [{"limit": 101}, {"limit": 0}, {"limit": "ten"}, {"dir": "sideways"}, {"offset": "abc"}]
)
def test_bad_list_parameters_are_400(get, params):
    r = get("/products", params=params)
    assert r.status_code == 400 and r.json()["message"]


def test_the_limit_can_be_clamped_instead(fake, get):
    fake.clamp_limit = True
    fake.add_products(120)
    assert len(ids_of(get("/products", params={"limit": 500}))) == 100


def test_list_filters_are_kept_in_next(fake, get):
    for i in range(3):
        fake.add_product(f"Live {i}")
        fake.add_product(f"Old {i}", status="archived")
    page = get("/products", params={"status": "archived", "limit": 2})
    assert [p["product_name"] for p in page.json()["data"]] == ["Old 0", "Old 1"]
    rest = get(page.json()["pagination"]["next"])
    assert [p["product_name"] for p in rest.json()["data"]] == ["Old 2"]


@pytest.mark.parametrize(
    "style, expected",
    [("path", lambda f, last: f"/v1/products?limit=1&offset={last}&dir=next"), ("cursor", lambda f, last: last)],
)
def test_next_can_take_other_shapes(fake, get, style, expected):
    fake.next_style = style
    first, _ = fake.add_products(2)
    assert get("/products", params={"limit": 1}).json()["pagination"]["next"] == expected(fake, first)


def test_stuck_pagination_repeats_the_page_served(fake, get):
    fake.stuck_pagination = True
    fake.add_products(3)
    page = get("/products", params={"limit": 2})
    assert page.json()["pagination"]["next"] == f"{fake.base_url}/products?limit=2"


# ---------------------------------------------------------------------------------------------- records


def test_a_product_has_the_api_fields_with_price_in_cents(fake, get):
    pid = fake.add_product("Course", price=19700, internal_product_name="course-internal")
    product = get(f"/products/{pid}").json()
    assert product["id"] == pid and product["price"] == 19700 and product["currency"] == "USD"
    assert (product["product_name"], product["internal_product_name"]) == ("Course", "course-internal")
    assert {
        "sku",
        "status",
        "pricing_type",
        "product_category",
        "slug",
        "product_tags",
        "created_at",
        "updated_at",
        "archived_at",
    } <= product.keys()
    assert len(product["created_at"]) == 19 and product["created_at"][10] == " "  # "YYYY-MM-DD HH:MM:SS"


def test_subscriptions_show_their_status_and_change(fake, get):
    sid = fake.add_subscription("active", total_failed_charges=0)
    sub = get(f"/subscriptions/{sid}").json()
    assert sub["status"] == "active"
    assert {"customer_id", "product_id", "start_date", "next_rebilling_date", "total_failed_charges"} <= sub.keys()
    fake.set_subscription_status(sid, "completed")
    assert get(f"/subscriptions/{sid}").json()["status"] == "completed"
    other = fake.add_subscription("delinquent")
    assert ids_of(get("/subscriptions", params={"status": "delinquent"})) == [other]


def test_orders_and_customers(fake, get):
    customer = fake.add_customer("Ada@Example.com", "Ada", "Lovelace")
    products = [fake.add_product("A", price=4900), fake.add_product("B", price=1900)]
    oid = fake.add_order(customer, products)
    order = get(f"/orders/{oid}").json()
    assert order["customer_id"] == customer and order["total"] == 6800
    assert [item["product_id"] for item in order["cart_items"]] == products
    assert get(f"/customers/{customer}").json()["email"] == "ada@example.com"
    assert ids_of(get("/orders", params={"customer_id": customer})) == [oid]


@pytest.mark.parametrize("path", ["/products", "/subscriptions", "/orders", "/customers"])
def test_unknown_ids_are_404(fake, get, path):
    # One id sequence for every kind: an id of another kind of record is unknown too.
    other = fake.add_customer("x@example.com") if path != "/customers" else fake.add_product("P")
    for raw in (999, "abc", other):
        r = get(f"{path}/{raw}")
        assert r.status_code == 404 and r.json()["message"]


# ---------------------------------------------------------------------------------------------- faults and log


def test_429_carries_the_wait_header_then_recovers(fake, get):
    fake.fail_next(2, retry_after=3)
    first = get("/products")
    assert (first.status_code, first.headers["Retry-After"]) == (429, "3")
    assert get("/products").status_code == 429
    assert get("/products").status_code == 200
    assert [r.status for r in fake.requests] == [429, 429, 200]


def test_429_can_use_another_header_or_none(fake, get):
    fake.fail_next(1, retry_after=7, header="X-RateLimit-Reset")
    fake.fail_next(1, header=None)
    first, second = get("/products"), get("/products")
    assert first.headers["X-RateLimit-Reset"] == "7" and "Retry-After" not in first.headers
    assert second.status_code == 429 and "Retry-After" not in second.headers


def test_a_fault_can_target_one_path_and_5xx(fake, get):
    sid = fake.add_subscription()
    fake.fail_next(1, status=503, path=f"/subscriptions/{sid}")
    assert get("/products").status_code == 200
    r = get(f"/subscriptions/{sid}")
    assert r.status_code == 503 and r.headers["Content-Type"].startswith("text/html")
    assert get(f"/subscriptions/{sid}").status_code == 200


def test_fail_next_refuses_statuses_it_cannot_fake(fake):
    with pytest.raises(ValueError):
        fake.fail_next(1, status=404)


def test_requests_are_recorded_with_headers_and_can_be_reset(fake, get):
    get("/products", params={"limit": 5})
    [rec] = fake.requests
    assert (rec.method, rec.path, rec.query, rec.status) == ("GET", "/products", {"limit": "5"}, 200)
    assert rec.headers["SC-API"] == fake.api_key
    fake.reset_requests()
    assert fake.requests == []


def test_latency_delays_every_answer(fake, get):
    fake.latency = 0.3
    started = time.monotonic()
    get("/products")
    assert time.monotonic() - started >= 0.3


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_serves_a_demo_store_until_interrupted():
    proc = subprocess.Popen(
        [sys.executable, "-m", "hookyard_samcart.fake", "--port", "0", "--demo", "--quiet"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = proc.stdout.readline().split(": ", 1)[1].strip()
        key = proc.stdout.readline().split(": ", 1)[1].strip()
        assert base_url.endswith("/v1")
        products = requests.get(base_url + "/products", headers={"sc-api": key}, timeout=5).json()["data"]
        assert len(products) == 4
        subs = requests.get(base_url + "/subscriptions", headers={"sc-api": key}, timeout=5).json()["data"]
        assert {s["status"] for s in subs} == {"active", "completed"}
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()
