"""The Plugins page (owners): each loaded plugin with its version, triggers (by label), apps (by name), commands and
settings (name, type, default, description: never a value), from the listing GET /api/v1/plugins answers, and how
to install or remove one. Viewers neither see the link nor get the page. Screenshot: plugins."""

from __future__ import annotations

from playwright.sync_api import expect

from .browser import checked
from .session import WebClient, add_user
from .test_web_flows import nav


def test_an_owner_sees_every_plugin_and_what_it_provides(owner_page, api, monkeypatch):
    monkeypatch.setenv("WEBHOOK_TIMEOUT", "4.5")  # a value set: the page lists the default, never the value
    page = owner_page
    nav(page, "Plugins")
    expect(page.get_by_role("heading", name="Plugins", level=1)).to_be_visible()
    expect(page.get_by_text("then restart every web and worker process")).to_be_visible()
    expect(page.get_by_text("hookyard plugins install <package>")).to_be_visible()

    listed = api.get("/api/v1/plugins").json
    titles = [f"{p['name']} {p['version'] or 'version unknown'}" for p in listed]
    # The same plugins, in the same order, as the API (after the heading on installing).
    assert page.get_by_role("heading", level=2).all_inner_texts()[1:] == titles

    samcart = page.locator("section", has=page.get_by_role("heading", name="samcart 0.1.0"))
    expect(samcart).to_contain_text("Product Purchased")  # the trigger's label, not its key
    assert "samcart.product_purchased" not in samcart.inner_text()
    webhook = page.locator("section", has=page.get_by_role("heading", name="webhook 0.1.0"))
    expect(webhook.locator("dd").first).to_have_text("Webhook")  # the app, by its name
    expect(webhook).to_contain_text("hookyard webhook")
    expect(webhook).to_contain_text(">=1.2,<2")  # the hook API range it declares
    row = webhook.get_by_role("row", name="WEBHOOK_TIMEOUT")
    expect(row.get_by_role("cell")).to_have_text(
        ["WEBHOOK_TIMEOUT", "float", "10.0", "Seconds to wait for the receiver's answer. Worker."]
    )
    expect(webhook.get_by_role("row", name="WEBHOOK_ALLOWED_HOSTS").get_by_role("cell").nth(2)).to_have_text("empty")
    assert "4.5" not in page.content()
    checked(page, "plugins")
    page.set_viewport_size({"width": 390, "height": 844})  # on a phone: the tables stack, nothing scrolls sideways
    checked(page)


def test_viewers_get_neither_the_link_nor_the_page(app, runtime, owner):
    add_user(runtime, "viewer@example.com", "viewer")
    viewer = WebClient(app).sign_in("viewer@example.com")
    assert viewer.get("/plugins").status_code == 403
    assert 'href="/plugins"' not in viewer.get("/").text
    assert 'href="/plugins"' in owner.get("/").text
