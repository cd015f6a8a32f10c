"""Temporal stability T of a results folder: per object, per frame, cached and resumable.

T uses the result masks only (see `vosbench.metrics.temporal`). It is slow
(about 0.1 s a frame at 480p), so each sequence's values are cached under a key
of its masks' bytes in ``$VOSBENCH_HOME/temporal``: a second leaderboard build,
or one interrupted and restarted, computes only what changed.
"""
from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from vosbench.errors import InputError
from vosbench.io.atomic import atomic_path
from vosbench.io.masks import read_mask
from vosbench.io.paths import vosbench_home
from vosbench.metrics import temporal

log = logging.getLogger(__name__)

# Bump when the same masks would give different T values, so old cache entries are not reused.
CACHE_FORMAT = 1


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


@lru_cache(maxsize=1)
def _implementation_digest() -> str:
    """A digest of the T code itself, so a changed implementation never reuses cached values.

    Taken over the syntax tree without docstrings, so editing the documentation or the
    comments of `vosbench.metrics.temporal` keeps the cache.
    """
    tree = ast.parse(Path(temporal.__file__).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]


def _key(job: _Job) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps({"format": CACHE_FORMAT, "implementation": _implementation_digest(),
                              "first_reference": job.first_reference is not None, "objects": job.object_ids, "binary": job.binary,
                              "exclude_ends": job.exclude_ends, "frames": job.frames}).encode())
    for path in [job.first_reference] + list(job.paths):
        digest.update(b"\0" if path is None else path.read_bytes())
    return digest.hexdigest()[:32]


def _compute(job: _Job) -> SequenceT:
    masks: list[np.ndarray | None] = []
    shape = None
    for path in job.paths:
        mask = None if path is None else read_mask(path, binary=job.binary)
        if mask is not None:
            shape = mask.shape
        masks.append(mask)
    if shape is None:
        raise InputError(job.paths[0], "no result mask of this sequence could be read.", "Check the results folder.")
    reference = None if job.first_reference is None else read_mask(job.first_reference, binary=job.binary)
    rows = []
    for object_id in job.object_ids:
        # Absent masks (the dropped first and last frame) stay None: T never reads them.
        per_object = [None if m is None else ((m != 0) if job.binary else (m == object_id)) for m in masks]
        first = None if reference is None else ((reference != 0) if job.binary else (reference == object_id))
        rows.append(temporal.temporal_stability(per_object, first_reference=first,
                                                exclude_ends=job.exclude_ends).per_frame)
    return SequenceT(job.sequence, job.frames, job.object_ids, np.asarray(rows, dtype=np.float64))


def _cache_dir(cache: bool | str | os.PathLike) -> Path | None:
    if cache is True:
        return vosbench_home() / "temporal"
    if not cache:
        return None
    return Path(cache)


def _load(folder: Path, job: _Job, key: str) -> SequenceT | None:
    path = folder / f"{job.sequence}-{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return SequenceT(job.sequence, job.frames, [int(x) for x in arrays["object_ids"]],
                             np.asarray(arrays["per_frame"], dtype=np.float64))
    except (OSError, ValueError, KeyError):
        log.warning("ignoring unreadable cache entry %s", path)
        return None


def _store(folder: Path, job: _Job, key: str, scores: SequenceT) -> None:
    with atomic_path(folder / f"{job.sequence}-{key}.npz", suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, object_ids=np.asarray(scores.object_ids, dtype=np.int64), per_frame=scores.per_frame)


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
              cache: bool | str | os.PathLike = True, progress: bool = False) -> list[SequenceT]:
    """T of every object of every sequence of a results folder (the official DAVIS 2016 T per sequence).

    dataset: a `vosbench.io.Dataset` (frame lists; objects and the first frame's ground truth).
    exclude_ends: drop the first and last frame, as the official benchmark does.
    first_reference: compare the first evaluated frame with the first frame's ground truth, as
        the official leaderboard does (False: leave that frame out, as the DAVIS 2016 Python
        package does).
    cache: True for ``$VOSBENCH_HOME/temporal``, a folder, or False.
    """
    results_dir = Path(results_dir)
    todo_jobs = _jobs(dataset, results_dir, sequences if sequences is not None else dataset.sequence_names(),
                      exclude_ends, first_reference)
    folder = _cache_dir(cache)
    done: dict[str, SequenceT] = {}
    todo: list[tuple[_Job, str]] = []
    for job in todo_jobs:
        key = _key(job)
        cached = _load(folder, job, key) if folder is not None else None
        if cached is not None:
            done[job.sequence] = cached
        else:
            todo.append((job, key))
    if done:
        log.info("T: %d of %d sequences reused from the cache", len(done), len(todo_jobs))
    if todo:
        outputs = Parallel(n_jobs=jobs, return_as="generator")(delayed(_compute)(job) for job, _ in todo)
        if progress:
            from tqdm.auto import tqdm

            outputs = tqdm(outputs, total=len(todo), desc=f"T {results_dir.name}", unit="seq", leave=False)
        for (job, key), scores in zip(todo, outputs):
            if folder is not None:
                _store(folder, job, key, scores)
            done[job.sequence] = scores
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
