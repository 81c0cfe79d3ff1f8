"""Who may do what in the web UI: signed-out visitors are sent to sign in, viewers change nothing
(every changing endpoint answers 403), and no form is accepted without its CSRF token. The endpoint
lists come from the app's URL map, so a new page is covered the day it is added."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hookyard.models import User

from ..waiting import wait_for
from .session import PASSWORD, WebClient, add_user

PUBLIC = {"web.sign_in", "web.setup", "web.static"}
# A person's own account (password, sessions) is theirs to change, viewers' too (tests/web/test_web_sessions.py).
ANY_USER_POSTS = {
    "web.sign_out",
    "web.sign_in",
    "web.setup",
    "web.change_own_password",
    "web.sign_out_session",
    "web.sign_out_others",
}


def _rules(app, method):
    return [r for r in app.url_map.iter_rules() if r.endpoint.startswith("web.") and method in r.methods]


def _path(rule):
    return rule.build(
        {name: 1 for name in rule.arguments} | ({"app_key": "circle"} if "app_key" in rule.arguments else {})
    )[1]


@pytest.fixture
def viewer(app, runtime, owner):
    add_user(runtime, "viewer@example.com", "viewer")
    return WebClient(app).sign_in("viewer@example.com")


def test_first_start_shows_the_owner_sign_up_once(app, runtime):
    web = WebClient(app)
    assert web.get("/").location.endswith("/setup")
    page = web.get("/setup")
    assert "Create the owner account" in page.text
    refused = web.post(
        "/setup", {"marketplace": "Shop", "email": "not-an-email", "password": "short", "password_confirm": "short"}
    )
    assert refused.status_code == 422 and "Not a valid email address." in refused.text
    assert "Use 10 to 1024 characters." in refused.text
    created = web.post(
        "/setup", {"marketplace": "Shop", "email": "Me@Example.com", "password": PASSWORD, "password_confirm": PASSWORD}
    )
    assert created.status_code == 302
    with runtime.db.session() as session:
        user = session.query(User).one()
        assert (user.email, user.role) == ("me@example.com", "owner")
        assert user.password_hash.startswith("scrypt:") and PASSWORD not in user.password_hash
    assert web.get("/integrations").status_code == 200  # signed in by the sign-up
    assert WebClient(app).get("/setup").location.endswith("/sign-in")  # never again


@pytest.mark.parametrize(
    "password, why",
    [
        (" " * 10, "A password cannot be only spaces."),
        ("a" * 10, "A password cannot be one character repeated"),
        ("password123", "This password is too easy to guess. This is a very common password."),
    ],
)
def test_the_first_start_page_and_the_people_form_refuse_weak_passwords_and_say_why(app, runtime, password, why):
    web = WebClient(app)
    web.get("/setup")
    refused = web.post(
        "/setup", {"marketplace": "Shop", "email": "me@example.com", "password": password, "password_confirm": password}
    )
    assert refused.status_code == 422 and why in refused.text
    assert (
        web.post(
            "/setup",
            {"marketplace": "Shop", "email": "me@example.com", "password": PASSWORD, "password_confirm": PASSWORD},
        ).status_code
        == 302
    )
    web.get("/settings")
    person = web.post("/settings/users", {"email": "helper@example.com", "password": password, "role": "viewer"})
    assert person.status_code == 422 and why in person.text
    with runtime.db.session() as session:
        assert [u.email for u in session.query(User)] == ["me@example.com"]


def test_signed_out_visitors_are_sent_to_sign_in_from_every_page(app, owner):
    anonymous = WebClient(app)
    for rule in _rules(app, "GET"):
        if rule.endpoint in PUBLIC:
            continue
        response = anonymous.get(_path(rule))
        assert response.status_code == 302, rule.endpoint
        assert "/sign-in?next=" in response.location, rule.endpoint


def test_sign_in_returns_to_the_page_asked_for_and_only_on_this_server(app, owner):
    web = WebClient(app)
    web.get("/sign-in")
    wrong = web.post("/sign-in?next=/logs", {"email": "owner@example.com", "password": "wrong password"})
    assert wrong.status_code == 401 and "do not match an account" in wrong.text
    assert web.post("/sign-in?next=/logs", {"email": "owner@example.com", "password": PASSWORD}).location == "/logs"
    other = WebClient(app)
    other.get("/sign-in")
    assert (
        other.post("/sign-in?next=//evil.example/x", {"email": "owner@example.com", "password": PASSWORD}).location
        == "/"
    )


def test_viewers_cannot_change_anything(app, viewer):
    posts = [r for r in _rules(app, "POST") if r.endpoint not in ANY_USER_POSTS]
    assert len(posts) >= 12, [r.endpoint for r in posts]
    for rule in posts:
        response = viewer.post(_path(rule), {"name": "x"})
        assert response.status_code == 403, rule.endpoint
    for path in ("/integrations/new", "/rules/new", "/settings"):
        assert viewer.get(path).status_code == 403, path
    for path in ("/", "/integrations", "/rules", "/logs", "/products"):
        page = viewer.get(path)
        assert page.status_code == 200, path
        assert "New Integration" not in page.text and "New Rule" not in page.text and "Add product" not in page.text


@pytest.mark.parametrize("who", ["owner", "viewer"])
def test_forms_without_the_csrf_token_are_refused(app, request, who):
    web = request.getfixturevalue(who)
    for rule in _rules(app, "POST"):
        for token in (None, "forged-token"):
            data = {"email": "owner@example.com", "password": PASSWORD}
            if token:
                data["csrf_token"] = token
            response = web.post(_path(rule), data, csrf=False)
            assert response.status_code == 400, (rule.endpoint, token)
            assert "security token" in response.text


def test_pages_send_security_headers_and_a_locked_down_cookie(app, owner):
    page = owner.get("/logs")
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["X-Content-Type-Options"] == "nosniff"
    fresh = WebClient(app)
    cookie = fresh.get("/sign-in").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    behind_https_proxy = WebClient(app).client.get("/sign-in", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in behind_https_proxy.headers["Set-Cookie"]


def test_another_marketplaces_objects_are_not_found(app, runtime, owner, make_client):
    other = make_client("store-b")
    product = other.post("/api/v1/products", json={"external_id": "9", "name": "Theirs"}).json["id"]
    assert owner.get(f"/products/{product}").status_code == 404
    assert owner.post(f"/rules/new?product_id={product}").status_code == 404


def test_sign_in_attempts_are_limited_per_address_and_email_until_the_window_passes(app, runtime):
    # A short window, so the test can see it pass; long enough for the four attempts before the check.
    runtime.settings = replace(runtime.settings, signin_rate_limit=(3, 3.0))
    add_user(runtime, "ada@example.com", "owner")
    add_user(runtime, "bob@example.com", "viewer")
    web = WebClient(app)
    web.get("/sign-in")
    for email in ("ada@example.com", "Ada@Example.com", "ada@example.com"):  # the email's case does not matter
        assert web.post("/sign-in", {"email": email, "password": "wrong password"}).status_code == 401

    limited = web.post("/sign-in", {"email": "ada@example.com", "password": PASSWORD})
    assert limited.status_code == 429 and "Too many sign-in attempts; try again in 1 minute." in limited.text
    assert 1 <= int(limited.headers["Retry-After"]) <= 3
    assert limited.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert "/sign-in" in web.get("/logs").location  # not signed in

    other_email = WebClient(app)
    other_email.sign_in("bob@example.com")
    from_elsewhere = WebClient(app)
    from_elsewhere.get("/sign-in", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert (
        from_elsewhere.post(
            "/sign-in", {"email": "ada@example.com", "password": PASSWORD}, environ_base={"REMOTE_ADDR": "192.0.2.7"}
        ).status_code
        == 302
    )

    wait_for(
        lambda: web.post("/sign-in", {"email": "ada@example.com", "password": PASSWORD}).status_code == 302,
        timeout=15,
        message="sign-in was still refused after the window",
    )
    assert web.get("/logs").status_code == 200


def test_out_of_range_ids_and_nul_characters_are_refused_not_crashed_on(owner):
    assert owner.get(f"/products/{2**40}").status_code == 404
    assert owner.get(f"/rules/new?product_id={2**40}").status_code == 404
    wizard = owner.post("/rules/new", {"step": "action", "integration_id": str(2**40), "action": "record"})
    assert wizard.status_code == 422  # an integration to choose, not a crash
    assert owner.post("/products", {"external_id": "a\x00b"}).status_code == 400
    assert owner.get("/logs?q=a%00b").status_code == 400
