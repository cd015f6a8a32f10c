"""Contour accuracy F: the boundary F-measure of the DAVIS toolkits: the kernels and the metric.

The boundary of a mask is `seg2bmap`: a pixel is boundary when it differs from
its east, south or south-east neighbour (last row: east only; last column: south
only; the bottom-right pixel never), so the image border itself is never
boundary. Boundaries match within a disk of radius ``ceil(0.008 * diagonal)``.

`f_measure` works on the bounding box of the two masks (grown by one pixel), which
gives exactly the full-frame result: every boundary pixel lies in that box and a
dilation only needs the boundary pixels it is asked about.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from vosbench.metrics.base import Frame, PerFrameMetric, SequenceInfo
from vosbench.metrics.statistics import object_statistics

BOUNDARY_THRESHOLD = 0.008


def boundary_radius(height: int, width: int, bound_th: float = BOUNDARY_THRESHOLD) -> int:
    """Matching tolerance in pixels: ``bound_th`` itself when >= 1, else a fraction of the diagonal."""
    if bound_th >= 1:
        return int(bound_th)
    return int(math.ceil(bound_th * math.hypot(height, width)))


@lru_cache(maxsize=16)
def _disk_kernel(radius: int) -> np.ndarray:
    """``skimage.morphology.disk(radius)``: the points with x² + y² <= r² (tested equal; not imported,
    as scikit-image's morphology takes longer to import than a whole sequence takes to score)."""
    steps = np.arange(-radius, radius + 1)
    return (steps[:, None] ** 2 + steps[None, :] ** 2 <= radius ** 2).astype(np.uint8)


@lru_cache(maxsize=16)
def _disk_rectangles(radius: int) -> tuple[tuple[int, int], ...] | None:
    """The disk as a union of centred rectangles, as (a, b) half-sizes, or None if it is not one.

    Row half-widths of a disk shrink away from the centre, so the disk is the
    union of one rectangle per distinct half-width a: (2a + 1) wide and as tall
    as the rows at least that wide (2b + 1). Sorted by a, so b decreases.
    """
    footprint = _disk_kernel(radius).astype(bool)
    centre = radius
    half_widths = footprint.sum(axis=1) // 2
    union = np.zeros_like(footprint)
    rectangles = []
    for a in sorted(set(half_widths.tolist())):
        rows = np.flatnonzero(half_widths >= a)
        b = int(max(abs(rows - centre)))
        union[centre - b:centre + b + 1, centre - a:centre + a + 1] = True
        rectangles.append((a, b))
    if not np.array_equal(union, footprint):
        return None
    return tuple(rectangles)


@lru_cache(maxsize=16)
def _disk_passes(radius: int) -> tuple[tuple[np.ndarray | None, np.ndarray | None], ...] | None:
    """One (horizontal, vertical) pair of 1-D kernels per rectangle of the disk, for `dilate_disk`:
    the horizontal one grows the previous rectangle's half-width to this one's, the vertical one is
    as tall as this rectangle's half-height exceeds the next one's (None: no pass)."""
    import cv2

    rectangles = _disk_rectangles(radius)
    if rectangles is None:
        return None
    passes = []
    for k, (a, b) in enumerate(rectangles):
        grow = a - (rectangles[k - 1][0] if k else 0)
        drop = b - (rectangles[k + 1][1] if k + 1 < len(rectangles) else 0)
        passes.append((cv2.getStructuringElement(cv2.MORPH_RECT, (2 * grow + 1, 1)) if grow else None,
                       cv2.getStructuringElement(cv2.MORPH_RECT, (1, 2 * drop + 1)) if drop else None))
    return tuple(passes)


def dilate_disk(image: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of a uint8 0/1 image by ``disk(radius)``, zeros beyond the border.

    The disk is a union of rectangles (a_k, b_k), widths growing as heights shrink, and dilating by
    a rectangle is a horizontal then a vertical 1-D pass; 1-D passes compose (a pass of half-size
    a1 after one of a2 is one of a1 + a2) and distribute over unions, so the union of the rectangle
    dilations is computed Horner-style with short passes:
    ``V_b5(y5 | V_(b4-b5)(y4 | ... V_(b0-b1)(y0)))`` with ``y_k = H_(a_k - a_(k-1))(y_(k-1))``.
    Equal to one dilation by the disk (tested), and about a fifth faster than one dilation per
    rectangle, which itself beats OpenCV's generic path for a 17x17 disk at 480p.
    """
    import cv2

    passes = _disk_passes(radius)
    if passes is None or radius <= 0:
        return cv2.dilate(image, _disk_kernel(radius), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    row_grown = image
    out = None
    for horizontal, vertical in passes:
        if horizontal is not None:
            row_grown = cv2.dilate(row_grown, horizontal, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        out = row_grown if out is None else cv2.bitwise_or(out, row_grown)
        if vertical is not None:
            out = cv2.dilate(out, vertical, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return out.copy() if out is image else out


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """Boundary map of a binary mask (same size), as the DAVIS toolkits compute it."""
    seg = np.asarray(seg, dtype=bool)
    b = np.zeros_like(seg)
    # Interior: differs from E, S or SE.
    core = seg[:-1, :-1]
    b[:-1, :-1] = (core ^ seg[:-1, 1:]) | (core ^ seg[1:, :-1]) | (core ^ seg[1:, 1:])
    b[-1, :-1] = seg[-1, :-1] ^ seg[-1, 1:]   # last row: east only
    b[:-1, -1] = seg[:-1, -1] ^ seg[1:, -1]   # last column: south only
    b[-1, -1] = False
    return b


def _precision_recall_to_f(n_pred: int, n_gt: int, pred_match: int, gt_match: int) -> float:
    if n_pred == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_pred > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_pred == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = pred_match / float(n_pred)
        recall = gt_match / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def f_measure_cropped(gt: np.ndarray, pred: np.ndarray, radius: int) -> float:
    """F of two boolean masks that already exclude void; `radius` from the full frame size."""
    import cv2

    union = (gt | pred).view(np.uint8)
    x, y, w, h = cv2.boundingRect(union)
    if w == 0:  # both masks empty: both boundaries empty
        return 1.0
    height, width = gt.shape
    y0, x0 = max(y - 1, 0), max(x - 1, 0)
    y1, x1 = min(y + h + 1, height), min(x + w + 1, width)
    gt_b = seg2bmap(gt[y0:y1, x0:x1])
    pred_b = seg2bmap(pred[y0:y1, x0:x1])
    n_gt = int(np.count_nonzero(gt_b))
    n_pred = int(np.count_nonzero(pred_b))
    if n_gt == 0 or n_pred == 0:
        return _precision_recall_to_f(n_pred, n_gt, 0, 0)
    gt_dil = dilate_disk(gt_b.view(np.uint8), radius)
    pred_dil = dilate_disk(pred_b.view(np.uint8), radius)
    pred_match = int(np.count_nonzero(pred_b & gt_dil.view(bool)))
    gt_match = int(np.count_nonzero(gt_b & pred_dil.view(bool)))
    return _precision_recall_to_f(n_pred, n_gt, pred_match, gt_match)


def f_measure(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None,
              bound_th: float = BOUNDARY_THRESHOLD) -> float:
    """Boundary F-measure of one frame (two ``(H, W)`` binary masks).

    Void pixels are removed from both masks before their boundaries are taken.
    """
    gt = np.ascontiguousarray(gt, dtype=bool)
    pred = np.ascontiguousarray(pred, dtype=bool)
    if gt.shape != pred.shape or gt.ndim != 2:
        raise ValueError(f"f_measure needs two masks of one (H, W) shape, got {gt.shape} and {pred.shape}")
    if void is not None:
        keep = ~np.asarray(void, dtype=bool)
        gt = gt & keep
        pred = pred & keep
    return f_measure_cropped(gt, pred, boundary_radius(*gt.shape, bound_th=bound_th))


class BoundaryF(PerFrameMetric):
    """Contour accuracy F of each (object, predicted id) pair in each frame; Mean, Recall and Decay per object.

    Options: bound_th, the matching tolerance (a fraction of the diagonal, or pixels when >= 1);
    decay_uint8_ids, the official Decay bug (per-object Decay only, not part of the cache key).
    """

    name = "F"
    fields = ("F",)
    columns = ("F-Mean", "F-Recall", "F-Decay")
    lower_is_better = frozenset({"F-Decay"})
    summary_options = frozenset({"decay_uint8_ids"})

    def __init__(self, bound_th: float = BOUNDARY_THRESHOLD, decay_uint8_ids: bool = False):
        super().__init__(bound_th=float(bound_th), decay_uint8_ids=bool(decay_uint8_ids))

    def begin(self, info: SequenceInfo):
        state = super().begin(info)
        state["radius"] = boundary_radius(*info.shape, self.options["bound_th"])
        return state

    def update(self, state, frame: Frame) -> None:
        from vosbench.metrics.frames import pair_f  # frames imports this module's kernels

        info: SequenceInfo = state["info"]
        radius = state["radius"]
        out = np.full(len(info.pairs), np.nan)
        for k, (gid, pid) in enumerate(info.pairs):
            if frame.scored is None or frame.scored[k]:
                out[k] = pair_f(frame.region("gt", gid), frame.region("pred", pid), radius)
        state["columns"]["F"].append(out)

    def frame_values(self, info: SequenceInfo, frame: Frame) -> dict[str, np.ndarray]:
        state = self.begin(info)
        self.update(state, frame)
        return {"F": state["columns"]["F"][0]}

    def accumulate(self, values):
        return object_statistics(values["F"], "F", self.options["decay_uint8_ids"])
