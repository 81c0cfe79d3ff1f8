"""The web UI for apps that receive webhooks (SamCart's Notify URL), in headless Chromium against the live server:
connecting SamCart (its type names a textarea, its optional API key a password field), copying the inbound URL
(the clipboard, and the selected-text fallback), deliveries posted to it over HTTP and processed by a real worker,
the delivery log (statuses, filters, links to the log entries of the events made, the body), Process again after
the mapping was fixed, rotating the URL (the old one answers 404), a viewer's masked URL and missing buttons, and
the product import task against the fake SamCart. Screenshots: integration-connect-samcart, integration-inbound-url,
deliveries, deliveries-phone, delivery and import-products (`make screenshots` writes them into docs/screenshots)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import select

from hookyard import deliveries
from hookyard.models import Delivery, Integration, Product

from ..samcart.fixtures import SAMCART_API_KEY
from ..waiting import wait_for
from .browser import checked
from .session import add_user
from .test_web_flows import sign_in

BODIES = Path(__file__).parent.parent / "samcart" / "bodies"
OWNER_ONLY = [
    "Copy",
    "Rotate URL",
    "Create URL",
    "Import products",
    "Process again",
    "Edit",
    "Refresh",
    "Delete",
    "Cancel the import",
]


def body(name: str) -> dict:
    return json.loads((BODIES / f"{name}.json").read_text())


def integration_id_of(page) -> int:
    found = re.search(r"/integrations/(\d+)$", page.url)
    assert found, page.url
    return int(found.group(1))


def statuses(api, integration_id) -> list[str]:
    r = api.get(f"/api/v1/integrations/{integration_id}/deliveries")
    assert r.status_code == 200, r.json
    return [d["status"] for d in r.json]


def all_processed(api, integration_id) -> list[str]:
    return wait_for(
        lambda: (s := statuses(api, integration_id)) and "received" not in s and s,
        timeout=30,
        message="the worker did not process every delivery",
    )


def process_here(runtime) -> list[str]:
    """What the worker does with each queued delivery (hookyard.deliveries.process), in this process."""
    with runtime.db.session() as session:
        waiting = list(session.scalars(select(Delivery.id).where(Delivery.status == "received").order_by(Delivery.id)))
    return [deliveries.process(delivery_id) for delivery_id in waiting]


@pytest.fixture
def samcart(api):
    """A SamCart connection without an API key (the Notify URL needs none), made through the API."""
    r = api.post("/api/v1/integrations", json={"app": "samcart", "name": "My SamCart store", "config": {}})
    assert r.status_code == 201, r.json
    return r.json


def test_an_owner_connects_samcart_copies_its_url_and_follows_its_deliveries(
    owner_page, live_server, new_page, api, setup, start_worker
):
    page = owner_page
    # A global rule on Product Purchased, so the purchase's event has a log entry to link to.
    setup.rule(setup.integration())
    worker = start_worker()

    # Connect: offered on New Integration although it has no actions; its form says what each field is.
    page.goto("/integrations/new")
    card = page.get_by_role("listitem").filter(has=page.get_by_role("heading", name="SamCart"))
    expect(card).to_contain_text("No actions: it sends events · receives webhooks at its own URL · imports products")
    card.get_by_role("link", name="Connect SamCart").click()
    key = page.get_by_label("API key (optional)")
    assert key.get_attribute("type") == "password"
    expect(page.get_by_text("Optional. SamCart issues API keys on request")).to_be_visible()
    types = page.get_by_label("Extra notification types (optional)")
    assert types.evaluate("el => el.tagName") == "TEXTAREA"
    checked(page, "integration-connect-samcart")
    page.get_by_label("Name", exact=True).fill("My SamCart store")
    page.get_by_role("button", name="Connect").click()

    # Its page: the whole URL, the app's instructions, and Copy (the clipboard API: localhost is a secure context).
    expect(page.get_by_role("status")).to_contain_text("SamCart connected as “My SamCart store”")
    integration_id = integration_id_of(page)
    url_box = page.get_by_label("Inbound URL of “My SamCart store”")
    url = url_box.input_value()
    assert re.fullmatch(re.escape(live_server.url) + r"/hooks/samcart/[A-Za-z0-9_-]{43}", url), url
    expect(page.get_by_text("connect the Notify URL / Webhooks app with this URL")).to_be_visible()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page.get_by_role("button", name="Copy the inbound URL").click()
    expect(page.get_by_text("Copied to the clipboard.")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == url
    checked(page, "integration-inbound-url")

    # SamCart posts: a purchase, a kind the mapping does not know, and a body that is not JSON.
    assert requests.post(url, json=body("order"), timeout=10).status_code == 200
    assert requests.post(url, json=body("unknown_type"), timeout=10).status_code == 200
    refused = requests.post(url, data=b"type=Order&oops", headers={"Content-Type": "text/plain"}, timeout=10)
    assert refused.status_code == 400, refused.text
    assert all_processed(api, integration_id) == ["rejected", "unmapped", "mapped"]
    assert worker.poll() is None

    page.reload()
    page.get_by_role("link", name="Delivery log (3)").click()
    rows = page.get_by_role("row")
    expect(rows).to_have_count(4)  # header + three, newest first
    expect(rows.nth(1)).to_contain_text("Rejected")
    expect(rows.nth(2)).to_contain_text("Unmapped")
    expect(rows.nth(2)).to_contain_text("SubscriptionCancelScheduled")
    mapped = rows.nth(3)
    expect(mapped).to_contain_text("Mapped")
    expect(mapped).to_contain_text("Product Purchased")
    checked(page, "deliveries")
    phone = new_page(390, 844)
    sign_in(phone, "owner@example.com")
    phone.goto(page.url)
    checked(phone, "deliveries-phone")

    # The purchase's event links to the log entry its rule made.
    mapped.get_by_role("link", name=re.compile(r"^Log entry \d+")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Product Purchased")
    expect(page.get_by_text("ada@example.com", exact=True)).to_be_visible()
    page.go_back()

    # Filtered by status; a body that could not be read is shown as text, and cannot be processed again.
    page.get_by_label("Status").select_option("rejected")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("row")).to_have_count(2)
    page.get_by_role("row").nth(1).get_by_role("link").first.click()
    expect(page.get_by_label("The start of the body as text")).to_have_text("type=Order&oops")
    expect(page.get_by_text("neither JSON nor a form")).to_be_visible()
    expect(page.get_by_role("button", name="Process again")).to_have_count(0)

    # The mapped delivery's body, pretty-printed (& is not escaped as \u0026, the API key field is masked).
    page.goto(f"/integrations/{integration_id}/deliveries?status=mapped")
    page.get_by_role("row").nth(1).get_by_role("link").first.click()
    shown = page.get_by_label("Delivery body as JSON")
    expect(shown).to_contain_text('"email": "ada@example.com"')
    assert json.loads(shown.inner_text()) == body("order")
    checked(page, "delivery")

    # Teach the connection the unknown type, then process the unmapped delivery again.
    page.goto(f"/integrations/{integration_id}/edit")
    page.get_by_label("Extra notification types (optional)").fill(
        "# SamCart's own name for it\nSubscriptionCancelScheduled = subscription_canceled"
    )
    page.get_by_role("button", name="Save and verify").click()
    expect(page.get_by_role("status")).to_contain_text("saved")
    page.goto(f"/integrations/{integration_id}/deliveries?status=unmapped")
    page.get_by_role("row").nth(1).get_by_role("link").first.click()
    page.get_by_role("button", name="Process again").click()
    expect(page.get_by_role("status")).to_contain_text("is queued to be processed again")
    # The page reloads itself while the delivery waits (a Refresh header), until the worker has done it.
    expect(page.get_by_role("region", name="Events it made")).to_contain_text("Subscription Canceled", timeout=30_000)
    expect(page.locator(".facts")).to_contain_text("Mapped")
    assert sorted(statuses(api, integration_id)) == ["mapped", "mapped", "rejected"]

    # Rotate: a warning first; then the old URL answers 404 and the new one works.
    page.goto(f"/integrations/{integration_id}")
    page.get_by_role("link", name="Rotate URL").click()
    expect(page.get_by_role("alert")).to_contain_text("The current URL stops working at once.")
    checked(page)
    page.get_by_role("button", name="Rotate the URL now").click()
    expect(page.get_by_role("status")).to_contain_text("has a new inbound URL: the old one stopped working")
    new_url = page.get_by_label("Inbound URL of “My SamCart store”").input_value()
    assert new_url != url and new_url.startswith(live_server.url + "/hooks/samcart/")
    assert requests.post(url, json=body("order"), timeout=10).status_code == 404
    assert requests.post(new_url, json=body("refund"), timeout=10).status_code == 200
    assert len(statuses(api, integration_id)) == 4  # the 404 stored nothing


def test_without_the_clipboard_api_the_url_is_left_selected(owner_page, samcart):
    page = owner_page
    page.goto(f"/integrations/{samcart['id']}")
    # As on a plain-HTTP deployment (no clipboard API) whose browser also refuses execCommand("copy").
    page.evaluate("""() => {
      Object.defineProperty(navigator, 'clipboard', {value: undefined, configurable: true});
      document.execCommand = () => false;
    }""")
    page.get_by_role("button", name="Copy the inbound URL").click()
    expect(page.get_by_text("Selected: press Ctrl+C (⌘C on a Mac) to copy it.")).to_be_visible()
    focused, start, end, value = page.evaluate(
        "() => { const el = document.activeElement; return [el.id, el.selectionStart, el.selectionEnd, el.value]; }"
    )
    key = samcart["inbound_url"].rsplit("/", 1)[1]
    assert (focused, start, end) == ("inbound-url", 0, len(value)) and value.endswith(f"/hooks/samcart/{key}")


def test_a_viewer_sees_the_url_masked_and_no_button_that_changes_anything(page, runtime, api, app, samcart, in_process):
    path = "/" + samcart["inbound_url"].split("/", 3)[3]
    client = app.test_client()
    assert client.post(path, json=body("order")).status_code == 200
    assert client.post(path, json=body("unknown_type")).status_code == 200
    assert process_here(runtime) == ["mapped", "unmapped"]
    add_user(runtime, "viewer@example.com", "viewer")
    sign_in(page, "viewer@example.com")

    page.goto(f"/integrations/{samcart['id']}")
    key = samcart["inbound_url"].rsplit("/", 1)[1]
    section = page.get_by_role("region", name="Inbound URL")
    expect(section).to_contain_text(f"/hooks/samcart/{key[:4]}…")
    assert key not in page.content()
    expect(section).to_contain_text("only owners see the whole URL")
    expect(section.get_by_role("link", name="Delivery log (2)")).to_be_visible()
    checked(page)
    paths = [
        f"/integrations/{samcart['id']}",
        f"/integrations/{samcart['id']}/deliveries",
        *[
            f"/integrations/{samcart['id']}/deliveries/{d['id']}"
            for d in api.get(f"/api/v1/integrations/{samcart['id']}/deliveries").json
        ],
    ]
    for shown in paths:
        assert page.goto(shown).status == 200, shown
        for label in OWNER_ONLY:
            for role in ("button", "link"):
                assert page.get_by_role(role, name=re.compile(rf"^{label}\b")).count() == 0, (shown, role, label)
    assert page.goto(f"/integrations/{samcart['id']}/inbound-url/rotate").status == 403


def test_a_connection_without_a_url_gets_one_with_create_url(owner_page, runtime, samcart, live_server):
    with runtime.db.session() as session:  # as a connection made before its app received webhooks
        row = session.get(Integration, samcart["id"])
        row.inbound_key = row.inbound_key_hash = None
        session.commit()
    page = owner_page
    page.goto(f"/integrations/{samcart['id']}")
    expect(page.get_by_text("This connection has no inbound URL yet")).to_be_visible()
    expect(page.get_by_role("link", name="Rotate URL")).to_have_count(0)
    page.get_by_role("button", name="Create URL").click()
    expect(page.get_by_role("status")).to_contain_text("has an inbound URL: copy it into SamCart")
    url = page.get_by_label("Inbound URL of “My SamCart store”").input_value()
    assert requests.post(url, json=body("order"), timeout=10).status_code == 200
    # The URL the API made first answers 404: a new key was made, not the old one restored.
    old_path = "/" + samcart["inbound_url"].split("/", 3)[3]
    assert requests.post(live_server.url + old_path, json=body("order"), timeout=10).status_code == 404


def test_products_are_imported_with_progress_and_cancel(owner_page, fake_samcart, start_worker, runtime, api):
    page = owner_page
    fake_samcart.add_products(250)
    page.goto("/integrations/new/samcart")
    page.get_by_label("Name", exact=True).fill("Keyed store")
    page.get_by_label("API key (optional)").fill(SAMCART_API_KEY)
    page.get_by_role("button", name="Connect").click()
    expect(page.get_by_role("status")).to_contain_text("SamCart connected as “Keyed store”")
    integration_id = integration_id_of(page)

    # No worker yet: the task waits, and Cancel ends it before it starts.
    page.get_by_role("button", name="Import products").click()
    expect(page).to_have_url(re.compile(rf"/integrations/{integration_id}/products/import/\d+$"))
    expect(page.get_by_role("status")).to_contain_text("Waiting for a worker.")
    page.get_by_role("button", name="Cancel the import").click()
    expect(page.get_by_role("status")).to_contain_text("Cancelled before it started.")
    expect(page.get_by_role("button", name="Cancel the import")).to_have_count(0)

    # With a worker, and SamCart holding its first page until the page has shown the import under way: the page
    # follows it to the end.
    fake_samcart.pause()
    start_worker(SAMCART_TIMEOUT="60")  # the held request must outlast the wait below
    page.get_by_role("link", name="Back to “Keyed store”").click()
    page.get_by_role("button", name="Import products").click()
    expect(page.get_by_role("status")).to_contain_text("Asking SamCart", timeout=30_000)
    fake_samcart.resume()
    expect(page.get_by_role("status")).to_contain_text(
        "250 products imported into “Keyed store”'s store: 250 new, 0 renamed, 0 unchanged.", timeout=60_000
    )
    bar = page.get_by_role("progressbar", name="Products read")
    expect(bar).to_have_attribute("value", "250")
    expect(bar).to_have_attribute("max", "250")
    checked(page, "import-products")
    page.get_by_role("link", name="See the products").click()
    expect(page.get_by_role("heading", name="Products")).to_be_visible()
    with runtime.db.session() as session:
        assert len(list(session.scalars(select(Product.id)))) == 250


def test_an_import_without_an_api_key_says_what_is_missing(owner_page, samcart, start_worker):
    page = owner_page
    start_worker()
    page.goto(f"/integrations/{samcart['id']}")
    page.get_by_role("button", name="Import products").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "“My SamCart store” could not import its products: Importing products needs a SamCart API key", timeout=30_000
    )
    page.get_by_role("link", name="Back to “My SamCart store”").click()
    expect(page.get_by_role("region", name="Products")).to_contain_text("Failed")


# --- no rendering needed: the Flask test client ----------------------------------------------------------------


def test_the_rule_wizard_offers_only_apps_with_actions(owner, samcart, setup):
    recorder = setup.integration()
    wizard = owner.get("/rules/new").text
    assert f'<option value="{recorder}"' in wizard and f'<option value="{samcart["id"]}"' not in wizard
    assert "Connect SamCart" in owner.get("/integrations/new").text
    refused = owner.post("/rules/new", {"step": "action", "integration_id": str(samcart["id"]), "action": "x"})
    assert refused.status_code == 422


def test_the_delivery_log_refuses_an_unknown_status_and_other_stores_deliveries(owner, samcart, app, make_client):
    refused = owner.get(f"/integrations/{samcart['id']}/deliveries?status=lost")
    assert refused.status_code == 422 and "Choose one of: received, mapped" in refused.text
    theirs = (
        make_client("store-b").post("/api/v1/integrations", json={"app": "samcart", "name": "B", "config": {}}).json
    )
    path = "/" + theirs["inbound_url"].split("/", 3)[3]
    assert app.test_client().post(path, json=body("order")).status_code == 200
    assert owner.get(f"/integrations/{theirs['id']}/deliveries").status_code == 404
    assert owner.get(f"/integrations/{samcart['id']}/deliveries/1").status_code == 404  # store-b's delivery
    assert owner.post(f"/integrations/{samcart['id']}/deliveries/1/reprocess").status_code == 404


def test_an_unreadable_delivery_is_not_processed_again(owner, samcart, app, runtime):
    path = "/" + samcart["inbound_url"].split("/", 3)[3]
    assert app.test_client().post(path, data=b"\x00\x01", content_type="application/json").status_code == 400
    with runtime.db.session() as session:
        [delivery] = session.scalars(select(Delivery)).all()
    page = owner.get(f"/integrations/{samcart['id']}/deliveries/{delivery.id}")
    assert page.status_code == 200 and "Process again" not in page.text and "Refresh" not in page.headers
    response = owner.post(f"/integrations/{samcart['id']}/deliveries/{delivery.id}/reprocess")
    assert response.status_code == 302
    assert "there is nothing to process" in owner.get(response.location).text
    with runtime.db.session() as session:
        assert session.get(Delivery, delivery.id).status == "rejected"


def test_clearing_an_optional_field_on_the_edit_form_clears_it(owner, samcart, runtime):
    owner.get(f"/integrations/{samcart['id']}/edit")
    saved = owner.post(
        f"/integrations/{samcart['id']}/edit",
        {"name": "My SamCart store", "config.type_names": "Student Enrolled = course_enrolled"},
    )
    assert saved.status_code == 302, saved.text
    with runtime.db.session() as session:
        assert session.get(Integration, samcart["id"]).config["type_names"] == "Student Enrolled = course_enrolled"
    refused = owner.post(
        f"/integrations/{samcart['id']}/edit",
        {"name": "My SamCart store", "config.type_names": "Student Enrolled = not_a_trigger"},
    )
    assert refused.status_code == 422 and "is not a SamCart trigger" in refused.text
    assert "<textarea" in refused.text and "not_a_trigger</textarea>" in refused.text
    cleared = owner.post(f"/integrations/{samcart['id']}/edit", {"name": "My SamCart store", "config.type_names": ""})
    assert cleared.status_code == 302
    with runtime.db.session() as session:
        assert session.get(Integration, samcart["id"]).config["type_names"] is None
