"""Browser fixtures: one OS Chromium per session (Playwright's own browser downloads are not available
here), a fresh context per page so cookies never leak between tests, and the project app on a live port.
The checks themselves live in browser.py."""

from __future__ import annotations

import os

import pytest

from .browser import CHROMIUM_ARGS, chromium_executable, serve, set_session_screenshots_dir
from .session import WebClient, add_user


@pytest.fixture(scope="session", autouse=True)
def _session_screenshots(tmp_path_factory):
    # Under pytest's basetemp, so plain runs keep their screenshots (last few sessions) without touching the repo.
    set_session_screenshots_dir(tmp_path_factory.getbasetemp() / "screenshots")


@pytest.fixture
def owner(app, runtime):
    """The Flask test client signed in as the store's owner (tests/web/session.py)."""
    add_user(runtime, "owner@example.com", "owner")
    return WebClient(app).sign_in("owner@example.com")


@pytest.fixture
def live_server(app):
    with serve(app) as server:
        yield server


@pytest.fixture(scope="session")
def browser():
    executable = chromium_executable()
    if not (os.path.isfile(executable) and os.access(executable, os.X_OK)):
        # A failure, not a skip: a CI machine without Chromium must not pass by testing nothing.
        pytest.fail(
            f"Chromium not found at {executable}: install it (apt-get install chromium) or point "
            "HOOKYARD_CHROMIUM at a Chromium binary",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def open_page(browser):
    """open_page(base_url, width=1440, height=900): a page in a new context against any server."""
    contexts = []

    def open_(base_url: str, width: int = 1440, height: int = 900):
        context = browser.new_context(base_url=base_url, viewport={"width": width, "height": height}, locale="en-US")
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture
def new_page(open_page, live_server):
    """new_page(width=1440, height=900): a page in a new context against the project app's live server."""

    def new(width: int = 1440, height: int = 900):
        return open_page(live_server.url, width, height)

    return new


@pytest.fixture
def page(new_page):
    return new_page()


@pytest.fixture
def phone(new_page):
    return new_page(390, 844)


@pytest.fixture
def owner_page(page, runtime):
    """The browser page, signed in as the store's owner."""
    from playwright.sync_api import expect

    from .test_web_flows import sign_in

    add_user(runtime, "owner@example.com", "owner")
    sign_in(page, "owner@example.com")
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    return page
