"""Every main page, with real data in it, at a phone width (390 px) and a desktop width (1440 px):
no accessibility violations (axe-core, WCAG 2.1 A and AA), no horizontal scrolling, every control
reachable with the keyboard. The screenshots for the docs come from here."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from ..circle.fixtures import CircleSetup
from ..conftest import purchase
from ..tasking import refresh
from ..waiting import wait_for
from .browser import assert_fits_viewport, check_accessibility, check_keyboard_reachable, save_screenshot
from .session import PASSWORD, add_user
from .test_web_flows import sign_in

WIDTHS = {"desktop": (1440, 900), "phone": (390, 844)}
# Every page is checked at both widths; the docs show these at phone width too.
PHONE_SHOTS = {"dashboard", "integrations", "logs", "log-entry", "rule-new", "product"}


@pytest.fixture
def store(api, runtime, fake_circle, community, start_worker):
    """A store in use: a Circle connection, a product with a rule, a global rule, and a log with
    succeeded and failed entries (Circle answered 503 to one of them, and there is one attempt)."""
    circle = CircleSetup(api, fake_circle)
    integration = circle.connect()
    refresh(api, runtime, integration)
    product = api.post("/api/v1/products", json={"external_id": "1001", "name": "Community"}).json["id"]
    product_rule = api.post(
        "/api/v1/rules",
        json={
            "product_id": product,
            "trigger": "samcart.product_purchased",
            "integration_id": integration,
            "action": "invite_member",
            "params": {"space_ids": [community.space2], "member_tag_ids": [community.tag1]},
        },
    ).json
    circle.rule(integration, "add_member_to_space", {"space_id": community.space1})
    start_worker(CIRCLE_API_BASE_URL=fake_circle.base_url, HOOKYARD_RETRY_MAX_ATTEMPTS="1")
    for i in range(3):
        api.post(
            "/api/v1/events",
            json={"trigger": "samcart.product_purchased", "payload": purchase(f"buyer{i}@example.com")},
        )
    wait_for(lambda: len([e for e in api.get("/api/v1/logs").json if e["status"] == "succeeded"]) == 6, timeout=30)
    fake_circle.fail_next(2, "503")
    api.post("/api/v1/events", json={"trigger": "samcart.product_purchased", "payload": purchase("late@example.com")})
    wait_for(lambda: len([e for e in api.get("/api/v1/logs").json if e["status"] == "failed"]) == 2, timeout=30)
    failed = api.get("/api/v1/logs", query_string={"status": "failed"}).json[0]["id"]
    add_user(runtime, "owner@example.com", "owner")
    add_user(runtime, "viewer@example.com", "viewer")
    return {"integration": integration, "product": product, "rule": product_rule["id"], "failed": failed}


def pages(ids):
    return {
        "dashboard": "/",
        "integrations": "/integrations",
        "integration": f"/integrations/{ids['integration']}",
        "integration-choose-app": "/integrations/new",
        "integration-connect": "/integrations/new/circle",
        "integration-edit": f"/integrations/{ids['integration']}/edit",
        "integration-delete": f"/integrations/{ids['integration']}/delete",
        "global-rules": "/rules",
        "rule-new": f"/rules/new?product_id={ids['product']}",
        "rule-edit": f"/rules/{ids['rule']}/edit",
        "logs": "/logs",
        "log-entry": f"/logs/{ids['failed']}",
        "products": "/products",
        "product": f"/products/{ids['product']}",
        "settings": "/settings",
        "account": "/account",
    }


def check_page(page, name, width_name):
    if width_name == "desktop":
        save_screenshot(page, name)  # before the keyboard walk moves the focus
    elif name in PHONE_SHOTS:
        save_screenshot(page, f"{name}-phone")
    check_accessibility(page, f"{name} at {width_name} width")
    assert_fits_viewport(page)
    check_keyboard_reachable(page)


@pytest.mark.parametrize("width_name", WIDTHS)
def test_every_page_is_accessible_and_fits(new_page, store, width_name):
    page = new_page(*WIDTHS[width_name])
    page.goto("/sign-in")
    check_page(page, "sign-in", width_name)
    sign_in(page, "owner@example.com")
    for name, path in pages(store).items():
        response = page.goto(path)
        assert response.status == 200, (name, response.status)
        check_page(page, name, width_name)


@pytest.mark.parametrize("width_name", WIDTHS)
def test_the_first_start_page_is_accessible_and_fits(new_page, width_name):
    page = new_page(*WIDTHS[width_name])
    page.goto("/")
    check_page(page, "setup", width_name)


CHANGING = [
    "New Integration",
    "New Rule",
    "Edit",
    "Delete",
    "Refresh",
    "Retry",
    "Add product",
    "Create token",
    "Disable",
    "Enable",
    "Revoke",
    "Add person",
    "Connect",
]


def test_a_viewer_sees_no_button_that_changes_anything(page, store):
    sign_in(page, "viewer@example.com")
    main_nav = page.get_by_role("navigation", name="Main")
    assert "Settings" not in main_nav.inner_text()
    for name, path in pages(store).items():
        response = page.goto(path)
        if name in (
            "integration-choose-app",
            "integration-connect",
            "integration-edit",
            "integration-delete",
            "rule-new",
            "rule-edit",
            "settings",
        ):
            assert response.status == 403, name
            continue
        assert response.status == 200, name
        for label in CHANGING:
            for role in ("button", "link"):
                # Names start with the verb ("Delete rule 3"): match from the start, whole words.
                assert page.get_by_role(role, name=re.compile(rf"^{label}\b")).count() == 0, (name, role, label)


def test_the_dashboard_counts_the_last_14_days_and_points_at_what_needs_attention(page, store, runtime):
    from hookyard.models import Integration

    with runtime.db.session() as session:
        integration = session.get(Integration, store["integration"])
        integration.status, integration.status_reason = "needs_attention", "Circle refused the API key (401)"
        session.commit()
    sign_in(page, "owner@example.com")
    attention = page.get_by_role("region", name="Needs attention")
    expect(attention).to_contain_text("Community: Circle refused the API key (401)")
    expect(attention).to_contain_text("2 failed runs")
    attention.get_by_role("link", name="See the failed entries").click()
    expect(page.get_by_role("table").get_by_role("row")).to_have_count(3)  # header + the two failures
    page.go_back()
    stats = page.locator(".stats")
    for figure in ("4 events received", "6 runs succeeded", "2 runs failed", "0 runs skipped"):
        expect(stats).to_contain_text(figure)
    rates = page.get_by_role("table").filter(has_text="Failure rate")
    expect(rates.get_by_role("row").filter(has_text="Circle: Invite member")).to_contain_text("25.0%")
    page.get_by_text("Show the numbers").click()
    today = page.get_by_role("table").filter(has_text="Events").get_by_role("row").nth(1)
    expect(today).to_have_text(re.compile(r"\s*4\s*6\s*2\s*0\s*$"))
    assert page.locator("svg.chart rect.bar-failed").count() == 1


def test_rules_are_edited_disabled_enabled_and_deleted(page, store, api, community):
    sign_in(page, "owner@example.com")
    page.goto(f"/products/{store['product']}")
    row = page.get_by_role("row").filter(has_text="Invite member")
    row.get_by_role("link", name="Edit").click()
    page.get_by_role("checkbox", name="Welcome").check()
    page.get_by_role("checkbox", name="Masterclass").uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Rule saved")
    assert api.get(f"/api/v1/rules/{store['rule']}").json["params"]["space_ids"] == [community.space1]
    row = page.get_by_role("row").filter(has_text="Invite member")
    row.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("row").filter(has_text="Invite member")).to_contain_text("Disabled")
    assert api.get(f"/api/v1/rules/{store['rule']}").json["enabled"] is False
    page.get_by_role("row").filter(has_text="Invite member").get_by_role("button", name="Enable").click()
    assert api.get(f"/api/v1/rules/{store['rule']}").json["enabled"] is True
    page.get_by_role("row").filter(has_text="Invite member").get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete the rule").click()  # it asks first
    expect(page.get_by_role("status")).to_contain_text("Rule deleted")
    expect(page.get_by_text("No rules for this product yet.")).to_be_visible()
    assert api.get(f"/api/v1/rules/{store['rule']}").status_code == 404


def test_an_owner_creates_and_revokes_api_tokens_and_adds_a_viewer(page, store, live_server, new_page):
    import requests

    sign_in(page, "owner@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    page.get_by_label("Token name (optional)").fill("SamCart webhooks")
    page.get_by_role("button", name="Create token").click()
    token = page.get_by_label("Your new token (shown only now)").input_value()
    assert token.startswith("hy_")
    triggers = f"{live_server.url}/api/v1/triggers"
    assert requests.get(triggers, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
    page.goto("/settings")
    expect(page.get_by_text(token)).to_have_count(0)  # shown once
    page.get_by_role("row").filter(has_text="SamCart webhooks").get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_contain_text("revoked")
    assert requests.get(triggers, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 401

    page.get_by_label("Email").fill("helper@example.com")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Add person").click()
    expect(page.get_by_text("Use 10 to 1024 characters.")).to_be_visible()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Role").select_option("viewer")
    page.get_by_role("button", name="Add person").click()
    expect(page.get_by_role("status")).to_contain_text("helper@example.com can now sign in as viewer")
    helper = new_page()
    sign_in(helper, "helper@example.com")
    expect(helper.get_by_text("helper@example.com viewer")).to_be_visible()

    # Removed: signed out at once, in the browser they are using.
    page.goto("/settings")
    page.get_by_role("row").filter(has_text="helper@example.com").get_by_role("button", name="Remove").click()
    expect(page.get_by_role("status")).to_contain_text("helper@example.com is removed and signed out everywhere")
    helper.reload()
    expect(helper).to_have_url(re.compile("/sign-in"))


def test_a_person_changes_their_password_and_signs_out_their_other_browsers(page, store, new_page):
    other = new_page()
    sign_in(other, "viewer@example.com")
    sign_in(page, "viewer@example.com")
    page.get_by_role("link", name="viewer@example.com").click()
    sessions = page.get_by_role("region", name="Where you are signed in")
    expect(sessions.get_by_role("row")).to_have_count(3)  # header + two browsers
    expect(sessions).to_contain_text("This session")
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill("aaaaaaaaaa")
    page.get_by_label("Repeat the new password").fill("aaaaaaaaaa")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("A password cannot be one character repeated")).to_be_visible()
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill("plum tractor lantern ocean")
    page.get_by_label("Repeat the new password").fill("plum tractor lantern ocean")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("1 other session was signed out")
    expect(sessions.get_by_role("row")).to_have_count(2)
    save_screenshot(page, "account")
    other.reload()
    expect(other).to_have_url(re.compile("/sign-in"))
