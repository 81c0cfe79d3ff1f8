"""The accounts core that the web UI and the CLI both call: the one password policy, password changes and removing
people (each ending sessions), on every database the suite runs on."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError
from sqlalchemy import select

from hookyard import user_sessions
from hookyard.accounts import (
    authenticate,
    change_password,
    check_password,
    create_user,
    password_problem,
    remove_user,
    set_password,
)
from hookyard.models import User, UserSession
from hookyard.tokens import get_or_create_marketplace

GOOD = "correct horse battery staple"


@pytest.mark.parametrize(
    "password, why",
    [
        (" " * 10, "A password cannot be only spaces."),
        ("\t \n" * 4, "A password cannot be only spaces."),
        ("a" * 10, "A password cannot be one character repeated"),
        ("7" * 40, "A password cannot be one character repeated"),
        ("password123", "This password is too easy to guess. This is a very common password."),
        ("qwertyuiop", "This is a top-100 common password."),
        ("Password123!", "This is similar to a commonly used password."),
        ("abcabcabcabc", "Repeats like"),
        ("short", "Use 10 to 1024 characters."),
        ("x" * 1025, "Use 10 to 1024 characters."),
        ("lone \ud800 surrogate", "not valid text"),
    ],
)
def test_the_policy_refuses_weak_passwords_and_says_why(password, why):
    problem = password_problem(password)
    assert problem is not None and why in problem, problem


@pytest.mark.parametrize(
    "password",
    [
        GOOD,
        "plum tractor lantern ocean",
        "Tr0ub4dor&3x-mule",
        "é" * 3 + "ßwq7-Lkm!Zp",
        "a passphrase much longer than zxcvbn reads " * 20,
    ],
)
def test_a_good_passphrase_is_accepted(password):
    assert password_problem(password) is None


def test_the_persons_own_email_counts_as_known_to_an_attacker():
    assert password_problem("ada.lovelace1") is None
    with pytest.raises(ValidationError) as refused:
        check_password("ada.lovelace1", "ada.lovelace@example.com")
    assert "too easy to guess" in refused.value.messages["password"][0]


def test_every_field_is_reported_at_once(runtime):
    with runtime.db.session() as session, pytest.raises(ValidationError) as refused:
        create_user(session, get_or_create_marketplace(session, "shop"), {"email": "nope", "password": "aaaaaaaaaa"})
    assert set(refused.value.messages) == {"email", "password"}


@pytest.fixture
def people(runtime):
    """A store with two owners and a viewer, and another store with its owner; each signed in once."""
    with runtime.db.session() as session:
        shop, other = get_or_create_marketplace(session, "shop"), get_or_create_marketplace(session, "other")
        made = {
            email: create_user(session, mp, {"email": email, "password": GOOD, "role": role})
            for email, mp, role in [
                ("ada@example.com", shop, "owner"),
                ("bob@example.com", shop, "owner"),
                ("vic@example.com", shop, "viewer"),
                ("zed@example.com", other, "owner"),
            ]
        }
        for user in made.values():
            user_sessions.start(session, user)
        session.commit()
        return {email: user.id for email, user in made.items()}


def live(session, user_id):
    return session.scalars(
        select(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
    ).all()


def test_a_password_change_ends_the_other_sessions_and_keeps_the_one_given(runtime, people):
    with runtime.db.session() as session:
        ada = session.get(User, people["ada@example.com"])
        user_sessions.start(session, ada, "second browser")
        (kept,) = [s for s in live(session, ada.id) if s.user_agent == ""]
        with pytest.raises(ValidationError) as refused:
            change_password(session, ada, "wrong", "plum tractor lantern ocean", keep=kept)
        assert refused.value.messages == {"current_password": ["That is not your current password."]}
        with pytest.raises(ValidationError) as refused:
            change_password(session, ada, GOOD, "aaaaaaaaaa", keep=kept)
        assert "one character repeated" in refused.value.messages["password"][0]
        assert len(live(session, ada.id)) == 2
        assert change_password(session, ada, GOOD, "plum tractor lantern ocean", keep=kept) == 1
        session.commit()
        assert [s.id for s in live(session, ada.id)] == [kept.id]
        assert len(live(session, people["bob@example.com"])) == 1  # nobody else's
        assert authenticate(session, "ada@example.com", "plum tractor lantern ocean") is not None
        assert set_password(session, ada, "another fine passphrase") == 1  # the CLI's: none kept
        assert live(session, ada.id) == []


def test_a_session_is_found_only_for_the_person_the_cookie_names(runtime, people):
    with runtime.db.session() as session:
        vic = session.get(User, people["vic@example.com"])
        raw = user_sessions.start(session, vic)
        session.commit()
        assert user_sessions.find(session, raw, vic.id)[1].id == vic.id
        assert user_sessions.find(session, raw, people["ada@example.com"]) is None
        assert user_sessions.find(session, raw + "x", vic.id) is None
        assert user_sessions.find(session, None, vic.id) is None


def test_removing_people_keeps_an_owner_and_stays_inside_the_store(runtime, people):
    shop = people["ada@example.com"]
    with runtime.db.session() as session:
        shop_id = session.get(User, shop).marketplace_id
        with pytest.raises(LookupError):
            remove_user(session, shop_id, people["zed@example.com"])  # another store's: not found
        with pytest.raises(ValidationError, match="cannot remove yourself"):
            remove_user(session, shop_id, people["ada@example.com"], by=session.get(User, people["ada@example.com"]))
        remove_user(session, shop_id, people["vic@example.com"])
        remove_user(session, shop_id, people["bob@example.com"])
        with pytest.raises(ValidationError) as refused:
            remove_user(session, shop_id, people["ada@example.com"])
        assert refused.value.messages == {
            "user": ["ada@example.com is the store's only owner; add another owner first."]
        }
        session.commit()
        assert [u.email for u in session.scalars(select(User).order_by(User.email))] == [
            "ada@example.com",
            "zed@example.com",
        ]
        for gone in ("vic@example.com", "bob@example.com"):
            assert session.scalars(select(UserSession).where(UserSession.user_id == people[gone])).all() == []
