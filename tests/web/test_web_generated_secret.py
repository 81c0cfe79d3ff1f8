"""A secret Hookyard generated, in the browser: connecting the Webhook app without a signing secret lands on the
connection's page with the secret in a banner and a Copy button, once; a reload shows the page without it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from hookyard import connections
from hookyard.models import Integration

from .browser import checked

BANNER = "Copy this signing secret now; it will not be shown again."


@pytest.fixture
def loopback_allowed(monkeypatch):
    # Connecting resolves the URL and checks it against the Webhook app's SSRF guard; nothing is sent.
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")


def test_the_generated_signing_secret_is_shown_once_after_connecting(
    owner_page, live_server, runtime, loopback_allowed
):
    page = owner_page
    page.goto("/integrations/new/webhook")
    page.get_by_label("Name", exact=True).fill("Our CRM")
    page.get_by_label("URL", exact=True).fill("http://127.0.0.1:9/hooks/hookyard")
    page.get_by_role("button", name="Connect").click()

    expect(page.get_by_text(BANNER)).to_be_visible()
    expect(page.get_by_role("status").first).to_contain_text("Webhook connected as “Our CRM”")
    shown = page.get_by_label("Signing secret of “Our CRM”").input_value()
    with runtime.db.session() as session:
        [integration] = session.query(Integration).all()
        assert connections.full_config(runtime, integration)["secret"] == shown
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", shown), shown
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page.get_by_role("button", name="Copy the signing secret").click()
    expect(page.get_by_text("Copied to the clipboard.")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == shown
    # The answer to the POST named the connection's page as the history's address: a reload asks for that.
    assert page.url == f"{live_server.url}/integrations/{integration.id}"
    checked(page)

    page.reload()
    expect(page.get_by_role("heading", name="“Our CRM” (Webhook)")).to_be_visible()
    expect(page.get_by_text(BANNER)).to_have_count(0)
    assert shown not in page.content()
