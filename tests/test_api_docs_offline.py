"""/api/docs works with no network: the page and every file it loads come from this server (the pinned
swagger-ui-bundle package), under a CSP that allows nothing else. tests/web/test_web_api_docs.py renders it."""

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

from hookyard.api.docs_ui import DOCS_CSP


class _Urls(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls, self.inline_scripts = [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            if attrs.get(name):
                self.urls.append(attrs[name])
        if tag == "script" and not attrs.get("src"):
            self.inline_scripts += 1


def test_the_docs_page_loads_only_same_origin_files_each_of_which_answers(app):
    client = app.test_client()
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert page.headers["Content-Security-Policy"] == DOCS_CSP
    parsed = _Urls()
    parsed.feed(page.get_data(as_text=True))
    assert parsed.inline_scripts == 0  # the CSP's script-src 'self' would block one
    assert len(parsed.urls) >= 4, parsed.urls
    for url in parsed.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith("/api/docs/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.get_data(), url
    spec_url = re.search(r'data-spec-url="([^"]+)"', page.get_data(as_text=True)).group(1)
    assert spec_url == "/api/openapi.json" and client.get(spec_url).json["openapi"].startswith("3.")


def test_the_bundle_is_swagger_ui_itself_with_the_right_types(app):
    client = app.test_client()
    js = client.get("/api/docs/assets/swagger-ui-bundle.js")
    assert js.mimetype in ("text/javascript", "application/javascript") and b"SwaggerUIBundle" in js.get_data()
    assert client.get("/api/docs/assets/swagger-ui.css").mimetype == "text/css"


def test_only_the_pages_files_are_served(app):
    client = app.test_client()
    for name in ("index.html", "swagger-ui-bundle.js.map", "..%2Fsetup.cfg", "nope.js"):
        r = client.get(f"/api/docs/assets/{name}")
        assert r.status_code == 404 and r.is_json and r.json["message"], name
