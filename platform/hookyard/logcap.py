"""The per-marketplace cap on log entries (runs).

Each entry takes the next number of its marketplace's counter; trimming deletes finished entries
numbered at or below ``counter - cap`` through the (marketplace_id, log_seq) index. The table never
holds much more than the cap, so trimming costs the same after a thousand events as after a million.
Unfinished entries are never trimmed; they go once they finish and are old enough.
"""
from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from .models import FINAL_STATES, Marketplace, Run


def reserve_log_seqs(session: Session, marketplace_id: int, count: int) -> int:
    """Reserves ``count`` numbers; returns the first. The UPDATE row-locks the marketplace."""
    session.execute(
        update(Marketplace).where(Marketplace.id == marketplace_id).values(log_seq=Marketplace.log_seq + count)
    )
    last = session.scalar(select(Marketplace.log_seq).where(Marketplace.id == marketplace_id))
    return last - count + 1


def trim(session: Session, marketplace_id: int, cap: int) -> int:
    last = session.scalar(select(Marketplace.log_seq).where(Marketplace.id == marketplace_id))
    if last is None or last <= cap:
        return 0
    result = session.execute(
        delete(Run)
        .where(Run.marketplace_id == marketplace_id, Run.log_seq <= last - cap, Run.status.in_(FINAL_STATES))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0
