"""Jobs for the benchmarks whose objects and frames the DAVIS job builder cannot express.

* LVOS: each object has its own frames (every fifth from its start, from the meta file), read
  from the sparse annotations;
* MOSEv2: the objects are those of meta.json, scored on every frame but the first and the last;
* SA-V: one binary mask per object and frame (objects may overlap), each object on its own
  annotated frames without its first and last.

Each job lists, frame by frame, where the ground truth and the prediction of every object are;
`score_benchmark_sequence` streams the frames through the run's metrics (the `Metric` interface,
as `vosbench.tracks.jobs.score_sequence` does for DAVIS) and returns `SequenceScores` with NaN on
every frame an object is not scored on. The run goes through the shared joblib runner (any backend,
Dask included) and ends in the same `Result`, tables and CSVs as every other evaluation.
* VOST: the annotated frames only, J alone, predicted ids beyond the objects ignored.

MOSEv1 is scored under the DAVIS 2017 rules and uses the DAVIS job builder directly.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from vosbench.errors import InputError, ValidationError
from vosbench.io.datasets import Dataset
from vosbench.io.lvos import frame_name
from vosbench.io.masks import read_mask
from vosbench.metrics.base import Frame, Metric, SequenceInfo
from vosbench.metrics.lvos import scored_steps
from vosbench.tracks.parallel import joblib_backend, run_parallel
from vosbench.tracks.params import EvalParams
from vosbench.tracks.result import Result, SequenceScores

log = logging.getLogger(__name__)

# A frame's masks: one id map (a path), or one binary mask per object ((object id, path), ...).
Source = Path | tuple | None


@dataclass(frozen=True)
class BenchmarkJob:
    """One video: its objects, the frames read, each frame's ground truth and prediction, and which
    objects are scored on which frame (``scored[k][t]``)."""

    sequence: str
    object_ids: tuple[int, ...]
    frames: tuple[str, ...]
    gt: tuple[Source, ...]
    pred: tuple[Source, ...]
    scored: tuple[tuple[bool, ...], ...]
    # How each object is named in the tables (the official evaluator's names); None: ``video_k``.
    labels: tuple[str, ...] | None = None


def _read(source: Source):
    """A frame's masks: an id map, or {object id: boolean mask} for one binary PNG per object."""
    if source is None:
        return None
    if isinstance(source, tuple):
        return {object_id: read_mask(path, binary=True).astype(bool) for object_id, path in source}
    return read_mask(source)


def _shape_of(masks) -> tuple[int, int] | None:
    if masks is None:
        return None
    if isinstance(masks, dict):
        return next(iter(masks.values())).shape if masks else None
    return masks.shape


def _first_path(source: Source):
    if isinstance(source, tuple):
        return source[0][1] if source else None
    return source


def score_benchmark_sequence(job: BenchmarkJob, metrics: list[Metric]) -> SequenceScores:
    """Stream one video's frames through `metrics`; NaN wherever an object is not scored."""
    pairs = tuple((k, k) for k in job.object_ids)
    scored = np.array(job.scored, dtype=bool).reshape(len(pairs), len(job.frames))
    info = None
    states: list[Any] = []
    shape = None
    for t, (name, gt_source, pred_source) in enumerate(zip(job.frames, job.gt, job.pred)):
        gt = _read(gt_source)
        pred = _read(pred_source)
        for masks, source in ((gt, gt_source), (pred, pred_source)):
            got = _shape_of(masks)
            if got is None:
                continue
            if shape is None:
                shape = got
            elif got != shape:
                raise InputError(_first_path(source), f"mask is {got[1]}x{got[0]} but the video's masks are "
                                                      f"{shape[1]}x{shape[0]}.",
                                 "Write masks at the ground truth's resolution (resize with nearest neighbour).")
        if info is None:
            if shape is None:
                continue
            info = SequenceInfo(job.sequence, job.frames, pairs, shape)
            states = [m.begin(info) for m in metrics]
            # Frames before the first readable one carry no mask at all: replay them as empty.
            for early in range(t):
                frame = Frame(early, job.frames[early], None, None, scored=scored[:, early])
                _give_shape(frame, shape)
                for metric, state in zip(metrics, states):
                    metric.update(state, frame)
        frame = Frame(t, name, gt, pred, scored=scored[:, t])
        _give_shape(frame, shape)
        for metric, state in zip(metrics, states):
            metric.update(state, frame)
    if info is None:
        raise InputError(None, f"video {job.sequence!r} has no readable mask.", "Check the dataset.")
    values: dict[str, np.ndarray] = {}
    for metric, state in zip(metrics, states):
        for field, array in metric.finish(state).items():
            array = np.asarray(array, dtype=np.float64).copy()
            array[~scored] = np.nan
            values[field] = array
    return SequenceScores(job.sequence, list(job.frames), list(job.object_ids), values=values,
                          labels=list(job.labels) if job.labels else None)


def _give_shape(frame: Frame, shape: tuple[int, int]) -> None:
    """Give a frame without any mask (both sides None or empty) the video's shape."""
    if _shape_of(frame.gt) is None and _shape_of(frame.pred) is None:
        frame.gt = np.zeros(shape, dtype=np.uint8)


# ----------------------------------------------------------------------------- job builders
def _missing(path: Path, what: str) -> InputError:
    return InputError(path, f"{what} does not exist.",
                      "Write one PNG per scored frame, named like the ground truth's frames.")


def lvos_jobs(dataset, results_dir: Path) -> tuple[list[BenchmarkJob], list[InputError]]:
    jobs, problems = [], []
    for seq in dataset.sequence_names():
        objects = dataset.objects(seq)
        per_object: list[tuple[int, dict[str, int]]] = []
        for obj in objects:
            frames, positions, length = scored_steps(obj.start, obj.end, obj.frame_nums)
            if len(positions) != length:
                problems.append(InputError(
                    dataset._meta_path, f"object {obj.object_id} of {seq!r}: its frame_range (start {obj.start}, "
                    f"end {obj.end}, frame_nums {obj.frame_nums}) gives {len(positions)} scored frames for "
                    f"{max(length, 0)} slots; the official toolkit would count the difference as frames scoring 0 "
                    "(or fail).", "Fix the meta file: frame_nums must be the number of annotated frames in the range."))
                continue
            per_object.append((obj.object_id, {frame_name(f): 1 for f in frames}))
        names = sorted({n for _, fs in per_object for n in fs})
        if not names:
            continue
        gt, pred = [], []
        for name in names:
            gt_path = dataset.annotation_path(seq, name)
            pred_path = results_dir / seq / f"{name}.png"
            if not gt_path.is_file():
                problems.append(_missing(gt_path, "ground-truth mask of a scored frame"))
            if not pred_path.is_file():
                problems.append(_missing(pred_path, "prediction of a scored frame"))
            gt.append(gt_path)
            pred.append(pred_path)
        scored = tuple(tuple(n in fs for n in names) for _, fs in per_object)
        jobs.append(BenchmarkJob(seq, tuple(i for i, _ in per_object), tuple(names), tuple(gt), tuple(pred), scored))
    return jobs, problems


def mosev2_jobs(dataset, results_dir: Path) -> tuple[list[BenchmarkJob], list[InputError]]:
    jobs, problems = [], []
    for seq in dataset.sequence_names():
        frames = dataset.frame_names(seq)
        length = dataset.length(seq)
        if length != len(frames):
            problems.append(InputError(dataset.root / "Annotations" / seq,
                                       f"holds {len(frames)} masks but meta.json says the video has {length} frames.",
                                       "The ground truth must have one mask per frame (the official check)."))
            continue
        object_ids = tuple(dataset.object_ids(seq))
        pred = []
        for t, name in enumerate(frames):
            path = results_dir / seq / f"{name}.png"
            exists = path.is_file()
            if not exists and 0 < t < len(frames) - 1:
                problems.append(_missing(path, "prediction of a scored frame"))
            pred.append(path if exists else None)
        inner = tuple(0 < t < len(frames) - 1 for t in range(len(frames)))
        jobs.append(BenchmarkJob(seq, object_ids, tuple(frames), tuple(dataset.annotation_path(seq, f) for f in frames),
                                 tuple(pred), tuple(inner for _ in object_ids),
                                 labels=tuple(f"{seq}_{i}" for i in object_ids)))
    return jobs, problems


def sav_jobs(dataset, results_dir: Path) -> tuple[list[BenchmarkJob], list[InputError]]:
    jobs, problems = [], []
    for seq in dataset.sequence_names():
        objects = dataset.object_folders(seq)
        names = dataset.annotated_frames(seq)
        scored_sets = {}
        for object_id, (folder, frames) in objects.items():
            scored_sets[object_id] = set(frames[1:-1])
        gt, pred = [], []
        for name in names:
            gt.append(dataset.annotation_path(seq, name))
            row = []
            for object_id, (folder, frames) in objects.items():
                if name not in scored_sets[object_id]:
                    continue
                path = results_dir / seq / folder / f"{name}.png"
                if not path.is_file():
                    problems.append(_missing(path, "prediction of a scored frame"))
                row.append((object_id, path))
            pred.append(tuple(row))
        object_ids = tuple(objects)
        scored = tuple(tuple(n in scored_sets[i] for n in names) for i in object_ids)
        keep = [t for t in range(len(names)) if any(s[t] for s in scored)]
        jobs.append(BenchmarkJob(seq, object_ids, tuple(names[t] for t in keep), tuple(gt[t] for t in keep),
                                 tuple(pred[t] for t in keep), tuple(tuple(s[t] for t in keep) for s in scored),
                                 labels=tuple(f"{seq}_{objects[i][0]}" for i in object_ids)))
    return jobs, problems


def vost_jobs(dataset, results_dir: Path) -> tuple[list[BenchmarkJob], list[InputError]]:
    """VOST: the annotated frames (the PNGs of Annotations/) but the first and last; objects 1..largest id of
    the first annotation (void 255 excluded). Predicted ids above them are ignored, as the package drops them."""
    jobs, problems = [], []
    for seq in dataset.sequence_names():
        frames = dataset.frame_names(seq)
        if not frames:
            problems.append(InputError(dataset.root / "Annotations" / seq, "holds no annotation.",
                                       "Every video of the split needs its annotated frames."))
            continue
        first = read_mask(dataset.annotation_path(seq, frames[0]))
        ids = first[first != 255]
        object_ids = tuple(range(1, int(ids.max()) + 1)) if ids.size else ()
        pred = []
        for t, name in enumerate(frames):
            path = results_dir / seq / f"{name}.png"
            inner = 0 < t < len(frames) - 1
            if inner and not path.is_file():
                problems.append(_missing(path, "prediction of a scored frame"))
            pred.append(path if inner else None)
        inner = tuple(0 < t < len(frames) - 1 for t in range(len(frames)))
        jobs.append(BenchmarkJob(seq, object_ids, tuple(frames), tuple(dataset.annotation_path(seq, f) for f in frames),
                                 tuple(pred), tuple(inner for _ in object_ids)))
    return jobs, problems


JOB_BUILDERS = {"lvos": lvos_jobs, "mosev2": mosev2_jobs, "sav": sav_jobs, "vost": vost_jobs}

# What each benchmark scores, printed with its tables (the DAVIS protocol line does not apply).
PROTOCOLS = {
    "lvos": "LVOS toolkit: each object on every 5th frame from its start (meta file), its first and last step "
            "skipped; J, F (pure-Python boundary path unless compiled_boundary), V = sqrt(round(var(JF), 4)); "
            "J&F = mean of J and F over seen and unseen videos (4 terms)",
    "mosev2": "MOSEv2 score.py: objects of meta.json on every frame but the first and last; J = (I+1)/(U+1); "
              "F_new with tolerance ceil(0.1 sqrt(gt area)) capped at 0.008 diagonal (headline J&F_new), F with "
              "ceil(0.008 diagonal) (the cap itself, unrounded, where the adaptive width reaches it); J&F_new on "
              "the disappear and reappear segments",
    "vost": "VOST package: annotated frames but the first and last, objects 1..largest id of the first "
            "annotation, ground-truth void counted as background; J per frame (no F); J_tr = J over the last quarter "
            "of those frames (from floor(0.75 n)); Mean, Recall, Decay with DAVIS's uint8 bin edges",
    "sav": "SA-V evaluator: one binary mask per object; each object on its annotated frames without its first "
           "and last, from the first frame it is seen (ground truth or prediction); J and F (0.008 diagonal); "
           "mean over objects",
}


def uses_benchmark_jobs(dataset: Dataset) -> bool:
    return getattr(dataset, "name", None) in JOB_BUILDERS


# Bump when the scores of unchanged files would change (old cache entries are then not reused).
BENCHMARK_CACHE_FORMAT = 2  # 2: the tables name objects as the official evaluators do


def _source_paths(source: Source) -> list:
    if isinstance(source, tuple):
        return [path for _, path in source]
    return [source]


def benchmark_job_key(job: BenchmarkJob, metrics: list[Metric]) -> str:
    """Content key of a job for the shared score cache: the bytes of every mask it reads, its frames,
    objects and frame rules, and the metrics' tokens. Computed only when a cache is used."""
    import hashlib
    import json

    digest = hashlib.sha256()
    digest.update(json.dumps({"format": BENCHMARK_CACHE_FORMAT, "frames": job.frames, "objects": job.object_ids,
                              "scored": job.scored, "metrics": [m.token() for m in metrics]},
                             sort_keys=True, default=str).encode())
    for source in job.gt + job.pred:
        for path in _source_paths(source):
            digest.update(b"\0" if path is None or not Path(path).is_file() else Path(path).read_bytes())
    return digest.hexdigest()[:32]


class BenchmarkResult(Result):
    """A `Result` whose protocol line is the benchmark's (the DAVIS rules line would not describe it)."""

    def __init__(self, *args, protocol_text: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.protocol_text = protocol_text

    def protocol(self) -> str:
        return f"Protocol: {self.protocol_text}"

    def to_dict(self):
        out = super().to_dict()
        out["protocol_text"] = self.protocol_text
        return out


def benchmark_problems(dataset: Dataset, results_dir: str | Path) -> list[InputError]:
    """Every structural problem of a results folder for a benchmark layout (what `vosbench validate` reports):
    missing masks of scored frames and ground truth the protocol needs; then every mask that cannot be
    decoded or has the wrong size, found by reading the scored frames."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        return [InputError(results_dir, "results folder does not exist.",
                           "Pass the folder holding one sub-folder per video.")]
    built, problems = JOB_BUILDERS[dataset.name](dataset, results_dir)
    if problems:
        return problems
    for job in built:
        shape = None
        for source in job.gt + job.pred:
            for path in _source_paths(source):
                if path is None:
                    continue
                try:
                    mask = read_mask(path)
                except InputError as exc:
                    problems.append(exc)
                    continue
                if shape is None:
                    shape = mask.shape
                elif mask.shape != shape:
                    problems.append(InputError(path, f"mask is {mask.shape[1]}x{mask.shape[0]} but the video's "
                                                     f"masks are {shape[1]}x{shape[0]}.",
                                               "Write masks at the ground truth's resolution."))
    return problems


def _guarded(job: BenchmarkJob, metrics: list[Metric], lenient: bool):
    try:
        return score_benchmark_sequence(job, metrics)
    except InputError as exc:
        if not lenient:
            raise
        return exc


def evaluate_benchmark(dataset: Dataset, results_dir: str | Path, params: EvalParams, *, jobs: int = 1,
                       backend: str | None = None, scheduler: str | None = None, lenient: bool = False,
                       progress: bool = False, split: str | None = None,
                       cache_dir: str | Path | None | bool = True,
                       metrics: Iterable[str | Metric] | str | None = None,
                       metric_options: Mapping[str, Mapping[str, Any]] | None = None) -> Result:
    """Validate the results folder against the benchmark's frames, score every video, return the Result."""
    from vosbench.tracks.evaluator import resolve_metrics

    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ValidationError([InputError(results_dir, "results folder does not exist.",
                                          "Pass the folder holding one sub-folder per video.")])
    chosen = resolve_metrics(dataset, params, metrics, metric_options)
    built, problems = JOB_BUILDERS[dataset.name](dataset, results_dir)
    skipped: list[str] = []
    known = set(dataset.sequence_names())
    extra = sorted(p.name for p in results_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
                   and p.name not in known)
    notes = [f"ignored {len(extra)} folder(s) that are no video of {dataset.describe()}: {', '.join(extra[:10])}"
             + (" ..." if len(extra) > 10 else "")] if extra else []
    for note in notes:
        log.info("%s", note)
    if problems:
        bad = {p.path for p in problems}
        if not lenient:
            raise ValidationError(problems)
        keep = []
        for job in built:
            paths = {str(p) for p in job.pred if isinstance(p, Path)} | {
                str(q) for p in job.pred if isinstance(p, tuple) for _, q in p}
            if paths & bad:
                skipped.append(f"{job.sequence}: masks missing")
            else:
                keep.append(job)
        built = keep
        for problem in problems:
            log.warning("skipped: %s", problem)
    from vosbench.tracks.evaluator import ScoreCache, cache_folder

    cache = ScoreCache(cache_folder(cache_dir))
    scores: dict[str, SequenceScores] = {}
    keys: dict[str, str] = {}
    todo = []
    for job in built:
        if cache.folder is not None:
            keys[job.sequence] = key = benchmark_job_key(job, chosen)
            cached = cache.load(job.sequence, key)
            if cached is not None:
                scores[job.sequence] = cached
                continue
        todo.append(job)
    if scores:
        log.info("resumed: %d of %d videos reused from the cache in %s (their masks are unchanged)",
                 len(scores), len(built), cache.folder)
    errors: list[InputError] = []
    todo.sort(key=lambda job: len(job.frames), reverse=True)  # longest first, as evaluate_dataset
    with joblib_backend(backend, scheduler):
        for output in run_parallel(_guarded, todo, jobs=jobs, total=len(todo), progress=progress,
                                   args=(chosen, lenient)):
            if isinstance(output, InputError):
                errors.append(output)
                continue
            if cache.folder is not None:
                cache.store(output.sequence, keys[output.sequence], output)
            scores[output.sequence] = output
    for error in errors:
        skipped.append(str(error))
    if not scores:
        raise ValidationError(problems + errors or [InputError(results_dir, "nothing could be scored.", "")])
    ordered = [scores[j.sequence] for j in built if j.sequence in scores]
    return BenchmarkResult(ordered, params, dataset=dataset.describe(), results_dir=str(results_dir),
                           skipped=skipped, split=split or getattr(dataset, "split", "val"), metrics=chosen,
                           protocol_text=PROTOCOLS[dataset.name], notes=notes)
