"""MOSEv2's measures (its ``score.py``): J as (I+1)/(U+1), F with an adaptive boundary width, and
J&F over the segments where an object has disappeared and where it has come back.

Per frame of one object:

* ``J = (|P ∩ G| + 1) / (|P ∪ G| + 1)``, and 1 when both masks are empty. A frame whose ground
  truth is empty but whose prediction is not scores ``1 / (|P| + 1)``, not 0.
* ``F_new``: the boundary F-measure with a matching tolerance of ``ceil(0.1 * sqrt(ground-truth
  area))`` pixels, capped at ``0.008 * diagonal``; ``F``: the same frame with the DAVIS tolerance
  ``ceil(0.008 * diagonal)``.
* When the adaptive width reaches the cap (large objects, and every frame with an empty ground
  truth) both F and F_new use the cap itself, *not rounded up*: the official code then builds
  ``skimage.morphology.disk`` with a fractional radius, whose footprint is the points of
  ``arange(-r, r + 1)`` within r of the origin: neither disk(floor r) nor disk(ceil r) (at
  240x427, r = 3.92: 45 cells against 29 and 49), and at 480p (r = 7.837) not even symmetric
  about the cell cv2 anchors it at. So MOSEv2's plain F is not DAVIS's F in those frames; it
  is reproduced here.

Per object, over the frames scored (all but the video's first and last):
J, F_new and F are the means; a disappearance segment runs from a frame whose ground truth
is empty after a non-empty one to the next reappearance (segments starting at the first
scored frame are dropped); a reappearance segment runs from a frame whose ground truth is
non-empty after an empty one to the next disappearance. The object's disappear (reappear)
J and F_new are the means over its segments; objects without such a segment have none.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from vosbench.metrics.boundary import _precision_recall_to_f, seg2bmap

ADAPTIVE_FACTOR = 0.1
DIAGONAL_CAP = 0.008


def jaccard_plus_one(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``(I + 1) / (U + 1)`` over the last two axes; 1 where the union is empty."""
    gt = np.asarray(gt, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    inter = np.count_nonzero(gt & pred, axis=(-2, -1))
    union = np.count_nonzero(gt | pred, axis=(-2, -1))
    j = np.clip((inter + 1) / (union + 1), 0, 1)
    return np.where(union == 0, 1.0, j).astype(np.float64)


def diagonal(height: int, width: int) -> float:
    """The frame diagonal as the official code computes it (``np.linalg.norm`` of the shape)."""
    return float(np.linalg.norm((height, width)))


def adaptive_radius(gt: np.ndarray) -> float:
    """F_new's matching tolerance for one ground-truth frame (a float: possibly the uncapped cap)."""
    height, width = gt.shape
    cap = DIAGONAL_CAP * diagonal(height, width)
    area = int(np.count_nonzero(gt))
    if area:
        radius = float(np.ceil(ADAPTIVE_FACTOR * np.sqrt(area)))
    else:
        radius = float(np.ceil(cap))
    return min(cap, radius)


@lru_cache(maxsize=32)
def disk_footprint(radius: float) -> np.ndarray:
    """The footprint ``skimage.morphology.disk(radius)`` builds, for an integer or fractional radius.

    Offsets ``arange(-radius, radius + 1)`` along both axes, kept where ``x² + y² <= radius²``.
    For a fractional radius the offsets do not include 0: the footprint is no disk of a whole radius.
    """
    steps = np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(steps, steps)
    return ((xx ** 2 + yy ** 2) <= radius ** 2).astype(np.uint8)


def _f_with_footprint(gt: np.ndarray, pred: np.ndarray, footprint: np.ndarray) -> float:
    """Boundary F of two boolean masks with cv2.dilate by `footprint` (anchor at its middle cell).

    Computed on the bounding box of both masks grown by the boundary's pixel and the footprint's
    size, which equals the whole frame: nothing outside it is boundary or reached by a dilation.
    """
    union = (gt | pred).view(np.uint8)
    x, y, w, h = cv2.boundingRect(union)
    if w == 0:
        return 1.0
    height, width = gt.shape
    margin = 1 + max(footprint.shape)
    y0, x0 = max(y - margin, 0), max(x - margin, 0)
    y1, x1 = min(y + h + margin, height), min(x + w + margin, width)
    crop = (slice(y0, y1), slice(x0, x1))
    # A crop edge that is not the frame's edge must not be taken for the last row/column of seg2bmap:
    # the margin keeps at least one background row/column there, whose boundary is empty either way.
    gt_b = seg2bmap(gt[crop])
    pred_b = seg2bmap(pred[crop])
    n_gt = int(np.count_nonzero(gt_b))
    n_pred = int(np.count_nonzero(pred_b))
    if n_gt == 0 or n_pred == 0:
        return _precision_recall_to_f(n_pred, n_gt, 0, 0)
    gt_dil = cv2.dilate(gt_b.view(np.uint8), footprint).view(bool)
    pred_dil = cv2.dilate(pred_b.view(np.uint8), footprint).view(bool)
    pred_match = int(np.count_nonzero(pred_b & gt_dil))
    gt_match = int(np.count_nonzero(gt_b & pred_dil))
    return _precision_recall_to_f(n_pred, n_gt, pred_match, gt_match)


def boundary_pair(gt: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """``(F, F_new)`` of one frame: the diagonal tolerance and the adaptive one, as MOSEv2 scores them."""
    gt = np.ascontiguousarray(gt, dtype=bool)
    pred = np.ascontiguousarray(pred, dtype=bool)
    if gt.shape != pred.shape or gt.ndim != 2:
        raise ValueError(f"boundary_pair needs two masks of one (H, W) shape, got {gt.shape} and {pred.shape}")
    cap = DIAGONAL_CAP * diagonal(*gt.shape)
    radius = adaptive_radius(gt)
    if radius < cap:
        f_plain = _f_with_footprint(gt, pred, disk_footprint(float(math.ceil(cap))))
        f_new = _f_with_footprint(gt, pred, disk_footprint(radius))
        return f_plain, f_new
    f = _f_with_footprint(gt, pred, disk_footprint(cap))
    return f, f


def frame_scores(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """J, F_new, F and "ground truth empty" of one object over ``(T, H, W)`` boolean masks."""
    gt = np.asarray(gt, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    j = jaccard_plus_one(gt, pred)
    f_new = np.empty(gt.shape[0])
    f_plain = np.empty(gt.shape[0])
    for t in range(gt.shape[0]):
        f_plain[t], f_new[t] = boundary_pair(gt[t], pred[t])
    empty = ~gt.any(axis=(1, 2))
    return j, f_new, f_plain, empty


def appearance_segments(empty_gt: np.ndarray) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(disappear, reappear) segments as ``[start, end)`` frame ranges of the scored frames."""
    empty = np.asarray(empty_gt, dtype=bool)
    n = len(empty)
    if n == 0:
        return [], []
    disappear = list(np.flatnonzero(~empty[:-1] & empty[1:]) + 1)
    if empty[0]:
        disappear.insert(0, 0)
    reappear = list(np.flatnonzero(empty[:-1] & ~empty[1:]) + 1)
    gone = []
    for i, start in enumerate(disappear):
        end = reappear[i] if i < len(reappear) else n
        if start > 0:
            gone.append((int(start), int(end)))
    back = []
    for i, start in enumerate(reappear):
        end = disappear[i + 1] if i + 1 < len(disappear) else n
        back.append((int(start), int(end)))
    return gone, back


@dataclass(frozen=True)
class ObjectSummary:
    """One object's MOSEv2 numbers (fractions, not percentages); None where the object has no segment."""

    j: float
    f_new: float
    f: float
    disappear_j: float | None
    disappear_f_new: float | None
    reappear_j: float | None
    reappear_f_new: float | None


def _segment_means(segments, j, f_new):
    if not segments:
        return None, None
    js = [j[a:b].mean() for a, b in segments]
    fs = [f_new[a:b].mean() for a, b in segments]
    return float(np.mean(js)), float(np.mean(fs))


def summarize_object(j: np.ndarray, f_new: np.ndarray, f: np.ndarray, empty_gt: np.ndarray) -> ObjectSummary:
    """An object's means and segment scores from its per-frame arrays over the scored frames.

    No scored frame (a video of two frames or fewer): the official script gives the object
    0 for J, F_new and F (and no segments); so does this.
    """
    j, f_new, f = (np.asarray(a, dtype=np.float64) for a in (j, f_new, f))
    if j.size == 0:
        return ObjectSummary(0.0, 0.0, 0.0, None, None, None, None)
    gone, back = appearance_segments(empty_gt)
    dj, df = _segment_means(gone, j, f_new)
    rj, rf = _segment_means(back, j, f_new)
    return ObjectSummary(float(j.mean()), float(f_new.mean()), float(f.mean()), dj, df, rj, rf)


def combine(objects: list[ObjectSummary]) -> dict[str, float]:
    """The global numbers over every object of every video (fractions; the script prints x100)."""
    def mean_of(values):
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else float("nan")

    j = mean_of([o.j for o in objects])
    f_new = mean_of([o.f_new for o in objects])
    f = mean_of([o.f for o in objects])
    dj, df = mean_of([o.disappear_j for o in objects]), mean_of([o.disappear_f_new for o in objects])
    rj, rf = mean_of([o.reappear_j for o in objects]), mean_of([o.reappear_f_new for o in objects])
    return {"J&F_new": (j + f_new) / 2, "J": j, "F_new": f_new, "disappear_J&F_new": (dj + df) / 2,
            "reappear_J&F_new": (rj + rf) / 2, "F": f, "J&F": (j + f) / 2}


# ----------------------------------------------------------------------------- the metric
from vosbench.metrics.base import Frame, PerFrameMetric, SequenceInfo  # noqa: E402

_SEGMENT_COLUMNS = ("disappear_J", "disappear_F_new", "reappear_J", "reappear_F_new")


class MoseV2(PerFrameMetric):
    """MOSEv2's score.py as one metric: per frame J (I+1)/(U+1), F_new, F and whether the ground truth
    is empty; per object and globally J&F_new (the headline), J, F_new, the disappear and reappear
    J&F_new, F and J&F (fractions: the script prints them x100, rounded to 2 decimals)."""

    name = "mosev2"
    fields = ("J", "F_new", "F", "gt_empty")
    columns = ("J&F_new", "J", "F_new", "disappear_J&F_new", "reappear_J&F_new", "F", "J&F") + _SEGMENT_COLUMNS

    def frame_values(self, info: SequenceInfo, frame: Frame) -> dict[str, np.ndarray]:
        n = len(info.pairs)
        out = {f: np.full(n, np.nan) for f in self.fields}
        for k, (gid, pid) in enumerate(info.pairs):
            if frame.scored is not None and not frame.scored[k]:
                continue
            gt, pred = frame.gt_mask(gid), frame.pred_mask(pid)
            out["J"][k] = float(jaccard_plus_one(gt, pred))
            out["F"][k], out["F_new"][k] = boundary_pair(gt, pred)
            out["gt_empty"][k] = 0.0 if gt.any() else 1.0
        return out

    def accumulate(self, values):
        rows = []
        for j, f_new, f, empty in zip(values["J"], values["F_new"], values["F"], values["gt_empty"]):
            keep = ~np.isnan(j)
            rows.append(summarize_object(j[keep], f_new[keep], f[keep], empty[keep] > 0.5))

        def col(get):
            return np.array([np.nan if get(r) is None else get(r) for r in rows], dtype=np.float64)

        out = {"J": col(lambda r: r.j), "F_new": col(lambda r: r.f_new), "F": col(lambda r: r.f),
               "disappear_J": col(lambda r: r.disappear_j), "disappear_F_new": col(lambda r: r.disappear_f_new),
               "reappear_J": col(lambda r: r.reappear_j), "reappear_F_new": col(lambda r: r.reappear_f_new)}
        out["J&F_new"] = (out["J"] + out["F_new"]) / 2
        out["J&F"] = (out["J"] + out["F"]) / 2
        out["disappear_J&F_new"] = (out["disappear_J"] + out["disappear_F_new"]) / 2
        out["reappear_J&F_new"] = (out["reappear_J"] + out["reappear_F_new"]) / 2
        return out

    def summarize(self, per_object, sequences):
        def none_if_nan(v):
            return None if np.isnan(v) else float(v)

        objects = [ObjectSummary(*(none_if_nan(per_object[c][i]) if c in _SEGMENT_COLUMNS else float(per_object[c][i])
                                   for c in ("J", "F_new", "F") + _SEGMENT_COLUMNS))
                   for i in range(len(sequences))]
        totals = combine(objects)
        for c in _SEGMENT_COLUMNS:
            values = per_object[c][~np.isnan(per_object[c])]
            totals[c] = float(np.mean(values)) if values.size else float("nan")
        return totals
