"""/api/docs in Chromium with every request to another origin refused: the offline case. Swagger UI must render
the operations from this server's files alone, with no CSP violation and no console error."""

from urllib.parse import urlsplit


def test_the_api_docs_render_offline_under_their_csp(page, live_server):
    origin = urlsplit(live_server.url).netloc
    elsewhere, problems = [], []

    def route(route):
        if urlsplit(route.request.url).netloc == origin:
            route.continue_()
        else:  # what a machine without a network would do, and a CDN outage
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto("/api/docs")
    page.wait_for_selector(".opblock-tag", timeout=15_000)  # the operations, grouped by tag, from openapi.json
    assert page.locator(".opblock").count() > 10
    assert page.locator("h2.title").inner_text().startswith("Hookyard")
    assert elsewhere == [] and problems == [], (elsewhere, problems)
