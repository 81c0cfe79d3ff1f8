"""Every flow of the web UI, walked in headless Chromium against the real server, a real worker and the
fake Circle (a real HTTP server): sign-up, sign-in, connecting Circle (a bad key first), refresh,
a product rule and a global rule through the wizard, a purchase emitted through the API, its log entry
found by email and opened, a failed entry retried, and a connection deleted. Screenshots of each step go
to HOOKYARD_SCREENSHOTS_DIR (`make screenshots` writes docs/screenshots)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from ..circle.fixtures import API_KEY
from ..conftest import purchase
from ..waiting import wait_for
from .browser import save_screenshot
from .session import PASSWORD

STORE = "store-a"  # the name the API client's token is scoped to (tests/conftest.py: make_client)


def entries(api, **query):
    return api.get("/api/v1/logs", query_string=query).json


def sign_in(page, email, password=PASSWORD):
    page.goto("/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def nav(page, section):
    page.get_by_role("navigation", name="Main").get_by_role("link", name=section).click()


def choose_trigger(page, category, label):
    page.get_by_role("radio", name=category, exact=True).check()
    page.get_by_role("radio", name=re.compile(f"^{label}")).check()


@pytest.fixture
def worker(start_worker, fake_circle):
    # One attempt: a fault at the fake becomes a failed entry to retry from the UI.
    return start_worker(CIRCLE_API_BASE_URL=fake_circle.base_url, CIRCLE_TIMEOUT="2", HOOKYARD_RETRY_MAX_ATTEMPTS="1")


def test_a_merchant_sets_up_circle_rules_and_follows_the_log(page, api, fake_circle, community, worker):
    # First start: the one-time owner sign-up.
    page.goto("/")
    expect(page).to_have_url(re.compile("/setup$"))
    page.get_by_label("Store name").fill(STORE)
    page.get_by_label("Email").fill("owner@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    save_screenshot(page, "setup")
    page.get_by_role("button", name="Create the owner account").click()
    expect(page.get_by_role("status")).to_contain_text("Welcome to Hookyard")

    # Sign out and in again.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile("/sign-in$"))
    save_screenshot(page, "sign-in")
    sign_in(page, "owner@example.com", "a wrong password")
    expect(page.get_by_role("alert")).to_contain_text("do not match an account")
    sign_in(page, "owner@example.com")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    # New Integration: choose Circle, a bad key is refused inline, the right one connects.
    nav(page, "Integrations")
    page.get_by_role("link", name="New Integration").first.click()
    circle_card = page.get_by_role("listitem").filter(has=page.get_by_role("heading", name="Circle"))
    expect(circle_card.locator("img")).to_have_attribute("src", re.compile("^data:image/svg"))  # its logo
    save_screenshot(page, "integration-new")
    page.get_by_role("link", name="Connect Circle").click()
    page.get_by_label("Name", exact=True).fill("Community")
    page.get_by_label("API key").fill("not-the-right-key")
    page.get_by_label("Community URL").fill("https://test-community.circle.so")
    page.get_by_role("button", name="Connect").click()
    expect(page.get_by_role("alert")).to_contain_text("Circle refused the connection")
    save_screenshot(page, "integration-bad-key")
    assert api.get("/api/v1/integrations").json == []  # nothing saved
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_role("button", name="Connect").click()
    expect(page.get_by_role("status")).to_contain_text("Circle connected as “Community”")
    row = page.get_by_role("row").filter(has_text="Community")
    expect(row).to_contain_text("Connected")

    # Refresh loads the spaces, groups, events and tags the rules choose from.
    row.get_by_role("button", name="Refresh").click()
    expect(page.get_by_role("status")).to_contain_text("2 spaces")
    save_screenshot(page, "integration-refreshed")

    # A product added by hand, and a product-level rule through the wizard.
    nav(page, "Products")
    page.get_by_label("Store product id").fill("1001")
    page.get_by_label("Name (optional)").fill("Community")
    page.get_by_role("button", name="Add product").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Community")
    page.get_by_role("link", name="New Rule").click()
    page.get_by_label("Integration").select_option(label="Community (Circle)")
    page.get_by_label("Action").select_option(label="Invite member")
    save_screenshot(page, "rule-wizard-action")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("checkbox", name="Masterclass").check()
    page.get_by_role("checkbox", name="Customer").check()
    save_screenshot(page, "rule-wizard-settings")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("radio", name="Courses", exact=True)).to_have_count(0)  # they name no product
    choose_trigger(page, "eCommerce", "Product Purchased")
    save_screenshot(page, "rule-wizard-trigger")
    page.get_by_role("button", name="Submit").click()
    # Two notes: the rule was created, and the offer to apply it to the events already stored.
    expect(page.get_by_role("status").filter(has_text="Rule created")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Apply it to past events too?")).to_be_visible()
    rules_table = page.get_by_role("table")
    expect(rules_table).to_contain_text("Product Purchased")
    expect(rules_table).to_contain_text("Masterclass")
    save_screenshot(page, "product-rule-created")

    # A global rule: Integrations → Global rules → New Rule.
    nav(page, "Integrations")
    page.get_by_role("link", name="Global rules").click()
    page.get_by_role("link", name="New Rule").click()
    page.get_by_label("Integration").select_option(label="Community (Circle)")
    page.get_by_label("Action").select_option(label="Add member to space")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Next").click()  # no space chosen: the core's validation answers
    expect(page.get_by_text("Missing data for required field.")).to_be_visible()
    page.get_by_label("Space", exact=True).select_option(label="Welcome")
    page.get_by_role("button", name="Next").click()
    choose_trigger(page, "Courses", "Student Enrolled in Course")
    expect(page.get_by_role("radio", name=re.compile("^Product Purchased"))).to_be_hidden()  # other category
    choose_trigger(page, "eCommerce", "Product Purchased")
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_role("status").filter(has_text="Rule created")).to_be_visible()
    save_screenshot(page, "global-rule-created")
    rules = api.get("/api/v1/rules").json
    assert sorted((r["action"], r["product_id"] is None) for r in rules) == [
        ("add_member_to_space", True),
        ("invite_member", False),
    ]

    # A purchase through the API runs both rules; the log shows them, searchable by email.
    assert (
        api.post(
            "/api/v1/events",
            json={"trigger": "samcart.product_purchased", "payload": purchase("new.member@example.com")},
        ).status_code
        == 202
    )
    wait_for(
        lambda: [e["status"] for e in entries(api)] == ["succeeded", "succeeded"],
        timeout=30,
        message="both runs did not succeed",
    )
    assert fake_circle.member("new.member@example.com") is not None
    page.get_by_role("link", name="Logs").click()
    page.get_by_role("searchbox", name="Search").fill("new.member@")
    page.get_by_role("button", name="Search").click()
    results = page.get_by_role("table")
    expect(results.get_by_role("row")).to_have_count(3)  # header + two entries
    expect(results).to_contain_text("Succeeded")
    save_screenshot(page, "logs-search")
    page.get_by_role("searchbox", name="Search").fill("nobody@nowhere")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No entries match this search.")).to_be_visible()

    # Its detail: payload, the action's settings by name, each attempt.
    page.get_by_role("searchbox", name="Search").fill("new.member@")
    page.get_by_label("Action").select_option(label="Invite member")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("table").get_by_role("link").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Product Purchased → Circle: Invite member")
    expect(page.get_by_label("Trigger payload as JSON")).to_contain_text('"email": "new.member@example.com"')
    expect(page.locator("dl").filter(has_text="Spaces")).to_contain_text("Masterclass")
    expect(page.get_by_role("table")).to_contain_text("Succeeded")
    save_screenshot(page, "log-entry-succeeded")

    # A failed entry (Circle answered 503 and this worker makes one attempt), retried from its page.
    fake_circle.fail_next(5, "503")
    api.post("/api/v1/events", json={"trigger": "samcart.product_purchased", "payload": purchase("member@example.com")})
    wait_for(
        lambda: (
            sorted(e["status"] for e in entries(api, q="member@example.com", status="failed")) == ["failed", "failed"]
        ),
        timeout=30,
        message="the runs did not fail",
    )
    fake_circle.clear_faults()
    page.goto("/logs?status=failed")
    page.get_by_role("table").get_by_role("link").first.click()
    expect(page.get_by_role("table")).to_contain_text("Failed")
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status")).to_contain_text("Retry queued")
    retried = int(page.url.rsplit("/", 1)[1])
    wait_for(
        lambda: api.get(f"/api/v1/logs/{retried}").json["status"] == "succeeded",
        timeout=30,
        message="the retried run did not succeed",
    )
    assert len(entries(api, status="failed")) == 1  # the other failed entry was not retried
    page.reload()
    expect(page.get_by_role("table")).to_contain_text("Retried by owner@example.com")
    expect(page.get_by_role("table")).to_contain_text("Succeeded")
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)

    # Deleting the connection asks first, naming the rules it disables.
    nav(page, "Integrations")
    page.get_by_role("row").filter(has_text="Community").get_by_role("link", name="Delete").click()
    expect(page.get_by_text("2 rules use this connection and will be disabled")).to_be_visible()
    save_screenshot(page, "integration-delete-confirm")
    page.get_by_role("button", name="Delete the integration").click()
    expect(page.get_by_role("status")).to_contain_text("2 rule(s) that used it are disabled")
    assert api.get("/api/v1/integrations").json == []
    assert [r["enabled"] for r in api.get("/api/v1/rules").json] == [False, False]
