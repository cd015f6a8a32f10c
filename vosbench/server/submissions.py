"""Accepting a submission (unpack, validate with vosbench's validator, store, enqueue) and reading them back."""
from __future__ import annotations

import math
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from vosbench.errors import InputError, VosbenchError
from vosbench.io.datasets import Dataset
from vosbench.io.factory import open_dataset
from vosbench.server.config import ServerConfig
from vosbench.server.db import Database, Status, Submission, User, row_dict, utcnow
from vosbench.server.uploads import UploadError, unpack
from vosbench.server.users import day_start
from vosbench.tracks.params import EvalParams, Track
from vosbench.tracks.result import GLOBAL_COLUMNS
from vosbench.tracks.validate import validate_folder

SUBMISSION_FIELDS = ["id", "track", "method", "status", "created_at", "started_at", "finished_at", "attempts",
                     "error", "chosen", "n_masks", "upload_bytes"]


class NotFound(VosbenchError):
    """A submission that does not exist or belongs to another user (the two are not told apart)."""


class InvalidSubmission(VosbenchError):
    """The upload's masks failed validation; `problems` name each file inside the upload."""

    def __init__(self, problems: list[dict[str, str]]):
        self.problems = problems
        lines = [f"{len(problems)} problem(s) in the upload:"] + [
            f"  - {p['file']}: {p['problem']}" + (f" Fix: {p['fix']}" if p["fix"] else "") for p in problems[:50]]
        super().__init__("\n".join(lines))


class LimitReached(VosbenchError):
    pass


@dataclass
class Benchmark:
    """The hidden ground truth of each track, opened once."""

    config: ServerConfig

    def __post_init__(self):
        self._datasets: dict[Track, Dataset] = {}

    def track(self, name: str) -> Track:
        try:
            track = Track(name)
        except ValueError:
            track = None
        if track not in self.config.tracks:
            raise UploadError(f"track {name!r} is not run by this server; tracks: "
                              f"{', '.join(t.value for t in self.config.tracks)}.")
        return track

    def dataset(self, track: Track) -> Dataset:
        if track not in self._datasets:
            c = self.config
            self._datasets[track] = open_dataset(c.dataset, c.gt, split=c.split, resolution=c.resolution,
                                                 unsupervised=track is Track.UNSUPERVISED)
        return self._datasets[track]

    def params(self, track: Track) -> EvalParams:
        return EvalParams.official(track, dataset=self.config.dataset)

    def describe(self, track: Track) -> str:
        return self.params(track).describe()


def public_problem(problem: InputError, root: Path, gt: Path) -> dict[str, str]:
    """An InputError with the file named as inside the upload (the server's folders never shown)."""
    path = problem.path or ""
    if path.startswith(str(root)):
        name = os.path.relpath(path, root)
        name = "<upload>" if name == "." else name
    elif path.startswith(str(gt)):
        name = "<ground truth>"
    else:
        name = Path(path).name
    return {"file": name, "problem": problem.problem, "fix": problem.fix}


def _check_limit(session, config: ServerConfig, user: User) -> None:
    limit = user.daily_limit if user.daily_limit is not None else config.limits.daily_submissions
    if limit is None or limit < 0:
        return
    used = session.scalar(select(func.count()).select_from(Submission)
                          .where(Submission.user_id == user.id, Submission.created_at >= day_start()))
    if used >= limit:
        raise LimitReached(f"{user.name} has made {used} submission(s) today (UTC), the daily limit is {limit}; "
                           "try again tomorrow or ask the server's admin (`vosbench serve set-user --daily-limit`).")


def accept_upload(config: ServerConfig, db: Database, benchmark: Benchmark, user: User, zip_path: Path,
                  upload_bytes: int, track_name: str, method: str = "") -> Submission:
    """Unpack and validate `zip_path`; on success store it as a new queued submission (not yet enqueued)."""
    track = benchmark.track(track_name)
    method = (method or "").strip()[:128]
    with db.session() as session:  # refuse early, before unpacking anything
        _check_limit(session, config, session.get(User, user.id))
    incoming = config.data_dir / "incoming" / uuid.uuid4().hex
    try:
        unpacked = unpack(zip_path, incoming / "masks", config.limits)
        dataset = benchmark.dataset(track)
        problems = validate_folder(dataset, unpacked.root, benchmark.params(track))
        if problems:
            raise InvalidSubmission([public_problem(p, unpacked.root, config.gt) for p in problems])
        target = None
        try:
            with db.session() as session:
                # Checked again with the user's row locked (PostgreSQL; SQLite holds its write lock already),
                # so that simultaneous uploads cannot pass the limit together.
                _check_limit(session, config, session.get(User, user.id, with_for_update=True))
                row = Submission(user_id=user.id, track=track.value, method=method, status=Status.QUEUED,
                                 created_at=utcnow(), upload_bytes=upload_bytes, n_masks=unpacked.files)
                session.add(row)
                session.flush()
                target = config.submission_dir(row.id)
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists():  # left by an upload whose transaction never committed: the id is new
                    shutil.rmtree(target)
                os.replace(incoming, target)
        except BaseException:
            if target is not None:  # the row was rolled back: its folder goes too
                shutil.rmtree(target, ignore_errors=True)
            raise
        return row
    finally:
        shutil.rmtree(incoming, ignore_errors=True)


def own_submission(db: Database, user: User, submission_id: int) -> Submission:
    with db.session() as session:
        row = session.get(Submission, submission_id)
        if row is None or row.user_id != user.id:
            raise NotFound(f"no submission {submission_id} of yours (your submissions: GET /api/submissions).")
        return row


def list_own(db: Database, user: User) -> list[Submission]:
    with db.session() as session:
        return list(session.scalars(select(Submission).where(Submission.user_id == user.id)
                                    .order_by(Submission.id.desc())))


def choose(db: Database, user: User, submission_id: int) -> Submission:
    """Make a scored submission the one the public leaderboard shows for the user and its track."""
    with db.session() as session:
        row = session.get(Submission, submission_id)
        if row is None or row.user_id != user.id:
            raise NotFound(f"no submission {submission_id} of yours.")
        if row.status != Status.DONE:
            raise VosbenchError(f"submission {submission_id} is {row.status}; only a scored submission can be chosen.")
        for other in session.scalars(select(Submission).where(Submission.user_id == user.id,
                                                              Submission.track == row.track)):
            other.chosen = other.id == row.id
        return row


def submission_json(config: ServerConfig, row: Submission, detail: bool = False) -> dict[str, Any]:
    out = row_dict(row, SUBMISSION_FIELDS)
    out["scores"] = row.scores or None
    if detail and row.status == Status.DONE:
        out["per_sequence"] = per_sequence(config, row).to_dict(orient="records")
    return out


def per_sequence(config: ServerConfig, row: Submission) -> pd.DataFrame:
    path = config.submission_dir(row.id) / "scores" / f"per-sequence_results-{config.split}.csv"
    if not path.exists():
        return pd.DataFrame(columns=["Sequence", "J-Mean", "F-Mean"])
    return pd.read_csv(path)


def leaderboard(db: Database, track: Track) -> list[dict[str, Any]]:
    """One row per user: their chosen scored submission of `track`, else their best (J&F-Mean, then earliest)."""
    with db.session() as session:
        rows = session.execute(select(Submission, User.name).join(User)
                               .where(Submission.track == track.value, Submission.status == Status.DONE,
                                      User.disabled.is_(False))
                               .order_by(Submission.id)).all()
    best: dict[str, Submission] = {}
    for sub, name in rows:
        current = best.get(name)
        if current is None or (sub.chosen and not current.chosen) or (
                sub.chosen == current.chosen and not current.chosen and _key(sub) > _key(current)):
            best[name] = sub
    ordered = sorted(best.items(), key=lambda item: (-_key(item[1]), item[1].id))
    table = []
    for rank, (name, sub) in enumerate(ordered, start=1):
        entry = {"rank": rank, "user": name, "method": sub.method, "submission": sub.id,
                 "submitted_at": sub.created_at.isoformat() + "Z", "chosen": sub.chosen}
        entry.update({c: sub.scores.get(c) for c in GLOBAL_COLUMNS})
        table.append(entry)
    return table


def _key(sub: Submission) -> float:
    value = sub.jf_mean
    return -math.inf if value is None or math.isnan(value) else value
