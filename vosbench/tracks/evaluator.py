"""evaluate -> accumulate -> summarize over a dataset and a results folder.

Scoring runs as one joblib call over sequences (`parallel`), so any joblib
backend (loky processes on a laptop, Dask on a cluster) serves every track.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from vosbench.errors import InputError, ValidationError, VosbenchError
from vosbench.io.atomic import atomic_path
from vosbench.io.datasets import Dataset
from vosbench.io.paths import score_cache_dir
from vosbench.metrics.base import Metric
from vosbench.metrics.frames import native_kernel_available
from vosbench.tracks.jobs import SequenceJob, score_guarded
from vosbench.tracks.parallel import joblib_backend, run_parallel
from vosbench.tracks.params import EvalParams
from vosbench.tracks.result import Result
from vosbench.tracks.scores import SequenceScores, default_metrics
from vosbench.tracks.validate import build_jobs

log = logging.getLogger(__name__)

# Bump when the scores of an unchanged input would change, so old cache entries are not reused.
# 2: one entry holds every field of the run's metrics (the metrics' tokens are part of the key).
CACHE_FORMAT = 2


def job_key(job: SequenceJob, metrics: Sequence[Metric] | None = None) -> str:
    """Content key of a job: the bytes of every mask it reads, the protocol and the metrics it is scored
    with. Reads every mask file, so it is computed only when a cache is used, once per job."""
    metrics = list(metrics) if metrics is not None else default_metrics(job.params, {"J", "F"})
    digest = hashlib.sha256()
    digest.update(json.dumps({"format": CACHE_FORMAT, "params": job.params.to_dict(), "binary": job.binary,
                              "frames": list(job.frames), "object_frames": job.object_frames,
                              "metrics": [m.token() for m in metrics]}, sort_keys=True, default=str).encode())
    for path in job.gt_paths + job.pred_paths:
        digest.update(b"\0" if path is None else Path(path).read_bytes())
    return digest.hexdigest()[:32]


class ScoreCache:
    """Per-frame arrays of finished sequences, keyed by content; lets an interrupted run resume.

    Used by every scoring loop (`evaluate_dataset`, and T of `vosbench.reports.temporal_scores`)."""

    def __init__(self, folder: Path | None):
        self.folder = folder

    def _path(self, sequence: str, key: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{sequence}-{key}.npz"

    def load(self, sequence: str, key: str) -> SequenceScores | None:
        if self.folder is None:
            return None
        path = self._path(sequence, key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as arrays:
                return SequenceScores.from_arrays(arrays)
        except (OSError, ValueError, KeyError):
            log.warning("ignoring unreadable cache entry %s", path)
            return None

    def store(self, sequence: str, key: str, scores: SequenceScores) -> None:
        if self.folder is None:
            return
        with atomic_path(self._path(sequence, key), suffix=".npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **scores.to_arrays())


def cache_folder(cache_dir: str | Path | None | bool, default: Path | None = None) -> Path | None:
    """True -> `default` (the shared score cache), a path -> that folder, False/None -> no cache."""
    if cache_dir is True:
        return default if default is not None else score_cache_dir()
    if cache_dir:
        return Path(cache_dir)
    return None


def resolve_metrics(dataset: Dataset, params: EvalParams,
                    metrics: Iterable[str | Metric] | str | None = None,
                    metric_options_: Mapping[str, Mapping[str, Any]] | None = None) -> list[Metric]:
    """The metric instances of a run: those asked for, else the dataset's own (`Dataset.metrics`), else J and F.
    Built-in options come from the protocol (F's tolerance, the Decay rule), then the dataset's
    `metric_options()`, then `metric_options_` (the caller's, which win)."""
    from vosbench.metrics.registry import DEFAULT_METRICS, make_metrics

    spec = metrics if metrics is not None else (getattr(dataset, "metrics", None) or DEFAULT_METRICS)
    options: dict[str, dict[str, Any]] = {k: dict(v) for k, v in params.metric_options().items()}
    dataset_options = dataset.metric_options() if hasattr(dataset, "metric_options") else {}
    for source in (dataset_options, metric_options_ or {}):
        for name, values in source.items():
            options.setdefault(name, {}).update(values)
    built = make_metrics(spec, options)
    fields = [f for m in built for f in m.fields]
    columns = [c for m in built for c in m.columns]
    for what, names in (("field", fields), ("column", columns)):
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise VosbenchError(f"metrics {[m.name for m in built]} both produce the {what}(s) {doubled}.")
    return built


def evaluate_dataset(dataset: Dataset, results_dir: str | Path, params: EvalParams | None = None, *,
                     jobs: int = 1, backend: str | None = None, scheduler: str | None = None,
                     cache_dir: str | Path | None | bool = True, lenient: bool = False,
                     progress: bool = True, split: str | None = None,
                     metrics: Iterable[str | Metric] | str | None = None,
                     metric_options: Mapping[str, Mapping[str, Any]] | None = None) -> Result:
    """Validate, score every sequence (in parallel), and return the Result.

    cache_dir: True -> the shared score cache (``$VOSBENCH_HOME/scores``; entries are keyed by the
        masks' bytes, the protocol and the metrics, so nothing stale is ever reused and the results
        folder is never written to); a path; or False/None for no cache (then no mask is hashed).
    lenient: score what can be scored and list what was skipped, instead of raising.
    metrics: registry names or `Metric` instances (default: the dataset's, else J and F);
        metric_options: {name: keyword arguments} for metrics given by name.
    """
    params = params or EvalParams()
    results_dir = Path(results_dir)
    chosen = resolve_metrics(dataset, params, metrics, metric_options)
    report = build_jobs(dataset, results_dir, params)
    skipped: list[str] = []
    if report.problems:
        fatal = [p for p in report.problems if not any(p in v for v in report.by_sequence.values())]
        if not lenient or fatal or not report.jobs:
            raise ValidationError(report.problems)
        skipped = [str(p) for p in report.problems]
        for problem in report.problems:
            log.warning("skipped: %s", problem)
    for note in report.notes:
        log.info("%s", note)

    cache = ScoreCache(cache_folder(cache_dir))
    scores: dict[str, SequenceScores] = {}
    keys: dict[str, str] = {}
    todo: list[SequenceJob] = []
    for job in report.jobs:
        if cache.folder is not None:
            keys[job.sequence] = key = job_key(job, chosen)
            cached = cache.load(job.sequence, key)
            if cached is not None:
                scores[job.sequence] = cached
                continue
        todo.append(job)
    if scores:
        log.info("resumed: %d of %d sequences reused from the cache in %s (their masks are unchanged)",
                 len(scores), len(report.jobs), cache.folder)

    errors: list[InputError] = []
    # Longest sequences first: the last ones to finish are then short, and the workers end together.
    todo.sort(key=lambda job: len(job.frames), reverse=True)
    if todo:
        log.info("F's boundary matching: %s", "compiled kernel" if native_kernel_available()
                 else "OpenCV/numpy (the compiled kernel is not built; same numbers, slower)")
        with joblib_backend(backend, scheduler):
            for output in run_parallel(score_guarded, todo, jobs=jobs, total=len(todo), progress=progress,
                                       args=(chosen, lenient)):
                if isinstance(output, InputError):
                    errors.append(output)
                    continue
                if cache.folder is not None:
                    cache.store(output.sequence, keys[output.sequence], output)
                scores[output.sequence] = output
    if errors and not scores:
        # Lenient, but nothing could be scored: an empty report would only look like a result.
        raise ValidationError(list(report.problems) + errors)
    for error in errors:
        log.warning("skipped: %s", error)
        skipped.append(str(error))
    ordered = [scores[j.sequence] for j in report.jobs if j.sequence in scores]
    return Result(ordered, params, dataset=dataset.describe(), results_dir=str(results_dir),
                  skipped=skipped, split=split or getattr(dataset, "split", "val"), metrics=chosen,
                  notes=list(report.notes))
