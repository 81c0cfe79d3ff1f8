"""The browser infrastructure on a tiny app of its own: each check passes on a good page and fails on a
page broken in exactly its way, and axe-core runs under the same strict CSP the real pages send."""

from __future__ import annotations

import json

import pytest
from flask import Flask, Response
from playwright.sync_api import Error as PlaywrightError

from .browser import assert_fits_viewport, check_accessibility, check_keyboard_reachable, save_screenshot, serve

CSP = "default-src 'self'"
# Inline style attributes count as inline styles under this CSP, so layout comes from a stylesheet URL.
CSS = """
body { margin: 0; font: 16px/1.5 sans-serif; color: #111; background: #fff; }
main { padding: 1rem; max-width: 40rem; }
.wide { width: 2000px; height: 2rem; background: #ccc; }
"""
PAGES = {
    "/": '<label for="email">Email</label> <input id="email" type="email">'
    ' <button type="button">Save</button> <a href="/">Home</a>',
    "/unlabelled": '<input id="email" type="email"> <button type="button">Save</button>',
    "/wide": '<div class="wide" id="banner"></div> <a href="/">Home</a>',
    "/untabbable": '<a href="/">Home</a> <button type="button" tabindex="-1" id="hidden-from-tab">Save</button>',
}


def smoke_app() -> Flask:
    app = Flask(__name__)

    @app.get("/style.css")
    def style():
        return Response(CSS, mimetype="text/css")

    def page_route(body):
        return lambda: (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<title>Smoke</title><link rel="stylesheet" href="/style.css"></head>'
            f"<body><main><h1>Smoke</h1>{body}</main></body></html>"
        )

    for path, body in PAGES.items():
        app.add_url_rule(path, endpoint=path, view_func=page_route(body))

    @app.after_request
    def strict_csp(response):
        response.headers["Content-Security-Policy"] = CSP
        return response

    return app


@pytest.fixture(scope="module")
def smoke_server():
    with serve(smoke_app()) as server:
        yield server


@pytest.fixture
def open_smoke(open_page, smoke_server):
    def open_(path: str, width: int = 1440, height: int = 900):
        page = open_page(smoke_server.url, width, height)
        response = page.goto(path)
        assert response.ok and response.headers["content-security-policy"] == CSP
        return page

    return open_


@pytest.mark.parametrize("width, height", [(390, 844), (1440, 900)], ids=["phone", "desktop"])
def test_a_good_page_passes_every_check(open_smoke, width, height, tmp_path, monkeypatch):
    page = open_smoke("/", width, height)
    check_accessibility(page, f"smoke page at {width}px")
    assert_fits_viewport(page)
    check_keyboard_reachable(page)

    monkeypatch.setenv("HOOKYARD_SCREENSHOTS_DIR", str(tmp_path / "shots"))
    path = save_screenshot(page, f"smoke-{width}")
    assert path == tmp_path / "shots" / f"smoke-{width}.png"
    assert path.read_bytes().startswith(b"\x89PNG")


def test_screenshots_default_to_a_session_temporary_directory(open_smoke, monkeypatch, tmp_path_factory):
    monkeypatch.delenv("HOOKYARD_SCREENSHOTS_DIR", raising=False)
    path = save_screenshot(open_smoke("/"), "smoke-default")
    assert path.is_relative_to(tmp_path_factory.getbasetemp()) and path.is_file()


def test_the_csp_blocks_inline_scripts_yet_axe_still_runs(open_smoke):
    page = open_smoke("/")
    with pytest.raises(PlaywrightError, match="Content Security Policy"):
        page.add_script_tag(content="window.injected = true")
    check_accessibility(page, "smoke page")
    assert page.evaluate("typeof axe.run") == "function"


def test_check_accessibility_fails_on_an_unlabelled_input(open_smoke):
    with pytest.raises(AssertionError, match=r"(?s)unlabelled page.*- label \[critical\].*#email"):
        check_accessibility(open_smoke("/unlabelled"), "unlabelled page")


def test_assert_fits_viewport_fails_on_a_too_wide_element(open_smoke):
    with pytest.raises(AssertionError, match=r"(?s)scrolls horizontally.*- div#banner\.wide: right edge at 2016px"):
        assert_fits_viewport(open_smoke("/wide", 390, 844))


def test_check_keyboard_reachable_fails_on_a_button_out_of_the_tab_order(open_smoke):
    with pytest.raises(AssertionError, match=r'(?s)1 interactive element.*- button#hidden-from-tab "Save"'):
        check_keyboard_reachable(open_smoke("/untabbable"))


def test_live_server_serves_the_project_app(page):
    page.goto("/readyz")
    assert json.loads(page.locator("body").inner_text())["status"] == "ready"
