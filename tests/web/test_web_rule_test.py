"""Testing a rule from its page, in headless Chromium against the real server and the fake Circle: a dry-run lists each
call it would make (method, URL, body, "Would be sent") with the outcome, and sends no write; a live test for one
email makes them and links its log entry; a bad email is shown at its field; viewers never get the form."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from ..circle.fixtures import API_KEY, CircleSetup
from ..tasking import refresh
from .browser import checked
from .session import WebClient, add_user


@pytest.fixture
def rule_id(api, runtime, fake_circle, community):
    setup = CircleSetup(api, fake_circle)
    integration = setup.connect()
    refresh(api, runtime, integration)
    rule = setup.rule(
        integration, "invite_member", {"space_ids": [community.space2], "member_tag_ids": [community.tag2]}
    )
    fake_circle.reset_requests()
    return rule


def test_a_dry_run_from_the_rule_page_lists_the_calls_it_would_make(owner_page, rule_id, fake_circle, community):
    page = owner_page
    page.goto(f"/rules/{rule_id}/edit")
    form = page.locator("section", has=page.get_by_role("heading", name="Test this rule"))
    expect(form.get_by_label("Sample event")).to_have_value("example")
    expect(form.get_by_role("radio", name="Dry-run: show the calls, send no change")).to_be_checked()
    form.get_by_role("textbox", name="Email").fill("new.buyer@example.com")
    form.get_by_role("button", name="Run test").click()
    result = page.locator("#result")
    expect(result.get_by_role("heading", name="Dry-run result")).to_be_visible()
    expect(result).to_contain_text("Succeeded")
    expect(result).to_contain_text("invited")
    row = result.get_by_role("row").nth(1)
    expect(row).to_contain_text("POST")
    expect(row).to_contain_text(f"{fake_circle.base_url}/community_members")
    expect(row).to_contain_text('"email": "new.buyer@example.com"')
    expect(row).to_contain_text("Would be sent")
    expect(result).to_contain_text("None (a dry-run stores nothing)")
    assert API_KEY not in page.content()
    assert fake_circle.requests == [] and fake_circle.invitations_sent == []
    checked(page, "rule-test-dry-run")


def test_a_live_test_makes_the_calls_and_links_its_log_entry(owner_page, rule_id, fake_circle):
    page = owner_page
    page.goto(f"/rules/{rule_id}/edit")
    form = page.locator("section", has=page.get_by_role("heading", name="Test this rule"))
    form.get_by_role("radio", name="Live: run it for real, for one email").check()
    form.get_by_role("button", name="Run test").click()
    expect(page.locator("#e-test-email")).to_have_text("Required for a live test: the one customer it runs for.")
    form = page.locator("section", has=page.get_by_role("heading", name="Test this rule"))
    form.get_by_role("textbox", name="Email").fill("live.buyer@example.com")
    form.get_by_role("button", name="Run test").click()
    result = page.locator("#result")
    expect(result.get_by_role("heading", name="Live test result")).to_be_visible()
    expect(result.get_by_role("row").nth(1)).to_contain_text("Sent")
    expect(result.get_by_role("row").nth(1)).to_contain_text("201")
    assert fake_circle.invitations_sent == ["live.buyer@example.com"]
    result.get_by_role("link", name="Entry").click()
    expect(page.get_by_text("Test", exact=True)).to_be_visible()  # the log marks it as a test
    expect(page.locator("dl.facts").first).to_contain_text("live.buyer@example.com")


def test_viewers_get_no_test_form_and_cannot_post_one(app, runtime, rule_id, fake_circle):
    add_user(runtime, "viewer@example.com", "viewer")
    viewer = WebClient(app).sign_in("viewer@example.com")
    assert viewer.get(f"/rules/{rule_id}/edit").status_code == 403
    assert "Test this rule" not in viewer.get("/rules").text
    response = viewer.post(f"/rules/{rule_id}/test", {"sample": "example", "mode": "dry-run"})
    assert response.status_code == 403
    assert fake_circle.requests == []
