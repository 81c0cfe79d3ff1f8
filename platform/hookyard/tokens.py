"""API tokens: shown once, stored as a SHA-256 hash (they are random, so a slow KDF buys nothing)."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from .models import ROLES, ApiToken, Marketplace, utcnow

TOKEN_PREFIX = "hy_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# The store a new install starts with, whichever comes first: the setup page or `hookyard tokens create`.
DEFAULT_MARKETPLACE = "My store"


def marketplace_names(session: Session, limit: int = 20) -> list[str]:
    """The first stores' names, oldest first: for "which one?" choices."""
    return list(session.scalars(select(Marketplace.name).order_by(Marketplace.id).limit(limit)))


def get_or_create_marketplace(session: Session, name: str) -> Marketplace:
    mp = session.scalar(select(Marketplace).where(Marketplace.name == name))
    if mp is None:
        mp = Marketplace(name=name, log_seq=0)
        session.add(mp)
        session.flush()
    return mp


def create_token(session: Session, marketplace: Marketplace, name: str = "", role: str = "owner") -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(marketplace_id=marketplace.id, name=name, token_hash=hash_token(token), prefix=token[:10], role=role)
    )
    session.flush()
    return token


# Built once (every API request runs it): building the statement cost as much as running it.
_ACTIVE_TOKEN = (
    select(ApiToken, Marketplace)
    .join(Marketplace, ApiToken.marketplace_id == Marketplace.id)
    .where(ApiToken.token_hash == bindparam("hash"), ApiToken.revoked_at.is_(None))
)


def lookup_token(session: Session, token: str) -> tuple[ApiToken, Marketplace] | None:
    """The active (not revoked) token row and its marketplace; the row carries the role to enforce."""
    row = session.execute(_ACTIVE_TOKEN, {"hash": hash_token(token)}).one_or_none()
    return None if row is None else (row[0], row[1])


def revoke_token(token: ApiToken) -> None:
    token.revoked_at = token.revoked_at or utcnow()
