"""Issue 11's UI papercuts, each walked in headless Chromium against the real server: the rule wizard's errors
beside the field with the focus on it, eCommerce first, the focus on each new step's heading, a confirmation
before deleting a rule and before a bulk retry, HTML 404/500 pages (JSON kept for /api/ and /hooks/), the empty
dashboard's first steps, plurals, and the log's filters folded on a phone."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from ..circle.fixtures import CircleSetup
from ..conftest import purchase
from ..tasking import refresh
from ..waiting import wait_for
from .browser import checked
from .session import add_user
from .test_web_flows import sign_in


@pytest.fixture
def circle(api, runtime, fake_circle, community):
    """A Circle connection with its lists loaded (spaces, groups, events, tags)."""
    setup = CircleSetup(api, fake_circle)
    integration = setup.connect()
    refresh(api, runtime, integration)
    setup.id = integration
    return setup


def in_viewport(locator) -> bool:
    return locator.evaluate("""(el) => { const r = el.getBoundingClientRect();
                                         return r.top >= 0 && r.bottom <= window.innerHeight; }""")


def start_global_rule(page, action):
    page.goto("/rules/new")
    page.get_by_label("Integration").select_option(label="Community (Circle)")
    page.get_by_label("Action").select_option(label=action)
    page.get_by_role("button", name="Next").click()


def test_submitting_the_wizard_without_a_trigger_marks_the_field_scrolls_and_focuses_it(owner_page, circle):
    page = owner_page
    start_global_rule(page, "Invite member")
    page.get_by_role("button", name="Next").click()
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Submit").click()
    assert answer.value.status == 422
    error = page.locator("#e-trigger")
    expect(error).to_have_text("Choose a trigger: when should the action run?")
    expect(page.get_by_text("Unknown trigger")).to_have_count(0)  # the core's message, not the form's
    # Beside the choice, described by it, and where the page now is: the focus is on the first trigger shown.
    focused = page.locator(":focus")
    expect(focused).to_have_attribute("name", "trigger")
    group = focused.evaluate(
        "(el) => [el.closest('fieldset').dataset.category, el.closest('fieldset').getAttribute('aria-describedby')]"
    )
    assert group == ["eCommerce", "e-trigger"]  # the category shown, and the error describes the choice
    assert in_viewport(error) and in_viewport(focused)
    checked(page, "papercut-wizard-no-trigger")
    page.get_by_role("radio", name=re.compile("^Product Purchased")).check()
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_role("status").filter(has_text="Rule created")).to_be_visible()


def test_the_wizard_works_without_script_too(browser, live_server, runtime, circle):
    add_user(runtime, "owner@example.com", "owner")
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, "owner@example.com")
        start_global_rule(page, "Invite member")
        page.get_by_role("button", name="Next").click()
        page.get_by_role("button", name="Submit").click()
        expect(page.locator("#e-trigger")).to_be_visible()
        # Autofocus is HTML, not script: the focus still lands on the trigger.
        expect(page.locator(":focus")).to_have_attribute("name", "trigger")
    finally:
        context.close()


def test_the_global_wizard_opens_on_ecommerce(owner_page, circle):
    page = owner_page
    start_global_rule(page, "Invite member")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("radio", name="eCommerce", exact=True)).to_be_checked()
    expect(page.get_by_role("radio", name="Courses", exact=True)).not_to_be_checked()
    expect(page.get_by_role("radio", name=re.compile("^Product Purchased"))).to_be_visible()
    expect(page.get_by_role("radio", name=re.compile("^Student Enrolled in Course"))).to_be_hidden()


def test_each_wizard_step_puts_the_focus_on_its_heading_or_first_error(owner_page, circle):
    page = owner_page
    start_global_rule(page, "Add member to space")
    expect(page.get_by_role("heading", name="Step 1: Add member to space: settings")).to_be_focused()
    page.get_by_role("button", name="Next").click()  # no space chosen
    expect(page.get_by_label("Space", exact=True)).to_be_focused()
    expect(page.get_by_label("Space", exact=True)).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Space", exact=True).select_option(label="Welcome")
    page.get_by_role("button", name="Next").click()
    step2 = page.get_by_role("heading", name="Step 2: when should it happen")
    expect(step2).to_be_focused()
    checked(page, "papercut-wizard-step-focus")
    page.get_by_role("button", name="Back").click()
    expect(page.get_by_role("heading", name="Step 1: Add member to space: settings")).to_be_focused()
    page.get_by_role("button", name="Back").click()
    expect(page.get_by_role("heading", name="Step 1: what should happen")).to_be_focused()
    page.get_by_label("Action").select_option("")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_label("Action")).to_be_focused()


def test_deleting_a_rule_asks_first(owner_page, circle, api, community):
    page = owner_page
    rule = circle.rule(circle.id, "add_member_to_space", {"space_id": community.space1})
    page.goto("/rules")
    page.get_by_role("row").filter(has_text="Add member to space").get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", name="Delete this rule?")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("Welcome")  # its settings, by name
    assert api.get(f"/api/v1/rules/{rule}").status_code == 200  # nothing deleted yet
    checked(page, "papercut-rule-delete-confirm")
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("row").filter(has_text="Add member to space")).to_be_visible()
    page.get_by_role("row").filter(has_text="Add member to space").get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete the rule").click()
    expect(page.get_by_role("status")).to_contain_text("Rule deleted")
    assert api.get(f"/api/v1/rules/{rule}").status_code == 404


def test_retrying_every_matching_failed_entry_asks_first(owner_page, circle, api, community, fake_circle, start_worker):
    page = owner_page
    circle.rule(circle.id, "add_member_to_space", {"space_id": community.space1})
    start_worker(CIRCLE_API_BASE_URL=fake_circle.base_url, HOOKYARD_RETRY_MAX_ATTEMPTS="1")
    fake_circle.fail_next(10, "503")
    for email in ("ann@example.com", "bob@example.com"):
        api.post("/api/v1/events", json={"trigger": "samcart.product_purchased", "payload": purchase(email)})

    def failed():
        return [e["email"] for e in api.get("/api/v1/logs", query_string={"status": "failed"}).json]

    wait_for(lambda: len(failed()) == 2, timeout=30, message="the runs did not fail")
    fake_circle.clear_faults()
    page.goto("/logs?q=ann%40")
    page.get_by_role("link", name="Retry all failed entries matching").click()
    expect(page.get_by_role("heading", name="Retry 1 failed entry?")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("Search: ann@")
    assert sorted(failed()) == ["ann@example.com", "bob@example.com"]  # nothing retried by opening the page
    checked(page, "papercut-retry-confirm")
    page.get_by_role("button", name="Retry 1 entry").click()
    expect(page.get_by_role("status").filter(has_text="queued")).to_have_text("1 failed entry queued again.")
    wait_for(lambda: failed() == ["bob@example.com"], timeout=30, message="ann's entry was not retried")


@pytest.fixture
def breaking_app(app):
    """The app with a route that fails, as a bug would, under the UI and under /api/ (added before any request)."""

    def boom():
        raise RuntimeError("a bug")

    app.add_url_rule("/papercut-boom", "papercut_boom", boom)
    app.add_url_rule("/api/v1/papercut-boom", "papercut_api_boom", boom)
    return app


def test_unknown_pages_and_failures_answer_html_in_the_uis_look(breaking_app, live_server, owner_page):
    page = owner_page
    response = page.goto("/no-such-page")
    assert response.status == 404 and response.headers["content-type"].startswith("text/html")
    expect(page.get_by_role("heading", name="404 · Not Found")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()  # still signed in, in the UI's frame
    checked(page, "papercut-not-found")
    response = page.goto("/papercut-boom")
    assert response.status == 500 and response.headers["content-type"].startswith("text/html")
    expect(page.get_by_role("heading", name="500 · Internal Server Error")).to_be_visible()
    expect(page.get_by_text("a bug")).to_have_count(0)  # nothing of the exception leaks
    # Machine clients keep the API's JSON shape.
    for path, code in (("/api/v1/no-such-thing", 404), ("/api/v1/papercut-boom", 500), ("/hooks/nothing", 404)):
        answer = requests.get(live_server.url + path, timeout=10)
        assert answer.status_code == code and answer.headers["Content-Type"] == "application/json", path
        assert answer.json()["code"] == code and answer.json()["message"], path


def test_an_empty_dashboard_says_what_to_do_first(owner_page, api):
    page = owner_page
    steps = page.get_by_role("region", name="Get started")
    expect(steps.get_by_role("link", name=re.compile("^Connect SamCart"))).to_be_visible()
    expect(steps.get_by_role("link", name=re.compile("^Connect Circle"))).to_be_visible()
    expect(steps.get_by_role("link", name=re.compile("^Add a rule"))).to_be_visible()
    assert page.locator("svg.chart").count() == 0  # no chart of zeros
    checked(page, "papercut-dashboard-empty")
    steps.get_by_role("link", name=re.compile("^Connect SamCart")).click()
    expect(page).to_have_url(re.compile("/integrations/new/samcart$"))
    # Once SamCart is connected its step says so, and the others still link.
    assert api.post("/api/v1/integrations", json={"app": "samcart", "name": "Shop", "config": {}}).status_code == 201
    page.goto("/")
    expect(steps).to_contain_text("Done Connect SamCart")
    expect(steps.get_by_role("link", name=re.compile("^Connect SamCart"))).to_have_count(0)
    # The first event ends the empty state: counted in the singular.
    api.post("/api/v1/events", json={"trigger": "samcart.product_purchased", "payload": purchase("a@example.com")})
    page.goto("/")
    expect(steps).to_have_count(0)
    expect(page.locator(".stats")).to_contain_text("1 event received")


def test_counts_of_one_are_singular_and_an_app_without_lists_shows_no_refresh_time(
    owner_page, api, runtime, fake_circle
):
    page = owner_page
    group = fake_circle.add_space_group("Members")
    fake_circle.add_space("Welcome", space_group_id=group)
    fake_circle.add_member_tag("Customer")
    from datetime import datetime, timedelta, timezone

    fake_circle.add_event("Kick-off", datetime.now(timezone.utc) + timedelta(days=3))
    integration = CircleSetup(api, fake_circle).connect()
    task = refresh(api, runtime, integration)
    page.goto(f"/integrations/{integration}/refresh/{task['id']}")
    expect(page.get_by_role("status").last).to_have_text(
        "“Community” refreshed: 1 event, 1 member tag, 1 space group, 1 space."
    )
    page.goto(f"/integrations/{integration}")
    expect(page.get_by_text("Last refreshed")).to_be_visible()  # Circle has lists
    samcart = api.post("/api/v1/integrations", json={"app": "samcart", "name": "Shop", "config": {}}).json["id"]
    page.goto(f"/integrations/{samcart}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Shop")
    expect(page.get_by_text("Last refreshed")).to_have_count(0)  # SamCart has none to load


def test_on_a_phone_the_log_filters_fold_behind_one_control(phone, runtime, new_page):
    add_user(runtime, "owner@example.com", "owner")
    sign_in(phone, "owner@example.com")
    phone.goto("/logs")
    filters = phone.locator("summary", has_text="Filters")
    expect(filters).to_be_visible()
    expect(phone.get_by_role("searchbox", name="Search")).to_be_visible()
    expect(phone.get_by_label("Status")).to_be_hidden()
    expect(phone.get_by_role("button", name="Search")).to_be_in_viewport()  # the first screen is not all filters
    checked(phone, "papercut-logs-phone")
    filters.click()
    expect(phone.get_by_label("Status")).to_be_visible()
    phone.goto("/logs?status=failed")  # a filter is set: shown open, saying so
    expect(phone.get_by_label("Status")).to_be_visible()
    expect(filters).to_contain_text("1 set")
    desktop = new_page()
    sign_in(desktop, "owner@example.com")
    desktop.goto("/logs")
    expect(desktop.get_by_label("Status")).to_be_visible()  # room for them: open
