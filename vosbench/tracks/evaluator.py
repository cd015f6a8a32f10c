"""evaluate -> accumulate -> summarize over a dataset and a results folder.

Scoring runs as one joblib call over sequences (`parallel`), so any joblib
backend (loky processes on a laptop, Dask on a cluster) serves every track.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
from joblib import delayed

from vosbench.errors import InputError, ValidationError
from vosbench.io.atomic import atomic_path
from vosbench.io.datasets import Dataset
from vosbench.io.paths import score_cache_dir
from vosbench.tracks.jobs import SequenceJob, score_sequence
from vosbench.tracks.parallel import joblib_backend, parallel_runner
from vosbench.tracks.params import EvalParams
from vosbench.tracks.result import Result, SequenceScores
from vosbench.tracks.validate import build_jobs

log = logging.getLogger(__name__)

# Bump when the scores of an unchanged input would change, so old cache entries are not reused.
CACHE_FORMAT = 1


def job_key(job: SequenceJob) -> str:
    """Content key of a job: the bytes of every mask it reads and the protocol it is scored under."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"format": CACHE_FORMAT, "params": job.params.to_dict(), "binary": job.binary,
                              "frames": list(job.frames)}, sort_keys=True).encode())
    for path in job.gt_paths + job.pred_paths:
        digest.update(b"\0" if path is None else Path(path).read_bytes())
    return digest.hexdigest()[:32]


class ScoreCache:
    """Scores of finished sequences, keyed by content; lets an interrupted run resume."""

    def __init__(self, folder: Path | None):
        self.folder = folder

    def _path(self, job: SequenceJob, key: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{job.sequence}-{key}.npz"

    def load(self, job: SequenceJob, key: str) -> SequenceScores | None:
        if self.folder is None:
            return None
        path = self._path(job, key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as arrays:
                return SequenceScores.from_arrays(arrays)
        except (OSError, ValueError, KeyError):
            log.warning("ignoring unreadable cache entry %s", path)
            return None

    def store(self, job: SequenceJob, key: str, scores: SequenceScores) -> None:
        if self.folder is None:
            return
        with atomic_path(self._path(job, key), suffix=".npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **scores.to_arrays())


def _score_with_key(job: SequenceJob) -> tuple[str, SequenceScores]:
    return job_key(job), score_sequence(job)


def _score_guarded(job: SequenceJob, lenient: bool):
    try:
        return _score_with_key(job)
    except InputError as exc:
        if not lenient:
            raise
        return exc


def evaluate_dataset(dataset: Dataset, results_dir: str | Path, params: EvalParams | None = None, *,
                     jobs: int = 1, backend: str | None = None, scheduler: str | None = None,
                     cache_dir: str | Path | None | bool = True, lenient: bool = False,
                     progress: bool = True, split: str | None = None) -> Result:
    """Validate, score every sequence (in parallel), and return the Result.

    cache_dir: True -> the shared score cache (``$VOSBENCH_HOME/scores``; entries are keyed by the
        masks' bytes and the protocol, so nothing stale is ever reused and the results folder is
        never written to); a path; or False/None for no cache.
    lenient: score what can be scored and list what was skipped, instead of raising.
    """
    params = params or EvalParams()
    results_dir = Path(results_dir)
    report = build_jobs(dataset, results_dir, params)
    skipped: list[str] = []
    if report.problems:
        fatal = [p for p in report.problems if not any(p in v for v in report.by_sequence.values())]
        if not lenient or fatal or not report.jobs:
            raise ValidationError(report.problems)
        skipped = [str(p) for p in report.problems]
        for problem in report.problems:
            log.warning("skipped: %s", problem)

    folder = None
    if cache_dir is True:
        folder = score_cache_dir()
    elif cache_dir:
        folder = Path(cache_dir)
    cache = ScoreCache(folder)

    scores: dict[str, SequenceScores] = {}
    todo: list[SequenceJob] = []
    for job in report.jobs:
        cached = cache.load(job, job_key(job)) if folder is not None else None
        if cached is not None:
            scores[job.sequence] = cached
        else:
            todo.append(job)
    if scores:
        log.info("resumed: %d of %d sequences reused from the cache in %s (their masks are unchanged)",
                 len(scores), len(report.jobs), folder)

    errors: list[InputError] = []
    if todo:
        with joblib_backend(backend, scheduler):
            runner = parallel_runner(jobs)
            outputs = runner(delayed(_score_guarded)(job, lenient) for job in todo)
            bar = _progress(outputs, total=len(todo), enabled=progress)
            for output in bar:
                if isinstance(output, InputError):
                    errors.append(output)
                    continue
                key, seq_scores = output
                job = next(j for j in todo if j.sequence == seq_scores.sequence)
                cache.store(job, key, seq_scores)
                scores[seq_scores.sequence] = seq_scores
    if errors and not scores:
        # Lenient, but nothing could be scored: an empty report would only look like a result.
        raise ValidationError(list(report.problems) + errors)
    for error in errors:
        log.warning("skipped: %s", error)
        skipped.append(str(error))
    ordered = [scores[j.sequence] for j in report.jobs if j.sequence in scores]
    return Result(ordered, params, dataset=dataset.describe(), results_dir=str(results_dir),
                  skipped=skipped, split=split or getattr(dataset, "split", "val"))


def _progress(iterable, total: int, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc="sequences", unit="seq", leave=False)
