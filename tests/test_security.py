"""Token roles, per-token rate limits (and what happens while Redis is down), and the security headers
every response carries."""

from __future__ import annotations

import logging
import re
from dataclasses import replace

from hookyard.app import create_app
from hookyard.runtime import build_runtime
from hookyard.security import JSON_CSP
from hookyard.tokens import create_token, get_or_create_marketplace

from .conftest import purchase
from .web.session import WebClient, add_user


def new_token(runtime, role: str, marketplace: str = "store-a") -> str:
    with runtime.db.session() as session:
        token = create_token(session, get_or_create_marketplace(session, marketplace), "tests", role=role)
        session.commit()
        return token


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response, code: int, status: str, *phrases: str):
    assert response.status_code == code, response.json
    body = response.json
    assert (body["code"], body["status"]) == (code, status)
    for phrase in phrases:
        assert phrase in body["message"], body["message"]


def test_a_viewer_token_reads_and_changes_nothing(app, runtime, api):
    product = api.post("/api/v1/products", json={"external_id": "1001", "name": "Community"}).json["id"]
    viewer = app.test_client()
    headers = bearer(new_token(runtime, "viewer"))

    assert [p["name"] for p in viewer.get("/api/v1/products", headers=headers).json] == ["Community"]
    assert viewer.get(f"/api/v1/products/{product}", headers=headers).status_code == 200
    assert viewer.head("/api/v1/rules", headers=headers).status_code == 200
    refused = [
        viewer.post("/api/v1/products", headers=headers, json={"external_id": "2002", "name": "Pro"}),
        viewer.patch(f"/api/v1/products/{product}", headers=headers, json={"name": "Renamed"}),
        viewer.delete(f"/api/v1/products/{product}", headers=headers),
        viewer.post(
            "/api/v1/events", headers=headers, json={"trigger": "samcart.product_purchased", "payload": purchase()}
        ),
    ]
    for response in refused:
        assert_error(response, 403, "Forbidden", "read-only")

    assert [(p["id"], p["name"]) for p in api.get("/api/v1/products").json] == [(product, "Community")]
    assert api.get("/api/v1/events").json == []
    # The owner token of the same marketplace is not held back by the viewer's role.
    assert api.patch(f"/api/v1/products/{product}", json={"name": "Renamed"}).status_code == 200


def test_an_owner_chooses_the_role_of_a_token_made_in_settings(app, runtime):
    add_user(runtime, "owner@example.com", "owner")
    web = WebClient(app).sign_in("owner@example.com")
    form = web.get("/settings").text
    assert re.search(r'<label for="f-token-role">\w+</label>\s*<select id="f-token-role" name="role"', form)
    assert '<option value="owner" selected>' in form

    made = {}
    for name, role in (("reports", "viewer"), ("webhooks", None)):  # no role sent: an owner token
        created = web.post("/settings/tokens", {"name": name} | ({"role": role} if role else {}))
        assert created.status_code == 201
        made[name] = re.search(r'id="new-token" class="mono" readonly value="([^"]+)"', created.text).group(1)
    api = app.test_client()
    new_product = {"external_id": "1", "name": "x"}
    assert api.get("/api/v1/rules", headers=bearer(made["reports"])).status_code == 200
    assert api.post("/api/v1/products", headers=bearer(made["reports"]), json=new_product).status_code == 403
    assert api.post("/api/v1/products", headers=bearer(made["webhooks"]), json=new_product).status_code == 201

    table = web.get("/settings").text
    for name, shown in (("reports", "Viewer"), ("webhooks", "Owner")):
        row = re.search(rf'data-label="Name">{name}</td>((?:(?!</tr>).)*)', table, re.S).group(1)
        assert f'data-label="Role">{shown}</td>' in row, row
    refused = web.post("/settings/tokens", {"name": "never-made", "role": "admin"})
    assert refused.status_code == 422 and "Choose Owner or Viewer." in refused.text
    assert "never-made" not in web.get("/settings").text


def test_the_request_over_a_tokens_limit_answers_429_and_other_tokens_carry_on(app, runtime, api, make_client):
    runtime.settings = replace(runtime.settings, api_rate_limit=(3, 60.0))
    for _ in range(3):
        assert api.get("/api/v1/rules").status_code == 200

    limited = api.get("/api/v1/rules")
    assert_error(limited, 429, "Too Many Requests", "Too many requests", "3 per 60 seconds", "try again in")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert f"try again in {limited.headers['Retry-After']} seconds" in limited.json["message"]
    # Every method counts against the same budget.
    assert api.post("/api/v1/products", json={"external_id": "1", "name": "x"}).status_code == 429

    other = make_client("store-a")
    assert other.get("/api/v1/rules").status_code == 200
    # A token that does not exist is refused as such, never counted against anyone.
    assert app.test_client().get("/api/v1/rules", headers=bearer("hy_nonsense")).status_code == 401


def test_while_redis_is_down_requests_are_allowed_and_the_outage_logged_once(settings, runtime, caplog):
    down = build_runtime(
        replace(settings, redis_url="redis://127.0.0.1:1/0", api_rate_limit=(1, 60.0)), registry=runtime.registry
    )
    try:
        client = create_app(runtime=down).test_client()
        token = new_token(runtime, "owner")
        with caplog.at_level(logging.WARNING, logger="hookyard.security"):
            for _ in range(3):
                assert client.get("/api/v1/rules", headers=bearer(token)).status_code == 200
            created = client.post("/api/v1/products", headers=bearer(token), json={"external_id": "7", "name": "x"})
            assert created.status_code == 201, created.json
    finally:
        down.db.dispose()
    warnings = [r.getMessage() for r in caplog.records if r.name == "hookyard.security"]
    assert len(warnings) == 1 and "Redis is unreachable" in warnings[0], warnings
    assert token not in caplog.text


def test_api_health_and_error_responses_carry_the_security_headers(app, api):
    anonymous = app.test_client()
    for response in (
        api.get("/api/v1/rules"),
        anonymous.get("/healthz"),
        anonymous.get("/api/v1/rules"),
        anonymous.get("/api/v1/no/such/route"),
        anonymous.get("/hooks/nope/nope"),
    ):
        assert response.is_json, response.headers
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert response.headers["Content-Security-Policy"] == JSON_CSP
    # Outside /api and /hooks, a mistyped address is the web UI's own HTML page, with the UI's policy.
    page = anonymous.get("/no/such/page")
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert page.headers["X-Content-Type-Options"] == "nosniff" and page.headers["Content-Security-Policy"] != JSON_CSP


def test_the_swagger_page_has_its_own_policy_and_web_pages_keep_theirs(app):
    from hookyard.api.docs_ui import DOCS_CSP
    from hookyard_web.blueprint import SECURITY_HEADERS

    docs = app.test_client().get("/api/docs")
    assert docs.status_code == 200 and "cdn.jsdelivr.net" not in docs.text  # its files are ours (test_api_docs_offline)
    assert docs.headers.getlist("Content-Security-Policy") == [DOCS_CSP]  # not the JSON one, which blocks scripts
    assert docs.headers["X-Content-Type-Options"] == "nosniff"

    page = app.test_client().get("/setup")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert page.headers["Content-Security-Policy"] == SECURITY_HEADERS["Content-Security-Policy"]
    assert page.headers.getlist("Content-Security-Policy") == [SECURITY_HEADERS["Content-Security-Policy"]]
