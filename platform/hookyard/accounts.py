"""People who sign in to the web UI: created by the first-start page, by owners, or by `hookyard users create`;
their passwords changed in Settings or by `hookyard users passwd`; removed by an owner or `hookyard users remove`.
The web UI and the CLI both call these functions, which hold the rules (the password policy, the last owner).
Passwords are hashed with scrypt (werkzeug's default KDF)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash
from zxcvbn import zxcvbn

from . import user_sessions
from .models import ROLES, Marketplace, User, UserSession, utcnow

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
# zxcvbn's score 3 is "safely unguessable" (about 10^8 guesses or more); 0-2 are passwords found in its lists of
# the most common passwords, words and names, keyboard walks, dates and sequences, or little more than that.
MIN_PASSWORD_SCORE = 3
# zxcvbn refuses longer input (its matching grows quickly with length); the first 72 characters of a longer
# password already tell a guessable one from a strong one.
_ZXCVBN_MAX = 72
# Checked when the email is unknown, so a sign-in takes as long whether or not the account exists.
_DUMMY_HASH = generate_password_hash("not a password of anyone's")


def password_problem(password: str, user_inputs: list[str] | tuple[str, ...] = ()) -> str | None:
    """The one password policy, applied wherever a password is set: why ``password`` is refused, or None.

    Length and the two plain cases get their own message; "common" is judged by zxcvbn (Dropbox's estimator, a
    maintained port with its own frequency lists of leaked passwords, words and names), which also recognises the
    person's own email when it is given in ``user_inputs``."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        return f"Use {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters."
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (from a CLI argument, say) cannot be hashed
        return "The password contains a character that is not valid text."
    if not password.strip():
        return "A password cannot be only spaces."
    if len(set(password)) == 1:
        return "A password cannot be one character repeated: it is among the first ones guessed."
    result = zxcvbn(password[:_ZXCVBN_MAX], user_inputs=[value for value in user_inputs if value])
    if result["score"] >= MIN_PASSWORD_SCORE:
        return None
    feedback = result["feedback"]
    why = feedback["warning"] or "It would be guessed quickly."
    return " ".join(["This password is too easy to guess.", why, *feedback["suggestions"]])


def _inputs(email: str) -> list[str]:
    """What zxcvbn should treat as known to an attacker: the person's email and its name part."""
    email = (email or "").strip().lower()
    return [email, email.split("@", 1)[0]] if email else []


def check_password(password: str, email: str = "") -> None:
    """Raises ValidationError({"password": [why]}) when the policy refuses ``password``."""
    problem = password_problem(password, _inputs(email))
    if problem:
        raise ValidationError({"password": [problem]})


class NewUserSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    password = fields.String(required=True, load_only=True)
    role = fields.String(load_default="viewer", validate=validate.OneOf(ROLES))

    @validates_schema(skip_on_field_errors=False)
    def _password_policy(self, data, **kwargs):
        # Run even when the email is invalid, so every field's problem is shown at once.
        if "password" in data:
            check_password(data["password"], data.get("email", ""))


def has_users(session: Session) -> bool:
    return session.scalar(select(User.id).limit(1)) is not None


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.email) == (email or "").strip().lower()))


def create_user(session: Session, marketplace: Marketplace, values: dict) -> User:
    """Validates ``values`` (email, password, role) and adds the user; raises ValidationError per field."""
    data = NewUserSchema().load(values)
    email = data["email"].strip().lower()
    if session.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
        raise ValidationError({"email": ["An account with this email already exists."]})
    user = User(
        marketplace_id=marketplace.id,
        email=email,
        role=data["role"],
        password_hash=generate_password_hash(data["password"]),
    )
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = find_user(session, email)
    if user is None:
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    if not check_password_hash(user.password_hash, password or ""):
        return None
    user.last_sign_in_at = utcnow()
    return user


def set_password(session: Session, user: User, password: str, keep: UserSession | None = None) -> int:
    """Sets a new password (the policy applies) and ends every session of the person except ``keep``: whoever
    knew the old password, or holds a copy of a cookie, is signed out. Returns the number of sessions ended."""
    check_password(password, user.email)
    user.password_hash = generate_password_hash(password)
    return user_sessions.revoke_all(session, user, keep=keep)


def change_password(session: Session, user: User, current: str, new: str, keep: UserSession | None = None) -> int:
    """The person's own change: the current password proves it is them, not someone at an unlocked browser."""
    if not check_password_hash(user.password_hash, current or ""):
        raise ValidationError({"current_password": ["That is not your current password."]})
    if new == current:
        raise ValidationError({"password": ["The new password is the same as the current one."]})
    return set_password(session, user, new, keep=keep)


def remove_user(session: Session, marketplace_id: int, user_id: int, by: User | None = None) -> User:
    """Removes a person of ``marketplace_id`` and ends their sessions. LookupError when there is no such person in
    that store (another store's person is not found, never removed); ValidationError when it would leave the
    store without an owner, or when ``by`` (the person acting in the UI) is removing themselves."""
    user = session.get(User, user_id) if 0 < user_id <= 2**31 - 1 else None
    if user is None or user.marketplace_id != marketplace_id:
        raise LookupError(f"user {user_id} not found")
    if by is not None and by.id == user.id:
        raise ValidationError({"user": ["You cannot remove yourself; another owner can."]})
    if user.role == "owner":
        # Locked (PostgreSQL; SQLite's write lock covers the transaction) so two owners removing each other at
        # once cannot both succeed and leave the store with none.
        owners = session.scalars(
            select(User.id).where(User.marketplace_id == marketplace_id, User.role == "owner").with_for_update()
        ).all()
        if len(owners) <= 1:
            raise ValidationError({"user": [f"{user.email} is the store's only owner; add another owner first."]})
    # The foreign key cascades too; deleted here as well so it never depends on the database enforcing it.
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    session.delete(user)
    session.flush()
    return user
