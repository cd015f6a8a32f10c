"""Temporal stability T of a results folder: per object, per frame, cached and resumable.

T uses the result masks only (see `vosbench.metrics.temporal`). It is slow
(about 0.1 s a frame at 480p), so each sequence's values are cached under a key
of its masks' bytes in ``$VOSBENCH_HOME/temporal``: a second leaderboard build,
or one interrupted and restarted, computes only what changed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from vosbench.errors import InputError
from vosbench.io.masks import read_mask
from vosbench.io.paths import vosbench_home
from vosbench.metrics.base import Frame, SequenceInfo
from vosbench.metrics.temporal import StabilityT
from vosbench.tracks.evaluator import ScoreCache, cache_folder
from vosbench.tracks.parallel import joblib_backend, run_parallel
from vosbench.tracks.scores import SequenceScores

log = logging.getLogger(__name__)

# Bump when the same masks would give different T values, so old cache entries are not reused.
# 2: entries are the shared score cache's (`ScoreCache`), keyed with the T metric's token.
CACHE_FORMAT = 2


@dataclass(frozen=True)
class SequenceT:
    """T of each object of one sequence: ``per_frame[k, t]`` is the pair (t-1, t) of object k (NaN if none)."""

    sequence: str
    frames: list[str]
    object_ids: list[int]
    per_frame: np.ndarray

    @property
    def means(self) -> np.ndarray:
        """The per-object sequence T (NaN-ignoring mean over pairs)."""
        out = np.full(len(self.object_ids), np.nan)
        for k in range(len(self.object_ids)):
            values = self.per_frame[k][~np.isnan(self.per_frame[k])]
            if values.size:
                out[k] = values.mean()
        return out


@dataclass(frozen=True)
class _Job:
    sequence: str
    frames: list[str]
    paths: list[Path | None]
    object_ids: list[int]
    binary: bool
    exclude_ends: bool
    # Ground truth of the first frame: the official leaderboard compares the first evaluated
    # frame with it (the only ground truth T looks at). None: that frame is left out.
    first_reference: Path | None = None


def _key(job: _Job) -> str:
    """Content key of a T job: the T metric's token (its options and a digest of its code), the frame
    rules, and the bytes of every mask it reads. Computed once per job, and only when a cache is used."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"format": CACHE_FORMAT, "metric": _metric(job).token(),
                              "objects": job.object_ids, "binary": job.binary,
                              "exclude_ends": job.exclude_ends, "frames": job.frames}).encode())
    for path in [job.first_reference] + list(job.paths):
        digest.update(b"\0" if path is None else path.read_bytes())
    return digest.hexdigest()[:32]


def _metric(job: _Job) -> StabilityT:
    return StabilityT(first_reference=job.first_reference is not None)


def _compute(job: _Job) -> SequenceT:
    """T of one job through the T metric, one frame at a time (a few masks in memory, whatever the length)."""
    shape = None
    for path in job.paths:
        if path is not None:
            shape = read_mask(path, binary=job.binary).shape
            break
    if shape is None:
        raise InputError(job.paths[0], "no result mask of this sequence could be read.", "Check the results folder.")
    n = len(job.frames)
    hi = n - 1 if job.exclude_ends else n
    info = SequenceInfo(job.sequence, tuple(job.frames), tuple((k, k) for k in job.object_ids), shape, job.binary)

    def frames():
        for t, (name, path) in enumerate(zip(job.frames, job.paths)):
            gt = None
            if t == 0 and job.first_reference is not None:
                gt = read_mask(job.first_reference, binary=job.binary)
            # Absent masks (the dropped first and last frame) stay None: T never reads them.
            pred = None if path is None or t == 0 or t >= hi else read_mask(path, binary=job.binary)
            scored = np.full(len(info.pairs), 1 <= t < hi)
            yield Frame(t, name, gt, pred, scored=scored)

    per_frame = _metric(job).eval_sequence(info, frames())["T"]
    per_frame[:, [t for t in range(n) if not 1 <= t < hi]] = np.nan
    return SequenceT(job.sequence, job.frames, job.object_ids, np.asarray(per_frame, dtype=np.float64))


def _compute_entry(job: _Job) -> SequenceT:
    return _compute(job)  # looked up at call time, so that tests can stand in for the computation


def _cache_dir(cache: bool | str | os.PathLike) -> Path | None:
    return cache_folder(cache, default=vosbench_home() / "temporal")


def _jobs(dataset, results_dir: Path, sequences: Iterable[str], exclude_ends: bool,
          first_reference: bool) -> list[_Job]:
    jobs = []
    binary = bool(getattr(dataset, "binary", False))
    for sequence in sequences:
        frames = dataset.frame_names(sequence)
        folder = results_dir / sequence
        if not folder.is_dir():
            raise InputError(folder, "is missing: T needs the result masks of every evaluated sequence.",
                             f"Add {sequence}/ with one PNG per frame, or leave T out (--measures J,F).")
        paths: list[Path | None] = []
        for t, frame in enumerate(frames):
            path = folder / f"{frame}.png"
            if path.is_file():
                paths.append(path)
            elif exclude_ends and t in (0, len(frames) - 1):
                paths.append(None)  # the dropped first/last frame may be absent (the first is given)
            else:
                raise InputError(path, "is missing: T pairs consecutive frames, so every frame needs a mask.",
                                 "Write a mask for every frame of the sequence.")
        first_frame = dataset.annotated_frames(sequence)[0]
        reference = dataset.annotation_path(sequence, first_frame) if first_frame == frames[0] else None
        if binary:
            object_ids = [1]
        else:
            first = dataset.read_annotation(sequence, first_frame)
            ids = first[first != 255]
            object_ids = list(range(1, int(ids.max()) + 1)) if ids.size and ids.max() > 0 else []
        jobs.append(_Job(sequence, frames, paths, object_ids, binary, exclude_ends,
                         reference if first_reference else None))
    return jobs


def results_t(dataset, results_dir: str | os.PathLike, *, sequences: Sequence[str] | None = None,
              exclude_ends: bool = True, first_reference: bool = True, jobs: int = 1,
              cache: bool | str | os.PathLike = True, progress: bool = False,
              backend: str | None = None, scheduler: str | None = None) -> list[SequenceT]:
    """T of every object of every sequence of a results folder (the official DAVIS 2016 T per sequence).

    dataset: a `vosbench.io.Dataset` (frame lists; objects and the first frame's ground truth).
    exclude_ends: drop the first and last frame, as the official benchmark does.
    first_reference: compare the first evaluated frame with the first frame's ground truth, as
        the official leaderboard does (False: leave that frame out, as the DAVIS 2016 Python
        package does).
    cache: True for ``$VOSBENCH_HOME/temporal``, a folder, or False.
    backend, scheduler: the joblib backend (e.g. "dask" and a scheduler address), as for J and F.

    T is the registered metric "T" (`vosbench.metrics.temporal.StabilityT`) run through the shared
    runner and score cache; ``vosbench.evaluate(..., metrics="J,F,T")`` measures it with J and F in one
    pass. This function scores T alone on a results folder, for the leaderboard.
    """
    results_dir = Path(results_dir)
    todo_jobs = _jobs(dataset, results_dir, sequences if sequences is not None else dataset.sequence_names(),
                      exclude_ends, first_reference)
    cache_store = ScoreCache(_cache_dir(cache))
    done: dict[str, SequenceT] = {}
    keys: dict[str, str] = {}
    todo: list[_Job] = []
    for job in todo_jobs:
        if cache_store.folder is not None:
            keys[job.sequence] = _key(job)
            cached = cache_store.load(job.sequence, keys[job.sequence])
            if cached is not None and "T" in cached.values:
                done[job.sequence] = SequenceT(job.sequence, job.frames, cached.object_ids, cached.values["T"])
                continue
        todo.append(job)
    if done:
        log.info("T: %d of %d sequences reused from the cache", len(done), len(todo_jobs))
    if todo:
        with joblib_backend(backend, scheduler):
            for scores in run_parallel(_compute_entry, todo, jobs=jobs, total=len(todo), progress=progress,
                                       desc=f"T {results_dir.name}"):
                if cache_store.folder is not None:
                    cache_store.store(scores.sequence, keys[scores.sequence],
                                      SequenceScores(scores.sequence, scores.frames, scores.object_ids,
                                                     values={"T": scores.per_frame}))
                done[scores.sequence] = scores
    return [done[job.sequence] for job in todo_jobs]


def tidy_t(scores: Iterable[SequenceT], method: str) -> pd.DataFrame:
    """Per-frame T values as tidy rows (measure ``T``), the frame being the second of its pair."""
    from vosbench.reports.tables import TIDY_COLUMNS, _frame_numbers

    parts = []
    for seq in scores:
        k_idx, t_idx = np.nonzero(~np.isnan(seq.per_frame))
        if not k_idx.size:
            continue
        parts.append(pd.DataFrame({"method": method, "sequence": seq.sequence,
                                   "object": np.asarray(seq.object_ids, dtype=np.int64)[k_idx],
                                   "frame": _frame_numbers(seq.frames)[t_idx], "measure": "T",
                                   "value": seq.per_frame[k_idx, t_idx]}))
    if not parts:
        return pd.DataFrame(columns=TIDY_COLUMNS)
    return pd.concat(parts, ignore_index=True)[TIDY_COLUMNS]


def t_mean(scores: Iterable[SequenceT], eval_t: Mapping[str, bool] | None = None) -> float:
    """Dataset T: the mean over the objects of the sequences flagged ``eval_t`` of their sequence T.

    With one object per sequence (DAVIS 2016) this is `vosbench.metrics.temporal.dataset_t`.
    """
    per_object = {}
    for seq in scores:
        for object_id, value in zip(seq.object_ids, seq.means):
            per_object[(seq.sequence, object_id)] = float(value)
    values = [v for (sequence, _), v in per_object.items()
              if (eval_t is None or eval_t.get(sequence, True)) and not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")
