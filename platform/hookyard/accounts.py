"""People who sign in to the web UI: created by the first-start page, by owners, or by
`hookyard users create`. Passwords are hashed with scrypt (werkzeug's default KDF)."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from .models import ROLES, Marketplace, User, utcnow

MIN_PASSWORD_LENGTH = 10
# Checked when the email is unknown, so a sign-in takes as long whether or not the account exists.
_DUMMY_HASH = generate_password_hash("not a password of anyone's")


class NewUserSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    password = fields.String(required=True, load_only=True,
                             validate=validate.Length(min=MIN_PASSWORD_LENGTH, max=1024,
                                                      error="Use {min} to {max} characters."))
    role = fields.String(load_default="viewer", validate=validate.OneOf(ROLES))


def has_users(session: Session) -> bool:
    return session.scalar(select(User.id).limit(1)) is not None


def create_user(session: Session, marketplace: Marketplace, values: dict) -> User:
    """Validates ``values`` (email, password, role) and adds the user; raises ValidationError per field."""
    data = NewUserSchema().load(values)
    email = data["email"].strip().lower()
    if session.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
        raise ValidationError({"email": ["An account with this email already exists."]})
    user = User(marketplace_id=marketplace.id, email=email, role=data["role"],
                password_hash=generate_password_hash(data["password"]))
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = session.scalar(select(User).where(func.lower(User.email) == (email or "").strip().lower()))
    if user is None:
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    if not check_password_hash(user.password_hash, password or ""):
        return None
    user.last_sign_in_at = utcnow()
    return user


def session_stamp(user: User) -> str:
    """Part of the signed session cookie: changing the password signs out every other session."""
    return user.password_hash[-16:]
