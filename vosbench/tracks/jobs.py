"""One sequence's scoring as a self-contained, picklable job (what joblib ships to a worker)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vosbench.errors import InputError
from vosbench.io.masks import VOID_LABEL, read_mask, read_mask_into, read_mask_stack
from vosbench.metrics.frames import object_frame_scores, pairwise_frame_scores
from vosbench.tracks.params import EvalParams, Track
from vosbench.tracks.result import SequenceScores


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


def _read_predictions(job: SequenceJob, shape: tuple[int, int]) -> np.ndarray:
    pred = np.zeros((len(job.pred_paths),) + shape, dtype=np.uint8)
    for t, path in enumerate(job.pred_paths):
        if path is None:
            continue
        got = read_mask_into(path, pred[t], binary=job.binary)
        if got != shape:
            raise InputError(path, f"mask is {got[1]}x{got[0]} but the ground truth is {shape[1]}x{shape[0]}.",
                             "Write masks at the ground truth's resolution (resize with nearest neighbour).")
    return pred


def _semi_objects(gt: np.ndarray, job: SequenceJob) -> list[int]:
    if job.binary:
        return [1]
    if job.params.annotated_only:
        ids = np.flatnonzero(np.bincount(gt.ravel(), minlength=256))  # no sort of the whole stack
        return [int(i) for i in ids if i not in (0, VOID_LABEL)]
    # Official DAVIS 2017: objects are 1..(largest id of the first frame); gaps become phantom objects.
    first = gt[0]
    first_ids = first[first != VOID_LABEL]
    return list(range(1, int(first_ids.max()) + 1)) if first_ids.size else []


def _scored_frames(gt: np.ndarray, object_ids: list[int], params: EvalParams) -> np.ndarray:
    """(K, T) boolean: which frames count for which object."""
    n_frames = gt.shape[0]
    scored = np.ones((len(object_ids), n_frames), dtype=bool)
    if params.skip_first_last and n_frames > 2:
        scored[:, 0] = scored[:, -1] = False
    elif params.skip_first_last:
        scored[:] = False
    if params.annotated_only:
        for k, object_id in enumerate(object_ids):
            present = np.flatnonzero((gt == object_id).any(axis=(1, 2)))
            first = present[0] if present.size else n_frames
            scored[k, : first + 1] = False
    return scored


def content_problems(job: SequenceJob, gt: np.ndarray, pred: np.ndarray,
                     object_ids: list[int]) -> list[InputError]:
    """Every prediction mask of a job whose ids the protocol cannot score, one problem per file."""
    params = job.params
    problems: list[InputError] = []
    if job.binary:
        return problems  # every non-zero value is the one object
    allowed: set[int] | None = None
    for path, mask in zip(job.pred_paths, pred):
        if path is None:
            continue
        top = int(mask.max())
        if params.track is Track.UNSUPERVISED:
            if top > params.max_proposals:
                problems.append(InputError(
                    path, f"holds proposal id {top}, more than the {params.max_proposals} proposals allowed per "
                          "sequence.", f"Keep at most {params.max_proposals} proposals (ids 1..{params.max_proposals})."))
        elif params.annotated_only:
            if allowed is None:
                allowed = set(object_ids) | {0}
            if top == 0 or allowed.issuperset(range(1, top + 1)):
                continue  # every id up to the largest is known: no need to list the ids present
            present = np.flatnonzero(np.bincount(mask.ravel(), minlength=256))
            unknown = sorted(int(i) for i in present if int(i) not in allowed)
            if unknown:
                problems.append(InputError(
                    path, f"holds object id(s) {unknown} that the ground truth of {job.sequence!r} does not have "
                          f"(it has {sorted(object_ids)}).", "Write only ids given in the ground truth (0 = background)."))
        else:
            n_objects = object_ids[-1] if object_ids else 0
            if top > n_objects:
                problems.append(InputError(
                    path, f"holds object id {top}, but the ground truth of {job.sequence!r} has {n_objects} "
                          "object(s) in its first frame.",
                    "Write only the ids of the ground truth's first frame (0 = background); "
                    "255 is not a valid prediction."))
    return problems


def _raise_first(problems: list[InputError]) -> None:
    if not problems:
        return
    first = problems[0]
    more = f" ({len(problems) - 1} more mask(s) of this sequence have the same kind of problem.)" \
        if len(problems) > 1 else ""
    raise InputError(first.path, first.problem + more, first.fix)


def score_sequence(job: SequenceJob) -> SequenceScores:
    """Score one sequence under its job's protocol."""
    params = job.params
    gt = read_mask_stack(job.gt_paths, binary=job.binary)
    pred = _read_predictions(job, gt.shape[1:])
    void = (gt == VOID_LABEL) if (params.apply_void and not job.binary) else None
    object_ids = _semi_objects(gt, job)
    _raise_first(content_problems(job, gt, pred, object_ids))
    pred_max = int(pred.max()) if pred.size else 0

    if params.track is Track.UNSUPERVISED:
        n_props = max(pred_max, len(object_ids))
        proposals = list(range(1, n_props + 1))
        # J and F of every (proposal, object) pair over all frames, then Hungarian matching on mean J&F.
        j_all, f_all = pairwise_frame_scores(gt, pred, object_ids, proposals, void=void, bound_th=params.bound_th)
        if object_ids:
            # Imported here: scipy.optimize takes a second to import, paid by every worker process otherwise.
            from scipy.optimize import linear_sum_assignment

            cost = (j_all.mean(axis=2) + f_all.mean(axis=2)) / 2
            rows, cols = linear_sum_assignment(-cost)
        else:
            rows = cols = np.zeros(0, dtype=np.int64)
        j, f = j_all[rows, cols, :], f_all[rows, cols, :]
        matched_objects = [object_ids[c] for c in cols]
        matched_props = [proposals[r] for r in rows]
        scored = _scored_frames(gt, matched_objects, params)
        j[~scored] = np.nan
        f[~scored] = np.nan
        return SequenceScores(job.sequence, list(job.frames), matched_objects, j, f, proposal_ids=matched_props)

    # Semi-supervised.
    scored = _scored_frames(gt, object_ids, params)
    keep_t = np.flatnonzero(scored.any(axis=0))
    j = np.full((len(object_ids), gt.shape[0]), np.nan)
    f = np.full_like(j, np.nan)
    if keep_t.size and object_ids:
        # A run of frames (the usual case: all but the first and last) is a view; fancy indexing would copy.
        frames = slice(keep_t[0], keep_t[-1] + 1) if keep_t[-1] - keep_t[0] + 1 == keep_t.size else keep_t
        j_part, f_part = object_frame_scores(gt[frames], pred[frames], object_ids,
                                             void=None if void is None else void[frames], bound_th=params.bound_th)
        j[:, keep_t], f[:, keep_t] = j_part, f_part
    j[~scored] = np.nan
    f[~scored] = np.nan
    return SequenceScores(job.sequence, list(job.frames), object_ids, j, f)


def check_content(job: SequenceJob) -> list[InputError]:
    """Decode a job's masks and report what would stop scoring (encodings, sizes, ids, proposals), without scoring."""
    problems: list[InputError] = []
    try:
        gt = read_mask_stack(job.gt_paths, binary=job.binary)
    except InputError as exc:
        return [exc]
    shape = gt.shape[1:]
    pred = np.zeros((len(job.pred_paths),) + shape, dtype=np.uint8)
    for t, path in enumerate(job.pred_paths):
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
        pred[t] = mask
    problems.extend(content_problems(job, gt, pred, _semi_objects(gt, job)))
    return problems
