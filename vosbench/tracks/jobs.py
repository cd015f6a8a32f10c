"""One sequence's scoring as a self-contained, picklable job (what joblib ships to a worker)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from vosbench.errors import InputError, VosbenchError
from vosbench.io.allocator import keep_freed_memory_in_heap
from vosbench.io.masks import VOID_LABEL, read_mask, read_mask_view
from vosbench.metrics.base import Frame, Metric, SequenceInfo
from vosbench.tracks.params import EvalParams, Track
from vosbench.tracks.scores import SequenceScores, default_metrics


@dataclass(frozen=True)
class SequenceJob:
    """Paths of one sequence's ground truth and prediction, frame by frame.

    pred_paths[t] is None where a frame that is not scored has no prediction
    (e.g. the given first frame of the semi-supervised track).
    """

    sequence: str
    frames: tuple[str, ...]
    gt_paths: tuple[Path, ...]
    pred_paths: tuple[Path | None, ...]
    binary: bool
    params: EvalParams
    # Per-object frame rules a dataset declares (`Dataset.scored_frames`): ((object_id, (bool, ...)), ...),
    # ANDed with the protocol's; None when it declares none.
    object_frames: tuple | None = None


def _raise_first(problems: list[InputError]) -> None:
    if not problems:
        return
    first = problems[0]
    more = f" ({len(problems) - 1} more mask(s) of this sequence have the same kind of problem.)" \
        if len(problems) > 1 else ""
    raise InputError(first.path, first.problem + more, first.fix)


def _mask_problems(job: SequenceJob, path: Path, mask: np.ndarray, object_ids: list[int],
                   allowed: set[int], top: int | None = None) -> InputError | None:
    """The problem of one prediction mask whose ids the protocol cannot score (one frame).
    top: the mask's largest id, when the caller has it."""
    params = job.params
    if top is None:
        top = int(mask.max()) if mask.size else 0
    if params.track is Track.UNSUPERVISED:
        if top > params.max_proposals:
            return InputError(path, f"holds proposal id {top}, more than the {params.max_proposals} proposals allowed "
                                    "per sequence.",
                              f"Keep at most {params.max_proposals} proposals (ids 1..{params.max_proposals}).")
    elif params.annotated_only:
        if top == 0 or allowed.issuperset(range(1, top + 1)):
            return None
        present = np.flatnonzero(np.bincount(mask.ravel(), minlength=256))
        unknown = sorted(int(i) for i in present if int(i) not in allowed)
        if unknown:
            return InputError(path, f"holds object id(s) {unknown} that the ground truth of {job.sequence!r} does not "
                                    f"have (it has {sorted(object_ids)}).",
                              "Write only ids given in the ground truth (0 = background).")
    else:
        n_objects = object_ids[-1] if object_ids else 0
        if top > n_objects:
            return InputError(path, f"holds object id {top}, but the ground truth of {job.sequence!r} has {n_objects} "
                                    "object(s) in its first frame.",
                              "Write only the ids of the ground truth's first frame (0 = background); "
                              "255 is not a valid prediction.")
    return None


def _first_frame_objects(first: np.ndarray, binary: bool) -> list[int]:
    if binary:
        return [1]
    # Official DAVIS 2017: objects are 1..(largest id of the first frame); gaps become phantom objects.
    first_ids = first[first != VOID_LABEL]
    return list(range(1, int(first_ids.max()) + 1)) if first_ids.size else []


def _annotated_objects(job: SequenceJob) -> tuple[list[int], dict[int, int]]:
    """Annotated-only protocol: every id of the ground truth, and the first frame each appears in.
    One pass over the ground truth, one frame at a time."""
    first_seen: dict[int, int] = {}
    for t, path in enumerate(job.gt_paths):
        counts = np.bincount(read_mask(path, binary=job.binary).ravel(), minlength=256)
        for i in np.flatnonzero(counts):
            if i not in (0, VOID_LABEL):
                first_seen.setdefault(int(i), t)
    ids = sorted(first_seen)
    return ids, first_seen


def _scored(job: SequenceJob, object_ids: list[int], first_seen: dict[int, int] | None) -> np.ndarray:
    """(K, T) boolean: which frames count for which object (the protocol's rules and the dataset's own)."""
    params = job.params
    n_frames = len(job.frames)
    scored = np.ones((len(object_ids), n_frames), dtype=bool)
    if params.skip_first_last and n_frames > 2:
        scored[:, 0] = scored[:, -1] = False
    elif params.skip_first_last:
        scored[:] = False
    if params.annotated_only and first_seen is not None:
        for k, object_id in enumerate(object_ids):
            scored[k, : first_seen.get(object_id, n_frames) + 1] = False
    if job.object_frames:
        own = dict(job.object_frames)
        for k, object_id in enumerate(object_ids):
            if object_id in own:
                scored[k] &= np.asarray(own[object_id], dtype=bool)
    return scored


def score_sequence(job: SequenceJob, metrics: Sequence[Metric] | None = None) -> SequenceScores:
    """Score one sequence under its job's protocol with `metrics` (default: J and F).

    Frames stream: each ground-truth and prediction mask is decoded once, handed to every metric as
    one `Frame`, and dropped; memory holds a few frames, whatever the length of the video. Every
    prediction mask is checked (size, ids) on the way; the first problem is raised at the end with
    the number of others, so that one run names them all.
    """
    params = job.params
    metrics = list(metrics) if metrics is not None else default_metrics(params, {"J", "F"})
    unsupervised = params.track is Track.UNSUPERVISED
    if unsupervised and not {"J", "F"} <= {m.name for m in metrics}:
        raise VosbenchError("the unsupervised track matches proposals on mean J&F: its metrics must include J and F.")
    first_seen = None
    object_ids = None  # from the first frame
    if params.annotated_only:
        annotated, first_seen = _annotated_objects(job)
        object_ids = [1] if job.binary else annotated
    problems: list[InputError] = []
    states: list = []
    info: SequenceInfo | None = None
    scored = None
    shape = None
    pred_max = 0
    allowed: set[int] = set()
    for t, (frame_name, gt_path, pred_path) in enumerate(zip(job.frames, job.gt_paths, job.pred_paths)):
        gt = read_mask_view(gt_path, binary=job.binary)
        if shape is None:
            shape = gt.shape
            if object_ids is None:
                object_ids = _first_frame_objects(gt, job.binary)
            allowed = set(object_ids) | {0}
            if unsupervised:
                # Every possible proposal: those above the largest one seen are cut off at the end
                # (an empty proposal's scores do not depend on anything else).
                proposals = list(range(1, max(params.max_proposals, len(object_ids)) + 1))
                pairs = tuple((g, p) for p in proposals for g in object_ids)
            else:
                pairs = tuple((g, g) for g in object_ids)
            info = SequenceInfo(job.sequence, tuple(job.frames), pairs, shape, job.binary)
            scored = _scored(job, object_ids, first_seen)
            states = [m.begin(info) for m in metrics]
        elif gt.shape != shape:
            raise InputError(gt_path, f"mask is {gt.shape[1]}x{gt.shape[0]} but {job.gt_paths[0]} is "
                                      f"{shape[1]}x{shape[0]}.", "Write every mask of a sequence at the size of its frames.")
        pred = None
        if pred_path is not None:
            pred = read_mask_view(pred_path, binary=job.binary)
            if pred.shape != shape:
                raise InputError(pred_path, f"mask is {pred.shape[1]}x{pred.shape[0]} but the ground truth is "
                                            f"{shape[1]}x{shape[0]}.",
                                 "Write masks at the ground truth's resolution (resize with nearest neighbour).")
        void = (gt == VOID_LABEL) if (params.apply_void and not job.binary) else None
        if void is not None and not void.any():
            void = None
        # Unsupervised matching looks at every frame; the frame rules apply after it.
        frame = Frame(t, frame_name, gt, pred, void, scored=None if unsupervised else scored[:, t])
        if pred is not None:
            top = frame.label_boxes("pred").top  # the same pass gives the regions' boxes
            if not job.binary:
                problem = _mask_problems(job, pred_path, pred, object_ids, allowed, top)
                if problem is not None:
                    problems.append(problem)
                    continue
            pred_max = max(pred_max, top)
        if problems:
            continue  # keep checking the masks; nothing will be scored
        for metric, state in zip(metrics, states):
            metric.update(state, frame)
    _raise_first(problems)
    if info is None:
        raise InputError(job.gt_paths[0] if job.gt_paths else None, "sequence has no frames.", "Check the dataset.")
    values = {}
    for metric, state in zip(metrics, states):
        for field, array in metric.finish(state).items():
            values[field] = np.asarray(array, dtype=np.float64)

    if unsupervised and not object_ids:
        return SequenceScores(job.sequence, list(job.frames), [], values={f: v[:0] for f, v in values.items()},
                              proposal_ids=[])
    if unsupervised:
        n_props = max(pred_max, len(object_ids))
        n_k, n_t = len(object_ids), len(job.frames)
        per_prop = {f: v.reshape(-1, n_k, n_t)[:n_props] for f, v in values.items()}
        proposals = list(range(1, n_props + 1))
        # Imported here: scipy.optimize takes a second to import, paid by every worker process otherwise.
        from scipy.optimize import linear_sum_assignment

        cost = (per_prop["J"].mean(axis=2) + per_prop["F"].mean(axis=2)) / 2
        rows, cols = linear_sum_assignment(-cost)
        matched_objects = [object_ids[c] for c in cols]
        matched_props = [proposals[r] for r in rows]
        keep = _scored(job, matched_objects, first_seen)
        out = {}
        for f, v in per_prop.items():
            chosen = v[rows, cols, :].copy()
            chosen[~keep] = np.nan
            out[f] = chosen
        return SequenceScores(job.sequence, list(job.frames), matched_objects, values=out, proposal_ids=matched_props)

    for f in values:
        values[f][~scored] = np.nan
    return SequenceScores(job.sequence, list(job.frames), object_ids, values=values)


def score_guarded(job: SequenceJob, metrics: Sequence[Metric], lenient: bool) -> SequenceScores | InputError:
    """`score_sequence`, with a lenient run's input problems returned instead of raised (what a worker runs)."""
    keep_freed_memory_in_heap()  # once per process: frame buffers are reused instead of faulted in again
    try:
        return score_sequence(job, metrics)
    except InputError as exc:
        if not lenient:
            raise
        return exc


def _objects(job: SequenceJob) -> tuple[list[int], dict[int, int] | None, tuple[int, int]]:
    """The objects of a sequence, the first frame each appears in (annotated-only protocol; else None),
    and the masks' shape. Reads the first ground-truth frame, or every one for the annotated-only protocol."""
    first = read_mask(job.gt_paths[0], binary=job.binary)
    if job.params.annotated_only:
        annotated, first_seen = _annotated_objects(job)
        return ([1] if job.binary else annotated), first_seen, first.shape
    return _first_frame_objects(first, job.binary), None, first.shape


def check_content(job: SequenceJob) -> list[InputError]:
    """Decode a job's masks and report what would stop scoring (encodings, sizes, ids, proposals), without
    scoring. One mask in memory at a time."""
    problems: list[InputError] = []
    try:
        object_ids, _, shape = _objects(job)
        for path in job.gt_paths[1:]:
            got = read_mask(path, binary=job.binary).shape
            if got != shape:
                raise InputError(path, f"mask is {got[1]}x{got[0]} but {job.gt_paths[0]} is {shape[1]}x{shape[0]}.",
                                 "Write every mask of a sequence at the size of its frames.")
    except InputError as exc:
        return [exc]
    allowed = set(object_ids) | {0}
    for path in job.pred_paths:
        if path is None:
            continue
        try:
            mask = read_mask(path, binary=job.binary)
        except InputError as exc:
            problems.append(exc)
            continue
        if mask.shape != shape:
            problems.append(InputError(path, f"mask is {mask.shape[1]}x{mask.shape[0]} but the ground truth is "
                                             f"{shape[1]}x{shape[0]}.",
                                       "Write masks at the ground truth's resolution (resize with nearest neighbour)."))
            continue
        if not job.binary:
            problem = _mask_problems(job, path, mask, object_ids, allowed)
            if problem is not None:
                problems.append(problem)
    return problems
