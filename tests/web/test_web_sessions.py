"""Sessions that really end: the cookie names a server-side session, and signing out, a password change, removing
the person, "sign out everywhere else" and signing one session out each end it for every copy of the cookie.
Each test replays a cookie copied before the change, as someone who stole it would."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select

from hookyard.app import create_app
from hookyard.models import ApiToken, User, UserSession, utcnow
from hookyard.runtime import build_runtime
from hookyard.tokens import hash_token
from hookyard.user_sessions import SEEN_EVERY

from .session import PASSWORD, WebClient, add_user

COOKIE = "hookyard_session"
NEW_PASSWORD = "plum tractor lantern ocean"
SESSION_ROW = re.compile(r'action="/account/sessions/(\d+)/sign-out"')


def replay(app, web: WebClient, copied: tuple[str, str] | None = None) -> WebClient:
    """A new browser holding a copy of ``web``'s cookie (and the CSRF token its pages showed), or of ``copied``:
    what a thief replays, unchanged, however often the server answers it with a fresh cookie."""
    cookie, csrf = copied or (web.client.get_cookie(COOKIE).value, web.csrf)
    thief = WebClient(app)
    thief.client.set_cookie(COOKIE, cookie)
    thief.csrf = csrf
    return thief


def signed_out(web: WebClient) -> bool:
    response = web.get("/logs")
    return response.status_code == 302 and "/sign-in" in response.location


def live_sessions(runtime, email):
    with runtime.db.session() as session:
        user = session.scalar(select(User).where(User.email == email))
        return list(
            session.scalars(select(UserSession).where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None)))
        )


def test_a_cookie_copied_before_sign_out_signs_nobody_in_after_it(app, runtime, owner):
    owner.get("/settings")
    copied = (owner.client.get_cookie(COOKIE).value, owner.csrf)
    # While the session lives, the copy is as good as the original: it can mint an owner API token.
    assert replay(app, owner, copied).get("/logs").status_code == 200
    assert replay(app, owner, copied).post("/settings/tokens", {"name": "before", "role": "owner"}).status_code == 201
    session_id = app.session_interface.get_signing_serializer(app).loads(copied[0])["sid"]
    with runtime.db.session() as session:
        row = session.scalars(select(UserSession)).one()
        assert row.id_hash == hash_token(session_id) != session_id  # only the id's hash is stored

    assert owner.post("/sign-out").status_code == 302
    assert signed_out(owner)
    assert signed_out(replay(app, owner, copied))
    minted = replay(app, owner, copied).post("/settings/tokens", {"name": "after", "role": "owner"})
    assert minted.status_code == 302 and "/sign-in" in minted.location
    with runtime.db.session() as session:
        assert [t.name for t in session.scalars(select(ApiToken))] == ["before"]
        assert session.scalars(select(UserSession)).one().revoked_at is not None


def test_a_password_change_ends_every_other_session_and_keeps_this_one(app, runtime, owner):
    laptop = WebClient(app).sign_in("owner@example.com")
    stolen = replay(app, laptop)
    owner.get("/account")
    wrong = owner.post(
        "/account/password",
        {"current_password": "not my password", "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD},
    )
    assert wrong.status_code == 422 and "That is not your current password." in wrong.text
    mismatch = owner.post(
        "/account/password",
        {"current_password": PASSWORD, "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD + "!"},
    )
    assert mismatch.status_code == 422 and "The two passwords are not the same." in mismatch.text
    weak = owner.post(
        "/account/password",
        {"current_password": PASSWORD, "password": "password123", "password_confirm": "password123"},
    )
    assert weak.status_code == 422 and "This is a very common password." in weak.text
    assert not signed_out(laptop)  # refused changes end nothing

    changed = owner.post(
        "/account/password", {"current_password": PASSWORD, "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD}
    )
    assert changed.status_code == 302
    assert "1 other session was signed out" in owner.get("/account").text
    assert owner.get("/logs").status_code == 200
    assert signed_out(laptop) and signed_out(stolen)
    assert len(live_sessions(runtime, "owner@example.com")) == 1
    retry = WebClient(app)
    retry.get("/sign-in")
    assert retry.post("/sign-in", {"email": "owner@example.com", "password": PASSWORD}).status_code == 401
    WebClient(app).sign_in("owner@example.com", NEW_PASSWORD)


def test_removing_a_person_ends_their_sessions(app, runtime, owner):
    add_user(runtime, "viewer@example.com", "viewer")
    viewer = WebClient(app).sign_in("viewer@example.com")
    stolen = replay(app, viewer)
    with runtime.db.session() as session:
        viewer_id = session.scalar(select(User.id).where(User.email == "viewer@example.com"))
        owner_id = session.scalar(select(User.id).where(User.email == "owner@example.com"))
    owner.get("/settings")
    removed = owner.post(f"/settings/users/{viewer_id}/remove")
    assert removed.status_code == 302
    assert "viewer@example.com is removed and signed out everywhere." in owner.get("/settings").text
    assert signed_out(viewer) and signed_out(stolen)
    with runtime.db.session() as session:
        assert session.get(User, viewer_id) is None
        assert session.scalars(select(UserSession).where(UserSession.user_id == viewer_id)).all() == []

    myself = owner.post(f"/settings/users/{owner_id}/remove")
    assert myself.status_code == 422 and "You cannot remove yourself" in myself.text
    assert owner.get("/logs").status_code == 200


def test_an_owner_cannot_remove_a_person_of_another_store(app, runtime, owner):
    add_user(runtime, "theirs@example.com", "owner", marketplace="store-b")
    add_user(runtime, "second@example.com", "owner", marketplace="store-b")
    theirs = WebClient(app).sign_in("theirs@example.com")
    with runtime.db.session() as session:
        their_id = session.scalar(select(User.id).where(User.email == "theirs@example.com"))
    owner.get("/settings")
    assert owner.post(f"/settings/users/{their_id}/remove").status_code == 404
    assert owner.post(f"/settings/users/{2**40}/remove").status_code == 404
    assert not signed_out(theirs)
    with runtime.db.session() as session:
        assert session.get(User, their_id) is not None


def test_sign_out_everywhere_else_and_one_session_at_a_time(app, runtime, owner):
    phone = WebClient(app)
    phone.client.environ_base["HTTP_USER_AGENT"] = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.1 Mobile/15E148 Safari/604.1"
    )
    phone.sign_in("owner@example.com")
    tablet = WebClient(app).sign_in("owner@example.com")

    page = owner.get("/account")
    assert page.status_code == 200
    assert "Mobile Safari 17 on iOS" in page.text and page.text.count("This session") == 1
    others = SESSION_ROW.findall(page.text)
    assert len(others) == 2  # a sign-out button for each session but this one

    phone_id = next(s.id for s in live_sessions(runtime, "owner@example.com") if "iPhone" in s.user_agent)
    assert owner.post(f"/account/sessions/{phone_id}/sign-out").status_code == 302
    assert signed_out(phone) and not signed_out(tablet)

    assert owner.post("/account/sessions/sign-out-others").status_code == 302
    assert "Signed out everywhere else (1 session)." in owner.get("/account").text
    assert signed_out(tablet)
    assert owner.get("/logs").status_code == 200
    assert len(live_sessions(runtime, "owner@example.com")) == 1


def test_another_stores_or_persons_session_cannot_be_signed_out_from_here(app, runtime, owner):
    add_user(runtime, "theirs@example.com", "owner", marketplace="store-b")
    add_user(runtime, "colleague@example.com", "owner")
    theirs = WebClient(app).sign_in("theirs@example.com")
    colleague = WebClient(app).sign_in("colleague@example.com")
    owner.get("/account")
    for email in ("theirs@example.com", "colleague@example.com"):
        (target,) = live_sessions(runtime, email)
        response = owner.post(f"/account/sessions/{target.id}/sign-out")
        assert response.status_code == 404, email
    assert owner.post(f"/account/sessions/{2**40}/sign-out").status_code == 404
    assert not signed_out(theirs) and not signed_out(colleague)


def test_signing_out_this_session_from_the_list_signs_out(app, owner, runtime):
    (mine,) = live_sessions(runtime, "owner@example.com")
    owner.get("/account")
    response = owner.post(f"/account/sessions/{mine.id}/sign-out")
    assert response.status_code == 302 and response.location.endswith("/sign-in")
    assert signed_out(owner)


def test_last_seen_is_written_at_most_every_few_minutes_and_an_idle_session_expires(app, runtime, owner):
    def row():
        (found,) = live_sessions(runtime, "owner@example.com")
        return found

    first = row()
    owner.get("/logs")
    assert row().last_seen_at == first.last_seen_at  # a page read within SEEN_EVERY writes nothing

    with runtime.db.session() as session:
        stored = session.get(UserSession, first.id)
        stored.last_seen_at = utcnow() - SEEN_EVERY - timedelta(seconds=1)
        session.commit()
        stale = stored.last_seen_at
    owner.get("/logs")
    seen = row()
    assert seen.last_seen_at > stale and seen.expires_at > utcnow() + timedelta(days=13)

    with runtime.db.session() as session:
        session.get(UserSession, first.id).expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
    assert signed_out(owner)


def test_a_viewer_changes_their_own_password_and_sees_their_sessions(app, runtime, owner):
    add_user(runtime, "viewer@example.com", "viewer")
    viewer = WebClient(app).sign_in("viewer@example.com")
    page = viewer.get("/account")
    assert page.status_code == 200 and "This session" in page.text and "viewer@example.com" in page.text
    changed = viewer.post(
        "/account/password", {"current_password": PASSWORD, "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD}
    )
    assert changed.status_code == 302 and viewer.get("/logs").status_code == 200


def test_a_session_signed_with_an_old_key_still_works_while_the_key_is_a_fallback(app, runtime, owner, settings):
    def app_with(key, *old):
        rotated = build_runtime(replace(settings, secret_key=key, old_secret_keys=old), registry=runtime.registry)
        return create_app(runtime=rotated)

    cookie = owner.client.get_cookie(COOKIE).value
    for other_app, works in (
        (app_with("the-new-secret-key", settings.secret_key), True),
        (app_with("the-new-secret-key"), False),
    ):
        browser = WebClient(other_app)
        browser.client.set_cookie(COOKIE, cookie)
        assert signed_out(browser) is not works
        other_app.extensions["hookyard"].db.dispose()
    assert owner.get("/logs").status_code == 200  # an unreadable signature ended nothing server-side


def test_guessing_the_current_password_from_a_borrowed_session_is_limited(app, runtime, owner):
    runtime.settings = replace(runtime.settings, signin_rate_limit=(2, 300.0))
    owner.get("/account")
    for _ in range(2):
        guess = owner.post(
            "/account/password",
            {"current_password": "a guess", "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD},
        )
        assert guess.status_code == 422
    limited = owner.post(
        "/account/password", {"current_password": PASSWORD, "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD}
    )
    assert limited.status_code == 429 and "Too many attempts; try again in 5 minutes." in limited.text
    assert 1 <= int(limited.headers["Retry-After"]) <= 300
    WebClient(app).sign_in("owner@example.com")  # the password is unchanged
