"""Circle's monthly request quota in the UI, in headless Chromium against the real server: the connection's page says
"N of Q Circle API requests this month (plan)" with the warning banner near and over the quota, the dashboard lists
each metered connection's month, and the connection form offers the plan."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from hookyard import usage

from ..circle.fixtures import CircleSetup
from ..tasking import refresh
from .browser import checked

COMMUNITY = "4242"  # FakeCircle's community id


@pytest.fixture
def connected(api, runtime, fake_circle, community):
    setup = CircleSetup(api, fake_circle)
    integration = setup.connect()
    refresh(api, runtime, integration)  # 1 + 5 counted answers, with the connect's verify
    return integration


def usage_fact(page):
    return page.locator("dd[data-usage]")


def test_the_connection_page_shows_this_months_requests_and_warns_near_and_over_the_quota(
    owner_page, connected, runtime
):
    page = owner_page
    page.goto(f"/integrations/{connected}")
    expect(usage_fact(page)).to_contain_text("6 of 5,000 Circle API requests this month (Business plan)")
    expect(page.locator("[data-warning^=quota]")).to_have_count(0)

    usage.record(runtime, "circle", COMMUNITY, 4000 - 6)
    page.reload()
    expect(usage_fact(page)).to_contain_text("4,000 of 5,000 Circle API requests this month (Business plan)")
    banner = page.locator("[data-warning=quota_near]")
    expect(banner).to_contain_text("80% of the monthly quota of the Business plan")
    checked(page, "circle-quota-near")

    usage.record(runtime, "circle", COMMUNITY, 1000)
    page.reload()
    expect(page.locator("[data-warning=quota_near]")).to_have_count(0)
    expect(page.locator("[data-warning=quota_exceeded]")).to_contain_text("5,000 of 5,000 Circle API requests")
    checked(page, "circle-quota-exceeded")


def test_the_dashboard_shows_each_metered_connections_month(owner_page, connected, runtime, api):
    page = owner_page
    samcart = api.post("/api/v1/integrations", json={"app": "samcart", "name": "Shop", "config": {}}).json["id"]
    usage.record(runtime, "circle", COMMUNITY, 4500 - 6)
    page.goto("/")
    section = page.get_by_role("region", name="API requests this month")
    row = section.locator(f"[data-usage-of='{connected}']")
    expect(row).to_contain_text("Community: 4,500 of 5,000 Circle API requests this month (Business plan)")
    expect(row.locator("[data-warning=quota_near]")).to_have_text("Near the quota")
    expect(section.locator(f"[data-usage-of='{samcart}']")).to_have_count(0)  # SamCart meters nothing
    row.get_by_role("link", name="Community").click()
    expect(page).to_have_url(re.compile(f"/integrations/{connected}$"))
    page.goto("/")
    checked(page, "circle-quota-dashboard")


def test_the_connection_form_offers_the_plan_business_by_default(owner_page, connected, api):
    page = owner_page
    page.goto(f"/integrations/{connected}/edit")
    plan = page.get_by_label("Circle plan")
    expect(plan).to_have_value("business")
    plan.select_option("enterprise")
    page.get_by_role("button", name="Save and verify").click()
    expect(page).to_have_url(re.compile("/integrations$"))
    assert api.get(f"/api/v1/integrations/{connected}").json["usage"]["quota"] == 30000
    page.goto(f"/integrations/{connected}")
    expect(usage_fact(page)).to_contain_text("of 30,000 Circle API requests this month (Enterprise plan)")
