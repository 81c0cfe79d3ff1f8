"""Retrying failed log entries on request (the API's retry endpoints, the UI's Retry button).

A replay puts the same run back on the queue: it uses the event's stored payload and the rule's
current parameters (a fixed rule is what people retry after), keeps the earlier attempts and marks
where the replay began, and gets a fresh retry budget.
"""

from __future__ import annotations

from sqlalchemy import Select, update
from sqlalchemy.orm import Session

from . import logcap, logsearch
from .jobqueue import dispatch_again
from .models import Run, utcnow
from .runtime import Runtime

MAX_BULK = 1000


class NotReplayable(Exception):
    pass


def replay(rt: Runtime, session: Session, run: Run, by: str) -> Run:
    if run.origin == "test":
        # Its email and sample were the tester's choice, not the event's: run the test again from the rule instead.
        raise NotReplayable("A rule test is not retried from the log; test the rule again from its page.")
    # Claimed atomically, so two clicks (or a click and a bulk retry) queue it once.
    taken = session.execute(
        update(Run)
        .where(Run.id == run.id, Run.status == "failed", Run.origin != "test")
        .values(status="queued")
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:
        session.rollback()
        session.refresh(run)
        raise NotReplayable(f"Only failed entries can be retried; this one is {run.status}.")
    session.refresh(run)
    run.history = [
        *(run.history or []),
        {"replayed_at": utcnow().isoformat(), "replayed_by": by, "after_attempt": run.attempts},
    ]
    run.reason = f"retry requested by {by}"
    run.finished_at = None
    run.not_before = None
    # Among the newest entries again, where the person who asked will look for it.
    run.log_seq = logcap.reserve_log_seqs(session, run.marketplace_id, 1)
    dispatch_again(rt, session, run)
    return run


def replayable(marketplace_id: int, filters: dict) -> Select:
    """The failed entries matching a log filter that a retry would queue again (not rule tests)."""
    return logsearch.search(marketplace_id, {**filters, "status": "failed"}).where(Run.origin != "test")


def replay_matching(rt: Runtime, session: Session, marketplace_id: int, filters: dict, by: str) -> list[int]:
    """Replays the failed entries matching a log filter, oldest first, up to MAX_BULK per call."""
    replayed = []
    for run in session.scalars(replayable(marketplace_id, filters).order_by(Run.log_seq).limit(MAX_BULK)).all():
        try:
            replay(rt, session, run, by)
        except NotReplayable:
            continue  # retried meanwhile by someone else
        replayed.append(run.id)
    return replayed
