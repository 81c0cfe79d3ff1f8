"""The per-marketplace cap on log entries (runs).

Each entry takes the next number of its marketplace's counter when it is created and again when it
finishes, so the log is ordered by latest activity. Trimming finds the number of the cap-th newest
entry by walking the (marketplace_id, log_seq) index from the top, then deletes the finished
entries at or below it. The table never holds much more than the cap, so a trim costs the same
after a thousand events as after a million. Unfinished entries are never trimmed; they are numbered
anew when they finish, so nothing below the last trim ever needs deleting again. The delete is
therefore bounded below by ``log_floor`` too, which keeps it off the index entries of earlier
deletes (dead tuples until PostgreSQL vacuums them).
"""

from __future__ import annotations

from sqlalchemy import String, and_, bindparam, cast, delete, func, literal, not_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .models import FINAL_STATES, ONCE_PER_EVENT_ORIGINS, Event, Marketplace, RuleLedger, Run, utcnow


def reserve_log_seqs(session: Session, marketplace_id: int, count: int) -> int:
    """Reserves ``count`` numbers; returns the first. The UPDATE row-locks the marketplace, and answers the new
    value itself (RETURNING: SQLite 3.35+, PostgreSQL), one statement where there were two."""
    # On the session's connection, as a Core statement: the ORM's bulk-update handling has nothing to do here.
    last = session.connection().execute(_RESERVE, {"mp": marketplace_id, "count": count}).scalar_one()
    return last - count + 1


_RESERVE = (
    update(Marketplace)
    .where(Marketplace.id == bindparam("mp"))
    .values(log_seq=Marketplace.log_seq + bindparam("count"))
    .returning(Marketplace.log_seq)
    .execution_options(synchronize_session=False)
)


# Built once, like _RESERVE: every finished run trims, and building a select costs more CPU than running this one.
_BOUNDARY = (
    select(Run.log_seq)
    .where(Run.marketplace_id == bindparam("mp"))
    .order_by(Run.log_seq.desc())
    .offset(bindparam("cap"))
    .limit(1)
)
_FLOOR = select(Marketplace.log_floor).where(Marketplace.id == bindparam("mp"))


def trim(session: Session, marketplace_id: int, cap: int) -> int:
    boundary = session.scalar(_BOUNDARY, {"mp": marketplace_id, "cap": cap})
    if boundary is None:
        return 0
    floor = session.scalar(_FLOOR, {"mp": marketplace_id})
    if boundary <= floor:
        return 0
    _remember(session, marketplace_id, floor, boundary)
    result = session.execute(
        delete(Run)
        .where(
            Run.marketplace_id == marketplace_id,
            Run.log_seq > floor,
            Run.log_seq <= boundary,
            Run.status.in_(FINAL_STATES),
        )
        .execution_options(synchronize_session=False)
    )
    session.execute(update(Marketplace).where(Marketplace.id == marketplace_id).values(log_floor=boundary))
    return result.rowcount or 0


def _remember(session: Session, marketplace_id: int, floor: int, boundary: int) -> None:
    """The (rule, event) pairs of the event and backfill runs about to be deleted go to the rule ledger, so a
    backfill still knows the rule ran for the event (hookyard.backfill). One INSERT ... SELECT over the rows the
    delete takes (the same index range), a pair already there skipped. A cancelled backfill run never ran the
    rule: it is forgotten with its entry."""
    ledger = RuleLedger.__table__
    rows = (
        select(
            Run.marketplace_id,
            Run.rule_id,
            func.coalesce(Event.dedupe_key, literal("id:", String) + cast(Event.id, String)),
            literal(utcnow(), RuleLedger.created_at.type),
        )
        .join(Event, Event.id == Run.event_id)
        .where(
            Run.marketplace_id == marketplace_id,
            Run.log_seq > floor,
            Run.log_seq <= boundary,
            Run.status.in_(FINAL_STATES),
            Run.origin.in_(ONCE_PER_EVENT_ORIGINS),
            Run.rule_id.is_not(None),
            not_(and_(Run.origin == "backfill", Run.status == "skipped", Run.reason == "cancelled")),
        )
    )
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert = dialect.insert(ledger).from_select(["marketplace_id", "rule_id", "event_key", "created_at"], rows)
    session.execute(insert.on_conflict_do_nothing(index_elements=["rule_id", "event_key"]))
