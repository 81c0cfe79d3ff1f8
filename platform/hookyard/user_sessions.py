"""Server-side sessions of the web UI. The browser's cookie carries a random id; the row (found by the id's hash)
decides whether it is still signed in, so ending a session here ends it for every copy of the cookie."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from .models import User, UserSession, utcnow
from .tokens import hash_token

# Idle lifetime: a session unused for this long ends (each use, recorded every SEEN_EVERY, extends it).
LIFETIME = timedelta(days=14)
# last_seen_at (and with it expires_at) is written at most this often, so reading a page is not a write each time.
SEEN_EVERY = timedelta(minutes=5)


def start(session: Session, user: User, user_agent: str = "", client_address: str = "") -> str:
    """Adds a session for ``user`` and returns its id, for the cookie only (the table keeps the hash)."""
    now = utcnow()
    # The person's ended sessions are of no further use: dropped here, so the table holds about one row per browser.
    session.execute(
        delete(UserSession).where(
            UserSession.user_id == user.id, or_(UserSession.revoked_at.is_not(None), UserSession.expires_at <= now)
        )
    )
    raw = secrets.token_urlsafe(32)
    session.add(
        UserSession(
            id_hash=hash_token(raw),
            user_id=user.id,
            marketplace_id=user.marketplace_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + LIFETIME,
            user_agent=(user_agent or "")[:300],
            client_address=(client_address or "")[:64],
        )
    )
    session.flush()
    return raw


def find(session: Session, raw_id: str, user_id: int) -> tuple[UserSession, User] | None:
    """The live session with this id and its person, when it belongs to ``user_id`` (the cookie's claim);
    None when it is unknown, revoked, expired, or someone else's."""
    if not raw_id or not isinstance(raw_id, str):
        return None
    row = session.execute(
        select(UserSession, User)
        .join(User, UserSession.user_id == User.id)
        .where(
            UserSession.id_hash == hash_token(raw_id),
            UserSession.revoked_at.is_(None),
            UserSession.expires_at > utcnow(),
        )
    ).one_or_none()
    if row is None or row[0].user_id != user_id or row[0].marketplace_id != row[1].marketplace_id:
        return None
    return row[0], row[1]


def touch(user_session: UserSession, now: datetime | None = None) -> bool:
    """Records a use when the last recorded one is older than SEEN_EVERY; True when the row changed (to commit)."""
    now = now or utcnow()
    if now - user_session.last_seen_at < SEEN_EVERY:
        return False
    user_session.last_seen_at = now
    user_session.expires_at = now + LIFETIME
    return True


def active(session: Session, user: User) -> list[UserSession]:
    """The person's live sessions, the most recently used first."""
    return list(
        session.scalars(
            select(UserSession)
            .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None), UserSession.expires_at > utcnow())
            .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
        )
    )


def revoke(user_session: UserSession) -> None:
    user_session.revoked_at = user_session.revoked_at or utcnow()


def revoke_own(session: Session, user: User, session_id: int) -> UserSession:
    """Ends one of the person's own sessions by its row id. Raises LookupError for any other id (another person's,
    another store's, or none), so a caller cannot tell them apart."""
    row = session.get(UserSession, session_id) if 0 < session_id <= 2**31 - 1 else None
    if row is None or row.user_id != user.id or row.marketplace_id != user.marketplace_id:
        raise LookupError(f"session {session_id} not found")
    revoke(row)
    return row


def revoke_all(session: Session, user: User, keep: UserSession | None = None) -> int:
    """Ends every live session of the person except ``keep``; the number ended."""
    query = (
        update(UserSession)
        .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    if keep is not None:
        query = query.where(UserSession.id != keep.id)
    return session.execute(query, execution_options={"synchronize_session": "fetch"}).rowcount
