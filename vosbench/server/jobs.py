"""Scoring a submission: claim it, score it with vosbench's evaluator, record the result once.

The queue (Huey, see `queue`) only carries submission ids; the database row is
the truth about a job. A worker *claims* a row with one conditional UPDATE
(queued, or running under a lease that ran out), keeps the lease alive with a
heartbeat while it scores, and records the score with another conditional
UPDATE that succeeds only while it still holds the claim. So a job enqueued
twice is scored once, and a job whose worker died (its lease runs out) is
claimed again by the next worker that sees it: `requeue_stale` puts such rows
back on the queue when a worker starts and every minute after.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from typing import Callable

from sqlalchemy import and_, or_, select, update

from vosbench.errors import VosbenchError
from vosbench.server.config import ServerConfig
from vosbench.server.db import Database, Status, Submission, dump_scores, utcnow

log = logging.getLogger(__name__)

# Seconds a worker waits after claiming a job before scoring it. For tests of crash recovery only
# (they kill a worker while it holds a job); unset in normal use.
HOLD_ENV = "VOSBENCH_SERVER_JOB_HOLD"


def worker_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claim(db: Database, submission_id: int, token: str, lease_seconds: float) -> bool:
    now = utcnow()
    with db.session() as session:
        result = session.execute(
            update(Submission)
            .where(Submission.id == submission_id,
                   or_(Submission.status == Status.QUEUED,
                       and_(Submission.status == Status.RUNNING, Submission.lease_until < now)))
            .values(status=Status.RUNNING, claimed_by=token, attempts=Submission.attempts + 1,
                    started_at=now, lease_until=now + dt.timedelta(seconds=lease_seconds))
            .execution_options(synchronize_session=False))
        return result.rowcount == 1


def _finish(db: Database, submission_id: int, token: str, **values) -> bool:
    with db.session() as session:
        result = session.execute(
            update(Submission)
            .where(Submission.id == submission_id, Submission.status == Status.RUNNING,
                   Submission.claimed_by == token)
            .values(finished_at=utcnow(), lease_until=None, **values)
            .execution_options(synchronize_session=False))
        return result.rowcount == 1


class Heartbeat:
    """Extends a claim's lease every third of it until stopped."""

    def __init__(self, db: Database, submission_id: int, token: str, lease_seconds: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(db, submission_id, token, lease_seconds),
                                        name=f"heartbeat-{submission_id}", daemon=True)

    def _run(self, db: Database, submission_id: int, token: str, lease_seconds: float) -> None:
        while not self._stop.wait(lease_seconds / 3):
            try:
                with db.session() as session:
                    session.execute(update(Submission)
                                    .where(Submission.id == submission_id, Submission.claimed_by == token,
                                           Submission.status == Status.RUNNING)
                                    .values(lease_until=utcnow() + dt.timedelta(seconds=lease_seconds))
                                    .execution_options(synchronize_session=False))
            except Exception:  # a missed beat only shortens the lease
                log.exception("heartbeat of submission %s failed", submission_id)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def score_submission(config: ServerConfig, db: Database, submission_id: int,
                     evaluate: Callable | None = None) -> str:
    """Score one submission if no live worker holds it; return what happened (for logs and tests)."""
    token = worker_token()
    if not claim(db, submission_id, token, config.lease_seconds):
        return "skipped"
    hold = float(os.environ.get(HOLD_ENV, "0") or 0)
    started = time.perf_counter()
    with Heartbeat(db, submission_id, token, config.lease_seconds):
        if hold:
            time.sleep(hold)
        with db.session() as session:
            track = session.get(Submission, submission_id).track
        folder = config.submission_dir(submission_id)
        try:
            result = (evaluate or _evaluate)(config, folder / "masks", track)
        except VosbenchError as exc:
            _finish(db, submission_id, token, status=Status.FAILED, error=_public_message(str(exc), folder))
            return "failed"
        except Exception:
            log.exception("submission %s: scoring crashed", submission_id)
            _finish(db, submission_id, token, status=Status.FAILED,
                    error="the server could not score this submission (the error is in the server's log).")
            return "failed"
        scores_dir = folder / "scores"
        result.write(scores_dir)
        _write_plot(result, scores_dir)
    summary = result.summary
    recorded = _finish(db, submission_id, token, status=Status.DONE, scores_json=dump_scores(summary),
                       jf_mean=summary["J&F-Mean"], scored_count=Submission.scored_count + 1,
                       worker_seconds=time.perf_counter() - started, error=None)
    return "done" if recorded else "superseded"


def _public_message(text: str, folder) -> str:
    """An evaluator message with the server's folders cut out (names relative to the upload)."""
    return text.replace(str(folder / "masks") + os.sep, "").replace(str(folder / "masks"), "<upload>")


def _evaluate(config: ServerConfig, masks, track: str):
    import vosbench

    return vosbench.evaluate(config.gt, masks, dataset=config.dataset, track=track, split=config.split,
                             resolution=config.resolution, cache=False, progress=False)


def _write_plot(result, scores_dir) -> None:
    from vosbench.reports.plots import save_png, sequence_bars
    from vosbench.reports.tables import tidy_result

    tidy = tidy_result(result, "submission")
    save_png(sequence_bars(tidy, measure="J&F"), scores_dir / "sequences.png")


def requeue_stale(db: Database, enqueue: Callable[[int, float], None], running_only: bool = False) -> list[int]:
    """Put back on the queue every job that no live worker may hold: queued rows (a worker killed between
    taking a message and claiming its row loses it) and running rows, due when their lease runs out.

    running_only: only running rows whose lease has run out (the periodic check; queued rows are
    put back when a worker starts). A job put back twice is still scored once (see `claim`).
    """
    now = utcnow()
    statuses = [Status.RUNNING] if running_only else [Status.QUEUED, Status.RUNNING]
    query = select(Submission.id, Submission.status, Submission.lease_until).where(Submission.status.in_(statuses))
    if running_only:
        query = query.where(Submission.lease_until < now)
    with db.session() as session:
        rows = session.execute(query.order_by(Submission.id)).all()
    ids = []
    for sid, status, lease_until in rows:
        delay = 0.0
        if status == Status.RUNNING and lease_until is not None and lease_until > now:
            delay = (lease_until - now).total_seconds() + 0.5
        enqueue(sid, delay)
        ids.append(sid)
    return ids
